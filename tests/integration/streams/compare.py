"""Read warroom's tables through the worker and compare them with the oracle."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tests.oracle import Expected
from tests.services.worker import WorkerProcess

GAUGES_LATEST = """
SELECT district_code AS d, metric AS m, dim1 AS a, dim2 AS b, sum(value) AS v
FROM metric_gauges_latest FINAL
GROUP BY d, m, a, b
HAVING v != 0
"""


def buckets(w: WorkerProcess) -> dict[tuple[str, str, str, str, int], float]:
    rows = w.query(
        "SELECT district_code AS d, metric AS m, dim1 AS a, dim2 AS b, "
        "toUInt32(bucket) AS t, sum(value) AS v FROM metric_buckets FINAL "
        "GROUP BY d, m, a, b, t"
    )
    return {(r["d"], r["m"], r["a"], r["b"], int(r["t"]) // 60): float(r["v"]) for r in rows}


def quality(w: WorkerProcess) -> dict[tuple[str, str, str, str, str, int], int]:
    rows = w.query(
        "SELECT district_code AS d, stream AS s, source AS src, outcome AS o, reason AS r, "
        "toUInt32(bucket) AS t, sum(count) AS c FROM quality_buckets FINAL "
        "GROUP BY d, s, src, o, r, t"
    )
    return {
        (r["d"], r["s"], r["src"], r["o"], r["r"], int(r["t"]) // 60): int(r["c"]) for r in rows
    }


def outcomes_total(w: WorkerProcess) -> int:
    """accepted + rejected + duplicate as stored: every consumed record once."""
    rows = w.query(
        "SELECT sum(count) AS n FROM quality_buckets FINAL "
        "WHERE outcome IN ('accepted', 'rejected', 'duplicate')"
    )
    return int(rows[0]["n"] or 0)


def gauges(w: WorkerProcess) -> dict[tuple[str, str, str, str], float]:
    return {(r["d"], r["m"], r["a"], r["b"]): float(r["v"]) for r in w.query(GAUGES_LATEST)}


def diff(expected: dict[Any, float], actual: dict[Any, float], *, rel: float = 1e-9) -> list[str]:
    """Human-readable differences (at most 20), empty when equal."""
    out = []
    for key in sorted(set(expected) | set(actual), key=repr):
        e = expected.get(key, 0)
        a = actual.get(key, 0)
        if not math.isclose(e, a, rel_tol=rel, abs_tol=1e-6):
            out.append(f"{key}: expected {e}, got {a}")
    return out[:20]


def wait_settled(
    w: WorkerProcess,
    consumed: int,
    timeout: float = 180.0,
    *,
    also: Sequence[WorkerProcess] = (),
) -> None:
    """Every record read, written, and a gauge snapshot taken after that. Read: consumed, or
    read again after a restart and skipped as applied (warroom_events_replayed_total), which
    a restarted worker does for whatever it fetched before Faust's seek to its commits.

    ``also``: the other workers of the group, writing through ``w``'s store. Each writes the
    snapshots of its own partitions, so each must have written one after that too: ``w``'s
    alone left a partition the other had just taken over without any gauge row yet."""
    w.wait_for(
        lambda: (
            w.counter("warroom_events_consumed_total") + w.counter("warroom_events_replayed_total")
            >= consumed
        ),
        timeout=timeout,
        what=f"{consumed} records read",
    )
    done_ms = int(time.time() * 1000)
    written = [(o, _gauge_writes(o)) for o in also]

    def snapshot_after() -> bool:
        rows = w.query(
            "SELECT toUnixTimestamp64Milli(max(updated_at)) AS t FROM metric_gauges_latest"
        )
        return bool(rows) and int(rows[0]["t"]) > done_ms + 500

    w.wait_for(snapshot_after, timeout=60, what="a gauge snapshot after the last record")
    for other, since in written:
        # writes are one at a time: the third with gauge rows that ends after `done_ms` took
        # only rows added after the second began, so after `done_ms`: a whole snapshot (a
        # worker adds every partition's gauge rows at once) taken after the last record
        other.wait_for(
            lambda o=other, n=since: _gauge_writes(o) >= n + 3 or not o.ready_check("partitions"),
            timeout=60,
            what="a gauge snapshot of the other worker after the last record",
        )


def _gauge_writes(w: WorkerProcess) -> float:
    """How many store writes of ``w`` carried gauge snapshot rows."""
    return w.counter("warroom_sink_batch_rows_count", table="metric_gauges_latest")


def assert_counts_match(w: WorkerProcess, exp: Expected) -> None:
    """Buckets, quality counts and dead letters against the oracle (not the gauges: for runs
    whose case and project books were lost with a changelog)."""
    problems = {
        "metric_buckets": diff(exp.buckets, buckets(w)),
        "quality_buckets": diff(dict(exp.quality), dict(quality(w))),
    }
    assert not any(problems.values()), problems
    dead = int(w.query("SELECT count() AS n FROM dead_letters FINAL")[0]["n"])
    assert dead == exp.rejected


def assert_matches(w: WorkerProcess, exp: Expected) -> None:
    """Every table against the oracle, exactly."""
    problems = {
        "metric_buckets": diff(exp.buckets, buckets(w)),
        "quality_buckets": diff(dict(exp.quality), dict(quality(w))),
        "metric_gauges": diff({k: v for k, v in exp.gauges.items() if v}, gauges(w), rel=1e-9),
    }
    raw = w.query(
        "SELECT (SELECT count(DISTINCT event_id) FROM grievance_events) "
        "+ (SELECT count(DISTINCT event_id) FROM project_events) AS n"
    )[0]["n"]
    if int(raw) != len(exp.accepted_ids):
        problems["raw events"] = [f"expected {len(exp.accepted_ids)} distinct, got {raw}"]
    dead = int(w.query("SELECT count() AS n FROM dead_letters FINAL")[0]["n"])
    if dead != exp.rejected:
        problems["dead_letters"] = [f"expected {exp.rejected}, got {dead}"]
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in problems.items())


# --- rollups (sinks/rollups.py): the oracle's minute buckets summed per UTC hour / day ---

HOUR = 3600
DAY = 86_400


def _period(minute: int, size: int) -> int:
    return minute * 60 // size * size


def expected_metric(exp: Expected, size: int) -> dict[tuple[Any, ...], float]:
    """The oracle's minute buckets summed per province, key and UTC hour or day."""
    out: dict[tuple[Any, ...], float] = defaultdict(float)
    for (district, metric, dim1, dim2, minute), value in exp.buckets.items():
        out[(district[:2], metric, dim1, dim2, _period(minute, size))] += value
    return dict(out)


def expected_quality(exp: Expected, size: int) -> dict[tuple[Any, ...], float]:
    out: dict[tuple[Any, ...], float] = defaultdict(float)
    for (district, stream, source, outcome, reason, minute), n in exp.quality.items():
        out[(district, stream, source, outcome, reason, _period(minute, size))] += n
    return dict(out)


def stored_metric(w: WorkerProcess, grain: str) -> dict[tuple[Any, ...], float]:
    rows = w.query(
        "SELECT province_code AS p, metric AS m, dim1 AS a, dim2 AS b, toUInt32(bucket) AS t, "
        f"sum(value) AS v FROM metric_buckets_{grain} FINAL GROUP BY p, m, a, b, t"
    )
    return {(r["p"], r["m"], r["a"], r["b"], int(r["t"])): float(r["v"]) for r in rows}


def stored_quality(w: WorkerProcess, grain: str) -> dict[tuple[Any, ...], float]:
    rows = w.query(
        "SELECT district_code AS d, stream AS s, source AS src, outcome AS o, reason AS r, "
        f"toUInt32(bucket) AS t, sum(count) AS c FROM quality_buckets_{grain} FINAL "
        "GROUP BY d, s, src, o, r, t"
    )
    return {(r["d"], r["s"], r["src"], r["o"], r["r"], int(r["t"])): float(r["c"]) for r in rows}


def assert_rollups_match(w: WorkerProcess, exp: Expected) -> None:
    problems = {}
    for grain, size in (("hourly", HOUR), ("daily", DAY)):
        problems[f"metric_buckets_{grain}"] = diff(
            expected_metric(exp, size), stored_metric(w, grain)
        )
        problems[f"quality_buckets_{grain}"] = diff(
            expected_quality(exp, size), stored_quality(w, grain)
        )
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in problems.items())
