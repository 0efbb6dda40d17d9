"""What a wall request selects — time range and variable values — checked before any query runs.

A value is accepted only if it is one of the variable's own options (a custom variable's list,
or what its query returns under the selections made before it: region -> province -> district);
anything else is refused with a reason. The expansion itself is `dashboards.macros.expand`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from dashboards.macros import ALL, QueryContext, Variable
from dashboards.wall.catalog import Dashboard, VariableSpec

__all__ = ["Refused", "TimeRange", "interval_for", "parse_range", "resolve_variables"]

MINUTE_MS = 60_000
MAX_RANGE_MS = 400 * 86_400_000
DEFAULT_RANGE_MS = 86_400_000
# Grafana picks an interval from the panel's width; the wall asks for about this many points
_POINTS = 300
_NICE_MS = (
    60_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
)

#: (value, text) options of a query variable, given the variables resolved before it
OptionsFn = Callable[[VariableSpec, QueryContext], Awaitable[list[tuple[str, str]]]]


class Refused(ValueError):
    """A request the wall will not run; `reason` is shown to the person (Thai), `status` HTTP."""

    def __init__(self, reason: str, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class TimeRange:
    from_ms: int
    to_ms: int


def _ms(text: str, now_ms: int, name: str) -> int:
    text = text.strip()
    if text == "now":
        return now_ms
    if text.startswith("now-"):
        units = {"m": MINUTE_MS, "h": 3_600_000, "d": 86_400_000}
        amount, unit = text[4:-1], text[-1:]
        if unit in units and amount.isdigit():
            return now_ms - int(amount) * units[unit]
    if text.isdigit():
        return int(text)
    raise Refused("ช่วงเวลาไม่ถูกต้อง", f"{name}={text!r}: expected epoch ms, 'now' or 'now-<N>[mhd]'")


def parse_range(raw_from: str | None, raw_to: str | None, now_ms: int | None = None) -> TimeRange:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    to_ms = _ms(raw_to, now, "to") if raw_to else now
    from_ms = _ms(raw_from, now, "from") if raw_from else to_ms - DEFAULT_RANGE_MS
    if to_ms - from_ms < MINUTE_MS:
        raise Refused("ช่วงเวลาต้องยาวอย่างน้อย 1 นาที", "the range must be at least one minute")
    if to_ms - from_ms > MAX_RANGE_MS:
        raise Refused("ช่วงเวลายาวเกิน 400 วัน", "the range may span at most 400 days")
    return TimeRange(from_ms, to_ms)


def interval_for(rng: TimeRange) -> int:
    """The bucket width of time series: the first nice step giving at most ~_POINTS points."""
    raw = (rng.to_ms - rng.from_ms) / _POINTS
    return next((n for n in _NICE_MS if n >= raw), _NICE_MS[-1])


def _values(spec: VariableSpec, given: Sequence[str] | None) -> list[str]:
    values = [v for v in given or () if v != ""] or list(spec.default)
    if ALL in values or values == ["All"]:
        if not spec.include_all:
            raise Refused(
                f"ตัวแปร {spec.label} ต้องเลือกค่า", f"variable {spec.name} has no 'All' option"
            )
        return [ALL]
    if len(values) > 1 and not spec.multi:
        raise Refused(f"ตัวแปร {spec.label} เลือกได้ค่าเดียว", f"variable {spec.name} takes one value")
    return values


async def resolve_variables(
    dash: Dashboard,
    given: Mapping[str, Sequence[str]],
    rng: TimeRange,
    options_of: OptionsFn,
) -> dict[str, Variable]:
    """Every variable of `dash`, checked in order (a later one's options depend on earlier)."""
    unknown = sorted(set(given) - {v.name for v in dash.variables})
    if unknown:
        raise Refused(
            f"ไม่มีตัวแปร {', '.join(unknown)} ในแดชบอร์ดนี้",
            f"unknown variable(s) for {dash.uid}: {', '.join(unknown)}",
        )
    resolved: dict[str, Variable] = {}
    for spec in dash.variables:
        values = _values(spec, given.get(spec.name))
        ctx = QueryContext(rng.from_ms, rng.to_ms, interval_for(rng), dict(resolved))
        options = [v for v, _ in await options_of(spec, ctx)]
        allowed = set(options)
        bad = [v for v in values if v != ALL and v not in allowed]
        if bad:
            raise Refused(
                f"ค่า {bad[0]!r} ไม่อยู่ในตัวเลือกของ {spec.label}",
                f"variable {spec.name}: {bad[0]!r} is not one of its options",
            )
        current: str | list[str] = values[0] if len(values) == 1 else values
        resolved[spec.name] = Variable(current, options=options)
    return resolved
