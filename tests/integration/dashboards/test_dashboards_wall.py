"""The wall page (dashboards/wall) in Debian's headless Chromium against the dashboard tests'
real worker: every panel of every dashboard renders without a console error, the stat numbers
on screen equal the raw-event oracle (nationally and after picking a district in the page),
a bad variable value or an unknown panel is refused, and new events change a number on the
page without a reload."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dash_oracle
import orjson
import pytest
from dash_oracle import total

from dashboards.wall.catalog import catalog
from producers.simulator.generator import Item
from streams import geography
from streams.labels import SDG_TH, TPMAP_TH
from streams.timeutil import BANGKOK
from streams.topics import Topics
from tests.kafka_io import produce_items
from tests.services.browser import chromium, console_errors, wait_until

pytestmark = pytest.mark.integration

BACKLOG = "เรื่องค้างดำเนินการ"
NEW_TODAY = "เรื่องร้องเรียนใหม่วันนี้"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium")) as driver:
        yield driver


def _open(driver: Any, url: str, refreshes: int = 1) -> None:
    driver.get(url)
    wait_until(
        lambda: (
            int(driver.execute_script("return document.body.dataset.refreshes || 0")) >= refreshes
        ),
        timeout=120,
        what=f"{url} rendered",
    )


def _refreshes(driver: Any) -> int:
    return int(driver.execute_script("return document.body.dataset.refreshes || 0"))


def _stat(driver: Any, title: str) -> float:
    """The number a person reads in a stat panel (Thai digit grouping removed)."""
    text = driver.execute_script(
        "return [...document.querySelectorAll('.panel')]"
        ".find(p => p.dataset.title === arguments[0]).querySelector('.stat-value').textContent",
        title,
    )
    return float(text.replace(",", "").replace("%", "").strip())


def _states(driver: Any) -> dict[str, str]:
    got: dict[str, str] = driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('.panel[data-state]')]"
        ".map(p => [p.dataset.title, p.dataset.state + ' ' + p.innerText.slice(0, 200)]))"
    )
    return got


def test_every_panel_of_every_dashboard_renders_without_console_error(
    warehouse: Any, browser: Any
) -> None:
    for uid, dash in catalog().items():
        _open(browser, f"{warehouse.url}/d/{uid}/")
        states = _states(browser)
        data_panels = [p for p in dash.panels.values() if p.type != "row"]
        assert len(states) == len(data_panels), uid
        for p in data_panels:
            want = "ok" if p.source == "clickhouse" else "notice"
            assert states[p.title].startswith(want), (uid, p.title, states[p.title])
        assert console_errors(browser) == [], uid
        # Thai, with Buddhist-Era years (the data is from this year)
        be_year = str(datetime.now(BANGKOK).year + 543)
        assert be_year in browser.find_element("id", "clock").text


def test_stat_numbers_on_screen_equal_the_oracle(warehouse: Any, browser: Any) -> None:
    grievances = dash_oracle.grievance_gauges(warehouse)
    expected = {
        BACKLOG: total(grievances, "grievance_open"),
        "เกินกำหนด (SLA)": total(grievances, "grievance_overdue"),
        "เร่งด่วนยังไม่มอบหมาย": total(grievances, "grievance_urgent_unassigned"),
    }
    assert all(v > 0 for v in expected.values()), expected
    _open(browser, f"{warehouse.url}/d/warroom-national/?kiosk")
    assert {t: _stat(browser, t) for t in expected} == pytest.approx(expected)
    # kiosk: no controls on the wall screen
    assert not browser.find_element("id", "controls").is_displayed()


def test_picking_a_district_shows_that_districts_oracle_values(
    warehouse: Any, browser: Any
) -> None:
    from selenium.webdriver.support.ui import Select

    grievances = dash_oracle.grievance_gauges(warehouse)
    districts = sorted({k[0] for k in grievances})
    district = max(districts, key=lambda d: (total(grievances, "grievance_open", district=d), d))
    _open(browser, f"{warehouse.url}/d/warroom-district/")
    assert _stat(browser, BACKLOG) == pytest.approx(total(grievances, "grievance_open"))
    before = _refreshes(browser)
    Select(browser.find_element("id", "var-district")).select_by_value(district)
    wait_until(lambda: _refreshes(browser) > before, what="the page to refresh")
    for metric, title in (("grievance_open", BACKLOG), ("grievance_overdue", "เกินกำหนด (SLA)")):
        assert _stat(browser, title) == pytest.approx(
            total(grievances, metric, district=district)
        ), (district, title)
    # the URL carries the selection: an alert's link opens the same view
    assert f"var-district={district}" in browser.current_url
    assert console_errors(browser) == []


def _options(driver: Any, name: str) -> list[str]:
    values: list[str] = driver.execute_script(
        "return [...document.getElementById('var-' + arguments[0]).options].map(o => o.value)",
        name,
    )
    return [v for v in values if v != "$__all"]


def test_variables_chain_and_the_time_picker(warehouse: Any, browser: Any) -> None:
    from selenium.webdriver.support.ui import Select

    _open(browser, f"{warehouse.url}/d/warroom-district/")
    assert len(_options(browser, "province")) == 77
    before = _refreshes(browser)
    Select(browser.find_element("id", "var-region")).select_by_value("north")
    wait_until(lambda: _refreshes(browser) > before, what="the page to refresh")
    north = geography.REGIONS["north"][2]
    assert set(_options(browser, "province")) == set(north)
    districts = _options(browser, "district")
    assert districts and all(d[:2] in north for d in districts)
    # the time picker: the last hour, in the URL and in what the panels were asked for
    before = _refreshes(browser)
    Select(browser.find_element("id", "range")).select_by_value("now-1h")
    wait_until(lambda: _refreshes(browser) > before, what="the page to refresh")
    assert "from=now-1h" in browser.current_url
    assert console_errors(browser) == []


def _stat_cell(driver: Any, title: str, field: str) -> float | None:
    """The value of one named number of a multi-value stat panel."""
    raw = driver.execute_script(
        "const p = [...document.querySelectorAll('.panel')]"
        ".find(p => p.dataset.title === arguments[0]);"
        "const c = [...p.querySelectorAll('.cell')].find(c => c.dataset.field === arguments[1]);"
        "return c.querySelector('.stat-value').dataset.value",
        title,
        field,
    )
    return float(raw) if raw else None


def test_projects_follow_the_sdg_goal_and_tpmap_dimension(warehouse: Any, browser: Any) -> None:
    from selenium.webdriver.support.ui import Select

    reports = dash_oracle.latest_projects(warehouse)
    goals = {
        g
        for it in warehouse.items
        if it.reason is None and it.event and it.event.get("schema") == "project.v1"
        for g in it.event.get("sdg_goals") or ()
    }
    _open(browser, f"{warehouse.url}/d/warroom-projects/?var-sdg=1")
    # the options are the goals the projects carry, each with its Thai name
    assert sorted(_options(browser, "sdg"), key=int) == [str(g) for g in sorted(goals)]
    texts: dict[str, str] = browser.execute_script(
        "return Object.fromEntries([...document.getElementById('var-sdg').options]"
        ".map(o => [o.value, o.text]))"
    )
    assert all(SDG_TH[g] in texts[str(g)] for g in goals)
    assert set(_options(browser, "tpmap")) <= set(TPMAP_TH)

    def check(**selection: Any) -> None:
        kept = dash_oracle.selected(reports, **selection)
        active, behind, *_ = dash_oracle.project_panels(kept, int(time.time() * 1000))["summary"]
        assert 0 < active < len(reports)
        assert _stat_cell(browser, "โครงการ", "ดำเนินการอยู่") == active, selection
        assert _stat_cell(browser, "โครงการ", "ล่าช้ากว่าแผน") == behind, selection

    check(sdg=[1])
    # a TPMAP dimension picked in the page narrows further and keeps the goal
    before = _refreshes(browser)
    Select(browser.find_element("id", "var-tpmap")).select_by_value("health")
    wait_until(lambda: _refreshes(browser) > before, what="the page to refresh")
    check(sdg=[1], tpmap=["health"])
    assert "var-sdg=1" in browser.current_url and "var-tpmap=health" in browser.current_url
    # a region picked afterwards does not reset them (their options do not follow it)
    before = _refreshes(browser)
    Select(browser.find_element("id", "var-region")).select_by_value("northeast")
    wait_until(lambda: _refreshes(browser) > before, what="the page to refresh")
    assert browser.find_element("id", "var-tpmap").get_attribute("value") == "health"
    assert console_errors(browser) == []


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_bad_variable_values_and_unknown_panels_are_refused(warehouse: Any) -> None:
    api = f"{warehouse.url}/wall/api/d"
    hostile = urllib.parse.quote("1001') OR 1=1 --")
    for url, status in (
        (f"{api}/warroom-district/panel/3?var-district=9999", 400),
        (f"{api}/warroom-district/panel/3?var-district={hostile}", 400),
        (f"{api}/warroom-district/panel/3?var-category=landslide", 400),
        (f"{api}/warroom-district/panel/3?var-nosuch=1", 400),
        (f"{api}/warroom-quality/panel/3?var-silent_hours=5", 400),
        (f"{api}/warroom-projects/panel/2?var-sdg=18", 400),
        (f"{api}/warroom-projects/panel/2?var-sdg={hostile}", 400),
        (f"{api}/warroom-projects/panel/2?var-tpmap=wealth", 400),
        (f"{api}/warroom-projects/options/tpmap?var-sdg=0", 400),
        (f"{api}/warroom-district/panel/3?from=0&to=now", 400),
        (f"{api}/warroom-district/panel/999", 404),
        (f"{api}/warroom-district/panel/1", 404),  # a row, not a data panel
        (f"{api}/nosuch/panel/2", 404),
    ):
        code, body = _get(url)
        assert code == status, (url, body)
        assert body["error"], url  # a reason a person can read
    # a district outside the chosen province is not one of the district's options
    code, body = _get(f"{api}/warroom-district/panel/3?var-province=10&var-district=5001")
    assert code == 400 and "5001" in body["error"]
    # an alert's link (Grafana's path shape) opens the page
    with urllib.request.urlopen(f"{warehouse.url}/d/warroom-district/?var-district=5001") as r:
        assert r.status == 200 and "text/html" in r.headers["Content-Type"]
    # the browser is never handed SQL
    code, body = _get(f"{api}/warroom-district")
    assert code == 200 and "SELECT" not in json.dumps(body)


def _received_now(district: str, n: int) -> list[Item]:
    now_ms = int(time.time() * 1000)
    out = []
    for i in range(n):
        at = datetime.fromtimestamp((now_ms - i * 1000) / 1000, BANGKOK).isoformat()
        event = {
            "schema": "grievance.v1",
            "event_id": str(uuid.uuid4()),
            "occurred_at": at,
            "district_code": district,
            "source": "wall-test",
            "grievance_id": f"G-wall-{uuid.uuid4().hex[:8]}",
            "type": "received",
            "category": "flood",
            "channel": "hotline_1567",
            "priority": "normal",
            "due_at": datetime.fromtimestamp(now_ms / 1000 + 15 * 86400, BANGKOK).isoformat(),
        }
        out.append(Item("grievance", district, orjson.dumps(event), event, None, now_ms))
    return out


def test_new_events_change_the_number_on_the_page_without_reload(
    warehouse: Any, browser: Any, tmp_path: Path
) -> None:
    """Last in this module: its events (dated now) move the worker's clocks."""
    _open(browser, f"{warehouse.url}/d/warroom-national/")
    browser.execute_script("window.__noReload = true")
    before = _stat(browser, NEW_TODAY)
    worker = warehouse.worker
    topics = Topics(prefix=worker.env["WARROOM_TOPIC_PREFIX"])
    asyncio.run(produce_items(worker.bootstrap, topics, _received_now("5001", 7)))
    wait_until(lambda: _stat(browser, NEW_TODAY) == before + 7, timeout=60, what="+7 on screen")
    assert browser.execute_script("return window.__noReload === true")
    assert console_errors(browser) == []
