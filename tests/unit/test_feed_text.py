"""The calendar feed's text (`service.core.feed`): folding at 75 octets without splitting a
UTF-8 character, TEXT escaping, CRLF line ends, the calendar's own properties, a
VTIMEZONE for every zone used, alarms and the done mark.

Every document is read back with vobject, a parser independent of the icalendar library
that writes the VTIMEZONEs. Instants are compared as aware datetimes in UTC, resolving the
local times with the VTIMEZONE the feed itself carries (as vobject parses it).
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import vobject
from dateutil import tz
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.core.feed import LINE_OCTETS, FeedEvent, escape_text, fold, write_feed

CRLF = "\r\n"
NY = "America/New_York"
LONDON = "Europe/London"
LORD_HOWE = "Australia/Lord_Howe"
STAMP = datetime(2026, 2, 20, 9, 15, 30, tzinfo=UTC)


def event(
    uid: str,
    moment: datetime,
    zone: str = NY,
    *,
    minutes: int = 15,
    summary: str = "Wind down",
    **changes: Any,
) -> FeedEvent:
    """A FeedEvent at `moment` (an aware instant), in `zone`, as the web layer makes one."""
    start = moment.astimezone(ZoneInfo(zone))
    base = FeedEvent(
        uid=uid,
        start=start,
        end=start + timedelta(minutes=minutes),
        zone=zone,
        summary=summary,
        description=f"{summary}, {minutes} minutes.",
        category="sleep",
        sequence=0,
        last_modified=STAMP,
        url=f"https://tend.test/check-in/{uid}",
    )
    return replace(base, **changes)


def feed(events: list[FeedEvent], name: str = "Tend: Rae's practices") -> str:
    return write_feed(events, name=name, refresh=timedelta(hours=1)).decode("utf-8")


def unfold(text: str) -> str:
    return text.replace("\r\n ", "").replace("\r\n\t", "")


def physical_lines(text: str) -> list[str]:
    assert text.endswith(CRLF)
    return text[: -len(CRLF)].split(CRLF)


def content_lines(text: str) -> list[str]:
    return physical_lines(unfold(text))


def event_lines(lines: list[str]) -> list[str]:
    """The content lines inside VEVENTs (not those of VTIMEZONEs)."""
    inside, found = False, []
    for line in lines:
        if line == "BEGIN:VEVENT":
            inside = True
        elif line == "END:VEVENT":
            inside = False
        elif inside:
            found.append(line)
    return found


def parse(text: str) -> Any:
    return vobject.readOne(text)


def zones_of(calendar: Any) -> dict[str, tzinfo]:
    """The calendar's own VTIMEZONEs, as vobject parses them, by TZID."""
    return {vtz.tzid.value: vtz.tzinfo for vtz in calendar.contents.get("vtimezone", [])}


def tzid_of(prop: Any) -> str:
    """The TZID a DTSTART or DTEND was written with (vobject keeps it aside once it has
    turned the value into an aware datetime)."""
    (tzid,) = prop.params.get("TZID") or prop.params["X-VOBJ-ORIGINAL-TZID"]
    return str(tzid)


def instant(calendar: Any, prop: Any) -> datetime:
    """A DTSTART or DTEND as an aware UTC datetime, its local time resolved with the
    feed's own VTIMEZONE of its TZID."""
    tzid = tzid_of(prop)
    local = prop.value.replace(tzinfo=None)
    return local.replace(tzinfo=zones_of(calendar)[tzid]).astimezone(UTC)


def end(calendar: Any, vevent: Any) -> datetime:
    """When an event ends, in UTC: its DTEND, or its DTSTART plus its DURATION."""
    if "dtend" in vevent.contents:
        return instant(calendar, vevent.dtend)
    return instant(calendar, vevent.dtstart) + vevent.duration.value


# --- folding -------------------------------------------------------------------------------

# Characters of every UTF-8 length (1 to 4 octets), no surrogates, no line breaks: a
# content line is folded after its text was escaped, so it holds no CR or LF.
ONE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
TWO = st.characters(min_codepoint=0x80, max_codepoint=0x7FF, exclude_categories=("Cc",))
THREE = st.characters(min_codepoint=0x800, max_codepoint=0xFFFF, exclude_categories=("Cs",))
FOUR = st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF)
LINE_TEXT = st.text(alphabet=st.one_of(ONE, TWO, THREE, FOUR), max_size=400)


@settings(max_examples=400)
@given(name=st.sampled_from(["SUMMARY", "DESCRIPTION", "X-WR-CALNAME"]), value=LINE_TEXT)
@example(name="SUMMARY", value="é" * 200)
@example(name="SUMMARY", value="a" + "€" * 100)
@example(name="SUMMARY", value="ab" + "🧘" * 100)
@example(name="SUMMARY", value="abc" + "🧘" * 100)
@example(name="DESCRIPTION", value="x" * 66)  # exactly 78 octets
def test_fold_keeps_every_line_within_75_octets_and_every_character_whole(
    name: str, value: str
) -> None:
    line = f"{name}:{value}"
    folded = fold(line)
    assert folded.endswith(CRLF)
    lines = physical_lines(folded)
    for index, physical in enumerate(lines):
        octets = physical.encode("utf-8")
        assert len(octets) <= LINE_OCTETS, (index, physical)
        if index > 0:
            # A continuation starts with exactly the one space unfolding removes.
            assert physical.startswith(" ")
            assert len(physical) > 1
        if index < len(lines) - 1:
            # Full lines: a cut only moves back to the start of a character (<= 3 octets).
            assert len(octets) >= LINE_OCTETS - 3, (index, physical)
    # Each line on the wire is whole UTF-8 on its own: no character was cut in two.
    for raw in folded.encode("utf-8").split(b"\r\n"):
        raw.decode("utf-8")
    assert unfold(folded) == line + CRLF
    assert "\r" not in line + "".join(lines)
    assert "\n" not in "".join(lines)


def test_fold_leaves_a_line_of_75_octets_alone_and_folds_one_of_76() -> None:
    exact = "SUMMARY:" + "é" * 33 + "a"  # 8 + 66 + 1 = 75 octets
    assert len(exact.encode()) == 75
    assert fold(exact) == exact + CRLF
    over = exact + "b"
    assert fold(over) == exact + "\r\n b\r\n"
    # A 2-octet character that would straddle octet 75 goes whole to the next line.
    straddle = "SUMMARY:" + "a" * 66 + "é"  # octets 75 and 76
    assert fold(straddle) == "SUMMARY:" + "a" * 66 + "\r\n é\r\n"
    # A 4-octet emoji starting at octet 73 likewise.
    emoji = "SUMMARY:" + "a" * 64 + "🧘"
    assert fold(emoji) == "SUMMARY:" + "a" * 64 + "\r\n 🧘\r\n"


# --- escaping ------------------------------------------------------------------------------

TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("\\;,:\"'\n \t")),
        st.characters(exclude_categories=("Cs", "Cc")),
    ),
    min_size=1,
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(summary=TEXT, description=TEXT, name=TEXT)
@example(
    summary="Café, thé; 🧘‍♀️ rest \\ breathe",
    description="line one\nline two; a, b \\n not a newline",
    name="Tend: Zoë's practices, all; of them \\",
)
def test_escaped_text_reads_back_exactly_with_vobject(
    summary: str, description: str, name: str
) -> None:
    moment = datetime(2026, 3, 9, 11, 0, tzinfo=UTC)
    text = feed([event("u1@tend", moment, summary=summary, description=description)], name=name)
    for physical in physical_lines(text):
        assert len(physical.encode()) <= LINE_OCTETS
    calendar = parse(text)
    assert calendar.contents["x-wr-calname"][0].value == name
    assert calendar.contents["name"][0].value == name
    (vevent,) = calendar.vevent_list
    assert vevent.summary.value == summary
    assert vevent.description.value == description
    assert vevent.valarm.description.value == summary


def test_escape_text_writes_rfc5545_escapes() -> None:
    assert escape_text("a\\b;c,d\ne\r\nf\rg") == "a\\\\b\\;c\\,d\\ne\\nf\\ng"
    assert escape_text("plain: text 'quoted' \"double\"") == "plain: text 'quoted' \"double\""
    # The backslash is escaped first: an escaped comma does not become "\\\\,".
    assert escape_text(",") == "\\,"
    assert escape_text("\\,") == "\\\\\\,"


def test_a_summary_with_every_special_character_is_written_escaped() -> None:
    summary = "Back\\slash; semi, comma"
    text = feed([event("u1@tend", datetime(2026, 3, 9, 11, tzinfo=UTC), summary=summary)])
    assert "SUMMARY:Back\\\\slash\\; semi\\, comma" in content_lines(text)


# --- the calendar --------------------------------------------------------------------------


def test_an_empty_feed_is_a_valid_calendar() -> None:
    text = feed([])
    lines = content_lines(text)
    assert lines[0] == "BEGIN:VCALENDAR"
    assert lines[-1] == "END:VCALENDAR"
    assert "VERSION:2.0" in lines
    assert any(line.startswith("PRODID:") for line in lines)
    calendar = parse(text)
    assert calendar.name == "VCALENDAR"
    assert calendar.contents.get("vevent", []) == []
    assert calendar.contents.get("vtimezone", []) == []
    assert calendar.contents["x-wr-calname"][0].value == "Tend: Rae's practices"
    assert calendar.contents["refresh-interval"][0].value == "PT1H"


def test_every_line_ends_with_crlf_and_no_bare_cr_or_lf_is_left() -> None:
    events = [
        event("a@tend", datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),
        event(
            "b@tend",
            datetime(2026, 3, 9, 7, 30, tzinfo=UTC),
            LONDON,
            summary="Évening stretch, long enough to be folded more than once: " * 3,
            description="First line\nsecond line\r\nthird line\rfourth",
        ),
    ]
    data = write_feed(events, name="Tend: Rae's practices", refresh=timedelta(hours=1))
    assert data.endswith(b"END:VCALENDAR\r\n")
    pieces = data.split(b"\r\n")
    assert pieces[-1] == b""
    for piece in pieces:
        assert b"\r" not in piece
        assert b"\n" not in piece
        assert len(piece) <= LINE_OCTETS
    assert len(pieces) > 40  # VTIMEZONEs and events, not one long line


def test_the_calendar_names_itself_and_says_how_often_to_refresh() -> None:
    text = write_feed(
        [],
        name="Tend: Zoë's practices",
        refresh=timedelta(hours=1),
        description="Your practices, as Tend reminds you of them.",
    ).decode()
    lines = content_lines(text)
    assert "NAME:Tend: Zoë's practices" in lines
    assert "X-WR-CALNAME:Tend: Zoë's practices" in lines
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT1H" in lines
    assert "X-PUBLISHED-TTL:PT1H" in lines
    assert "METHOD:PUBLISH" in lines
    calendar = parse(text)
    assert calendar.contents["x-wr-caldesc"][0].value == (
        "Your practices, as Tend reminds you of them."
    )
    assert calendar.contents["refresh-interval"][0].params["VALUE"] == ["DURATION"]
    assert calendar.contents["x-published-ttl"][0].value == "PT1H"
    # A refresh that is not whole hours is written in minutes.
    minutes = write_feed([], name="n", refresh=timedelta(minutes=90)).decode()
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT90M" in content_lines(minutes)
    assert "X-PUBLISHED-TTL:PT90M" in content_lines(minutes)


# Instants around every kind of clock change, and the local times the feed must show.
DST_CASES = [
    # New York springs forward at 02:00: 02:30 EST is 03:30 EDT.
    (NY, datetime(2026, 3, 8, 7, 30, tzinfo=UTC), "20260308T033000"),
    # New York falls back at 02:00: 01:30 happens twice; the first is EDT.
    (NY, datetime(2026, 11, 1, 5, 30, tzinfo=UTC), "20261101T013000"),
    # London springs forward at 01:00 GMT: 01:30 GMT is 02:30 BST.
    (LONDON, datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "20260329T023000"),
    # London falls back at 02:00 BST: the first 01:30 is BST.
    (LONDON, datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "20261025T013000"),
    # Lord Howe falls back half an hour at 02:00 (+11 to +10:30): the first 01:45.
    (LORD_HOWE, datetime(2026, 4, 4, 14, 45, tzinfo=UTC), "20260405T014500"),
    # and springs forward half an hour at 02:00: 02:15 +10:30 is 02:45 +11.
    (LORD_HOWE, datetime(2026, 10, 3, 15, 45, tzinfo=UTC), "20261004T024500"),
]


def test_a_vtimezone_for_each_zone_used_and_every_time_carries_its_tzid() -> None:
    events = [event(f"e{i}@tend", moment, zone) for i, (zone, moment, _) in enumerate(DST_CASES)]
    text = feed(events)
    lines = content_lines(text)
    tzids = [line.removeprefix("TZID:") for line in lines if line.startswith("TZID:")]
    assert sorted(tzids) == sorted({NY, LONDON, LORD_HOWE})  # one each, none twice
    times = [line for line in event_lines(lines) if line.startswith(("DTSTART", "DTEND"))]
    assert len([line for line in times if line.startswith("DTSTART")]) == len(events)
    for line in times:
        name, _, value = line.partition(":")
        prop, _, tzid = name.partition(";TZID=")
        # TZID and local time: never UTC, never floating.
        assert prop in ("DTSTART", "DTEND"), line
        assert tzid in tzids, line
        assert re.fullmatch(r"\d{8}T\d{6}", value), line
    for vevent in parse(text).vevent_list:
        for prop in [vevent.dtstart, *vevent.contents.get("dtend", [])]:
            assert tzid_of(prop) in tzids
            assert prop.value.tzinfo is not None  # vobject resolved it: not floating


@pytest.mark.parametrize(("zone", "moment", "local"), DST_CASES)
def test_instants_across_clock_changes_read_back_the_same(
    zone: str, moment: datetime, local: str
) -> None:
    text = feed([event("dst@tend", moment, zone, minutes=15)])
    assert f"DTSTART;TZID={zone}:{local}" in content_lines(text)
    calendar = parse(text)
    assert set(zones_of(calendar)) == {zone}
    vevent = calendar.vevent
    assert instant(calendar, vevent.dtstart) == moment


def test_an_event_that_ends_in_the_repeated_hour_of_a_fall_back_ends_when_it_does() -> None:
    start = datetime(2026, 11, 1, 5, 45, tzinfo=UTC)  # 01:45 EDT, the first 01:45
    finish = start + timedelta(minutes=30)  # 01:15 EST, the second 01:15
    zone = ZoneInfo(NY)
    one = replace(
        event("late@tend", start), start=start.astimezone(zone), end=finish.astimezone(zone)
    )
    calendar = parse(feed([one]))
    assert instant(calendar, calendar.vevent.dtstart) == start
    assert end(calendar, calendar.vevent) == finish


def test_the_vtimezone_covers_every_year_of_the_events() -> None:
    events = [
        event("a@tend", datetime(2026, 1, 15, 12, tzinfo=UTC)),
        event("b@tend", datetime(2028, 7, 1, 12, tzinfo=UTC)),  # EDT, two years on
    ]
    text = feed(events)
    lines = content_lines(text)
    assert lines.count("BEGIN:VTIMEZONE") == 1
    vtimezone = "\r\n".join(
        lines[lines.index("BEGIN:VTIMEZONE") : lines.index("END:VTIMEZONE") + 1]
    )
    # Every spring-forward and fall-back from 2026 to 2028 is in it (a year either side).
    for transition in ("20260308", "20261101", "20270314", "20271107", "20280312", "20281105"):
        assert f"{transition}T0" in vtimezone, transition
    # vobject keeps only the first value of an RDATE list in a VTIMEZONE, so the zone is
    # read here with dateutil's tzical, the reader vobject itself uses underneath.
    zone = tz.tzical(io.StringIO(vtimezone + "\r\n")).get()
    for one in events:
        local = one.start.replace(tzinfo=None)
        assert local.replace(tzinfo=zone).astimezone(UTC) == one.start.astimezone(UTC)


# --- events --------------------------------------------------------------------------------


def test_an_event_carries_its_uid_sequence_stamps_link_and_category() -> None:
    changed = datetime(2026, 3, 1, 17, 4, 5, tzinfo=UTC)
    one = event("walk:2026-03-09.e_abc@tend", datetime(2026, 3, 9, 22, tzinfo=UTC),
                sequence=3, last_modified=changed, category="movement")  # fmt: skip
    calendar = parse(feed([one]))
    vevent = calendar.vevent
    assert vevent.uid.value == "walk:2026-03-09.e_abc@tend"
    assert vevent.sequence.value == "3"
    assert vevent.last_modified.value == changed
    assert vevent.dtstamp.value == changed  # DTSTAMP is the last change, not "now"
    assert vevent.url.value == "https://tend.test/check-in/walk:2026-03-09.e_abc@tend"
    assert vevent.categories.value == ["movement"]
    assert end(calendar, vevent) - instant(calendar, vevent.dtstart) == timedelta(minutes=15)
    # The same events give the same bytes: nothing in the text depends on the clock.
    assert feed([one]) == feed([one])


def test_an_open_event_has_an_alarm_at_its_start_and_a_done_one_has_none() -> None:
    moment = datetime(2026, 3, 9, 22, tzinfo=UTC)
    open_ = event("open@tend", moment, summary="Evening walk")
    done = event("done@tend", moment + timedelta(days=1), summary="Evening walk", done=True)
    quiet = event("quiet@tend", moment + timedelta(days=2), summary="Evening walk", alarm=False)
    calendar = parse(feed([open_, done, quiet]))
    by_uid = {v.uid.value: v for v in calendar.vevent_list}

    alarm = by_uid["open@tend"].valarm
    assert alarm.action.value == "DISPLAY"
    assert alarm.trigger.value == timedelta(0)
    assert alarm.description.value == "Evening walk"
    assert by_uid["open@tend"].summary.value == "Evening walk"

    assert "valarm" not in by_uid["done@tend"].contents
    assert by_uid["done@tend"].summary.value == "\u2713 Evening walk"
    assert "valarm" not in by_uid["quiet@tend"].contents
    assert by_uid["quiet@tend"].summary.value == "Evening walk"


def test_a_done_event_with_a_long_title_keeps_its_mark_and_its_lines_short() -> None:
    title = "Méditation du soir 🧘‍♀️, respiration; lenteur \\ calme — " * 2
    text = feed([event("d@tend", datetime(2026, 3, 9, 22, tzinfo=UTC), summary=title, done=True)])
    for physical in physical_lines(text):
        assert len(physical.encode()) <= LINE_OCTETS
    vevent = parse(text).vevent
    assert vevent.summary.value == "\u2713 " + title
    assert "valarm" not in vevent.contents
