"""The alerts table against the alerts_history rows the worker's alert engine wrote while it
consumed the simulated events: the burst in one district fires the surge rules, and the panel
lists what fired in the range, newest first, with each alert's current state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from dash_data import BURST_DISTRICT
from dash_panels import PanelQuery, all_selected, clickhouse_queries, context, custom_options, run

from dashboards.macros import Variable
from dashboards.overview import LIFECYCLE, SEVERITY_TH, STATE_TH
from streams import geography

pytestmark = pytest.mark.integration

QUERIES = clickhouse_queries()
TITLE = "การแจ้งเตือนล่าสุด"


def panel(uid: str) -> PanelQuery:
    return next(q for q in QUERIES if q.uid == uid and q.title == TITLE)


def _ms(value: Any) -> int:
    return round(datetime.fromisoformat(str(value)).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def history(warehouse: Any) -> list[dict[str, Any]]:
    names, rows = warehouse.query(
        "SELECT at, alert_id, rule_id, state, severity, district_code, province_code, region, "
        "dimension, value, threshold, title_th FROM alerts_history FINAL"
    )
    return [dict(zip(names, r, strict=True)) for r in rows]


def _expected(
    history: list[dict[str, Any]], frm: int, to: int, districts: set[str] | None = None
) -> list[tuple[Any, ...]]:
    """The panel's rows from the history: alerts with a `firing` row in [frm, to], newest
    first, their state = the latest lifecycle state up to `to`."""
    fired: dict[str, dict[str, Any]] = {}
    state: dict[str, tuple[int, int, str]] = {}
    for h in history:
        if districts is not None and h["district_code"] not in districts:
            continue
        at = _ms(h["at"])
        if h["state"] == "firing" and frm <= at <= to:
            # first firing time; severity, title, value and threshold of the latest
            a = fired.get(h["alert_id"])
            if a is None:
                fired[h["alert_id"]] = {**h, "first": at, "last": at}
            else:
                first = min(a["first"], at)
                if at >= a["last"]:
                    a.update(h, last=at)
                a["first"] = first
        if h["state"] in LIFECYCLE and at <= to:
            order = (at, LIFECYCLE.index(h["state"]), h["state"])
            if h["alert_id"] not in state or order > state[h["alert_id"]]:
                state[h["alert_id"]] = order
    rows = sorted(fired.values(), key=lambda a: (-a["first"], a["alert_id"]))[:50]
    names = {d.code: d for d in geography.districts()}
    province_th = {p.code: p.name_th for p in geography.provinces()}
    return [
        (
            a["first"],
            SEVERITY_TH[a["severity"]],
            a["title_th"],
            a["district_code"],
            names[a["district_code"]].name_th,
            province_th[names[a["district_code"]].province_code],
            a["value"],
            a["threshold"],
            STATE_TH[state[a["alert_id"]][2]],
        )
        for a in rows
    ]


def _panel_rows(warehouse: Any, uid: str, to: int, **selected: Any) -> list[tuple[Any, ...]]:
    q = panel(uid)
    variables = all_selected(uid, custom_options(uid))
    variables.update({k: Variable(v) for k, v in selected.items()})
    _, rows = run(warehouse, q.raw_sql, context((warehouse.time_range[0], to), variables))
    return [(_ms(r[0]), *r[1:]) for r in rows]


def test_the_burst_fired_the_surge_rules(history: list[dict[str, Any]]) -> None:
    fired = {
        (h["rule_id"], h["dimension"])
        for h in history
        if h["state"] == "firing" and h["district_code"] == BURST_DISTRICT
    }
    assert {("grievance_surge", ""), ("grievance_surge_disaster", "flood")} <= fired
    rules = {h["rule_id"] for h in history if h["state"] == "firing"}
    assert len(rules) >= 4, f"several rules fire on the simulated country: {rules}"


@pytest.mark.parametrize("when", ["now", "past"])
def test_alerts_table_equals_the_history(
    warehouse: Any, history: list[dict[str, Any]], when: str
) -> None:
    frm, to = warehouse.time_range
    if when == "past":
        to = warehouse.past_ms
    expected = _expected(history, frm, to)
    assert expected, "alerts fired in the range"
    got = _panel_rows(warehouse, "warroom-national", to)
    assert got == [(*e[:6], pytest.approx(e[6]), pytest.approx(e[7]), e[8]) for e in expected]


def test_district_alerts_show_the_surge(warehouse: Any, history: list[dict[str, Any]]) -> None:
    frm, to = warehouse.time_range
    d = geography.district(BURST_DISTRICT)
    assert d is not None
    got = _panel_rows(
        warehouse,
        "warroom-district",
        to,
        province=[d.province_code],
        district=[BURST_DISTRICT],
    )
    expected = _expected(history, frm, to, {BURST_DISTRICT})
    assert [r[:6] for r in got] == [e[:6] for e in expected]
    assert [r[8] for r in got] == [e[8] for e in expected]
    titles = {r[2] for r in got}
    assert "เรื่องร้องเรียนเพิ่มขึ้นผิดปกติ" in titles
    assert all(r[3] == BURST_DISTRICT for r in got)
