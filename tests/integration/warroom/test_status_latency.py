"""The header's end-to-end latency after a backfill: the latest interval that saw events, never
the since-start quantiles a backfill's weeks-old events would dominate."""

from __future__ import annotations

import pytest

from tests.integration.warroom.conftest import MetricsApp
from warroom.status import Poller

pytestmark = pytest.mark.integration


def test_quiet_intervals_keep_the_latest_latency(metrics_app: MetricsApp) -> None:
    sink = metrics_app.tel.sink("chdb")
    poller = Poller(metrics_app.url, districts=False)
    sink.observe_latency(20 * 86_400.0, 10_000)  # the backfill: weeks old when written
    backfill = poller.poll()
    assert backfill.latency_p50_s is not None and backfill.latency_p50_s >= 3600
    sink.observe_latency(0.7, 3)  # live: written within a second
    live = poller.poll()
    assert live.latency_p50_s is not None and 0.5 <= live.latency_p50_s <= 1.0
    quiet = poller.poll()  # no event in this interval (a real volume is a few a minute)
    assert (quiet.latency_p50_s, quiet.latency_p99_s) == (live.latency_p50_s, live.latency_p99_s)
