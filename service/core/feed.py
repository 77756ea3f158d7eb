"""A participant's calendar subscription feed, written as iCalendar text (RFC 5545).

Feeds are fetched again and again by every calendar a participant subscribes with, and
may hold a year of events, so this module writes the text itself instead of building an
object tree: the icalendar library takes about 200 ms for a year of events, this about
a hundredth of that. What the library does well is kept: each zone's VTIMEZONE comes
from it (`vtimezone`, cached per zone and span of years).

The rules that matter to calendar clients:
- lines end in CRLF and are folded at 75 octets, never inside a UTF-8 character;
- TEXT values escape backslash, semicolon, comma and newlines (RFC 5545, 3.3.11);
- every DTSTART carries its TZID (the end is a DURATION), and the calendar a VTIMEZONE
  for each zone used (no floating times);
- the document depends only on its inputs (each event's DTSTAMP is its last change, not
  the moment the feed was asked for), so that the same content has the same ETag and an
  event's text can be kept and reused (`event_text` is cached) until it changes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar

from service.core.ical import PRODID

CRLF = "\r\n"
LINE_OCTETS = 75


@dataclass(frozen=True, slots=True)
class FeedEvent:
    uid: str
    start: datetime  # aware, in the participant's zone
    end: datetime
    zone: str  # the IANA name of start's and end's zone
    summary: str
    description: str
    category: str
    sequence: int
    last_modified: datetime  # aware
    url: str | None = None  # the practice's own link (a group session's), else the check-in link
    done: bool = False
    alarm: bool = True  # a display alarm at the start (not for done events)
    location: str | None = None  # a group session's place


def escape_text(value: str) -> str:
    """A TEXT value as RFC 5545 writes it."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def fold(line: str) -> str:
    """A content line folded at 75 octets with CRLF and a space, never splitting a
    UTF-8 character; the result ends in CRLF."""
    if len(line) <= LINE_OCTETS // 4:
        return line + CRLF
    data = line.encode()
    if len(data) <= LINE_OCTETS:
        return line + CRLF
    parts: list[bytes] = []
    start, limit = 0, LINE_OCTETS
    while len(data) - start > limit:
        cut = start + limit
        while data[cut] & 0xC0 == 0x80:  # a continuation byte: cut before its character
            cut -= 1
        parts.append(data[start:cut])
        start, limit = cut, LINE_OCTETS - 1  # continuation lines start with a space
    parts.append(data[start:])
    return b"\r\n ".join(parts).decode() + CRLF


def _duration(length: timedelta) -> str:
    minutes = max(int(length.total_seconds()) // 60, 0)
    return f"PT{minutes}M"


def _utc(moment: datetime) -> str:
    return _local(moment.astimezone(UTC)) + "Z"


def _local(m: datetime) -> str:
    return f"{m.year:04d}{m.month:02d}{m.day:02d}T{m.hour:02d}{m.minute:02d}{m.second:02d}"


@functools.lru_cache(maxsize=256)
def vtimezone(zone: str, first_year: int, last_year: int) -> str:
    """The VTIMEZONE of `zone` covering the given years, as folded text (from the
    icalendar library, which reads the tz database)."""
    calendar = icalendar.Calendar()
    event = icalendar.Event()
    start = datetime(first_year, 1, 1, 12, tzinfo=ZoneInfo(zone))
    event.add("dtstart", start)
    calendar.add_component(event)
    calendar.add_missing_timezones(
        first_date=date(first_year, 1, 1), last_date=date(last_year, 12, 31)
    )
    if not calendar.timezones:
        # The library writes no VTIMEZONE for zones that are UTC all year (UTC, GMT,
        # Africa/Abidjan, ...); a DTSTART with their TZID still needs one.
        return _fixed_vtimezone(zone, start)
    (component,) = calendar.timezones
    text: str = component.to_ical().decode("utf-8")
    return text.replace("\r\n", CRLF).rstrip("\r\n") + CRLF


def _fixed_vtimezone(zone: str, moment: datetime) -> str:
    """A VTIMEZONE of one STANDARD rule: the zone's offset at `moment`, for ever."""
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    written = f"{sign}{hours:02d}{rest:02d}"
    lines = [
        "BEGIN:VTIMEZONE",
        f"TZID:{zone}",
        "BEGIN:STANDARD",
        "DTSTART:19700101T000000",
        f"TZOFFSETFROM:{written}",
        f"TZOFFSETTO:{written}",
        f"TZNAME:{escape_text(moment.tzname() or zone)}",
        "END:STANDARD",
        "END:VTIMEZONE",
    ]
    return "".join(fold(line) for line in lines)


def write_feed(
    events: Sequence[FeedEvent],
    *,
    name: str,
    refresh: timedelta,
    description: str | None = None,
) -> bytes:
    """The whole VCALENDAR, as UTF-8 bytes; an empty `events` still makes a valid
    calendar."""
    out: list[str] = [
        "BEGIN:VCALENDAR" + CRLF,
        "VERSION:2.0" + CRLF,
        fold(f"PRODID:{PRODID}"),
        "CALSCALE:GREGORIAN" + CRLF,
        "METHOD:PUBLISH" + CRLF,
        fold(f"NAME:{escape_text(name)}"),
        fold(f"X-WR-CALNAME:{escape_text(name)}"),
    ]
    if description:
        out.append(fold(f"DESCRIPTION:{escape_text(description)}"))
        out.append(fold(f"X-WR-CALDESC:{escape_text(description)}"))
    seconds = int(refresh.total_seconds())
    duration = f"PT{seconds // 3600}H" if seconds % 3600 == 0 else f"PT{seconds // 60}M"
    out.append(f"REFRESH-INTERVAL;VALUE=DURATION:{duration}" + CRLF)
    out.append(f"X-PUBLISHED-TTL:{duration}" + CRLF)
    out.extend(_timezones(events))
    out.extend(event_text(event) for event in events)
    out.append("END:VCALENDAR" + CRLF)
    return "".join(out).encode("utf-8")


def _timezones(events: Iterable[FeedEvent]) -> list[str]:
    spans: dict[str, tuple[int, int]] = {}
    for event in events:
        year = event.start.year
        low, high = spans.get(event.zone, (year, year))
        spans[event.zone] = (min(low, year), max(high, year))
    # A year on either side, for clients that show a little beyond the events.
    return [vtimezone(zone, low - 1, high + 1) for zone, (low, high) in sorted(spans.items())]


@functools.lru_cache(maxsize=65536)
def event_text(event: FeedEvent) -> str:
    """One VEVENT, folded; its DTSTAMP is its LAST-MODIFIED."""
    summary = ("\u2713 " if event.done else "") + event.summary
    lines = [
        "BEGIN:VEVENT" + CRLF,
        fold(f"UID:{event.uid}"),
        f"DTSTAMP:{_utc(event.last_modified)}" + CRLF,
        fold(f"DTSTART;TZID={event.zone}:{_local(event.start)}"),
        # A duration, not a DTEND: an end in the second pass of a repeated hour (a
        # clock going back) cannot be written as a local time without being misread.
        f"DURATION:{_duration(event.end.astimezone(UTC) - event.start.astimezone(UTC))}" + CRLF,
        fold(f"SUMMARY:{escape_text(summary)}"),
    ]
    if event.description:
        lines.append(fold(f"DESCRIPTION:{escape_text(event.description)}"))
    if event.location:
        lines.append(fold(f"LOCATION:{escape_text(event.location)}"))
    if event.url:
        lines.append(fold(f"URL;VALUE=URI:{event.url}"))
    lines.append(fold(f"CATEGORIES:{escape_text(event.category)}"))
    lines.append(f"SEQUENCE:{event.sequence}" + CRLF)
    lines.append(f"LAST-MODIFIED:{_utc(event.last_modified)}" + CRLF)
    lines.append("STATUS:CONFIRMED" + CRLF)
    lines.append("TRANSP:TRANSPARENT" + CRLF)
    if event.alarm and not event.done:
        lines.append("BEGIN:VALARM" + CRLF)
        lines.append("ACTION:DISPLAY" + CRLF)
        lines.append(fold(f"DESCRIPTION:{escape_text(event.summary)}"))
        lines.append("TRIGGER:PT0S" + CRLF)
        lines.append("END:VALARM" + CRLF)
    lines.append("END:VEVENT" + CRLF)
    return "".join(lines)
