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

from dateutil.rrule import rrulestr

from service.core.plan import Plan, Practice, Variant
from service.core.timeexpr import TimeExpr, TimeSyntaxError, VariableError, resolve_variables

_ONE_DAY = timedelta(days=1)


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
    occurrences: list[Occurrence] = []
    for practice in plan.practices:
        occurrences.extend(_expand_practice(practice, dates, start, zone, resolved))
    occurrences.sort(key=lambda o: (o.utc, o.practice.id))
    return occurrences


def _expand_practice(
    practice: Practice,
    dates: list[date],
    start: date,
    zone: tzinfo,
    variables: Mapping[str, int],
) -> list[Occurrence]:
    weekdays = practice.weekdays
    allowed = _rrule_dates(practice.rrule, start, len(dates)) if practice.rrule else None
    active_weeks = practice.weeks
    window = timedelta(minutes=practice.window_minutes)
    times: dict[int, tuple[Variant, int, int]] = {}  # week -> variant, hour, minute
    out: list[Occurrence] = []
    for offset, day in enumerate(dates):
        week = offset // 7 + 1
        if active_weeks is not None and week not in active_weeks:
            continue
        if allowed is None:
            if weekdays is not None and day.weekday() not in weekdays:
                continue
        elif day not in allowed:
            continue
        slot = times.get(week)
        if slot is None:
            variant = practice.variant(week)
            minutes = variant.at.resolve(variables)
            slot = times[week] = (variant, minutes // 60, minutes % 60)
        variant, hour, minute = slot
        local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
        utc = local.astimezone(UTC)
        rotate = variant.rotate
        index = len(out)
        out.append(
            Occurrence(
                practice=practice,
                date=day,
                week=week,
                index=index,
                utc=utc,
                zone=zone,
                variant=variant,
                item=rotate[index % len(rotate)] if rotate else None,
                window_end=utc + window,
            )
        )
    # A window never runs past the next occurrence of the same practice.
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
