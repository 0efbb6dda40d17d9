"""Time: RFC 3339 parsing (naive = Asia/Bangkok), UTC storage, Buddhist-Era fiscal years."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

__all__ = [
    "BANGKOK",
    "fiscal_quarter",
    "fiscal_year_be",
    "format_bangkok",
    "from_ms",
    "parse_ms",
    "to_rfc3339",
]

#: Thailand keeps UTC+7 all year (no daylight saving), so a fixed offset parses naive times.
BANGKOK_OFFSET = timezone(timedelta(hours=7), "ICT")
BANGKOK = ZoneInfo("Asia/Bangkok")
_BE_OFFSET = 543
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def parse_ms(text: str) -> int:
    """RFC 3339 time -> epoch milliseconds (UTC). A time without offset is Asia/Bangkok.

    Raises ValueError for anything that is not a full date-time (RFC 3339 requires the
    seconds; Python's fromisoformat alone would also take dates, week dates and hours).
    """
    if (
        len(text) < 19
        or text[4] != "-"
        or text[7] != "-"
        or text[10] not in "Tt "
        or text[13] != ":"
        or text[16] != ":"
    ):
        raise ValueError("not an RFC 3339 date-time")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=BANGKOK_OFFSET)
    return (dt - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def to_rfc3339(dt: datetime) -> str:
    """An aware datetime as RFC 3339 with its offset, millisecond precision."""
    return dt.isoformat(timespec="milliseconds")


def format_bangkok(ms: int, fmt: str = "%d/%m/%Y %H:%M") -> str:
    """Epoch ms shown in Asia/Bangkok with a Buddhist-Era year (how Thai officials read dates)."""
    local = datetime.fromtimestamp(ms / 1000, tz=BANGKOK)
    return local.strftime(fmt.replace("%Y", str(local.year + _BE_OFFSET))) + " น."


def fiscal_year_be(dt: datetime) -> int:
    """Thai fiscal year, Buddhist Era, labelled by the year in which it ends (1 Oct - 30 Sep)."""
    local = dt.astimezone(BANGKOK)
    return local.year + _BE_OFFSET + (1 if local.month >= 10 else 0)


def fiscal_quarter(dt: datetime) -> int:
    """1-4: Q1 = Oct-Dec, Q2 = Jan-Mar, Q3 = Apr-Jun, Q4 = Jul-Sep."""
    month = dt.astimezone(BANGKOK).month
    return (month - 10) // 3 + 1 if month >= 10 else (month - 1) // 3 + 2
