"""`warroom dashboards push` against a local stand-in of Grafana's HTTP API (no Grafana can run
here): folders and dashboards are created, a second push changes nothing, an edit made in the
UI is replaced, and a bad token fails clearly without writing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from grafana_standin import GrafanaStandIn, StandInServer
from typer.testing import CliRunner

from dashboards.build import build_all
from dashboards.common import DASHBOARD_FOLDER, FOLDERS
from dashboards.push import PushError, push
from warroom.cli import app

pytestmark = pytest.mark.integration
TOKEN = "glsa_standin_token_0123456789"


@pytest.fixture
def grafana() -> Iterator[GrafanaStandIn]:
    server = StandInServer(TOKEN)
    g = server.start()
    yield g
    server.stop()


def test_first_push_creates_folders_then_dashboards(grafana: GrafanaStandIn) -> None:
    results = push(grafana.url, TOKEN)
    assert {r.uid: r.action for r in results} == {
        **dict.fromkeys(FOLDERS, "created"),
        **dict.fromkeys(DASHBOARD_FOLDER, "created"),
    }
    assert {uid: f["title"] for uid, f in grafana.folders.items()} == FOLDERS
    built = build_all()
    for uid, stored in grafana.dashboards.items():
        assert stored["meta"]["folderUid"] == DASHBOARD_FOLDER[uid]
        assert {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")} == {
            k: v for k, v in built[uid].items() if k != "id"
        }
    # folders exist before any dashboard is saved into them
    paths = [r.path for r in grafana.writes()]
    assert paths.index("/api/dashboards/db") > max(
        i for i, p in enumerate(paths) if p == "/api/folders"
    )
    saves = [r.body for r in grafana.writes() if r.path == "/api/dashboards/db"]
    assert all(b["overwrite"] is False and b["dashboard"]["id"] is None for b in saves)
    assert not grafana.problems


def test_second_push_changes_nothing(grafana: GrafanaStandIn) -> None:
    push(grafana.url, TOKEN)
    before = json.dumps([grafana.folders, grafana.dashboards], sort_keys=True)
    writes = len(grafana.writes())
    results = push(grafana.url, TOKEN)
    assert {r.action for r in results} == {"unchanged"}
    assert len(grafana.writes()) == writes
    assert json.dumps([grafana.folders, grafana.dashboards], sort_keys=True) == before


def test_push_replaces_ui_edits_and_moved_dashboards(grafana: GrafanaStandIn) -> None:
    push(grafana.url, TOKEN)
    grafana.dashboards["warroom-national"]["dashboard"]["title"] = "edited in the UI"
    grafana.dashboards["warroom-ops"]["meta"]["folderUid"] = "warroom-folder-warroom"
    grafana.folders["warroom-folder-ops"]["title"] = "renamed"
    results = {r.uid: r.action for r in push(grafana.url, TOKEN)}
    changed = {uid for uid, action in results.items() if action != "unchanged"}
    assert changed == {"warroom-national", "warroom-ops", "warroom-folder-ops"}
    assert grafana.dashboards["warroom-national"]["dashboard"]["title"].startswith("ภาพรวม")
    assert grafana.dashboards["warroom-national"]["dashboard"]["version"] == 2
    assert grafana.dashboards["warroom-ops"]["meta"]["folderUid"] == "warroom-folder-ops"
    assert grafana.folders["warroom-folder-ops"]["title"] == FOLDERS["warroom-folder-ops"]
    updates = [r.body for r in grafana.writes() if r.path == "/api/dashboards/db"][-2:]
    assert all(b["overwrite"] is True for b in updates)
    assert not grafana.problems


def test_bad_token_is_a_clear_error_and_writes_nothing(grafana: GrafanaStandIn) -> None:
    with pytest.raises(PushError, match=r"401 Unauthorized.*--token"):
        push(grafana.url, "wrong")
    assert not grafana.writes() and not grafana.folders


def test_unreachable_grafana_is_a_clear_error() -> None:
    from streams.broker import free_port

    with pytest.raises(PushError, match="cannot reach Grafana"):
        push(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=2)


def test_cli_push_prints_each_object(grafana: GrafanaStandIn) -> None:
    result = CliRunner().invoke(app, ["dashboards", "push", "--url", grafana.url, "--token", TOKEN])
    assert result.exit_code == 0, result.output
    assert "9 changed, 0 unchanged" in result.output
    again = CliRunner().invoke(app, ["dashboards", "push", "--url", grafana.url, "--token", TOKEN])
    assert "0 changed, 9 unchanged" in again.output
    bad = CliRunner().invoke(app, ["dashboards", "push", "--url", grafana.url, "--token", "x"])
    assert bad.exit_code == 1
