"""Calendar invitations (iMIP, RFC 6047): a plan's calendar practices as recurring series.

`series` turns the calendar practices of one enrollment into recurring events that
expand to exactly the occurrences `expand()` gives for them; `invitation` writes them
as an iTIP (RFC 5546) REQUEST or CANCEL.

How occurrences become series. A practice's occurrences are cut into runs: a run ends
where the practice's variant changes (a phase with another `at`, duration or text) or
where an inactive week lies between two occurrences. A run's events all have the same
wall-clock time and length, so one VEVENT with a recurrence rule carries it:

- W is the set of weekdays the run's dates fall on. The rule is `FREQ=WEEKLY;BYDAY=W`
  (`FREQ=DAILY` when W holds all seven days) with `UNTIL` the last occurrence's
  instant in UTC (RFC 5545 wants UTC there when DTSTART has a TZID).
- Every date between the first and the last whose weekday is in W and which is not an
  occurrence (an RRULE such as `INTERVAL=2`, an occurrence dropped because it was
  before the enrollment) is an EXDATE. For `every:` practices there are none.
- DTSTART is the first date at the practice's wall time as planned, with its TZID. A
  time in a spring-forward gap stays as written (02:30): RFC 5545 readers apply the
  same rule expansion does (the offset from before the gap, so 03:30 daylight time).
  A run of one occurrence has no rule.

Group sessions (a practice with a `timezone` of its own) are written in the session's
zone, not the participant's: DTSTART's TZID is that zone and the rule repeats its wall
time there, with the zone's VTIMEZONE in the calendar. Written in the participant's zone
instead, one wall time could not carry the series across a clock change that the two
zones make on different dates (London and New York a few weeks apart in March and
October): the session would move an hour on the participant's calendar. Calendar
programs show each instance on the participant's own clock. Such an event also carries
the practice's LOCATION and URL.

Pure: no clock (`stamp` is a parameter), no I/O; descriptions come rendered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar

from service.core.expand import Occurrence, expand, resolve_plan_variables
from service.core.ical import PRODID, add_timezones
from service.core.plan import Plan, Practice, Variant

REQUEST = "REQUEST"
CANCEL = "CANCEL"
METHODS = (REQUEST, CANCEL)
CALENDAR_CHANNEL = "calendar"
ICAL_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_ONE_DAY = timedelta(days=1)
_HASH_STAMP = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Series:
    """One recurring event: a run of a practice's occurrences at one wall time."""

    practice: Practice
    run: int  # the run's index within its practice, from 0
    variant: Variant
    zone: ZoneInfo  # the zone the series is written in: the session's own, or the participant's
    wall_time: time  # the practice's time as planned, before any gap rule
    dates: tuple[date, ...]  # the local dates (in `zone`) of its occurrences, ascending
    instants: tuple[datetime, ...]  # their instants, UTC
    weekdays: frozenset[int]  # 0 = Monday
    exdates: tuple[date, ...]
    first: Occurrence  # the first occurrence, for rendering the description

    @property
    def key(self) -> str:
        return f"{self.practice.id}.{self.run}"

    @property
    def start(self) -> datetime:
        """DTSTART: the first date at the planned wall time, in the zone (fold=0)."""
        return datetime.combine(self.dates[0], self.wall_time, tzinfo=self.zone)

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.variant.duration_minutes)

    @property
    def until(self) -> datetime:
        return self.instants[-1]

    @property
    def rrule_until(self) -> datetime:
        """UNTIL: the end of the last local day, in UTC. The last instant itself would do
        by the letter of RFC 5545, but a reader that resolves a fall-back time to its
        second instance would then drop the last occurrence; the day's end cannot."""
        last_day_end = datetime.combine(self.dates[-1] + timedelta(days=1), time(), self.zone)
        return (last_day_end - timedelta(seconds=1)).astimezone(UTC)

    def rrule(self) -> dict[str, object] | None:
        """The RRULE as icalendar takes it; None for a single occurrence."""
        if len(self.dates) < 2:
            return None
        if len(self.weekdays) == 7:
            return {"freq": "daily", "until": self.rrule_until}
        days = [ICAL_DAYS[d] for d in sorted(self.weekdays)]
        return {"freq": "weekly", "byday": days, "until": self.rrule_until}

    def exdate_times(self) -> list[datetime]:
        return [datetime.combine(d, self.wall_time, tzinfo=self.zone) for d in self.exdates]


def calendar_practices(plan: Plan) -> list[Practice]:
    return [p for p in plan.practices if CALENDAR_CHANNEL in p.channels]


def series(
    plan: Plan,
    start: date,
    zone: ZoneInfo,
    variables: Mapping[str, str] | None = None,
    *,
    not_before: datetime | None = None,
) -> list[Series]:
    """The plan's calendar practices for one enrollment as recurring series, in practice
    id order, then run order. With `not_before`, occurrences before it are left out (as
    the engine leaves out those before the enrollment was made)."""
    wanted = {p.id for p in calendar_practices(plan)}
    if not wanted:
        return []
    resolved = resolve_plan_variables(plan, variables)
    by_practice: dict[str, list[Occurrence]] = {}
    for occurrence in expand(plan, start, zone, variables):
        if occurrence.practice.id in wanted and (
            not_before is None or occurrence.utc >= not_before
        ):
            by_practice.setdefault(occurrence.practice.id, []).append(occurrence)
    out: list[Series] = []
    for practice_id in sorted(by_practice):
        occurrences = sorted(by_practice[practice_id], key=lambda o: o.date)
        practice_zone = occurrences[0].practice.zone  # a group session's own zone
        for index, run in enumerate(_runs(occurrences)):
            out.append(_series(run, index, practice_zone or zone, resolved))
    return out


def _runs(occurrences: Sequence[Occurrence]) -> list[list[Occurrence]]:
    """Cut at a change of variant and at an inactive week between two occurrences."""
    runs: list[list[Occurrence]] = []
    for occurrence in occurrences:
        if runs:
            previous = runs[-1][-1]
            active = occurrence.practice.weeks
            gap = active is not None and any(
                week not in active for week in range(previous.week + 1, occurrence.week)
            )
            if not gap and previous.variant == occurrence.variant:
                runs[-1].append(occurrence)
                continue
        runs.append([occurrence])
    return runs


def _series(
    run: list[Occurrence], index: int, zone: ZoneInfo, variables: Mapping[str, int]
) -> Series:
    first = run[0]
    hour, minute = divmod(first.variant.at.resolve(variables), 60)
    dates = tuple(o.date for o in run)
    weekdays = frozenset(d.weekday() for d in dates)
    present = set(dates)
    exdates = []
    day = dates[0]
    while day < dates[-1]:
        if day.weekday() in weekdays and day not in present:
            exdates.append(day)
        day += _ONE_DAY
    return Series(
        practice=first.practice,
        run=index,
        variant=first.variant,
        zone=zone,
        wall_time=time(hour, minute),
        dates=dates,
        instants=tuple(o.utc for o in run),
        weekdays=weekdays,
        exdates=tuple(exdates),
        first=first,
    )


def event_uid(enrollment_id: str, item: Series | str) -> str:
    """Stable across versions: the enrollment, the practice and the run."""
    key = item.key if isinstance(item, Series) else item
    return f"{enrollment_id}.{key}@tend"


def invitation(
    plan: Plan,
    enrollment_id: str,
    participant_name: str,
    participant_email: str,
    organizer_email: str,
    items: Sequence[Series],
    method: str,
    sequence: int,
    stamp: datetime,
    descriptions: Mapping[str, str] | None = None,
    *,
    cancelled_keys: Sequence[str] = (),
) -> bytes:
    """A VCALENDAR with one VEVENT per series, for METHOD:REQUEST or METHOD:CANCEL.

    `descriptions` maps a series' `key` to its DESCRIPTION. `cancelled_keys` are series
    keys (from an earlier version) to cancel that `items` no longer has: a CANCEL names
    them by UID alone, with the plan's title as the summary.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    organizer = icalendar.vCalAddress(f"mailto:{organizer_email}")
    organizer.params["CN"] = plan.title or "Tend"
    attendee = icalendar.vCalAddress(f"mailto:{participant_email}")
    attendee.params["CN"] = participant_name
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    attendee.params["PARTSTAT"] = "NEEDS-ACTION"
    attendee.params["RSVP"] = "FALSE"
    status = "CONFIRMED" if method == REQUEST else "CANCELLED"
    first_day: date | None = None
    last_day: date | None = None
    for item in items:
        event = _common(enrollment_id, item.key, sequence, stamp, organizer, attendee, status)
        event.add("summary", item.practice.title)
        event.add("dtstart", item.start)
        event.add("dtend", item.start + item.duration)
        rule = item.rrule()
        if rule is not None:
            event.add("rrule", rule)
        if item.exdates:
            event.add("exdate", item.exdate_times())
        description = (descriptions or {}).get(item.key)
        if description:
            event.add("description", description)
        if item.practice.location:
            event.add("location", item.practice.location)
        if item.practice.url:
            event.add("url", item.practice.url)
        event.add("categories", [item.practice.category])
        event.add("transp", "TRANSPARENT")
        if method == REQUEST:
            alarm = icalendar.Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", item.practice.title)
            alarm.add("trigger", timedelta(0))
            event.add_component(alarm)
        calendar.add_component(event)
        first_day = min(first_day or item.dates[0], item.dates[0])
        last_day = max(last_day or item.dates[-1], item.dates[-1])
    for key in cancelled_keys:
        if method != CANCEL:
            raise ValueError("only a CANCEL names series by key alone")
        event = _common(enrollment_id, key, sequence, stamp, organizer, attendee, status)
        event.add("summary", plan.title)
        calendar.add_component(event)
    if first_day is not None and last_day is not None:
        add_timezones(calendar, first_day - timedelta(days=366), last_day + timedelta(days=366))
    data: bytes = calendar.to_ical()
    return data


def _common(
    enrollment_id: str,
    key: str,
    sequence: int,
    stamp: datetime,
    organizer: icalendar.vCalAddress,
    attendee: icalendar.vCalAddress,
    status: str,
) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", event_uid(enrollment_id, key))
    event.add("sequence", sequence)
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("organizer", organizer)
    event.add("attendee", attendee)
    event.add("status", status)
    return event


def invitation_hash(
    plan: Plan,
    enrollment_id: str,
    participant_name: str,
    participant_email: str,
    organizer_email: str,
    items: Sequence[Series],
    method: str,
    descriptions: Mapping[str, str] | None = None,
    *,
    cancelled_keys: Sequence[str] = (),
) -> str:
    """What makes one version of an invitation differ from another: its content with
    DTSTAMP and SEQUENCE held fixed."""
    data = invitation(
        plan, enrollment_id, participant_name, participant_email, organizer_email, items,
        method, 0, _HASH_STAMP, descriptions, cancelled_keys=cancelled_keys,
    )  # fmt: skip
    return hashlib.sha256(data).hexdigest()
