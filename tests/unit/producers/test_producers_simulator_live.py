"""Live mode's plan: a backfill long enough for the surge rules, ending now, at a real volume."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import yaml

from producers.simulator import LivePlan, SimOptions, Simulator

ROOT = Path(__file__).resolve().parents[3]
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Monday 2 November 2026, 00:00 Bangkok: "now" for the volume tests (a fixed past instant)
NOW_MS = int(datetime(2026, 11, 1, 17, 0, tzinfo=UTC).timestamp() * 1000)


def _hours(text: str) -> float:
    """A rules.yaml duration (1h, 30m, 2d, 1w, 1h30m) in hours, parsed here on its own."""
    units = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0, "w": 168.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    return sum(float(n) * units[u] for n, u in parts)


def _surge_rules() -> list[dict[str, object]]:
    rules = yaml.safe_load((ROOT / "alerts" / "rules.yaml").read_text(encoding="utf-8"))["rules"]
    surges = [r for r in rules if r["kind"] == "surge"]
    assert surges, "no surge rule in alerts/rules.yaml"
    return surges


def test_default_backfill_covers_the_longest_surge_baseline() -> None:
    longest = max(
        r["params"]["baseline_weeks"] * 168 + _hours(r["params"]["window"])  # type: ignore[index]
        for r in _surge_rules()
    )
    assert LivePlan().hours >= longest
    assert LivePlan().hours <= longest + 24  # and not much more: the backfill costs time


def test_a_load_default_still_covers_the_fallback_baseline() -> None:
    fallback = max(
        r["params"]["fallback_hours"] + _hours(r["params"]["window"])  # type: ignore[index]
        for r in _surge_rules()
    )
    assert LivePlan(load=100).hours >= fallback
    assert LivePlan(load=100, backfill_hours=3).hours == 3


def test_backfill_ends_now() -> None:
    plan = LivePlan(backfill_hours=6)
    opts = plan.sim_options(SimOptions(seed=2), NOW_MS)
    assert opts.start_ms == NOW_MS - 6 * HOUR_MS
    first = next(iter(Simulator(opts).items()))
    # the first event is inside the backfill span (cases in flight start before it, unsent)
    assert NOW_MS - 6 * HOUR_MS <= first.occurred_ms <= NOW_MS


@pytest.mark.parametrize(
    "kwargs", [{"backfill_hours": -1.0}, {"load": 0.0}, {"cases_per_day": 0.0}]
)
def test_bad_plans_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LivePlan(**kwargs)


def _day_counts(plan: LivePlan, days: int) -> tuple[Counter[int], Counter[int]]:
    """New cases (received) and project reports per simulated day over ``days`` whole days
    that end at NOW_MS, from the payloads (duplicates and bad events left out)."""
    opts = plan.sim_options(SimOptions(seed=9, surge_share=0.0), NOW_MS)
    received: Counter[int] = Counter()
    reports: Counter[int] = Counter()
    seen: set[str] = set()
    for it in Simulator(opts).items():
        if it.occurred_ms >= NOW_MS:
            break
        if it.reason is not None or it.is_duplicate:
            continue
        ev = orjson.loads(it.payload)
        if ev["event_id"] in seen:
            continue
        seen.add(ev["event_id"])
        day = (NOW_MS - it.occurred_ms) // DAY_MS
        if day >= days:
            continue
        if ev["schema"] == "project.v1":
            reports[day] += 1
        elif ev["type"] == "received":
            received[day] += 1
    return received, reports


def test_a_simulated_week_holds_the_configured_national_volume() -> None:
    received, reports = _day_counts(LivePlan(backfill_hours=7 * 24 + 2), days=7)
    per_day = sum(received.values()) / 7
    # 1,000 new cases a day over a whole week (weekends are quieter, weekdays busier)
    assert 900 <= per_day <= 1100, per_day
    assert min(received.values()) < 0.7 * max(received.values())  # the weekly rhythm
    # about 5 projects per district, each reporting weekly: 928 * 5 / 7 ≈ 660 a day
    assert 450 <= sum(reports.values()) / 7 <= 800


def test_the_load_multiplies_the_intake() -> None:
    base, _ = _day_counts(LivePlan(backfill_hours=50, cases_per_day=500), days=2)
    loaded, _ = _day_counts(LivePlan(backfill_hours=50, cases_per_day=500, load=10), days=2)
    # the same two simulated days (a weekend): only the volume differs
    assert 8.5 <= sum(loaded.values()) / sum(base.values()) <= 11.5


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["up", "--load", "5", "--rate", "100"], "--rate and --speedup run it paced"),
        (["up", "--load", "0"], "--load must be positive"),
        (["up", "--backfill-hours", "-1"], "--backfill-hours must be between 0 and 8784"),
        (["up", "--cases-per-day", "0"], "--cases-per-day must be positive"),
        (["simulate", "--backfill-hours", "2", "--speedup", "60"], "use one or the other"),
        (["simulate", "--load", "-3"], "load must be positive"),
    ],
)
def test_bad_simulator_flags_are_one_line_and_exit_2(
    command: list[str], message: str, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from warroom.cli import app

    res = CliRunner().invoke(app, [*command, "--data-dir", str(tmp_path)] if command[0] == "up"
                             else command)  # fmt: skip
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not any(tmp_path.iterdir())  # nothing started, nothing written
