"""Who may use the worker's web server beyond its probes: a credential, or this machine.

With WARROOM_WEB_PASSWORD set, every route but the probes needs it, presented as ClickHouse's
HTTP interface takes a password (HTTP Basic with any user, X-ClickHouse-Key, or ?password=),
so clickhouse-connect, Grafana's plugin and browsers can send it. Without it those routes
answer loopback clients only. The store token (WARROOM_STORE_TOKEN, header X-Warroom-Store-Token)
is the other workers' credential: it also opens these routes, and alone opens /store/insert.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

__all__ = ["STORE_TOKEN_HEADER", "guard", "is_loopback", "presented", "store_token_ok"]

STORE_TOKEN_HEADER = "X-Warroom-Store-Token"
# probes and read-only summaries: Prometheus, Docker's healthcheck, `warroom status`
OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz", "/ping"})
OPEN_PREFIXES = ("/status/",)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost (a bind address or a peer address)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def presented(request: web.Request) -> list[str]:
    """Every password the request carries, in ClickHouse's ways."""
    found: list[str] = []
    auth = request.headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            found.append(decoded.partition(":")[2])
        except (binascii.Error, UnicodeDecodeError):
            pass
    for value in (request.headers.get("X-ClickHouse-Key"), request.query.get("password")):
        if value:
            found.append(value)
    return found


def _matches(candidates: Iterable[str], secret: str) -> bool:
    if not secret:
        return False
    hits = [hmac.compare_digest(c.encode(), secret.encode()) for c in candidates]
    return any(hits)


def store_token_ok(request: web.Request, token: str) -> bool:
    """True when the request carries the store token (and one is configured)."""
    return _matches([request.headers.get(STORE_TOKEN_HEADER, "")], token)


def _refused(status: int, text: str) -> web.Response:
    headers = {"X-ClickHouse-Exception-Code": "516"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="warroom", charset="UTF-8"'
    return web.Response(
        status=status,
        text=f"Code: 516. DB::Exception: {text} (AUTHENTICATION_FAILED)\n",
        content_type="text/plain",
        headers=headers,
    )


def guard(password: str, store_token: str = "") -> Middleware:
    """aiohttp middleware: the rule in the module docstring."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return await handler(request)
        if store_token_ok(request, store_token):
            return await handler(request)
        if password:
            if _matches(presented(request), password):
                return await handler(request)
            return _refused(401, "warroom: a password is required (WARROOM_WEB_PASSWORD).")
        if is_loopback(request.remote):
            return await handler(request)
        return _refused(
            403,
            "warroom: this endpoint answers clients on this machine only; set "
            "WARROOM_WEB_PASSWORD to serve other machines.",
        )

    return middleware
