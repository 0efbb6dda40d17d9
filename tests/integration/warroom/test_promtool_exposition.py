"""`promtool check metrics` (Debian package prometheus) accepts what /metrics serves."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest

from tests.integration.warroom.conftest import MetricsApp

pytestmark = pytest.mark.integration

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(text: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )


@pytest.fixture(autouse=True)
def _need_promtool() -> None:
    if not shutil.which("promtool") and not shutil.which(PROMTOOL):
        pytest.skip("promtool is not installed (Debian package prometheus)")


def populate(m: MetricsApp) -> None:
    """A sample in every metric, labels as the worker, sinks, notifier and producers set them."""
    t = m.tel
    for stream in ("grievance", "project"):
        t.stream(stream, f"{stream}-events").record_batch(
            accepted_by_source={"simulator": 40, "hotline_1567": 3, "": 1},
            rejected_by_reason_source={("unknown_district", "simulator"): 2},
            duplicates=1,
            late=2,
            too_late=1,
            seconds=0.003,
        )
    t.set_lag({("grievance-events", p): p * 10 for p in range(4)})
    sink = t.sink("chdb")
    sink.record_write({"grievance_events": 40, "metric_buckets": 120}, 0.04)
    sink.write_error()
    sink.retry(2)
    sink.set_buffered(300)
    sink.observe_latencies([0.2, 0.8, 1.5])
    t.add_backpressure(0.25)
    t.notifier.evaluated("backlog_spike", 3)
    t.notifier.set_firing({("backlog_spike", "warning"): 1})
    t.notifier.sent("line", 2)
    t.notifier.failed("email")
    t.notifier.set_queued("webhook", 1)
    t.producer("simulator").sent("grievance", 50)
    t.producer("simulator").error()


def test_promtool_accepts_the_served_exposition(metrics_app: MetricsApp) -> None:
    populate(metrics_app)
    with urllib.request.urlopen(metrics_app.url + "/metrics", timeout=5) as resp:
        text = resp.read()
    assert b"warroom_events_accepted_total" in text
    result = promtool(text)
    problems = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, problems
    assert problems.strip() == ""


def test_promtool_does_complain_about_a_bad_exposition() -> None:
    # the control: a counter without _total and without help is reported
    bad = b"# TYPE warroom_bad counter\nwarroom_bad 1\n"
    result = promtool(bad)
    out = (result.stdout + result.stderr).decode()
    assert result.returncode != 0 and "warroom_bad" in out
