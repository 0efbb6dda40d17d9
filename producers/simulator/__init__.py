"""The workload simulator: a deterministic national stream of grievance and project events."""

from producers.simulator.generator import Item, SimOptions, Simulator
from producers.simulator.live import LivePlan
from producers.simulator.run import RunOptions, Stats, resolve_start, run_simulator

__all__ = [
    "Item",
    "LivePlan",
    "RunOptions",
    "SimOptions",
    "Simulator",
    "Stats",
    "resolve_start",
    "run_simulator",
]
