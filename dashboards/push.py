"""`warroom dashboards push`: create or update the folders and dashboards on a running Grafana.

Idempotent: a folder or dashboard that already equals what the code builds is left alone, so a
second push changes nothing (Grafana keeps no new dashboard version).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaUnauthorizedError,
)
from niquests.exceptions import RequestException

from dashboards.build import build_all
from dashboards.common import DASHBOARD_FOLDER, FOLDERS

__all__ = ["PushError", "PushResult", "push"]

log = logging.getLogger(__name__)

Action = Literal["created", "updated", "unchanged"]
#: keys Grafana adds to a stored dashboard; they are not part of what we build
_SERVER_KEYS = frozenset({"id", "version"})
MESSAGE = "warroom dashboards push"


class PushError(RuntimeError):
    """Grafana refused or could not be reached; the message says what to do."""


@dataclass(frozen=True)
class PushResult:
    kind: Literal["folder", "dashboard"]
    uid: str
    title: str
    action: Action


def _explain(exc: GrafanaException, url: str) -> PushError:
    if isinstance(exc, GrafanaUnauthorizedError):
        return PushError(
            f"Grafana at {url} refused the token (401 Unauthorized): pass a valid service "
            "account token with --token (Administration → Service accounts, role Editor or "
            "Admin)"
        )
    if isinstance(exc, GrafanaClientError) and exc.status_code == 403:
        return PushError(
            f"Grafana at {url} denied access (403 Forbidden): the token's service account "
            "needs the Editor or Admin role to write folders and dashboards"
        )
    if exc.status_code == 0:
        return PushError(f"cannot reach Grafana at {url}: {exc.message}")
    return PushError(f"Grafana at {url} answered {exc.status_code}: {exc.message}")


def _get(fn: Any, *args: Any) -> Any | None:
    """The resource, or None when Grafana answers 404."""
    try:
        return fn(*args)
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise


def _folder(api: Any, uid: str, title: str) -> PushResult:
    current = _get(api.folder.get_folder, uid)
    if current is None:
        api.folder.create_folder(title, uid=uid)
        action: Action = "created"
    elif current.get("title") != title:
        api.folder.update_folder(uid, title=title, overwrite=True)
        action = "updated"
    else:
        action = "unchanged"
    return PushResult("folder", uid, title, action)


def _same(stored: dict[str, Any], built: dict[str, Any]) -> bool:
    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k not in _SERVER_KEYS}

    return strip(stored) == strip(built)


def _dashboard(api: Any, model: dict[str, Any], folder_uid: str) -> PushResult:
    uid = model["uid"]
    current = _get(api.dashboard.get_dashboard, uid)
    if current is not None:
        meta = current.get("meta", {})
        if meta.get("folderUid") == folder_uid and _same(current.get("dashboard", {}), model):
            return PushResult("dashboard", uid, model["title"], "unchanged")
    api.dashboard.update_dashboard(
        {
            "dashboard": {**model, "id": None},
            "folderUid": folder_uid,
            "message": MESSAGE,
            # ours is the source of truth: replace edits made in the UI
            "overwrite": current is not None,
        }
    )
    return PushResult("dashboard", uid, model["title"], "created" if current is None else "updated")


def push(url: str, token: str, *, timeout: float = 10.0) -> list[PushResult]:
    """Push every folder and dashboard; returns what happened to each, in order."""
    if not token:
        raise PushError("a Grafana service account token is required (--token)")
    # grafana-client's element methods are untyped: handle the client as Any
    api: Any = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    results: list[PushResult] = []
    try:
        for uid, title in FOLDERS.items():
            results.append(_folder(api, uid, title))
        for uid, model in build_all().items():
            results.append(_dashboard(api, model, DASHBOARD_FOLDER[uid]))
    except GrafanaException as exc:
        raise _explain(exc, url) from exc
    except RequestException as exc:  # grafana-client lets connection errors through
        raise PushError(f"cannot reach Grafana at {url}: {exc}") from exc
    for r in results:
        log.info("grafana %s %s", r.kind, r.action, extra={"uid": r.uid})
    return results
