"""Liveness and readiness of a worker, and the aiohttp handlers of /healthz, /readyz, /metrics.

The worker feeds `Health` with probes (called on every /readyz) or pushes results itself
(`report`, e.g. from the sink writer after each write). Readiness means: broker reachable,
store writable, partitions assigned, not lagging past a threshold — see `Health.standard`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry

from warroom.telemetry import metrics_handler

__all__ = ["CheckResult", "Health", "ProbeResult", "add_routes", "healthz", "readyz"]

log = logging.getLogger(__name__)

#: a probe answers True/False, (ok, detail), or raises (failure, detail = the error)
ProbeResult = bool | tuple[bool, str]
Probe = Callable[[], ProbeResult | Awaitable[ProbeResult]]


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "seconds": round(self.seconds, 6),
        }


@dataclass
class _Pushed:
    ok: bool
    detail: str
    at: float


class Health:
    """Readiness checks and a liveness heartbeat of one process.

    Probes must be cheap: a sync probe runs on the event loop (read cached state, or wrap
    blocking work with `asyncio.to_thread` in an async probe); each probe gets `timeout`
    seconds. A pushed result older than `stale_after` seconds (when set) counts as failed.
    """

    def __init__(self, *, timeout: float = 2.0, stall_after: float | None = None) -> None:
        self.timeout = timeout
        self.stall_after = stall_after
        self._probes: dict[str, Probe] = {}
        self._pushed: dict[str, _Pushed] = {}
        self._stale_after: dict[str, float | None] = {}
        self._last_beat: float | None = None
        self._last_ready: bool | None = None

    # --- readiness -------------------------------------------------------------------------

    def add_probe(self, name: str, probe: Probe) -> None:
        """A check computed on each /readyz."""
        self._probes[name] = probe

    def add_threshold(
        self,
        name: str,
        value: Callable[[], float | None],
        *,
        maximum: float | None = None,
        minimum: float | None = None,
        unit: str = "",
    ) -> None:
        """A check that a number stays within bounds (e.g. lag <= max, partitions >= 1)."""

        def probe() -> ProbeResult:
            v = value()
            if v is None:
                return False, "not known yet"
            text = f"{v:g}{unit}"
            if maximum is not None and v > maximum:
                return False, f"{text} > {maximum:g}{unit}"
            if minimum is not None and v < minimum:
                return False, f"{text} < {minimum:g}{unit}"
            return True, text

        self.add_probe(name, probe)

    def expect(self, name: str, *, stale_after: float | None = None) -> None:
        """Declare a pushed check: unready until its first `report(name, True)`."""
        self._stale_after[name] = stale_after

    def report(self, name: str, ok: bool, detail: str = "") -> None:
        """Push the current state of a check (the sink writer after a write, ...)."""
        self._stale_after.setdefault(name, None)
        self._pushed[name] = _Pushed(ok, detail, time.monotonic())

    def standard(
        self,
        *,
        broker: Probe,
        partitions: Callable[[], float | None],
        lag: Callable[[], float | None],
        max_lag: float,
        store: Probe | None = None,
        min_partitions: int = 1,
    ) -> None:
        """The worker's four checks. The store check is a probe when given, else it is pushed:
        the sink calls `report("store", ok, detail)` after each write (or write attempt)."""
        self.add_probe("broker", broker)
        if store is not None:
            self.add_probe("store", store)
        else:
            self.expect("store")
        self.add_threshold("partitions", partitions, minimum=min_partitions)
        self.add_threshold("lag", lag, maximum=max_lag, unit=" messages")

    async def _run(self, name: str, probe: Probe) -> CheckResult:
        start = time.perf_counter()
        try:
            out = probe()
            if inspect.isawaitable(out):
                out = await asyncio.wait_for(out, self.timeout)
            ok, detail = out if isinstance(out, tuple) else (bool(out), "")
        except TimeoutError:
            ok, detail = False, f"no answer within {self.timeout:g}s"
        except Exception as exc:  # a failing probe is a failed check, never a 500
            ok, detail = False, f"{type(exc).__name__}: {exc}"[:300]
        return CheckResult(name, bool(ok), detail, time.perf_counter() - start)

    def _pushed_result(self, name: str, now: float) -> CheckResult:
        pushed = self._pushed.get(name)
        if pushed is None:
            return CheckResult(name, False, "no result reported yet")
        stale = self._stale_after.get(name)
        if stale is not None and now - pushed.at > stale:
            return CheckResult(name, False, f"last result {now - pushed.at:.0f}s old")
        return CheckResult(name, pushed.ok, pushed.detail)

    async def check(self) -> list[CheckResult]:
        """Every check once, probes concurrently; in the order they were added."""
        results = list(await asyncio.gather(*(self._run(n, p) for n, p in self._probes.items())))
        now = time.monotonic()
        results += [self._pushed_result(n, now) for n in self._stale_after]
        ready = all(r.ok for r in results)
        if ready != self._last_ready:
            failing = [f"{r.name}: {r.detail}" for r in results if not r.ok]
            log.info("readiness changed", extra={"ready": ready, "failing": failing})
            self._last_ready = ready
        return results

    # --- liveness --------------------------------------------------------------------------

    def beat(self) -> None:
        """Called by the worker's main loop each turn; /healthz fails after `stall_after`."""
        self._last_beat = time.monotonic()

    def alive(self) -> tuple[bool, str]:
        if self.stall_after is None or self._last_beat is None:
            return True, "event loop answering"
        age = time.monotonic() - self._last_beat
        if age > self.stall_after:
            return False, f"main loop silent for {age:.1f}s"
        return True, f"main loop beat {age:.1f}s ago"


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def healthz(health: Health) -> Callable[[web.Request], Awaitable[web.Response]]:
    """200 while the process loop runs (and beats, if the worker beats), else 503."""

    async def handler(request: web.Request) -> web.Response:
        ok, detail = health.alive()
        return _json(200 if ok else 503, {"status": "ok" if ok else "stalled", "detail": detail})

    return handler


def readyz(health: Health) -> Callable[[web.Request], Awaitable[web.Response]]:
    """200 with every check when all pass, else 503 with the failing ones first."""

    async def handler(request: web.Request) -> web.Response:
        results = await health.check()
        failing = [r for r in results if not r.ok]
        body = {
            "status": "ready" if not failing else "unready",
            "failing": [r.name for r in failing],
            "checks": [r.as_dict() for r in results],
        }
        return _json(200 if not failing else 503, body)

    return handler


def add_routes(
    app: web.Application,
    health: Health,
    *,
    registry: CollectorRegistry | None = None,
    multiproc_dir: str | Path | None = None,
) -> None:
    """Mount /metrics, /healthz and /readyz on the worker's aiohttp application."""
    app.router.add_get("/metrics", metrics_handler(registry, multiproc_dir=multiproc_dir))
    app.router.add_get("/healthz", healthz(health))
    app.router.add_get("/readyz", readyz(health))
