"""File replay: JSON Lines in the event contract, or a Traffy Fondue CSV export, onto the topics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from producers.kafka import RETRY_S, BrokerUnavailable, EventSender
from producers.traffy import TraffySummary, read_traffy
from streams.contract import STREAM_OF_SCHEMA, encode
from streams.timeutil import parse_ms
from streams.topics import Topics

__all__ = ["MAX_GAP_S", "Record", "ReplaySummary", "detect_format", "read_jsonl", "replay"]

log = logging.getLogger(__name__)

#: at --speed N, the longest wait between two records: a quiet night (or a misread year) in
#: the file is shortened to this, never slept through
MAX_GAP_S = 3.0


@dataclass(frozen=True, slots=True)
class Record:
    """One message to send: its topic stream, key, payload and event time (if known)."""

    stream: str
    key: str | None
    payload: bytes
    occurred_ms: int | None
    line: int


@dataclass
class ReplaySummary:
    format: str = ""
    lines: int = 0
    sent: int = 0
    errors: int = 0
    blank: int = 0
    by_stream: dict[str, int] = field(default_factory=lambda: {"grievance": 0, "project": 0})
    #: lines that could not be routed by schema: sent to the grievance topic all the same (the
    #: worker dead-letters them), reason -> count, and the first line numbers
    unrouted: dict[str, int] = field(default_factory=dict)
    unrouted_lines: dict[str, list[int]] = field(default_factory=dict)
    traffy: TraffySummary | None = None
    elapsed_s: float = 0.0
    #: paced replays: gaps between two records longer than max_gap_s (wall) were cut to it
    capped_gaps: int = 0
    capped_s: float = 0.0  # wall seconds not waited because of the cap
    max_gap_s: float = MAX_GAP_S
    #: set when Kafka stopped acknowledging for longer than the retry budget (replay stopped)
    broker_error: str = ""

    def note(self, reason: str, line: int) -> None:
        self.unrouted[reason] = self.unrouted.get(reason, 0) + 1
        lines = self.unrouted_lines.setdefault(reason, [])
        if len(lines) < 5:
            lines.append(line)


def detect_format(path: Path) -> str:
    """traffy for a CSV with the export's header, jsonl otherwise."""
    if path.suffix.lower() == ".csv":
        return "traffy"
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf")
    return "traffy" if head.startswith(b"ticket_id") else "jsonl"


def read_jsonl(path: Path, summary: ReplaySummary) -> Iterator[Record]:
    """Every non-blank line, routed by its schema; nothing is dropped."""
    with path.open("rb") as fh:
        for number, raw_line in enumerate(fh, start=1):
            line = raw_line.rstrip(b"\r\n")
            summary.lines += 1
            if not line.strip():
                summary.blank += 1
                continue
            yield _route(line, number, summary)


def _route(line: bytes, number: int, summary: ReplaySummary) -> Record:
    try:
        obj: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        summary.note("malformed_json", number)
        return Record("grievance", None, line, None, number)
    if not isinstance(obj, dict):
        summary.note("not_an_object", number)
        return Record("grievance", None, line, None, number)
    key = obj.get("district_code")
    key = key if isinstance(key, str) else None
    schema = obj.get("schema")
    stream = STREAM_OF_SCHEMA.get(schema) if isinstance(schema, str) else None
    if stream is None:
        summary.note("unknown_schema", number)
        stream = "grievance"
    occurred = obj.get("occurred_at")
    ms: int | None = None
    if isinstance(occurred, str):
        try:
            ms = parse_ms(occurred)
        except ValueError:
            ms = None
    return Record(stream, key, line, ms, number)


def read_traffy_records(path: Path, summary: ReplaySummary) -> Iterator[Record]:
    summary.traffy = TraffySummary()
    for m in read_traffy(path, summary.traffy):
        summary.lines += 1
        yield Record("grievance", m.event["district_code"], encode(m.event), m.occurred_ms, m.row)


async def replay(
    bootstrap: str,
    topics: Topics,
    path: Path,
    *,
    fmt: str = "auto",
    speed: float | None = None,
    on_progress: Callable[[ReplaySummary], None] | None = None,
    max_gap_s: float = MAX_GAP_S,
    backfill: bool = False,
    retry_s: float = RETRY_S,
) -> ReplaySummary:
    """Send the file's events; ``speed`` None = as fast as possible, N = real time x N using the
    gaps between occurred_at times, each wait at most ``max_gap_s`` (the summary counts the
    gaps cut). Every send is acknowledged (acks=all) before returning.
    ``backfill``: to the backfill topics (history on its own clocks, streams/backfill.py)."""
    summary = ReplaySummary(
        format=detect_format(path) if fmt == "auto" else fmt, max_gap_s=max_gap_s
    )
    if summary.format not in ("jsonl", "traffy"):
        raise ValueError(f"unknown format {fmt!r}: jsonl, traffy or auto")
    records = (read_traffy_records if summary.format == "traffy" else read_jsonl)(path, summary)
    sender = EventSender(bootstrap, topics, producer="replay", retry_s=retry_s)
    if backfill:
        topic_of = {s: topics.backfill_for(s) for s in ("grievance", "project")}
    else:
        topic_of = {"grievance": topics.grievance, "project": topics.project}
    await sender.start()
    started = time.monotonic()
    prev_ms: int | None = None
    due = started  # when the current record is due (monotonic)
    last_progress = started
    try:
        for rec in records:
            if speed is not None and rec.occurred_ms is not None:
                if prev_ms is not None:
                    gap = max(rec.occurred_ms - prev_ms, 0) / 1000 / speed
                    if gap > max_gap_s:
                        summary.capped_gaps += 1
                        summary.capped_s += gap - max_gap_s
                        gap = max_gap_s
                    due += gap
                prev_ms = rec.occurred_ms if prev_ms is None else max(prev_ms, rec.occurred_ms)
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            await sender.send_raw(topic_of[rec.stream], rec.payload, rec.key)
            summary.by_stream[rec.stream] += 1
            now = time.monotonic()
            if on_progress and now - last_progress >= 0.2:
                last_progress = now
                summary.sent, summary.elapsed_s = sender.sent, now - started
                on_progress(summary)
    except BrokerUnavailable as exc:
        summary.broker_error = str(exc)
    finally:
        try:
            await sender.stop()
        except BrokerUnavailable as exc:
            summary.broker_error = summary.broker_error or str(exc)
        summary.sent, summary.errors = sender.sent, sender.errors
        summary.elapsed_s = time.monotonic() - started
    return summary
