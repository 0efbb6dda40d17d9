"""Wall-clock pacing: a steady number of items per second, never ahead of real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

from producers.simulator.model import DAY_MS, HOUR_MS, event_density

__all__ = ["Pacer", "default_start_ms", "wait_for_clock"]

_MAX_BURST_S: Final = 1.0


class Pacer:
    """Lets items through at ``rate`` per wall second. An item dated after the real clock waits
    for it: once the simulation has caught up with real time it follows the clock (and the rate
    drops to the simulated intake)."""

    def __init__(
        self,
        rate: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], float] = lambda: time.time() * 1000,
    ) -> None:
        self.rate = rate
        self._monotonic = monotonic
        self._wall_ms = wall_ms
        self._base = monotonic()
        self._admitted = 0
        self.caught_up = False

    def allowance(self) -> int:
        """How many items may go now (credit is capped, so a pause is not followed by a burst)."""
        now = self._monotonic()
        due = int((now - self._base) * self.rate) - self._admitted
        if due > self.rate * _MAX_BURST_S:
            self._base = now - _MAX_BURST_S
            self._admitted = 0
            due = int(self.rate * _MAX_BURST_S)
        return due

    def admitted(self, n: int) -> None:
        self._admitted += n

    async def wait_credit(self) -> None:
        """Sleep until at least one item is due."""
        due = self.allowance()
        if due <= 0:
            await asyncio.sleep(max(0.002, (1 - due) / self.rate))

    async def wait_clock(self, occurred_ms: int, stop: asyncio.Event, deadline: float) -> bool:
        """Wait until the real clock reaches ``occurred_ms``; False when stopped or past the
        (monotonic) deadline meanwhile."""
        if occurred_ms > self._wall_ms():
            self.caught_up = True
        return await wait_for_clock(
            occurred_ms, stop, deadline, wall_ms=self._wall_ms, monotonic=self._monotonic
        )


async def wait_for_clock(
    occurred_ms: int,
    stop: asyncio.Event,
    deadline: float,
    *,
    wall_ms: Callable[[], float] = lambda: time.time() * 1000,
    monotonic: Callable[[], float] = time.monotonic,
) -> bool:
    """Wait until the wall clock reaches ``occurred_ms``; False when ``stop`` is set or the
    monotonic ``deadline`` passes first."""
    while True:
        ahead = occurred_ms - wall_ms()
        if ahead <= 0:
            return True
        left = deadline - monotonic()
        if left <= 0:
            return False
        try:
            await asyncio.wait_for(stop.wait(), timeout=min(ahead / 1000, 1.0, left))
            return False
        except TimeoutError:
            continue


def default_start_ms(
    now_ms: int, rate: float, speedup: float, wall_seconds: float, margin: float = 2.0
) -> int:
    """A simulated start that lets ``wall_seconds`` of paced sending end before ``now_ms``.

    Simulated time runs faster through quiet hours (same wall rate, fewer events per simulated
    hour: nights and weekends), so walk back in steps until the expected events fill the run.
    The density model is rough (staff steps bunch up in the mornings), so ``margin`` and a
    minute of slack keep short runs from reaching the real clock early.
    """
    events_per_ms = rate / speedup / 1000  # at the weekly mean intensity
    needed = rate * (wall_seconds * margin + 60)
    t = now_ms
    step = HOUR_MS // 4
    while needed > 0:
        t -= step
        needed -= events_per_ms * step * event_density(t)
        if now_ms - t > 3650 * DAY_MS:
            break
    return t
