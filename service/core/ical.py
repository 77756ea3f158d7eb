"""iCalendar (RFC 5545) documents of occurrences: preview files, feeds, invitations.

Every event carries its TZID and the calendar a VTIMEZONE for each zone used (never
floating times). icalendar folds lines at 75 octets without splitting a character and
escapes text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import icalendar

PRODID = "-//Tend//Tend reminders//EN"


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    uid: str
    start: datetime  # aware, in the participant's zone
    end: datetime
    summary: str
    description: str
    categories: tuple[str, ...] = ()
    sequence: int = 0
    last_modified: datetime | None = None
    alarm_minutes: int | None = None  # a display alarm this long before the start
    done: bool = False
    location: str | None = None  # a group session's place: LOCATION
    url: str | None = None  # its link: URL


def build_calendar(
    events: Iterable[CalendarEvent],
    *,
    name: str,
    stamp: datetime,
    method: str = "PUBLISH",
    timezone: str | None = None,
    refresh_minutes: int | None = None,
) -> bytes:
    """A VCALENDAR of `events`; `stamp` is the DTSTAMP (the caller's clock)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    calendar.add("name", name)
    calendar.add("x-wr-calname", name)
    if timezone:
        calendar.add("x-wr-timezone", timezone)
    if refresh_minutes:
        calendar.add(
            "refresh-interval", timedelta(minutes=refresh_minutes), parameters={"VALUE": "DURATION"}
        )
        calendar.add("x-published-ttl", timedelta(minutes=refresh_minutes))
    first: date | None = None
    last: date | None = None
    for event in events:
        calendar.add_component(_event(event, stamp))
        day = event.start.date()
        first = day if first is None or day < first else first
        last = day if last is None or day > last else last
    if first is not None and last is not None:
        add_timezones(calendar, first - timedelta(days=366), last + timedelta(days=366))
    data: bytes = calendar.to_ical()
    return data


def add_timezones(calendar: icalendar.Calendar, first: date, last: date) -> None:
    """A VTIMEZONE for every zone the calendar's events name, in the order of their
    names. (icalendar's `add_missing_timezones` adds them in the order of a set, which
    differs from one process to the next: two processes would write different bytes
    for one calendar, and a content hash over it would differ.)"""
    at = len(calendar.timezones)
    for tzid in sorted(calendar.get_missing_tzids()):
        try:
            zone = icalendar.Timezone.from_tzid(tzid, first_date=first, last_date=last)
        except ValueError:  # not a zone the library knows: as add_missing_timezones does
            continue
        calendar.subcomponents.insert(at, zone)
        at += 1


def _event(event: CalendarEvent, stamp: datetime) -> icalendar.Event:
    component = icalendar.Event()
    component.add("uid", event.uid)
    component.add("dtstamp", stamp)
    component.add("dtstart", event.start)
    component.add("dtend", event.end)
    component.add("summary", ("✓ " if event.done else "") + event.summary)
    if event.description:
        component.add("description", event.description)
    if event.location:
        component.add("location", event.location)
    if event.url:
        component.add("url", event.url)
    if event.categories:
        component.add("categories", list(event.categories))
    component.add("sequence", event.sequence)
    if event.last_modified is not None:
        component.add("last-modified", event.last_modified)
    component.add("transp", "TRANSPARENT")
    if event.alarm_minutes is not None and not event.done:
        alarm = icalendar.Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", event.summary)
        alarm.add("trigger", timedelta(minutes=-event.alarm_minutes))
        component.add_component(alarm)
    return component
