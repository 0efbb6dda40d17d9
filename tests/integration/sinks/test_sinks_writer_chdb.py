"""The writer on real chdb: exact landing, the flush barrier, time-bounded flushes, close()."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import uuid

import pytest

from sinks import open_cases
from sinks.backends import Backend
from sinks.migrate import migrate
from sinks.writer import Chore, Writer
from warroom.telemetry import Telemetry

pytestmark = pytest.mark.integration

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def grievance_row(i: int, rng: random.Random) -> tuple[object, ...]:
    district = f"10{rng.randint(1, 50):02d}"
    return (
        str(uuid.UUID(int=rng.getrandbits(128))),
        T0_MS + i * 1_000 + rng.randint(0, 999),
        district,
        "",
        "sim",
        f"G{i // 3}",
        rng.choice(["received", "assigned", "resolved"]),
        rng.choice(["land", "debt", "flood"]),
        "web",
        rng.choice(["normal", "urgent"]),
        None if i % 3 else T0_MS + 86_400_000 + i,
        "",
        "",
        "",
        i % 4,
        i,
    )


def bucket_row(i: int, rng: random.Random) -> tuple[object, ...]:
    return (
        f"10{i % 50 + 1:02d}",
        "grievance_received",
        "land",
        "web",
        T0_MS // 1000 + (i // 50) * 60,
        i % 4,
        float(rng.randint(0, 1000)),
        1,
    )


async def test_rows_land_exactly(chdb_backend: Backend, telemetry: Telemetry) -> None:
    migrate(chdb_backend, reference=False)
    rng = random.Random(7)
    griev = [grievance_row(i, rng) for i in range(20_000)]
    buckets = [bucket_row(i, rng) for i in range(5_000)]
    writer = Writer(chdb_backend, flush_rows=3_000, flush_interval=0.2, telemetry=telemetry)
    await writer.start()
    for row in griev[:10_000]:
        writer.add("grievance_events", row)
    writer.add_many("grievance_events", griev[10_000:])
    writer.add_many("metric_buckets", buckets)
    await writer.flush()
    assert writer.buffered_rows == 0
    got = await writer.query_rows(
        "SELECT count(), sum(kafka_offset), countIf(due_at IS NULL), "
        "sum(toUnixTimestamp64Milli(occurred_at)), uniqExact(event_id), "
        "sum(toUnixTimestamp64Milli(assumeNotNull(due_at))) FROM grievance_events"
    )
    assert got == [
        (
            len(griev),
            sum(r[15] for r in griev),  # type: ignore[misc]
            sum(1 for r in griev if r[10] is None),
            sum(r[1] for r in griev),  # type: ignore[misc]
            len({r[0] for r in griev}),
            sum(r[10] for r in griev if r[10] is not None),  # type: ignore[misc]
        )
    ]
    per_district = dict(
        await writer.query_rows(
            "SELECT district_code, sum(value) FROM metric_buckets FINAL GROUP BY district_code"
        )
    )
    expected: dict[str, float] = {}
    for r in buckets:
        expected[r[0]] = expected.get(r[0], 0.0) + r[6]  # type: ignore[index,operator]
    assert per_district == expected
    first_bucket = await writer.query_rows(
        "SELECT toUnixTimestamp(min(bucket)) FROM metric_buckets"
    )
    assert first_bucket == [(T0_MS // 1000,)]
    await writer.close()
    # metrics: every row went through record_write; no errors
    reg = telemetry.registry
    assert reg is not None
    assert reg.get_sample_value("warroom_sink_write_errors_total", {"backend": "chdb"}) in (
        None,
        0.0,
    )
    written = reg.get_sample_value(
        "warroom_sink_batch_rows_sum", {"backend": "chdb", "table": "grievance_events"}
    )
    assert written == len(griev)


async def test_flush_is_a_barrier(chdb_backend: Backend, telemetry: Telemetry) -> None:
    migrate(chdb_backend, reference=False)
    rng = random.Random(3)
    # no size or time trigger could fire during the test: only the barrier writes
    writer = Writer(chdb_backend, flush_rows=10**9, flush_interval=3600, telemetry=telemetry)
    await writer.start()
    total = 0
    for round_ in range(5):
        rows = [bucket_row(round_ * 1000 + i, rng) for i in range(1000)]
        writer.add_many("metric_buckets", rows)
        total += len(rows)
        await asyncio.sleep(0.05)
        assert writer.buffered_rows == 1000
        await writer.flush()
        assert writer.buffered_rows == 0
        assert await writer.query_rows("SELECT count() FROM metric_buckets") == [(total,)]
    # concurrent barriers: each returns only when its own rows are written
    writer.add_many("metric_buckets", [bucket_row(10_000 + i, rng) for i in range(10)])
    first = asyncio.ensure_future(writer.flush())
    writer.add_many("metric_buckets", [bucket_row(20_000 + i, rng) for i in range(10)])
    second = asyncio.ensure_future(writer.flush())
    await asyncio.gather(first, second)
    assert await writer.query_rows("SELECT count() FROM metric_buckets") == [(total + 20,)]
    await writer.close()


async def test_time_bound_flush_without_explicit_flush(
    chdb_backend: Backend, telemetry: Telemetry
) -> None:
    migrate(chdb_backend, reference=False)
    rng = random.Random(5)
    writer = Writer(chdb_backend, flush_rows=10**9, flush_interval=0.3, telemetry=telemetry)
    await writer.start()
    writer.add_many("metric_buckets", [bucket_row(i, rng) for i in range(123)])
    seen = 0
    for _ in range(100):  # up to 10 s on a busy machine; normally ~0.3 s
        await asyncio.sleep(0.1)
        seen = (await writer.query_rows("SELECT count() FROM metric_buckets"))[0][0]
        if seen == 123:
            break
    assert seen == 123
    assert writer.buffered_rows == 0
    await writer.close()


async def test_size_bound_flush(chdb_backend: Backend, telemetry: Telemetry) -> None:
    migrate(chdb_backend, reference=False)
    rng = random.Random(9)
    writer = Writer(chdb_backend, flush_rows=500, flush_interval=3600, telemetry=telemetry)
    await writer.start()
    writer.add_many("metric_buckets", [bucket_row(i, rng) for i in range(499)])
    await asyncio.sleep(0.5)
    assert (await writer.query_rows("SELECT count() FROM metric_buckets")) == [(0,)]
    writer.add("metric_buckets", bucket_row(499, rng))
    seen = 0
    for _ in range(100):
        await asyncio.sleep(0.1)
        seen = (await writer.query_rows("SELECT count() FROM metric_buckets"))[0][0]
        if seen == 500:
            break
    assert seen == 500
    await writer.close()


async def test_close_flushes(chdb_backend: Backend, telemetry: Telemetry) -> None:
    migrate(chdb_backend, reference=False)
    rng = random.Random(11)
    rows = [grievance_row(i, rng) for i in range(777)]
    writer = Writer(chdb_backend, flush_rows=10**9, flush_interval=3600, telemetry=telemetry)
    await writer.start()
    writer.add_many("grievance_events", rows)
    await writer.close()
    assert chdb_backend.query_rows("SELECT count(), sum(kafka_offset) FROM grievance_events") == [
        (777, sum(range(777)))
    ]


async def test_bad_rows_are_refused_at_add(chdb_backend: Backend, telemetry: Telemetry) -> None:
    writer = Writer(chdb_backend, telemetry=telemetry)
    with pytest.raises(ValueError, match="metric_buckets row has 8 values"):
        writer.add("metric_buckets", ("1001", "10"))
    with pytest.raises(KeyError, match="unknown table 'nope'"):
        writer.add("nope", (1,))
    assert writer.buffered_rows == 0
    await writer.close()


async def test_discarded_rows_are_not_written_and_the_barrier_still_returns(
    chdb_backend: Backend, telemetry: Telemetry
) -> None:
    """The fencing hook (streams/pipeline.py drops the gauge snapshots of partitions handed
    over): the waiting rows it picks never reach the store, the others all do, and a flush
    barrier taken before or after the discard returns once the rest is written."""
    migrate(chdb_backend, reference=False)
    rng = random.Random(11)
    rows = [bucket_row(i, rng) for i in range(4_000)]
    writer = Writer(chdb_backend, flush_rows=1_000_000, flush_interval=60, telemetry=telemetry)
    await writer.start()
    writer.add_many("metric_gauges", rows[:2_000])
    before = asyncio.ensure_future(writer.flush())  # a barrier over rows about to be dropped
    writer.add_many("metric_gauges", rows[2_000:])
    dropped = writer.discard_pending("metric_gauges", lambda row: row[5] == 1)
    assert dropped == sum(1 for r in rows if r[5] == 1) > 0
    assert writer.discard_pending("metric_buckets", lambda row: True) == 0  # nothing waits
    await asyncio.wait_for(before, 30)
    await asyncio.wait_for(writer.flush(), 30)
    assert writer.buffered_rows == 0
    kept = [r for r in rows if r[5] != 1]
    got = await writer.query_rows(
        "SELECT count(), countIf(kafka_partition = 1), sum(value) FROM metric_gauges"
    )
    assert got == [(len(kept), 0, sum(r[6] for r in kept))]  # type: ignore[misc]
    await writer.close()


async def test_chores_run_between_writes_and_a_failing_one_holds_nothing_up(
    chdb_backend: Backend, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    migrate(chdb_backend, reference=False)
    rng = random.Random(11)

    def broken(backend: Backend) -> None:
        backend.execute("SELECT * FROM no_such_table")

    chores = [
        Chore("open-case snapshot", 0.2, functools.partial(open_cases.rebuild, margin_s=0)),
        Chore("broken", 0.2, broken),
    ]
    writer = Writer(chdb_backend, flush_interval=0.05, telemetry=telemetry, chores=chores)
    await writer.start()
    with caplog.at_level(logging.WARNING, logger="sinks.writer"):
        for i in range(0, 3_000, 300):
            writer.add_many("grievance_events", [grievance_row(j, rng) for j in range(i, i + 300)])
            await writer.flush()
            await asyncio.sleep(0.1)
    await writer.close()
    assert chdb_backend.query_rows("SELECT count() FROM grievance_events") == [(3_000,)]
    generations = chdb_backend.query_rows(
        "SELECT cases FROM grievance_open_generations ORDER BY generation"
    )
    assert len(generations) >= 3, "the snapshot is rebuilt again and again while rows come in"
    # the last rebuild ran after the last write, at the latest one turn (0.2 s) before it
    ((open_now,),) = chdb_backend.query_rows(
        "SELECT count() FROM grievance_latest FINAL "
        "WHERE tupleElement(last, 3) IN ('received', 'assigned')"
    )
    assert 0 < generations[-1][0] <= open_now
    failures = [r for r in caplog.records if r.getMessage().startswith("store chore failed")]
    assert failures and all(getattr(r, "chore", "") == "broken" for r in failures)
