"""Run the simulator against Kafka: paced sending, clean stop on SIGINT/SIGTERM, final stats."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from producers.kafka import EventSender
from producers.simulator.generator import Item, SimOptions, Simulator
from producers.simulator.pacing import Pacer, default_start_ms
from streams.topics import Topics

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
    sim_options = resolve_start(options.sim, options.duration)
    stats = Stats()
    sender = EventSender(bootstrap, topics, producer=options.producer)
    await sender.start()
    try:
        await _pump(Simulator(sim_options), sender, topics, options, stop, stats, on_progress)
    finally:
        pumped = time.monotonic()
        await sender.stop()
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
