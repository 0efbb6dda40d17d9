"""What validating one event costs, against a plain orjson decode of the same payloads.

    python bench/validation.py [--events 200000] [--seed 1]

Simulated payloads (the realistic mix: lifecycle steps, project reports, complainants, about
1 % bad events). Prints microseconds per event for (a) orjson.loads alone, the baseline, and
(b) Validator.check (typed decode + every contract rule), best of 5 rounds, and the ratio.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

import orjson

from producers.simulator.generator import SimOptions, Simulator
from streams.reasons import Rejection
from streams.validation import Validator


def best_us(fn: Callable[[bytes], object], payloads: list[bytes], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for p in payloads:
            fn(p)
        best = min(best, time.perf_counter() - started)
    return best / len(payloads) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    start = int(time.time() * 1000) - 30 * 86_400_000
    items = list(
        itertools.islice(Simulator(SimOptions(seed=args.seed, start_ms=start)).items(), args.events)
    )
    payloads = [it.payload for it in items]
    good = [it.payload for it in items if it.reason is None]
    validator = Validator()
    now = time.time() * 1000
    rejected = sum(type(validator.check(p, now)) is Rejection for p in payloads)

    def decode(p: bytes) -> object:
        try:
            return orjson.loads(p)
        except orjson.JSONDecodeError:
            return None

    base = best_us(decode, good)
    checked = best_us(lambda p: validator.check(p, now), good)
    mixed = best_us(lambda p: validator.check(p, now), payloads)
    print(f"{len(payloads):,} simulated events, {rejected:,} rejected")
    print(f"orjson.loads (baseline):          {base:6.2f} us/event")
    print(f"Validator.check, good events:     {checked:6.2f} us/event ({checked / base:.1f}x)")
    print(f"Validator.check, the mix (1% bad): {mixed:6.2f} us/event")


if __name__ == "__main__":
    main()
