"""Run the simulator against Kafka: backfill then live, or paced; clean stop on signals; stats."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from producers.kafka import RETRY_S, BrokerUnavailable, EventSender
from producers.simulator.generator import Item, SimOptions, Simulator
from producers.simulator.live import CAUGHT_UP_MS, LivePlan
from producers.simulator.pacing import Pacer, default_start_ms, wait_for_clock
from streams.topics import Topics
from warroom.telemetry import SimulatorMetrics
from warroom.telemetry import get as telemetry

__all__ = ["RunOptions", "Stats", "resolve_start", "run_simulator"]

log = logging.getLogger(__name__)

#: how long a run without --duration sends at full rate before it catches up with real time
DEFAULT_LOOKBACK_WALL_S = 1800.0


@dataclass(frozen=True)
class RunOptions:
    sim: SimOptions
    duration: float | None = None  # wall seconds; None = until stopped
    producer: str = "simulator"
    progress_every: float = 5.0  # seconds between progress callbacks
    handle_signals: bool = True  # stop cleanly on SIGINT / SIGTERM
    #: backfill then live (the default of `warroom up`); None: paced at sim.rate / speedup
    live: LivePlan | None = None
    retry_s: float = RETRY_S  # how long failed sends are sent again (producers/kafka.py)


@dataclass
class Stats:
    """What a run produced (counts of acknowledged and failed sends, and of what was made)."""

    generated: int = 0
    sent: int = 0
    errors: int = 0
    by_stream: dict[str, int] = field(default_factory=lambda: {"grievance": 0, "project": 0})
    bad: int = 0
    duplicates: int = 0
    late: int = 0
    elapsed_s: float = 0.0
    generate_s: float = 0.0  # time spent generating items (CPU cost of the simulator)
    warmup_s: float = 0.0  # time to set up the cases in flight at the start
    flush_s: float = 0.0  # time to flush the last sends when stopping
    first_ms: int = 0
    last_ms: int = 0
    caught_up: bool = False
    phase: str = ""  # backfill, live (live mode) or paced
    backfill_progress: float = 0.0  # share of the backfill's simulated span sent
    #: set when Kafka stopped acknowledging for longer than the retry budget (run stopped)
    broker_error: str = ""
    backfill_events: int = 0  # acknowledged when the backfill ended (generated until then)
    backfill_s: float = 0.0  # wall seconds of the backfill phase
    span_start_ms: int = 0  # the simulation's start (live mode: now - the backfill hours)
    live_since_ms: int = 0  # wall time the live phase began (every later send is live)

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def generate_us_per_event(self) -> float:
        return self.generate_s / self.generated * 1e6 if self.generated else 0.0


def resolve_start(sim: SimOptions, duration: float | None, now_ms: int | None = None) -> SimOptions:
    """Fill in the default simulated start (start_ms == 0): far enough back that the run ends
    about now, so simulated time never runs ahead of the real clock."""
    if sim.start_ms:
        return sim
    now = int(time.time() * 1000) if now_ms is None else now_ms
    wall = duration if duration else DEFAULT_LOOKBACK_WALL_S
    return dataclasses.replace(
        sim, start_ms=default_start_ms(now, sim.rate, sim.effective_speedup, wall)
    )


async def run_simulator(
    bootstrap: str,
    topics: Topics,
    options: RunOptions,
    *,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[Stats], None] | None = None,
) -> Stats:
    """Send simulated events until ``duration`` passes or ``stop`` is set (or a signal arrives);
    every send is flushed before returning."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if options.handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
    now_ms = int(time.time() * 1000)
    if options.live is not None:
        sim_options = options.live.sim_options(options.sim, now_ms)
    else:
        sim_options = resolve_start(options.sim, options.duration, now_ms)
    stats = Stats(span_start_ms=sim_options.start_ms)
    metrics = telemetry().simulator
    sender = EventSender(bootstrap, topics, producer=options.producer, retry_s=options.retry_s)
    await sender.start()
    try:
        sim = Simulator(sim_options)
        if options.live is not None:
            await _pump_live(sim, sender, topics, options, stop, stats, on_progress, metrics)
        else:
            stats.phase = "paced"
            metrics.set_phase("paced")
            await _pump(sim, sender, topics, options, stop, stats, on_progress)
    except BrokerUnavailable as exc:
        stats.broker_error = str(exc)
    finally:
        pumped = time.monotonic()
        try:
            await sender.stop()
        except BrokerUnavailable as exc:
            stats.broker_error = stats.broker_error or str(exc)
        for sig in handled:
            loop.remove_signal_handler(sig)
        stats.flush_s = time.monotonic() - pumped
        stats.sent, stats.errors = sender.sent, sender.errors
    log.info(
        "simulator stopped",
        extra={"sent": stats.sent, "errors": stats.errors, "rate": round(stats.rate)},
    )
    return stats


async def _pump(
    sim: Simulator,
    sender: EventSender,
    topics: Topics,
    options: RunOptions,
    stop: asyncio.Event,
    stats: Stats,
    on_progress: Callable[[Stats], None] | None,
) -> None:
    items = sim.items()
    # the first item carries the warm-up (cases already in flight): before the clock starts
    t0 = time.perf_counter()
    pending: Item | None = next(items)
    stats.warmup_s = time.perf_counter() - t0
    pacer = Pacer(sim.options.rate)
    started = time.monotonic()
    deadline = started + options.duration if options.duration else float("inf")
    next_progress = started + options.progress_every
    topic_of = {"grievance": topics.grievance, "project": topics.project}
    by_stream = stats.by_stream
    perf = time.perf_counter
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                return
            if on_progress and now >= next_progress:
                next_progress = now + options.progress_every
                stats.sent, stats.errors = sender.sent, sender.errors
                stats.elapsed_s = now - started
                on_progress(stats)
            due = pacer.allowance()
            if due <= 0:
                await pacer.wait_credit()
                continue
            for _ in range(min(due, 5000)):
                if pending is not None:
                    item, pending = pending, None
                else:
                    t0 = perf()
                    item = next(items)
                    stats.generate_s += perf() - t0
                if not await pacer.wait_clock(item.occurred_ms, stop, deadline):
                    return
                if pacer.caught_up and not stats.caught_up:
                    stats.caught_up = True
                    log.info("simulation caught up with real time: following the clock")
                await sender.send_raw(topic_of[item.stream], item.payload, item.key)
                pacer.admitted(1)
                stats.generated += 1
                by_stream[item.stream] += 1
                if not stats.first_ms:
                    stats.first_ms = item.occurred_ms
                stats.last_ms = max(stats.last_ms, item.occurred_ms)
                if item.reason is not None:
                    stats.bad += 1
                elif item.is_duplicate:
                    stats.duplicates += 1
                elif item.is_late:
                    stats.late += 1
            # let acknowledgements and signals through between slices
            await asyncio.sleep(0)
    finally:
        stats.elapsed_s = time.monotonic() - started


def _count(stats: Stats, item: Item) -> None:
    stats.generated += 1
    stats.by_stream[item.stream] += 1
    if not stats.first_ms:
        stats.first_ms = item.occurred_ms
    stats.last_ms = max(stats.last_ms, item.occurred_ms)
    if item.reason is not None:
        stats.bad += 1
    elif item.is_duplicate:
        stats.duplicates += 1
    elif item.is_late:
        stats.late += 1


async def _pump_live(
    sim: Simulator,
    sender: EventSender,
    topics: Topics,
    options: RunOptions,
    stop: asyncio.Event,
    stats: Stats,
    on_progress: Callable[[Stats], None] | None,
    metrics: SimulatorMetrics,
) -> None:
    """Backfill: every event up to the clock, unpaced (the sender bounds what is in flight);
    then live: each event waits for the wall clock to reach its occurred_at, so it is sent
    (and dated) now. The phase only moves forward."""
    items = sim.items()
    t0 = time.perf_counter()
    pending: Item | None = next(items)
    stats.warmup_s = time.perf_counter() - t0
    span_start = sim.options.start_ms
    started = time.monotonic()
    deadline = started + options.duration if options.duration else float("inf")
    next_publish = started
    next_progress = started + options.progress_every
    topic_of = {"grievance": topics.grievance, "project": topics.project}
    perf = time.perf_counter
    stats.phase = "backfill"
    metrics.set_phase("backfill")
    n = 0
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                return
            if now >= next_publish:
                next_publish = now + 1.0
                _publish(stats, sender, metrics, span_start, now - started)
                if on_progress and now >= next_progress:
                    next_progress = now + options.progress_every
                    on_progress(stats)
            if pending is not None:
                item, pending = pending, None
            else:
                t1 = perf()
                item = next(items)
                stats.generate_s += perf() - t1
            wall = time.time() * 1000
            if stats.phase == "backfill" and item.occurred_ms >= wall - CAUGHT_UP_MS:
                await _go_live(sender, stats, metrics, started)
            if item.occurred_ms > wall and not await wait_for_clock(
                item.occurred_ms, stop, deadline
            ):
                return
            await sender.send_raw(topic_of[item.stream], item.payload, item.key)
            _count(stats, item)
            if stats.phase == "live":
                # the newest time sent (a late re-send is older and must not move it back)
                metrics.set_event_time(stats.last_ms)
            n += 1
            if n & 255 == 0:
                # let acknowledgements and signals through
                await asyncio.sleep(0)
    finally:
        stats.elapsed_s = time.monotonic() - started
        if stats.phase == "backfill":
            stats.backfill_s = stats.elapsed_s
            stats.backfill_events = stats.generated


def _publish(
    stats: Stats, sender: EventSender, metrics: SimulatorMetrics, span_start: int, elapsed: float
) -> None:
    """Progress into stats and the gauges (every second or so)."""
    stats.sent, stats.errors = sender.sent, sender.errors
    stats.elapsed_s = elapsed
    if stats.phase == "backfill":
        wall = time.time() * 1000
        span = max(wall - span_start, 1.0)
        stats.backfill_progress = min(max((stats.last_ms - span_start) / span, 0.0), 1.0)
        stats.backfill_events, stats.backfill_s = stats.generated, elapsed
        metrics.set_backfill(stats.backfill_progress, stats.generated, elapsed)
    if stats.last_ms:
        metrics.set_event_time(stats.last_ms)


async def _go_live(
    sender: EventSender, stats: Stats, metrics: SimulatorMetrics, started: float
) -> None:
    # the backfill ends when Kafka has acknowledged all of it: its rate is a delivered rate
    await sender.flush()
    elapsed = time.monotonic() - started
    stats.live_since_ms = int(time.time() * 1000)
    stats.phase = "live"
    stats.caught_up = True
    stats.backfill_progress = 1.0
    stats.backfill_events = sender.sent
    stats.backfill_s = elapsed
    metrics.set_backfill(1.0, sender.sent, elapsed)
    # the last second of a backfill covers about an hour of simulated time at a real volume
    metrics.set_event_time(stats.last_ms)
    metrics.set_phase("live")
    log.info(
        "backfill done: %d events acknowledged in %.1f s (%.0f/s); live from now on",
        sender.sent,
        elapsed,
        sender.sent / elapsed if elapsed > 0 else 0.0,
    )
