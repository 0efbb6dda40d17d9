"""A STAND-IN for Grafana's HTTP API (no Grafana runs here): only the endpoints that
`warroom dashboards push` uses, answering and validating as Grafana 11's HTTP API docs
describe them (Folder API, Dashboard API: /api/folders, /api/folders/:uid,
/api/dashboards/db, /api/dashboards/uid/:uid). Every request is checked (Bearer token,
JSON content type, body shape, folderUid, overwrite/version rules) and recorded."""

from __future__ import annotations

import asyncio
import copy
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from streams.broker import free_port

_FOLDER_KEYS = {"uid", "title", "parentUid", "description"}
_FOLDER_UPDATE_KEYS = {"uid", "title", "version", "overwrite", "description"}
_SAVE_KEYS = {"dashboard", "folderUid", "folderId", "message", "overwrite"}


@dataclass
class Request:
    method: str
    path: str
    body: Any


@dataclass
class GrafanaStandIn:
    token: str
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> {dashboard, meta}
    requests: list[Request] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # requests Grafana would refuse
    port: int = 0
    _next_id: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method in ("POST", "PUT", "DELETE")]

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- request checks ---------------------------------------------------------------------

    async def _checked(self, request: web.Request) -> Any:
        body = None
        if request.method in ("POST", "PUT"):
            if request.content_type != "application/json":
                self.problems.append(f"{request.path}: Content-Type {request.content_type}")
                raise web.HTTPBadRequest(text='{"message":"bad request data"}')
            body = await request.json()
        self.requests.append(Request(request.method, request.path, body))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise web.HTTPUnauthorized(
                text='{"message":"invalid API key"}', content_type="application/json"
            )
        return body

    def _bad(self, message: str, status: type[web.HTTPException] = web.HTTPBadRequest) -> None:
        self.problems.append(message)
        raise status(text=f'{{"message":"{message}"}}', content_type="application/json")

    # --- folders ----------------------------------------------------------------------------

    async def get_folder(self, request: web.Request) -> web.Response:
        await self._checked(request)
        folder = self.folders.get(request.match_info["uid"])
        if folder is None:
            raise web.HTTPNotFound(
                text='{"message":"folder not found","status":"not-found"}',
                content_type="application/json",
            )
        return web.json_response(folder)

    async def create_folder(self, request: web.Request) -> web.Response:
        body = await self._checked(request)
        if not isinstance(body, dict) or not set(body) <= _FOLDER_KEYS:
            self._bad(f"folder body has unknown keys: {body}")
        if not isinstance(body.get("title"), str) or not body["title"]:
            self._bad("folder title is required")
        uid = body.get("uid") or f"auto{self._id()}"
        if len(uid) > 40:
            self._bad("uid too long, max 40 characters")
        if uid in self.folders:
            self._bad("a folder with the same uid already exists", web.HTTPConflict)
        if any(f["title"] == body["title"] for f in self.folders.values()):
            self._bad("a folder with the same name already exists", web.HTTPConflict)
        folder = {
            "id": self._id(),
            "uid": uid,
            "title": body["title"],
            "url": f"/dashboards/f/{uid}/",
            "version": 1,
        }
        self.folders[uid] = folder
        return web.json_response(folder)

    async def update_folder(self, request: web.Request) -> web.Response:
        body = await self._checked(request)
        folder = self.folders.get(request.match_info["uid"])
        if folder is None:
            raise web.HTTPNotFound(text='{"message":"folder not found"}')
        if not isinstance(body, dict) or not set(body) <= _FOLDER_UPDATE_KEYS:
            self._bad(f"folder update has unknown keys: {body}")
        if not body.get("overwrite") and body.get("version") != folder["version"]:
            self._bad("the folder has been changed by someone else", web.HTTPPreconditionFailed)
        folder["title"] = body.get("title", folder["title"])
        folder["version"] += 1
        return web.json_response(folder)

    # --- dashboards -------------------------------------------------------------------------

    async def get_dashboard(self, request: web.Request) -> web.Response:
        await self._checked(request)
        stored = self.dashboards.get(request.match_info["uid"])
        if stored is None:
            raise web.HTTPNotFound(
                text='{"message":"Dashboard not found"}', content_type="application/json"
            )
        return web.json_response(copy.deepcopy(stored))

    async def save_dashboard(self, request: web.Request) -> web.Response:
        body = await self._checked(request)
        if not isinstance(body, dict) or not set(body) <= _SAVE_KEYS:
            self._bad(
                f"save body has unknown keys: {sorted(body) if isinstance(body, dict) else body}"
            )
        dash = body.get("dashboard")
        if not isinstance(dash, dict) or not dash.get("title") or not dash.get("uid"):
            self._bad("dashboard with a title and a uid is required")
        if "folderUid" in body and "folderId" in body:
            self._bad("give folderId or folderUid, not both")
        folder_uid = body.get("folderUid", "")
        if folder_uid and folder_uid not in self.folders:
            self._bad("folder not found")
        uid = dash["uid"]
        existing = self.dashboards.get(uid)
        overwrite = body.get("overwrite", False)
        if not isinstance(overwrite, bool):
            self._bad("overwrite must be a boolean")
        if existing is None and dash.get("id") is not None:
            self._bad("Dashboard not found", web.HTTPNotFound)
        stale = existing is not None and dash.get("version") != existing["dashboard"]["version"]
        if stale and not overwrite:
            raise web.HTTPPreconditionFailed(
                text='{"message":"The dashboard has been changed by someone else",'
                '"status":"version-mismatch"}',
                content_type="application/json",
            )
        version = 1 if existing is None else existing["dashboard"]["version"] + 1
        did = self._id() if existing is None else existing["dashboard"]["id"]
        stored = {**dash, "id": did, "version": version}
        folder = self.folders.get(folder_uid, {})
        self.dashboards[uid] = {
            "dashboard": stored,
            "meta": {
                "folderUid": folder_uid,
                "folderTitle": folder.get("title", "General"),
                "version": version,
                "url": f"/d/{uid}/",
                "slug": uid,
            },
        }
        return web.json_response(
            {"id": did, "uid": uid, "url": f"/d/{uid}/", "status": "success", "version": version}
        )

    # --- lifecycle --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/folders/{uid}", self.get_folder)
        app.router.add_post("/api/folders", self.create_folder)
        app.router.add_put("/api/folders/{uid}", self.update_folder)
        app.router.add_get("/api/dashboards/uid/{uid}", self.get_dashboard)
        app.router.add_post("/api/dashboards/db", self.save_dashboard)
        return app


class StandInServer:
    """Runs a GrafanaStandIn on its own event loop thread (grafana-client calls are blocking)."""

    def __init__(self, token: str) -> None:
        self.grafana = GrafanaStandIn(token=token, port=free_port())
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> GrafanaStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self.grafana

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.grafana.app())
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.grafana.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
