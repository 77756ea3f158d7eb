"""Expansion: a plan, an enrollment's start date, zone and variables become occurrences.

For each local date from the start date for the plan's length, a practice occurs at
most once: when the date's week is active and the date matches `every` or `rrule`.
Its instant is the local date and time in the participant's zone, converted as
RFC 5545 does. Python's `zoneinfo` with `fold=0` is exactly that rule: a time in a
spring-forward gap takes the offset from before the gap (02:30 becomes 03:30 daylight
time) and a time that occurs twice is the first of the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from itertools import pairwise
from operator import attrgetter

from dateutil.rrule import rrulestr

from service.core.plan import Plan, Practice, Variant
from service.core.timeexpr import TimeExpr, TimeSyntaxError, VariableError, resolve_variables

_ONE_DAY = timedelta(days=1)
_SAFE_WINDOW = timedelta(hours=21)


@dataclass(slots=True)
class Occurrence:
    """One practice on one local date."""

    practice: Practice
    date: date
    week: int
    index: int  # the n-th occurrence of this practice, from 0
    utc: datetime
    zone: tzinfo
    variant: Variant
    item: str | None
    window_end: datetime

    @property
    def key(self) -> str:
        return f"{self.practice.id}:{self.date.isoformat()}"

    @property
    def local(self) -> datetime:
        """The instant as local time: what a clock on the wall shows then."""
        return self.utc.astimezone(self.zone)

    @property
    def end(self) -> datetime:
        return self.utc + timedelta(minutes=self.variant.duration_minutes)


def resolve_plan_variables(
    plan: Plan, overrides: Mapping[str, str] | None = None
) -> dict[str, int]:
    """The plan's variables with an enrollment's overrides, as minutes after midnight.

    Raises VariableError for an override the plan does not declare or cannot read.
    """
    definitions = dict(plan.variables)
    for name, text in (overrides or {}).items():
        if name not in definitions:
            known = ", ".join(sorted(definitions)) or "none"
            raise VariableError(
                name, f"plan '{plan.id}' has no variable '{name}' (its variables: {known})"
            )
        try:
            definitions[name] = TimeExpr.parse(text)
        except TimeSyntaxError as exc:
            raise VariableError(name, f"variable '{name}': {exc}") from exc
    return resolve_variables(definitions)


def expand(
    plan: Plan,
    start: date,
    zone: tzinfo,
    variables: Mapping[str, str] | None = None,
) -> list[Occurrence]:
    """Every occurrence of the plan for an enrollment, sorted by instant, then practice."""
    resolved = resolve_plan_variables(plan, variables)
    dates = [start + timedelta(days=i) for i in range(plan.days)]
    calendar = [
        (i, day, day.year, day.month, day.day, day.weekday()) for i, day in enumerate(dates)
    ]
    occurrences: list[Occurrence] = []
    # Practices in id order, then a stable sort by instant: ties stay in id order.
    for practice in sorted(plan.practices, key=_practice_id):
        occurrences.extend(_expand_practice(practice, calendar, start, zone, resolved))
    occurrences.sort(key=_instant)
    return occurrences


_instant = attrgetter("utc")
_practice_id = attrgetter("id")
_Day = tuple[int, date, int, int, int, int]  # offset, date, year, month, day, weekday


def _expand_practice(
    practice: Practice,
    calendar: list[_Day],
    start: date,
    zone: tzinfo,
    variables: Mapping[str, int],
) -> list[Occurrence]:
    """The practice's occurrences in date order. This loop is the hot path of expansion."""
    weekdays = practice.weekdays
    active = practice.weeks
    if practice.rrule:
        allowed = _rrule_dates(practice.rrule, start, len(calendar))
        days = [d for d in calendar if d[1] in allowed]
    elif weekdays is not None and len(weekdays) < 7:
        days = [d for d in calendar if d[5] in weekdays]
    else:
        days = calendar
    if active is not None:
        days = [d for d in days if d[0] // 7 + 1 in active]
    slots: dict[int, tuple[Variant, int, int]] = {}  # week -> variant, hour, minute
    for week in {d[0] // 7 + 1 for d in days}:
        variant = practice.variant(week)
        hour, minute = divmod(variant.at.resolve(variables), 60)
        slots[week] = (variant, hour, minute)
    window = timedelta(minutes=practice.window_minutes)
    utc_zone = UTC
    make = datetime
    out: list[Occurrence] = []
    append = out.append
    for index, (offset, day, year, month, dom, _) in enumerate(days):
        week = offset // 7 + 1
        variant, hour, minute = slots[week]
        utc = make(year, month, dom, hour, minute, tzinfo=zone).astimezone(utc_zone)
        rotate = variant.rotate
        item = rotate[index % len(rotate)] if rotate else None
        append(Occurrence(practice, day, week, index, utc, zone, variant, item, utc + window))
    # A window never runs past the next occurrence of the same practice. When every
    # occurrence is at the same wall time, consecutive ones are at least a day less the
    # largest daylight-saving shift apart (2 hours in the tz database), and a window
    # shorter than that needs no trimming.
    same_time = len({slot[1:] for slot in slots.values()}) <= 1
    if not same_time or window > _SAFE_WINDOW:
        for current, following in pairwise(out):
            if following.utc < current.window_end:
                current.window_end = following.utc
    return out


@lru_cache(maxsize=4096)
def _rrule_dates(body: str, start: date, days: int) -> frozenset[date]:
    dtstart = datetime.combine(start, time())
    rule = rrulestr(body, dtstart=dtstart, forceset=False)
    last = dtstart + timedelta(days=days) - _ONE_DAY
    return frozenset(moment.date() for moment in rule.between(dtstart, last, inc=True))
