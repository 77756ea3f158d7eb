"""Quiet hours, and a clock time as a person texts it.

A participant's quiet hours are a span of their local day (`22:00-07:00`, across
midnight or not) in which Tend sends nothing on its own: reminders, nudges, repeats and
weekly messages wait for the span's end, or are not sent when that is too late. The
span comes from the participant (`QUIET 22:00-07:00`, the dashboard, the API, the
command line) or, when they set none, from the deployment's TEND_QUIET_HOURS; `off`
means none at all, whatever the deployment says.

Pure: `now` and the zone are parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from service.core.diagnostics import one_line
from service.core.timeexpr import MINUTES_PER_DAY

OFF = "off"
_SPAN_SEPARATOR = re.compile(
    r"\s*(?:-|\u2013|\u2014|\bto\b|\buntil\b|\ba\b|\bhasta\b)\s*", re.IGNORECASE
)
_CLOCK = re.compile(
    r"^(?P<hour>\d{1,2})(?:\s*[:.h]\s*(?P<minute>\d{2}))?\s*(?P<half>[ap]\.?\s*m\.?)?$",
    re.IGNORECASE,
)
_COMPACT = re.compile(r"^(?P<hour>\d{1,2})(?P<minute>\d{2})$")  # 0630, 630
QUIET_EXAMPLE = "22:00-07:00"
# The note on a delivery not sent because it fell in quiet hours that outlasted its window.
QUIET_NOTE = "not sent: inside quiet hours"
HELD_NOTE = "held for quiet hours"


class Unreadable(ValueError):
    """A time or span that cannot be read; the message says what to write."""


def parse_clock(text: str) -> int:
    """A time of day as people text it, in minutes after midnight: 6:30, 06:30, 6.30,
    6h30, 630, 6, 6am, 6:30 pm, 18:30. Raises Unreadable."""
    written = text.strip()
    found = _CLOCK.match(written) or _COMPACT.match(written)
    if found is None:
        raise Unreadable(f"'{_short(written)}' is not a time; write it like 6:30 or 18:30")
    hour = int(found["hour"])
    minute = int(found["minute"] or 0)
    half = (found.groupdict().get("half") or "").lower().replace(".", "").replace(" ", "")
    if half:
        if not 1 <= hour <= 12:
            raise Unreadable(f"'{_short(written)}' is not a time; with am or pm, hours go 1 to 12")
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        raise Unreadable(f"'{_short(written)}' is not a time; write it like 6:30 or 18:30")
    return hour * 60 + minute


def clock_text(minutes: int) -> str:
    """Minutes after midnight as HH:MM."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """From `start` to `end`, minutes after local midnight; across midnight when start
    is later than end."""

    start: int
    end: int

    @property
    def text(self) -> str:
        return f"{clock_text(self.start)}-{clock_text(self.end)}"

    @property
    def minutes(self) -> int:
        return (self.end - self.start) % MINUTES_PER_DAY

    def covers(self, minute_of_day: int) -> bool:
        if self.start < self.end:
            return self.start <= minute_of_day < self.end
        return minute_of_day >= self.start or minute_of_day < self.end

    def covers_instant(self, instant: datetime, zone: ZoneInfo) -> bool:
        local = instant.astimezone(zone)
        return self.covers(local.hour * 60 + local.minute)

    def end_after(self, instant: datetime, zone: ZoneInfo) -> datetime | None:
        """When the quiet hours `instant` falls in end (aware UTC), or None when it falls
        in none. A clock change inside them is followed: the end is the first instant
        the local clock shows `end` (or passes it, on a day the clocks skip it)."""
        if not self.covers_instant(instant, zone):
            return None
        local = instant.astimezone(zone)
        day = local.date()
        if self.start >= self.end and local.hour * 60 + local.minute >= self.start:
            day += timedelta(days=1)  # quiet since this evening: they end tomorrow
        naive = datetime(day.year, day.month, day.day, self.end // 60, self.end % 60)
        end = naive.replace(tzinfo=zone)
        # A time that does not exist (the clocks went forward over it) reads as after it.
        back = end.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        if back != naive:
            end = (naive + timedelta(hours=1)).replace(tzinfo=zone)
        return end.astimezone(UTC)


def parse_quiet(text: str) -> QuietHours | None:
    """`22:00-07:00` (also `22-7`, `10pm-7am`, `22:00 to 07:00`) as QuietHours, or None
    for `off`. Raises Unreadable with what to write instead."""
    written = text.strip()
    if written.casefold() in (OFF, "none", "no"):
        return None
    parts = _SPAN_SEPARATOR.split(written, maxsplit=1)
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise Unreadable(
            f"'{_short(written)}' is not a span of quiet hours; write it like {QUIET_EXAMPLE}"
        )
    start, end = (parse_clock(p) for p in parts)
    if start == end:
        raise Unreadable("quiet hours need an end that differs from their start")
    return QuietHours(start, end)


def stored_form(text: str | None) -> str | None:
    """What is stored for a participant: None (the deployment's), "off", or HH:MM-HH:MM."""
    if text is None:
        return None
    found = parse_quiet(text)
    return found.text if found is not None else OFF


def effective(own: str | None, default: str | None) -> QuietHours | None:
    """The quiet hours that apply: the participant's own (`off` for none), else the
    deployment's default. Unreadable stored values count as none (they are checked when
    written)."""
    chosen = own if own is not None else default
    if chosen is None or chosen == OFF:
        return None
    try:
        return parse_quiet(chosen)
    except Unreadable:
        return None


def _short(text: str) -> str:
    """What was written, as an error quotes it: on one line, and not too long."""
    return one_line(text if len(text) <= 24 else f"{text[:20]}...")
