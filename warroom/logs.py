"""Logging set up once per process: JSON lines when not on a terminal, readable text on one.

Faust's CLI would set the root logger to DEBUG even at "warn" (every debug line then builds a
record: -13 % on the per-event path), so warroom configures logging itself. Every handler masks
citizen-ID-like 13-digit runs and phone-like numbers (`PiiMaskFilter`) as a last line of
defence: code must not log personal data in the first place (PDPA).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    from warroom.settings import Settings

__all__ = [
    "LEVELS",
    "DeadLetterLog",
    "JsonFormatter",
    "PiiMaskFilter",
    "TextFormatter",
    "configure",
    "log_sink_error",
    "mask_pii",
    "setup_logging",
]

_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)
LEVELS: Final = ("debug", "info", "warning", "error", "critical")
MASK: Final = "[masked]"

# `\d` matches Thai digits too (str patterns are Unicode); single spaces or dashes may separate
# digits. Latin letters next to the digits mean an identifier (UUID, hex pseudonym): left alone.
#: 13 digits: a Thai citizen ID, written plain or as 1-2345-67890-12-3
_CITIZEN_ID = re.compile(r"(?<![\dA-Za-z])\d(?:[ -]?\d){12}(?![\dA-Za-z])")
#: Thai phone numbers: 0 + 8-9 digits (02-123-4567, 081-234-5678) or +66 / 66 without the 0
_PHONE = re.compile(r"(?<![\dA-Za-z+])(?:\+?[6๖][6๖][ -]?|[0๐])\d(?:[ -]?\d){7,8}(?![\dA-Za-z])")


def mask_pii(text: str) -> str:
    """Replace citizen-ID-like and phone-like numbers with [masked]."""
    if not any(ch.isdigit() for ch in text):
        return text
    return _PHONE.sub(MASK, _CITIZEN_ID.sub(MASK, text))


def _mask_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return mask_pii(value)
    if depth > 3:
        return value
    if isinstance(value, list | tuple):
        return [_mask_value(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _mask_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) >= 9:
        masked = mask_pii(str(value))
        return value if masked == str(value) else masked
    return value


class PiiMaskFilter(logging.Filter):
    """Masks personal-looking numbers in the message, its `extra` fields and exception text.

    Put it on handlers (a filter on the root logger does not see records of child loggers).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format: let the handler report it as logging does
            return True
        masked = mask_pii(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and not key.startswith("_"):
                record.__dict__[key] = _mask_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_pii(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_pii(record.stack_info)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """`HH:MM:SS level logger: message key=value ...` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            first, nl, rest = text.partition("\n")  # keep fields on the message line
            fields = " ".join(f"{k}={v}" for k, v in extras.items())
            text = f"{first} {fields}{nl}{rest}"
        return text


def _level(level: str) -> int:
    name = level.strip().lower()
    if name == "warn":
        name = "warning"
    if name not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    return int(getattr(logging, name.upper()))


def setup_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Route every logger to one handler on `stream` (stderr): `fmt` is auto, text or json."""
    stream = stream or sys.stderr
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        fmt = "text" if isatty is not None and isatty() else "json"
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r} is not one of auto, text, json")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(PiiMaskFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_level(level))
    # chatty libraries stay at warning unless we debug them on purpose
    for name in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def configure(
    settings: Settings, *, level: str | None = None, fmt: str | None = None, stream: Any = None
) -> None:
    """Logging from the CLI flags when given, else WARROOM_LOG_LEVEL / WARROOM_LOG_FORMAT."""
    setup_logging(level or settings.log_level, fmt or settings.log_format, stream)


class DeadLetterLog:
    """Logs rejected events with event_id / district / reason as fields, never the payload.

    A broken producer can send thousands of bad events a second: at most `burst` lines per
    reason per `interval` seconds are written; the rest are counted and reported in one
    `suppressed` line per reason when the interval is over. The counters and the dead-letter
    topic still see every event.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 10,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self._clock = clock
        self._window_start = clock()
        self._logged: dict[str, int] = defaultdict(int)
        self._suppressed: dict[str, int] = defaultdict(int)

    def _roll(self, now: float) -> None:
        if now - self._window_start < self.interval:
            return
        for reason, n in sorted(self._suppressed.items()):
            self.logger.warning(
                "dead letters not logged one by one",
                extra={"reason": reason, "suppressed": n, "interval_s": self.interval},
            )
        self._logged.clear()
        self._suppressed.clear()
        self._window_start = now

    def rejected(
        self,
        *,
        reason: str,
        topic: str,
        partition: int,
        offset: int,
        event_id: str = "",
        district: str = "",
        source: str = "",
        field: str = "",
        detail: str = "",
        digest: str = "",
    ) -> None:
        self._roll(self._clock())
        if self._logged[reason] >= self.burst:
            self._suppressed[reason] += 1
            return
        self._logged[reason] += 1
        self.logger.warning(
            "event rejected to the dead-letter topic",
            extra={
                "reason": reason,
                "field": field,
                "detail": mask_pii(detail)[:300],
                "event_id": event_id,
                "district": district,
                "source": source,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "digest": digest,
            },
        )

    def flush(self) -> None:
        """Report what is still suppressed (at shutdown)."""
        self._roll(self._window_start + self.interval)


def log_sink_error(
    logger: logging.Logger,
    error: BaseException,
    *,
    backend: str,
    table: str,
    rows: int,
    attempt: int,
    retry_in: float | None = None,
    event_id: str = "",
    district: str = "",
) -> None:
    """One failed store write, with the first row's event_id and district to find it again."""
    logger.error(
        "store write failed",
        extra={
            "backend": backend,
            "table": table,
            "rows": rows,
            "attempt": attempt,
            "retry_in_s": retry_in,
            "event_id": event_id,
            "district": district,
            "error": mask_pii(f"{type(error).__name__}: {error}")[:500],
        },
    )
