"""The worker's web server with WARROOM_WEB_PASSWORD (issue 12): acknowledging an alert needs
it, `warroom alerts ack`'s client sends it, the probes stay open (real server, real HTTP)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from aiohttp import web

from alerts.ack import AckError, post_ack
from streams.web import WebServer

pytestmark = pytest.mark.integration

PASSWORD = "web-password-for-this-test-0123"
ALERT = "3355d0ac35808cab-mjuohs00"


async def test_acknowledging_needs_the_password() -> None:
    server = WebServer("127.0.0.1", 0, password=PASSWORD)
    acked: list[str] = []

    async def ack(request: web.Request) -> web.Response:
        acked.append(request.match_info["alert_id"])
        return web.json_response({"alert_id": request.match_info["alert_id"]})

    server.web_app.router.add_post("/alerts/{alert_id}/ack", ack)
    server.add_json("/status/alerts", lambda: [])
    server.web_app.router.add_get("/healthz", _ok)
    await server.start()
    try:
        base = server.url

        def without() -> int:
            with pytest.raises(AckError) as info:
                post_ack(base, ALERT, "someone")
            return info.value.status

        def wrong() -> int:
            with pytest.raises(AckError) as info:
                post_ack(base, ALERT, "someone", password="not-it")
            return info.value.status

        assert await asyncio.to_thread(without) == 401
        assert await asyncio.to_thread(wrong) == 401
        assert acked == []
        answer = await asyncio.to_thread(post_ack, base, ALERT, "someone", password=PASSWORD)
        assert answer == {"alert_id": ALERT} and acked == [ALERT]
        for path in ("/healthz", "/status/alerts"):  # probes and summaries stay open
            status = await asyncio.to_thread(lambda p=path: urllib.request.urlopen(base + p).status)
            assert status == 200
    finally:
        await server.stop()


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def _own_address() -> str | None:
    """A non-loopback address of this machine, to be another machine's client."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: it only picks the interface
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("public", [False, True])
async def test_the_public_listener_lets_other_machines_reach_its_signed_routes(
    public: bool,
) -> None:
    """LINE's servers and a chief's phone are other machines: the chief-facing listener has no
    loopback guard (each of its routes checks its own signature); the worker's own has."""
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    server = WebServer("0.0.0.0", 0, public=public)

    async def webhook(request: web.Request) -> web.Response:
        return web.Response(status=401, text="bad signature")  # what a forged delivery gets

    server.web_app.router.add_post("/line/webhook", webhook)
    await server.start()
    try:

        def post() -> int:
            req = urllib.request.Request(
                f"http://{address}:{server.port}/line/webhook", data=b"{}", method="POST"
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return int(r.status)
            except urllib.error.HTTPError as exc:
                return int(exc.code)

        status = await asyncio.to_thread(post)
        assert status == (401 if public else 403)
    finally:
        await server.stop()
