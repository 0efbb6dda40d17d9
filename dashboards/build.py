"""Build every dashboard and write deterministic JSON to dashboards/generated/<uid>.json."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import district, grievances, national, ops, projects, quality

__all__ = ["DASHBOARDS", "GENERATED", "build_all", "render", "stale", "write_all"]

log = logging.getLogger(__name__)

GENERATED: Final = Path(__file__).resolve().parent / "generated"

#: uid -> builder; the uids are fixed (alerts and other dashboards link to them)
DASHBOARDS: Final[dict[str, Callable[[], dashboard_builder.Dashboard]]] = {
    national.UID: national.build,
    district.UID: district.build,
    grievances.UID: grievances.build,
    projects.UID: projects.build,
    quality.UID: quality.build,
    ops.UID: ops.build,
}


def _number_panels(model: dict[str, Any]) -> None:
    """Stable panel ids in layout order (Grafana needs unique ids; the SDK leaves them 0)."""
    next_id = 1
    for panel in model.get("panels", []):
        panel["id"] = next_id
        next_id += 1
        for inner in panel.get("panels", []):
            inner["id"] = next_id
            next_id += 1


def build_all() -> dict[str, dict[str, Any]]:
    """uid -> dashboard model as plain JSON data."""
    out: dict[str, dict[str, Any]] = {}
    for uid, build in DASHBOARDS.items():
        model = json.loads(JSONEncoder().encode(build().build()))
        _number_panels(model)
        out[uid] = model
    return out


def render(model: dict[str, Any]) -> str:
    """The committed form: sorted keys, 2-space indent, Thai kept readable, final newline."""
    return json.dumps(model, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_all(directory: Path = GENERATED) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, model in build_all().items():
        path = directory / f"{uid}.json"
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
        log.info("dashboard written", extra={"uid": uid, "path": str(path)})
    return written


def stale(directory: Path = GENERATED) -> list[str]:
    """uids whose committed JSON differs from what the code builds now (or is missing)."""
    out = []
    for uid, model in build_all().items():
        path = directory / f"{uid}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != render(model):
            out.append(uid)
    return out
