"""Reachability checks the CLI runs before it starts anything: Kafka and the store, quietly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

__all__ = ["Unreachable", "check_kafka", "check_store", "quiet"]

#: libraries that log every failed connection attempt (with a traceback): the CLI says it once
_NOISY = ("aiokafka", "kafka", "clickhouse_driver")


class Unreachable(RuntimeError):
    """Nothing usable answers at the address; the message says what and where."""


@contextlib.contextmanager
def quiet(names: tuple[str, ...] = _NOISY) -> Iterator[None]:
    """Mute these loggers and their children (a level above CRITICAL) for the block."""
    loggers = [logging.getLogger(n) for n in names]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, before, strict=True):
            lg.setLevel(level)


def check_kafka(bootstrap: str, timeout: float = 3.0) -> None:
    """Raise Unreachable unless a Kafka broker answers a metadata request at `bootstrap`."""
    from streams.broker import BrokerError, wait_ready

    with quiet():
        try:
            asyncio.run(wait_ready(bootstrap, timeout=timeout))
        except BrokerError:
            raise Unreachable(f"cannot reach Kafka at {bootstrap}: nothing answers there") from None


def check_store(url: str) -> None:
    """Raise Unreachable unless the ClickHouse server of `url` answers (chdb: nothing to ask)."""
    from sinks.backends import StoreError, open_backend
    from sinks.url import parse_store_url

    parsed = parse_store_url(url)
    if parsed.kind == "chdb":
        return
    with quiet():
        try:
            backend = open_backend(parsed, create_database=False)
            try:
                backend.ping()
            finally:
                backend.close()
        except StoreError as exc:
            raise Unreachable(f"cannot reach the store {parsed.redacted()}: {exc}") from None
