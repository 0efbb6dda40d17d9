"""The summary's simulator line: which phase (backfill with progress, live, paced) it is in."""

from __future__ import annotations

from warroom.status import parse_exposition, render_text, summarize

AT = 1_780_000_000.0


def exposition(phase: str, progress: float, events: int, seconds: float, newest: float) -> str:
    lines = ["# HELP warroom_simulator_phase Phase.", "# TYPE warroom_simulator_phase gauge"]
    for p in ("backfill", "live", "paced"):
        lines.append(f'warroom_simulator_phase{{phase="{p}"}} {1.0 if p == phase else 0.0}')
    for name, value in (
        ("warroom_simulator_backfill_progress_ratio", progress),
        ("warroom_simulator_backfill_events", float(events)),
        ("warroom_simulator_backfill_seconds", seconds),
        ("warroom_simulator_event_time_seconds", newest),
    ):
        lines += [f"# HELP {name} x.", f"# TYPE {name} gauge", f"{name} {value}"]
    return "\n".join(lines) + "\n"


def line_of(text: str) -> str:
    out = render_text(summarize(parse_exposition(text, at=AT)), width=240)
    found = [ln for ln in out.splitlines() if ln.startswith("simulator:")]
    assert len(found) == 1, out
    return found[0]


def test_backfill_shows_progress_rate_and_how_far_behind() -> None:
    line = line_of(exposition("backfill", 0.45, 72_000, 40.0, AT - 15.2 * 86_400))
    assert line.startswith("simulator: backfill 45% · 72,000 events in 40.00 s (1,800/s)")
    assert "15.2 days behind the clock" in line


def test_live_says_events_are_dated_now() -> None:
    line = line_of(exposition("live", 1.0, 160_000, 100.0, AT - 3))
    assert line.startswith("simulator: live, events dated now")
    assert "backfill done: 160,000 events in 100.00 s (1,600/s)" in line
    assert "behind" not in line and "catching up" not in line


def test_live_while_the_worker_still_works_through_the_backfill() -> None:
    lag = "# HELP warroom_consumer_lag L.\n# TYPE warroom_consumer_lag gauge\n"
    lag += 'warroom_consumer_lag{partition="0",topic="grievance-events"} 25000.0\n'
    line = line_of(exposition("live", 1.0, 160_000, 100.0, AT - 3) + lag)
    assert line.endswith("the worker is still catching up (lag 25,000)")


def test_paced_and_no_simulator() -> None:
    assert line_of(exposition("paced", 0.0, 0, 0.0, AT - 600)).startswith(
        "simulator: paced (--rate/--speedup)"
    )
    plain = "# HELP warroom_build_info B.\n# TYPE warroom_build_info gauge\n"
    plain += 'warroom_build_info{version="1"} 1.0\n'
    out = render_text(summarize(parse_exposition(plain, at=AT)))
    assert "simulator:" not in out
