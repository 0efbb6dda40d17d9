"""The pipeline's only way to write the store: batched, columnar, retried, bounded, with a barrier.

    writer = Writer(backend, flush_rows=200_000, flush_interval=0.5, max_buffered_rows=250_000,
                    max_buffered_bytes=128 << 20)
    await writer.start()
    writer.add("metric_buckets", row)        # non-blocking; row = tuple in sinks.tables order
    if writer.over_capacity:                 # backpressure: pause consumption until
        ...                                  # writer.below_low_watermark (and store_away() is None)
    await writer.flush()                     # barrier: all rows added before it are written
    ...                                      # now commit the Kafka offsets of those rows
    await writer.close()                     # final flush

Values: time columns are ints in the column's unit — DateTime (bucket) epoch seconds,
DateTime64(3) (occurred_at, due_at, ingested_at, ...) epoch milliseconds; None for NULL; lists
for arrays; UUIDs as str (see sinks.backends).

Rows wait in per-table lists; a background task writes everything pending when `flush_rows`
rows are waiting, when the oldest waiting row is `flush_interval` seconds old, or when someone
calls `flush()`. One batch is in flight at a time, written table by table on one dedicated
thread (the backend's calls block; chdb and the driver release the GIL). A table whose insert
fails is retried with exponential backoff (the tables that succeeded are not written again)
until it succeeds: nothing is ever dropped. While the store is down rows keep accumulating, so
`over_capacity` tells the pipeline to stop consuming instead of growing memory without bound:
the bound is in rows and in (estimated) bytes, whichever is reached first, for every table.
Writes are idempotent (ReplacingMergeTree), so a retry after an ambiguous failure is harmless.
The hours that written metric_buckets / quality_buckets rows touch are remembered, and a
`flush()` barrier (by default) recomputes their hourly and daily rollups (sinks/rollups.py)
before it returns. `chores` are store upkeep (the store owner's open-case snapshot,
sinks/open_cases.py) run on the same thread every so many seconds, between writes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sinks import rollups
from sinks.backends import Backend, StoreError
from sinks.tables import INSERT_COLUMNS

if TYPE_CHECKING:
    from warroom.telemetry import Telemetry

__all__ = ["RELEASE_MEMORY_EVERY_S", "Chore", "Writer", "WriterClosedError", "row_bytes"]

log = logging.getLogger(__name__)

T = TypeVar("T")


_CHUNK = 16_384
#: how often the writer lets its backend return freed memory (seconds)
RELEASE_MEMORY_EVERY_S = 10.0
_sizeof = sys.getsizeof


def row_bytes(row: tuple[Any, ...]) -> int:
    """Estimated memory of one buffered row: the tuple and its values (a list value counts
    its items one level deep). An estimate: shared values (interned names) count each time."""
    total = _sizeof(row)
    for value in row:
        total += _sizeof(value)
        if type(value) is list:
            total += sum(_sizeof(v) for v in value)
    return total


def _transpose(names: Sequence[str], rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Rows to columns, a chunk at a time: each step is one C call that holds the GIL, so
    small steps keep the event loop's stalls short while a big batch is converted."""
    columns: list[list[Any]] = [[] for _ in names]
    for start in range(0, len(rows), _CHUNK):
        for column, values in zip(
            columns, zip(*rows[start : start + _CHUNK], strict=True), strict=True
        ):
            column.extend(values)
    return dict(zip(names, columns, strict=True))


class WriterClosedError(RuntimeError):
    """Rows were added after close() began."""


@dataclass
class _Status:
    ok: bool = True
    detail: str = "no write yet"
    failing_since: float | None = None


@dataclass
class Chore:
    """Store upkeep the writer runs on its thread, between writes, every `every` seconds
    (the first time as soon as it is idle or has written); `run(backend)` returns what to log.
    A chore that fails is logged and tried again after `every`: upkeep never holds up writes."""

    name: str
    every: float
    run: Callable[[Backend], object]
    due_at: float = 0.0  # time.monotonic(); 0 = at the first chance


class Writer:
    """Batching, retrying, backpressuring writer over one backend (see the module docstring)."""

    def __init__(
        self,
        backend: Backend,
        *,
        flush_rows: int = 200_000,
        flush_interval: float = 0.5,
        max_buffered_rows: int = 1_000_000,
        max_buffered_bytes: int = 1 << 30,
        low_watermark: int | None = None,
        retry_initial: float = 0.2,
        retry_max: float = 10.0,
        columns: Mapping[str, Sequence[str]] | None = None,
        telemetry: Telemetry | None = None,
        on_status: Callable[[bool, str], None] | None = None,
        chores: Sequence[Chore] = (),
    ) -> None:
        """
        flush_rows: write as soon as this many rows wait. flush_interval: seconds the oldest
        waiting row may wait. max_buffered_rows / max_buffered_bytes: `over_capacity` from
        either (waiting + in flight; bytes estimated by `row_bytes`, the first row of each
        add_many standing for the rest); `below_low_watermark` (and `wait_for_capacity`) at
        `low_watermark` rows (default half of the maximum) and half of the bytes.
        retry_initial/retry_max: backoff bounds in seconds. columns: column order of extra
        tables (the warroom tables are known). telemetry: a warroom.telemetry.Telemetry
        (default: the process-wide one). on_status(ok, detail): called after each write
        attempt (e.g. Health.report("store", ...)). chores: upkeep run between writes (see
        Chore), not while the store fails.
        """
        if flush_rows < 1 or max_buffered_rows < 1 or max_buffered_bytes < 1 or flush_interval <= 0:
            raise ValueError(
                "flush_rows, max_buffered_rows, max_buffered_bytes and flush_interval must be "
                "positive"
            )
        self.backend = backend
        self.flush_rows = flush_rows
        self.flush_interval = flush_interval
        self.max_buffered_rows = max_buffered_rows
        if low_watermark is None:
            low_watermark = max_buffered_rows // 2
        self.low_watermark = min(low_watermark, max_buffered_rows)
        self.max_buffered_bytes = max_buffered_bytes
        self.low_watermark_bytes = max_buffered_bytes // 2
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._columns: dict[str, tuple[str, ...]] = {t: tuple(c) for t, c in INSERT_COLUMNS.items()}
        for table, cols in (columns or {}).items():
            self._columns[table] = tuple(cols)
        if telemetry is None:
            from warroom import telemetry as telemetry_module

            telemetry = telemetry_module.get()
        self._telemetry = telemetry
        self._metrics = telemetry.sink(backend.name)
        self._on_status = on_status
        # a worker writing through the store's owner leaves the rollups to the owner, which
        # recomputes them for every batch it inserts (sinks/http_insert.py)
        self._rollups = not getattr(backend, "rollups_by_owner", False)
        #: source table -> UTC hours its written rows touched, not yet recomputed
        self._touched: dict[str, set[int]] = {}
        self._rollups_due = False

        self._pending: dict[str, list[tuple[Any, ...]]] = {}
        self._pending_rows = 0
        self._pending_bytes: dict[str, int] = {}
        self._pending_since: float | None = None
        self._inflight_rows = 0
        self._inflight_bytes: dict[str, int] = {}
        #: the rows of a write being retried (table -> rows), and its attempt running now
        self._retrying: dict[str, list[tuple[Any, ...]]] = {}
        self._attempt: asyncio.Future[Any] | None = None
        self._bytes = 0  # estimated bytes of the rows waiting and in flight
        self._added = 0  # rows ever added
        self._durable = 0  # rows ever written (batches complete in order)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._capacity = asyncio.Event()
        self._capacity.set()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"warroom-sink-{backend.name}"
        )
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._released_at = time.monotonic()
        self._chores = list(chores)
        self._status = _Status()
        self.retries = 0
        self.write_errors = 0

    # --- adding rows (hot path, synchronous) ---------------------------------------------------

    def _buffer(self, table: str, width: int) -> list[tuple[Any, ...]]:
        if self._closing:
            raise WriterClosedError(f"writer is closing; rows for {table} refused")
        columns = self._columns.get(table)
        if columns is None:
            raise KeyError(f"unknown table {table!r}; known: {', '.join(sorted(self._columns))}")
        if width != len(columns):
            raise ValueError(
                f"a {table} row has {len(columns)} values ({', '.join(columns)}), got {width}"
            )
        buf = self._pending.get(table)
        if buf is None:
            buf = self._pending[table] = []
        if self._pending_since is None:
            self._pending_since = time.monotonic()
            self._wake.set()  # an idle flusher sleeps up to 10 s: it starts the interval now
        return buf

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        """Queue one row (a tuple in the table's column order). Never blocks, never drops."""
        self._buffer(table, len(row)).append(row)
        self._pending_rows += 1
        self._count_bytes(table, row_bytes(row))
        self._added += 1
        if self._pending_rows >= self.flush_rows:
            self._wake.set()
        if self._capacity.is_set() and self.over_capacity:
            self._capacity.clear()

    def add_many(self, table: str, rows: Iterable[tuple[Any, ...]]) -> None:
        """Queue many rows of one table."""
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return
        width = len(rows[0])
        if any(len(r) != width for r in rows):
            raise ValueError(f"rows for {table} differ in length")
        self._buffer(table, width).extend(rows)
        self._pending_rows += len(rows)
        self._count_bytes(table, row_bytes(rows[0]) * len(rows))
        self._added += len(rows)
        if self._pending_rows >= self.flush_rows:
            self._wake.set()
        if self._capacity.is_set() and self.over_capacity:
            self._capacity.clear()

    def _count_bytes(self, table: str, size: int) -> None:
        self._pending_bytes[table] = self._pending_bytes.get(table, 0) + size
        self._bytes += size

    def discard_pending(self, table: str, drop: Callable[[tuple[Any, ...]], bool]) -> int:
        """Fencing hook: the rows of ``table`` not written yet for which ``drop(row)`` is
        true are not written, e.g. snapshots computed by an owner whose partitions were handed
        over meanwhile. That covers the rows waiting and those of a write being retried (a
        store away holds them there); an attempt running now may still write what it took
        (see `fence`). Dropped rows stay counted (as a hole the write skips), so flush
        barriers and buffer counts are unchanged. Returns how many were dropped."""
        dropped = 0
        for rows in (self._pending.get(table, []), self._retrying.get(table, [])):
            for i, row in enumerate(rows):
                if row is not None and drop(row):
                    rows[i] = None  # type: ignore[call-overload]
                    dropped += 1
        return dropped

    async def fence(
        self, tables: Iterable[str], drop: Callable[[tuple[Any, ...]], bool], timeout: float
    ) -> tuple[int, bool]:
        """`discard_pending` for each of `tables`, then wait (up to `timeout` seconds) for the
        write attempt running now, which may hold rows taken before the discard: once it is
        over, none of the dropped rows can land any more. Returns (rows dropped, whether the
        attempt ended)."""
        dropped = sum(self.discard_pending(table, drop) for table in tables)
        attempt = self._attempt
        if attempt is None or attempt.done():
            return dropped, True
        with contextlib.suppress(Exception):  # its failure is the write loop's to handle
            await asyncio.wait_for(asyncio.shield(attempt), timeout)
        return dropped, attempt.done()

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def buffered_rows(self) -> int:
        """Rows added and not yet written (waiting + in flight)."""
        return self._pending_rows + self._inflight_rows

    @property
    def buffered_bytes(self) -> int:
        """Estimated bytes of the rows added and not yet written (see `row_bytes`)."""
        return self._bytes

    @property
    def over_capacity(self) -> bool:
        """True when consumption should pause: max_buffered_rows or max_buffered_bytes reached."""
        return (
            self.buffered_rows >= self.max_buffered_rows or self._bytes >= self.max_buffered_bytes
        )

    @property
    def below_low_watermark(self) -> bool:
        """True when a paused consumption may resume: rows and bytes at or below half."""
        return self.buffered_rows <= self.low_watermark and self._bytes <= self.low_watermark_bytes

    def store_away(self) -> tuple[float, str] | None:
        """(wall-clock time since when, detail) while writes to the store fail, else None."""
        since = self._status.failing_since
        if self._status.ok or since is None:
            return None
        return time.time() - (time.monotonic() - since), self._status.detail

    async def wait_for_capacity(self) -> None:
        """Return once buffered rows and bytes are at or below the low watermarks. (The time
        paused is counted by whoever paused: the pipeline, while it is paused.)"""
        if self.below_low_watermark:
            return
        self._capacity.clear()
        self._wake.set()
        while not self.below_low_watermark:
            await self._capacity.wait()
            if not self.below_low_watermark:
                self._capacity.clear()

    # --- barrier and lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start the background flusher (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"warroom-sink-{self.name}"
            )
            self._task.add_done_callback(self._flusher_done)

    def _flusher_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._closing:
            return
        exc = task.exception()
        if exc is not None:
            log.error("store writer stopped", exc_info=exc, extra={"backend": self.name})
            for _, future in self._waiters:
                if not future.done():
                    future.set_exception(exc)
            self._waiters.clear()

    def touch(self, source: str, hours: Iterable[int]) -> None:
        """Have the next rollup recompute cover `hours` (UTC hour starts) of `source` as well:
        minute rows a worker that died before its checkpoint wrote, which the replay skips as
        applied (the pipeline finds them at a partition's restore). A worker writing through
        the store's owner has nothing to do: the owner recomputed them with their insert."""
        hours = set(hours)
        if self._rollups and hours:
            self._touched.setdefault(source, set()).update(hours)

    async def flush(self, *, rollups: bool = True) -> None:
        """Barrier: return once every row added before this call is written (retrying as long
        as that takes). With `rollups` (the default) the rollups of every hour the written
        minute rows touched are recomputed too (sinks/rollups.py): the pipeline asks for that
        only before it commits offsets, so the recompute runs once per checkpoint, not per
        write."""
        target = self._added
        if self._durable >= target and not (rollups and self._touched):
            return
        if rollups:
            self._rollups_due = True
        await self.start()
        if self._task is not None and self._task.done():
            self._task.result()  # re-raise what stopped the flusher
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        self._wake.set()
        await future

    async def close(self, timeout: float | None = None) -> None:
        """Final flush, then stop. With `timeout`, give up waiting after that many seconds and
        log how many rows stay unwritten (their offsets were never committed, so a restart
        reads them again)."""
        if self._closed:
            return
        try:
            if self._added > self._durable:
                await asyncio.wait_for(self.flush(), timeout)
        except TimeoutError:
            log.error(
                "store writer closed with rows unwritten",
                extra={"backend": self.name, "rows": self.buffered_rows},
            )
        finally:
            self._closing = True
            self._closed = True
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            for _, future in self._waiters:
                if not future.done():
                    future.set_exception(WriterClosedError("writer closed before the write"))
            self._waiters.clear()
            self._executor.shutdown(wait=True)
            self._set_buffered_metrics()

    # --- reads through the writer's thread ----------------------------------------------------

    async def run(self, fn: Callable[[Backend], T]) -> T:
        """Run fn(backend) on the writer's thread (the backend is not shared across threads)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self.backend)

    async def query_rows(self, sql: str) -> list[tuple[Any, ...]]:
        return await self.run(lambda b: b.query_rows(sql))

    async def execute(self, sql: str) -> None:
        await self.run(lambda b: b.execute(sql))

    def store_writable(self) -> tuple[bool, str]:
        """(ok, detail) of the last write attempt — cheap, for /readyz."""
        return self._status.ok, self._status.detail

    async def probe(self) -> tuple[bool, str]:
        """Ask the store now (a ping on the writer thread) unless a write is failing."""
        away = self.store_away()
        if away is not None:
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(away[0]))
            return False, f"store away since {since}: {away[1]}"
        if not self._status.ok:
            return False, self._status.detail
        try:
            await self.run(lambda b: b.ping())
        except StoreError as exc:
            return False, f"{self.name}: {exc}"
        return True, f"{self.name}: ok"

    # --- the flusher ---------------------------------------------------------------------------

    def _due(self) -> bool:
        if self._pending_rows == 0:
            return self._rollups_due and bool(self._touched) and bool(self._waiters)
        if self._pending_rows >= self.flush_rows or self._waiters or self._closing:
            return True
        if not self.below_low_watermark and not self._capacity.is_set():
            return True
        assert self._pending_since is not None
        return time.monotonic() - self._pending_since >= self.flush_interval

    async def _run(self) -> None:
        while True:
            while not self._due():
                # idle, it still wakes to return freed memory (queries allocate too), and
                # while the store is away, to ask it again
                timeout = RELEASE_MEMORY_EVERY_S
                if not self._status.ok:
                    timeout = self.retry_max
                if self._pending_since is not None:
                    timeout = max(0.0, self._pending_since + self.flush_interval - time.monotonic())
                self._wake.clear()
                if self._due():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                if not self._due():
                    answers = await asyncio.get_running_loop().run_in_executor(
                        self._executor, self._idle_work
                    )
                    if answers:
                        self._set_status(True, f"{self.name}: the store answers again")
            batch = self._take(None)
            written = await self._write(batch)
            if self._rollups_due:
                await self._recompute_rollups()
            self._durable += written
            self._set_buffered_metrics()
            self._release_waiters()
            if self._chore_due():
                await asyncio.get_running_loop().run_in_executor(self._executor, self._run_chores)

    async def _recompute_rollups(self) -> None:
        """Recompute the rollups of the hours touched so far, retrying until it succeeds (the
        minute rows are stored; the waiters are released after this)."""
        loop = asyncio.get_running_loop()
        delay = self.retry_initial
        self._rollups_due = False
        while self._touched:
            touched, self._touched = self._touched, {}
            try:
                await loop.run_in_executor(self._executor, self._recompute, touched)
            except Exception as exc:  # retried like a write: nothing is given up
                for source, hours in touched.items():
                    self._touched.setdefault(source, set()).update(hours)
                wait = min(self.retry_max, delay) * random.uniform(0.8, 1.2)
                log.warning(
                    "rollup recompute failed; retrying",
                    extra={
                        "backend": self.name,
                        "retry_in": round(wait, 3),
                        "error": str(exc)[:500],
                    },
                )
                self._set_status(False, f"{self.name}: recomputing rollups fails: {exc}"[:300])
                await asyncio.sleep(wait)
                delay = min(self.retry_max, delay * 2)

    def _recompute(self, touched: dict[str, set[int]]) -> None:
        for source, hours in touched.items():
            rollups.recompute(self.backend, source, hours)

    def _take(
        self, into: dict[str, list[tuple[Any, ...]]] | None
    ) -> dict[str, list[tuple[Any, ...]]]:
        """Move the waiting rows in flight (into an existing batch when given)."""
        pending, rows = self._pending, self._pending_rows
        self._pending, self._pending_rows, self._pending_since = {}, 0, None
        self._inflight_rows += rows
        for table, size in self._pending_bytes.items():
            self._inflight_bytes[table] = self._inflight_bytes.get(table, 0) + size
        self._pending_bytes = {}
        self._set_buffered_metrics()
        if into is None:
            return pending
        for table, more in pending.items():
            into.setdefault(table, []).extend(more)
        return into

    def _release_waiters(self) -> None:
        still = []
        for target, future in self._waiters:
            if self._durable >= target:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((target, future))
        self._waiters = still
        if self.below_low_watermark:
            self._capacity.set()

    async def _write(self, batch: dict[str, list[tuple[Any, ...]]]) -> int:
        """Write every table of `batch`, retrying the failed ones until all succeed; rows that
        arrive meanwhile join the retry, so healthy tables keep flowing while one fails.
        Returns the rows written."""
        remaining = dict(batch)
        total = sum(len(rows) for rows in remaining.values())
        self._retrying = remaining
        try:
            return await self._write_until_done(remaining, total)
        finally:
            self._retrying = {}

    async def _write_until_done(
        self, remaining: dict[str, list[tuple[Any, ...]]], total: int
    ) -> int:
        loop = asyncio.get_running_loop()
        delay = self.retry_initial
        attempt = 0
        while remaining:
            started = time.monotonic()
            self._attempt = loop.run_in_executor(self._executor, self._write_tables, remaining)
            written, failed, stored = await self._attempt
            if stored:
                self._metrics.record_write(stored, time.monotonic() - started)
            for table, count in written.items():
                del remaining[table]
                self._inflight_rows -= count
                self._bytes -= self._inflight_bytes.pop(table, 0)
            if written:
                self._set_buffered_metrics()
                if self.below_low_watermark:
                    self._capacity.set()
            if not failed:
                if stored:  # rows all dropped by a fence say nothing of the store
                    self._set_status(True, f"{self.name}: last write ok")
                return total
            attempt += 1
            self.write_errors += len(failed)
            self._metrics.write_error(len(failed))
            wait = min(self.retry_max, delay) * random.uniform(0.8, 1.2)
            for table, exc in failed.items():
                transient = not isinstance(exc, StoreError) or exc.transient
                log.log(
                    logging.WARNING if transient else logging.ERROR,
                    "store write failed; retrying"
                    if transient
                    else "store write failed and retrying will not fix it; retrying anyway "
                    "so nothing is dropped: the schema or the data needs attention",
                    extra={
                        "backend": self.name,
                        "table": table,
                        "rows": len(remaining[table]),
                        "attempt": attempt,
                        "retry_in": round(wait, 3),
                        "error": str(exc)[:500],
                    },
                )
            first = next(iter(failed.items()))
            self._set_status(False, f"{self.name}: writing {first[0]} fails: {first[1]}"[:300])
            await asyncio.sleep(wait)
            delay = min(self.retry_max, delay * 2)
            self.retries += 1
            self._metrics.retry()
            total += self._pending_rows
            self._take(remaining)
        return total

    def _write_tables(
        self, batch: dict[str, list[tuple[Any, ...]]]
    ) -> tuple[dict[str, int], dict[str, Exception], dict[str, int]]:
        """On the writer thread: insert each table's rows. Returns the rows done per table
        (dropped ones included), the failures, and the rows the store took per table (a
        table whose rows were all dropped needs no insert)."""
        written: dict[str, int] = {}
        failed: dict[str, Exception] = {}
        stored: dict[str, int] = {}
        for table, rows in list(batch.items()):
            names = self._columns[table]
            # rows dropped by discard_pending are holes; it may drop more while this runs (on
            # the event loop's thread), so the rows written are taken once, here
            live = list(rows)
            if live.count(None):  # type: ignore[arg-type]
                live = [r for r in live if r is not None]
            try:
                if live:
                    columns = _transpose(names, live)
                    self.backend.insert(table, columns)
                    stored[table] = len(live)
                    if table in rollups.SOURCES and self._rollups:
                        hours = rollups.touched_hours(columns["bucket"])
                        self._touched.setdefault(table, set()).update(hours)
            except Exception as exc:  # every failure is retried; the loop logs it
                failed[table] = exc
            else:
                written[table] = len(rows)
        self._release_memory()
        return written, failed, stored

    def _idle_work(self) -> bool:
        """On the writer thread, with nothing to write: return freed memory, and ask a store
        that failed the last write whether it answers now (True). A write the fence emptied
        leaves nothing to retry, and only the store itself may say it is back."""
        self._release_memory()
        if self._status.ok:
            self._run_chores()
            return False
        try:
            self.backend.ping()
        except Exception:  # still away: the status and its since stay as they are
            return False
        return True

    def _due_chores(self) -> list[Chore]:
        """The chores whose turn has come, none while the store fails or the writer closes."""
        if not self._status.ok or self._closing:
            return []
        now = time.monotonic()
        return [c for c in self._chores if c.due_at <= now]

    def _chore_due(self) -> bool:
        return bool(self._due_chores())

    def _run_chores(self) -> None:
        """On the writer thread: run the chores that are due."""
        for chore in self._due_chores():
            now = time.monotonic()
            chore.due_at = now + chore.every
            try:
                result = chore.run(self.backend)
            except Exception as exc:  # upkeep: tried again at its next turn, writes go on
                log.warning(
                    "store chore failed; trying again at its next turn",
                    extra={"chore": chore.name, "in_s": chore.every, "error": str(exc)[:500]},
                )
                continue
            log.debug(
                "store chore done",
                extra={
                    "chore": chore.name,
                    "result": result,
                    "ms": round((time.monotonic() - now) * 1000),
                },
            )

    def _release_memory(self) -> None:
        """On the writer thread, at most every RELEASE_MEMORY_EVERY_S: let the backend return
        the memory its engine freed (chdb keeps it otherwise; see ChdbBackend.release_memory)."""
        release = getattr(self.backend, "release_memory", None)
        now = time.monotonic()
        if release is None or now - self._released_at < RELEASE_MEMORY_EVERY_S:
            return
        self._released_at = now
        try:
            release()
        except Exception:  # memory hygiene must never fail a write
            log.debug("releasing store memory failed", exc_info=True)

    def _set_buffered_metrics(self) -> None:
        self._metrics.set_buffered(self.buffered_rows)

    def _set_status(self, ok: bool, detail: str) -> None:
        if ok:
            self._status = _Status(True, detail, None)
        else:
            since = self._status.failing_since or time.monotonic()
            self._status = _Status(False, detail, since)
        if self._on_status is not None:
            try:
                self._on_status(ok, detail)
            except Exception:
                log.exception("store status callback failed")
