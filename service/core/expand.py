"""Expansion: a plan, an enrollment's start date, zone and variables become occurrences.

For each local date from the start date for the plan's length, a practice occurs at
most once: when the date's week is active and the date matches `every` or `rrule`.
Its instant is the local date and time in the participant's zone, converted as
RFC 5545 does. Python's `zoneinfo` with `fold=0` is exactly that rule: a time in a
spring-forward gap takes the offset from before the gap (02:30 becomes 03:30 daylight
time) and a time that occurs twice is the first of the two.

Group sessions. A practice with a `timezone` of its own happens at one instant for
everyone: on each of the plan's dates, its `at` is read as wall time in that zone (the
same RFC 5545 rule), whatever the participant's zone. Such an occurrence's `date` (and
so its key) is the session's date in the session's zone; its `zone` stays the
participant's, so that `local` (and every text rendered from it) shows the time on the
participant's own clock. Windows, nudges and the one-a-day rule follow the instants as
for any practice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    def session_local(self) -> datetime:
        """The instant in the zone its `at` is read in: the group session's own zone, or
        the participant's for a practice without one."""
        session = self.practice.zone
        return self.utc.astimezone(session if session is not None else self.zone)

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


def local_instant(day: date, minutes: int, zone: tzinfo) -> datetime:
    """The instant (in UTC) of wall-clock `minutes` after midnight on local date `day`.

    The same conversion as expansion's: RFC 5545's rule, which `zoneinfo` with `fold=0`
    follows (a time in a spring-forward gap takes the offset from before the gap, a time
    that occurs twice is the first of the two).
    """
    hour, minute = divmod(minutes, 60)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)


def expand(
    plan: Plan,
    start: date,
    zone: tzinfo,
    variables: Mapping[str, str] | None = None,
) -> list[Occurrence]:
    """Every occurrence of the plan for an enrollment, sorted by instant, then practice."""
    resolved = resolve_plan_variables(plan, variables)
    calendar = _calendar(start, plan.days)
    occurrences: list[Occurrence] = []
    # Practices in id order, then a stable sort by instant: ties stay in id order.
    for practice in sorted(plan.practices, key=_practice_id):
        occurrences.extend(_expand_practice(practice, calendar, start, zone, resolved))
    occurrences.sort(key=_instant)
    return occurrences


_instant = attrgetter("utc")
_practice_id = attrgetter("id")
_Day = tuple[int, date, int, int, int, int]  # week, date, year, month, day, weekday


@lru_cache(maxsize=1024)
def _calendar(start: date, days: int) -> tuple[_Day, ...]:
    """The plan's local dates, with what the hot loop needs of each already taken out."""
    out = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        out.append((offset // 7 + 1, day, day.year, day.month, day.day, day.weekday()))
    return tuple(out)


def _expand_practice(
    practice: Practice,
    calendar: tuple[_Day, ...],
    start: date,
    zone: tzinfo,
    variables: Mapping[str, int],
) -> list[Occurrence]:
    """The practice's occurrences in date order. This loop is the hot path of expansion."""
    weekdays = practice.weekdays
    active = practice.weeks
    days: Sequence[_Day] = calendar
    if practice.rrule:
        allowed = _rrule_dates(practice.rrule, start, len(calendar))
        days = [d for d in days if d[1] in allowed]
    elif weekdays is not None and len(weekdays) < 7:
        days = [d for d in days if d[5] in weekdays]
    if active is not None:
        days = [d for d in days if d[0] in active]
    # What each week needs, looked up by week number: variant, hour, minute, rotate.
    slots: list[tuple[Variant, int, int, tuple[str, ...], int]] = []
    times = set()
    for week in range(calendar[-1][0] + 1 if calendar else 0):
        variant = practice.variant(week)
        hour, minute = divmod(variant.at.resolve(variables), 60)
        slots.append((variant, hour, minute, variant.rotate, len(variant.rotate)))
        if week and (active is None or week in active):
            times.add((hour, minute))
    window = timedelta(minutes=practice.window_minutes)
    # A group session's instants are its wall time in its own zone; the occurrence keeps
    # the participant's zone, for showing that instant on their clock.
    session = practice.zone
    wall_zone = session if session is not None else zone
    utc_zone = UTC
    make = datetime
    out: list[Occurrence] = []
    append = out.append
    for index, (week, day, year, month, dom, _) in enumerate(days):
        variant, hour, minute, rotate, turns = slots[week]
        utc = make(year, month, dom, hour, minute, 0, 0, wall_zone).astimezone(utc_zone)
        item = rotate[index % turns] if turns else None
        append(Occurrence(practice, day, week, index, utc, zone, variant, item, utc + window))
    # A window never runs past the next occurrence of the same practice. When every
    # occurrence is at the same wall time, consecutive ones are at least a day less the
    # largest daylight-saving shift apart (2 hours in the tz database), and a window
    # shorter than that needs no trimming.
    same_time = len(times) <= 1
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
