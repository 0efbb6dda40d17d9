"""Routes of the wall page on the worker's web server (it only mounts them: `add_routes`).

    /d/<uid>/                     the page (the same path as Grafana's, so alert links work)
    /wall/                        -> /d/warroom-national/
    /wall/static/<file>           page assets; plotly.min.js comes from the plotly wheel
    /wall/api/dashboards          uid and title of each dashboard
    /wall/api/d/<uid>             the dashboard model without its queries
    /wall/api/d/<uid>/options/<variable>?var-...          a variable's options
    /wall/api/d/<uid>/panel/<id>?from=&to=&var-<name>=...  one panel's frames
The browser never sends SQL: it names a dashboard, a panel, variable values and a range.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import web

from dashboards.macros import QueryContext
from dashboards.wall.catalog import Dashboard, catalog
from dashboards.wall.frames import WallQueries
from dashboards.wall.selection import Refused, interval_for, parse_range, resolve_variables
from sinks.http_query import QueryService

__all__ = ["HOME", "add_routes", "plotly_bundle"]

log = logging.getLogger(__name__)

HOME: Final = "warroom-national"
STATIC: Final = Path(__file__).resolve().parent / "static"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def plotly_bundle() -> bytes:
    """plotly.js as the plotly wheel ships it (no CDN, no network at run time)."""
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _refusal(exc: Refused) -> web.Response:
    return _json({"error": exc.reason, "detail": str(exc)}, exc.status)


def _dashboard(request: web.Request) -> Dashboard:
    uid = request.match_info["uid"]
    dash = catalog().get(uid)
    if dash is None:
        raise Refused("ไม่มีแดชบอร์ดนี้", f"unknown dashboard {uid!r}", status=404)
    return dash


def _given(request: web.Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in request.query.items():
        if key.startswith("var-"):
            out.setdefault(key[4:], []).append(value)
    return out


def add_routes(app: web.Application, service: QueryService) -> WallQueries:
    """Mount the wall on `app`; its queries go through `service` (read-only, the worker's)."""
    queries = WallQueries(service)
    static_files = {p.name: p for p in STATIC.iterdir() if p.suffix in _TYPES}
    bundle: list[bytes] = []

    async def page(request: web.Request) -> web.StreamResponse:
        if request.match_info["uid"] not in catalog():
            raise web.HTTPFound(f"/d/{HOME}/")
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def home(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/d/{HOME}/")

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "plotly.min.js":
            if not bundle:
                bundle.append(plotly_bundle())
            return web.Response(
                body=bundle[0],
                content_type="text/javascript",
                headers={"Cache-Control": "max-age=86400"},
            )
        path = static_files.get(name)
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    async def dashboards(_: web.Request) -> web.Response:
        return _json([{"uid": d.uid, "title": d.title} for d in catalog().values()])

    async def model(request: web.Request) -> web.Response:
        try:
            return _json(_dashboard(request).public())
        except Refused as exc:
            return _refusal(exc)

    async def options(request: web.Request) -> web.Response:
        try:
            dash = _dashboard(request)
            name = request.match_info["name"]
            spec = dash.variable(name)
            if spec is None:
                raise Refused("ไม่มีตัวแปรนี้", f"{dash.uid} has no variable {name!r}", 404)
            rng = parse_range(request.query.get("from"), request.query.get("to"))
            # the variables before this one, checked; this one and later ones are not needed
            before = dash.variables[: dash.variables.index(spec)]
            given = {k: v for k, v in _given(request).items() if k in {b.name for b in before}}
            head = Dashboard(dash.uid, dash.title, dash.model, dash.panels, before)
            variables = await resolve_variables(head, given, rng, queries.options)
            ctx = QueryContext(rng.from_ms, rng.to_ms, interval_for(rng), variables)
            found = await queries.options(spec, ctx)
        except Refused as exc:
            return _refusal(exc)
        return _json({"options": [{"value": v, "text": t} for v, t in found]})

    async def panel(request: web.Request) -> web.Response:
        try:
            dash = _dashboard(request)
            raw_id = request.match_info["panel"]
            if not raw_id.isdigit():
                raise Refused("ไม่มีแผงนี้ในแดชบอร์ด", f"panel id {raw_id!r}", status=404)
            rng = parse_range(request.query.get("from"), request.query.get("to"))
            body = await queries.panel(dash, int(raw_id), _given(request), rng)
        except Refused as exc:
            if exc.status >= 500:
                log.warning("wall panel failed", extra={"path": request.path, "error": str(exc)})
            return _refusal(exc)
        body["range"] = {"from": rng.from_ms, "to": rng.to_ms}
        return _json(body)

    router = app.router
    router.add_get("/d/{uid}", page)
    router.add_get("/d/{uid}/", page)
    router.add_get("/d/{uid}/{slug}", page)
    router.add_get("/wall", home)
    router.add_get("/wall/", home)
    router.add_get("/wall/static/{name}", static)
    router.add_get("/wall/api/dashboards", dashboards)
    router.add_get("/wall/api/d/{uid}", model)
    router.add_get("/wall/api/d/{uid}/options/{name}", options)
    router.add_get("/wall/api/d/{uid}/panel/{panel}", panel)
    return queries
