"""Group sessions: a practice (or plan) `timezone` fixes one instant for everyone, shown
to each participant in their own zone; `location` and `url` reach calendars and texts.

The DST cases use 2026's clock changes: New York springs forward on 8 March and falls
back on 1 November, London on 29 March and 25 October. Between those dates the two are
four hours apart instead of five, so a 10:00 London session is at 06:00 in New York
for three weeks in March and for one week around the end of October, 05:00 otherwise.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import icalendar
import pytest

from service.core.expand import expand
from service.core.feed import FeedEvent, event_text
from service.core.invitation import series
from service.core.plan import Plan
from service.core.preview import as_ics, as_json, build_preview
from service.core.render import SAMPLE_PERSON, Person
from service.core.schedule import fingerprint
from tests.support.plans import HEADER, assert_only, find, load, load_ok, practice, renderer
from tests.unit.test_invitation import build, instants, shipped

NEW_YORK, TOKYO, AUCKLAND, LONDON = (
    ZoneInfo(z) for z in ("America/New_York", "Asia/Tokyo", "Pacific/Auckland", "Europe/London")
)

GROUP = """\
plan: group
title: Group
weeks: 6
variables:
  walk: "12:30"
practices:
  - id: group-walk
    category: movement
    title: Group walk
    at: "10:00"
    every: sat
    timezone: Europe/London
    location: Hollin Bank Park, by the bandstand
    url: https://example.org/group-walk
    duration: 45m
    channels: [sms, calendar]
    message: >-
      Hi {{ participant.first_name }}. Walk at {{ occurrence.local.strftime("%a %H:%M") }}
      your time, {{ practice.location }}: {{ practice.url }} ({{ practice.timezone }})
  - id: own-walk
    category: movement
    title: Own walk
    at: walk
    every: sat
    channels: [sms, calendar]
    message: "Own walk at {{ occurrence.local.strftime('%H:%M') }}, {{ practice.location }}"
"""


def group() -> Plan:
    return load_ok(GROUP)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- the plan format: timezone, location, url, with their errors at their places ------------


def test_the_keys_reach_the_compiled_practice() -> None:
    plan = group()
    walk, own = plan.practice("group-walk"), plan.practice("own-walk")
    assert (walk.timezone, walk.location, walk.url) == (
        "Europe/London",
        "Hollin Bank Park, by the bandstand",
        "https://example.org/group-walk",
    )
    assert walk.zone == LONDON
    assert (own.timezone, own.location, own.url, own.zone) == (None, None, None, None)
    assert plan.timezone is None


def test_an_unknown_zone_is_an_error_with_a_near_miss() -> None:
    result = load(practice("at: '07:00'", "timezone: Europe/Londn"))
    assert_only(
        result, 12, 15, "error",
        "unknown time zone 'Europe/Londn' (did you mean 'Europe/London'?); write an IANA "
        "name such as Europe/London or America/New_York",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("europe/london", "Europe/London"),  # the case
        ("America/New York", "America/New_York"),  # a space for _
        ("London", "Europe/London"),  # the city alone
        ("Asia/Tokio", "Asia/Tokyo"),  # a misspelling
    ],
)
def test_zone_near_misses(written: str, meant: str) -> None:
    result = load(practice("at: '07:00'", f"timezone: {written}"))
    found = assert_only(result, 12, 15, "error", f"unknown time zone '{written}'")
    assert f"(did you mean '{meant}'?)" in found.message


def test_a_misspelt_key_gets_a_suggestion() -> None:
    result = load(practice("at: '07:00'", "timezon: Europe/London"))
    assert_only(result, 12, 5, "error", "unknown key 'timezon' (did you mean 'timezone'?)")


def test_a_group_session_needs_a_clock_time() -> None:
    result = load(practice("at: wake + 10m", "timezone: Europe/London"))
    assert_only(
        result, 11, 9, "error",
        "a group session (timezone: Europe/London) is at the same time for everyone; write "
        "a clock time such as 09:00, not 'wake + 10m', which is each participant's own",
    )  # fmt: skip


def test_a_phase_of_a_group_session_needs_a_clock_time_too() -> None:
    result = load(
        practice(
            "at: '09:00'",
            "timezone: Europe/London",
            "phases:",
            "  - weeks: '3-4'",
            "    at: wake",
        )
    )
    assert_only(result, 15, 13, "error", "not 'wake', which is each participant's own")


@pytest.mark.parametrize(
    ("written", "column", "message"),
    [
        (
            "ftp://example.org/walk",
            10,
            "'ftp://example.org/walk' is not a web address; a url starts with https:// "
            "(or http://) and a host name, such as https://example.org/group-walk",
        ),
        (
            "htps://example.org/walk",
            10,
            "'htps://example.org/walk' is not a web address (did you mean 'https'?)",
        ),
        ("example.org/walk", 10, "'example.org/walk' is not a web address"),
        ("https://", 10, "'https://' is not a web address"),
        (
            "'https://example.org/group walk'",
            10,
            "'https://example.org/group walk' has a space or a control character in it; "
            "write a space as %20",
        ),
    ],
)
def test_a_url_is_an_http_link(written: str, column: int, message: str) -> None:
    result = load(practice("at: '07:00'", f"url: {written}"))
    assert_only(result, 12, column, "error", message)


def test_a_url_of_the_wrong_type_is_a_structure_error() -> None:
    result = load(practice("at: '07:00'", "url: 42"))
    assert_only(result, 12, 10, "error", "'url' must be text, not the number 42")


def test_a_location_is_one_line_of_text() -> None:
    result = load(practice("at: '07:00'", "location: |", "  Hollin Bank Park", "  bandstand"))
    assert_only(result, 12, 15, "error", "a location is one line of text")
    result = load(practice("at: '07:00'", "location: ''"))
    assert_only(result, 12, 15, "error", "location is empty")
    result = load(practice("at: '07:00'", f"location: {'x' * 201}"))
    assert_only(result, 12, 15, "error", "a location has at most 200 characters")


def test_the_plan_timezone_and_defaults_apply_to_every_practice() -> None:
    top = load_ok(
        HEADER.replace("weeks: 8\n", "weeks: 8\ntimezone: Europe/London\n") + "    at: '09:00'\n"
    )
    assert top.timezone == "Europe/London"
    assert [p.timezone for p in top.practices] == ["Europe/London"]
    text = GROUP.replace("    timezone: Europe/London\n", "")
    text = text.replace(
        "practices:\n",
        "defaults:\n  timezone: Asia/Tokyo\n  location: Online\npractices:\n",
    ).replace("    at: walk\n", '    at: "12:30"\n    timezone: Europe/London\n')
    plan = load_ok(text)
    assert [(p.id, p.timezone, p.location) for p in plan.practices] == [
        ("group-walk", "Asia/Tokyo", "Hollin Bank Park, by the bandstand"),
        ("own-walk", "Europe/London", "Online"),  # a practice's own value wins
    ]


def test_the_plan_timezone_is_written_once() -> None:
    text = HEADER.replace("weeks: 8\n", "weeks: 8\ntimezone: Europe/London\n")
    text = text.replace("practices:\n", "defaults:\n  timezone: Europe/Paris\npractices:\n")
    result = load(text + "    at: '09:00'\n")
    assert_only(
        result, 9, 3, "error", "the plan's timezone is already written on line 4; write it once"
    )


def test_variables_are_still_allowed_in_the_participants_own_practices() -> None:
    text = GROUP.replace("    at: walk\n", "    at: walk + 15m\n")
    assert load(text).errors == []


# --- expansion: one instant for everyone -------------------------------------------------------


def test_every_participant_gets_the_same_instant_and_key() -> None:
    plan = group()
    start = date(2026, 3, 2)
    by_zone = {
        zone.key: [
            (o.key, o.utc) for o in expand(plan, start, zone) if o.practice.id == "group-walk"
        ]
        for zone in (NEW_YORK, TOKYO, AUCKLAND, LONDON)
    }
    want = [
        ("group-walk:2026-03-07", utc(2026, 3, 7, 10)),
        ("group-walk:2026-03-14", utc(2026, 3, 14, 10)),
        ("group-walk:2026-03-21", utc(2026, 3, 21, 10)),
        ("group-walk:2026-03-28", utc(2026, 3, 28, 10)),
        ("group-walk:2026-04-04", utc(2026, 4, 4, 9)),  # 10:00 BST
        ("group-walk:2026-04-11", utc(2026, 4, 11, 9)),
    ]
    assert by_zone == dict.fromkeys(by_zone, want)


def test_each_sees_the_session_on_their_own_clock() -> None:
    plan = group()
    new_york = [
        o for o in expand(plan, date(2026, 3, 2), NEW_YORK) if o.practice.id == "group-walk"
    ]
    assert [o.local.isoformat() for o in new_york[:6]] == [
        "2026-03-07T05:00:00-05:00",
        "2026-03-14T06:00:00-04:00",  # New York has sprung forward, London not yet
        "2026-03-21T06:00:00-04:00",
        "2026-03-28T06:00:00-04:00",
        "2026-04-04T05:00:00-04:00",  # both on summer time
        "2026-04-11T05:00:00-04:00",
    ]
    assert {o.session_local.strftime("%H:%M %Z") for o in new_york} == {
        "10:00 GMT",
        "10:00 BST",
    }
    tokyo = [o for o in expand(plan, date(2026, 3, 2), TOKYO) if o.practice.id == "group-walk"]
    assert [o.local.strftime("%a %d %H:%M") for o in tokyo[2:5]] == [
        "Sat 21 19:00",
        "Sat 28 19:00",
        "Sat 04 18:00",
    ]


def test_the_participants_own_practices_stay_in_their_zone() -> None:
    plan = group()
    own = [o for o in expand(plan, date(2026, 3, 2), NEW_YORK) if o.practice.id == "own-walk"]
    assert [o.utc for o in own[:2]] == [utc(2026, 3, 7, 17, 30), utc(2026, 3, 14, 16, 30)]
    moved = [
        o.utc
        for o in expand(plan, date(2026, 3, 2), NEW_YORK, {"walk": "08:15"})
        if o.practice.id == "own-walk"
    ]
    assert moved[:2] == [utc(2026, 3, 7, 13, 15), utc(2026, 3, 14, 12, 15)]


def test_autumn_the_week_london_has_fallen_back_and_new_york_not() -> None:
    plan = group()
    found = [
        (o.key, o.utc, o.local.strftime("%H:%M"))
        for o in expand(plan, date(2026, 10, 19), NEW_YORK)
        if o.practice.id == "group-walk"
    ][:3]
    assert found == [
        ("group-walk:2026-10-24", utc(2026, 10, 24, 9), "05:00"),
        ("group-walk:2026-10-31", utc(2026, 10, 31, 10), "06:00"),
        ("group-walk:2026-11-07", utc(2026, 11, 7, 10), "05:00"),
    ]


def test_a_time_in_the_session_zones_gap_follows_the_rfc_5545_rule() -> None:
    text = GROUP.replace('at: "10:00"', 'at: "1:30"').replace("every: sat", "every: sun")
    result = load(text)
    assert result.errors == []
    assert result.plan is not None
    [when] = [
        o.utc
        for o in expand(result.plan, date(2026, 3, 23), TOKYO)
        if o.key == "group-walk:2026-03-29"
    ]
    assert when == utc(2026, 3, 29, 1, 30)  # 01:30 does not exist in London: 02:30 BST


def test_the_window_of_a_group_session_runs_from_its_instant() -> None:
    plan = group()
    [first, *_] = [
        o for o in expand(plan, date(2026, 3, 2), TOKYO) if o.practice.id == "group-walk"
    ]
    assert first.window_end == utc(2026, 3, 7, 22)  # the default 12h


# --- texts: the time in the participant's own zone; location and url in templates ------------


def text_for(plan: Plan, zone: ZoneInfo, practice_id: str, index: int = 0) -> str:
    found = [o for o in expand(plan, date(2026, 3, 2), zone) if o.practice.id == practice_id]
    variables = {"walk": 12 * 60 + 30}
    return renderer().occurrence_text(plan, found[index], Person("Rae Example"), variables, "u")


def test_the_text_shows_the_participants_own_time() -> None:
    plan = group()
    tail = ", Hollin Bank Park, by the bandstand: https://example.org/group-walk (Europe/London)"
    assert text_for(plan, NEW_YORK, "group-walk") == f"Hi Rae. Walk at Sat 05:00 your time{tail}"
    assert text_for(plan, NEW_YORK, "group-walk", 1) == f"Hi Rae. Walk at Sat 06:00 your time{tail}"
    assert text_for(plan, TOKYO, "group-walk") == f"Hi Rae. Walk at Sat 19:00 your time{tail}"
    assert text_for(plan, AUCKLAND, "group-walk") == f"Hi Rae. Walk at Sat 23:00 your time{tail}"


def test_location_and_url_are_none_when_unset() -> None:
    plan = group()
    assert text_for(plan, NEW_YORK, "own-walk") == "Own walk at 12:30,"  # None shows as nothing
    plain = load_ok(
        practice(
            "at: '07:00'",
            'message: "{{ practice.location is none }} {{ practice.url is none }} '
            '{{ practice.timezone is none }}{% if practice.location %}!{% endif %}"',
        )
    )
    [first, *_] = expand(plain, date(2026, 3, 2), NEW_YORK)
    text = renderer().occurrence_text(
        plain, first, SAMPLE_PERSON, {"wake": 420, "bedtime": 1350}, ""
    )
    assert text == "True True True"


def test_a_misspelt_name_lists_the_new_ones() -> None:
    result = load(practice("at: '07:00'", "message: '{{ practice.locaton }}'"))
    found = find(result, 12, 14, "error", "'practice' has no 'locaton' (did you mean 'location'?)")
    assert "timezone, location, url" in found.message


# --- calendars: LOCATION and URL, the right instants -----------------------------------------------


def test_the_preview_calendar_carries_location_url_and_the_instant() -> None:
    plan = group()
    preview = build_preview(plan, date(2026, 3, 2), NEW_YORK, {}, renderer(), "https://t/c")
    calendar = icalendar.Calendar.from_ical(
        as_ics(preview, renderer(), "https://t/c", utc(2026, 3, 1))
    )
    walks = [e for e in calendar.walk("VEVENT") if str(e["SUMMARY"]) == "Group walk"]
    assert len(walks) == 6
    first, second = walks[:2]
    assert str(first["LOCATION"]) == "Hollin Bank Park, by the bandstand"
    assert str(first["URL"]) == "https://example.org/group-walk"
    assert first["DTSTART"].dt == datetime(2026, 3, 7, 5, tzinfo=NEW_YORK)
    assert first["DTSTART"].params["TZID"] == "America/New_York"
    assert second["DTSTART"].dt.astimezone(UTC) == utc(2026, 3, 14, 10)
    own = [e for e in calendar.walk("VEVENT") if str(e["SUMMARY"]) == "Own walk"]
    assert len(own) == 6
    assert all("LOCATION" not in e and "URL" not in e for e in own)
    raw = as_ics(preview, renderer(), "https://t/c", utc(2026, 3, 1)).decode()
    assert "LOCATION:Hollin Bank Park\\, by the bandstand\r\n" in raw


def test_the_preview_json_names_the_session() -> None:
    plan = group()
    preview = build_preview(plan, date(2026, 3, 2), TOKYO, {}, renderer(), "https://t/c")
    data = as_json(preview)
    walk = next(o for o in data["occurrences"] if o["practice"] == "group-walk")
    assert walk["local"] == "2026-03-07T19:00:00+09:00"
    assert walk["utc"] == "2026-03-07T10:00:00Z"
    assert walk["session"] == {"timezone": "Europe/London", "local": "2026-03-07T10:00:00+00:00"}
    assert walk["location"] == "Hollin Bank Park, by the bandstand"
    assert walk["url"] == "https://example.org/group-walk"
    own = next(o for o in data["occurrences"] if o["practice"] == "own-walk")
    assert not {"session", "location", "url"} & set(own)


def test_a_feed_event_writes_location_and_url() -> None:
    event = FeedEvent(
        uid="u@tend",
        start=datetime(2026, 3, 14, 6, tzinfo=NEW_YORK),
        end=datetime(2026, 3, 14, 6, 45, tzinfo=NEW_YORK),
        zone="America/New_York",
        summary="Group walk",
        description="",
        category="movement",
        sequence=0,
        last_modified=utc(2026, 3, 1),
        url="https://example.org/group-walk",
        location="Hollin Bank Park; by the bandstand",
    )
    text = event_text(event)
    assert "DTSTART;TZID=America/New_York:20260314T060000\r\n" in text
    assert "LOCATION:Hollin Bank Park\\; by the bandstand\r\n" in text
    assert "URL;VALUE=URI:https://example.org/group-walk\r\n" in text
    assert "LOCATION" not in event_text(replace(event, location=None))


def test_location_and_url_are_part_of_the_fingerprint() -> None:
    plan = group()
    [first, *_] = [
        o for o in expand(plan, date(2026, 3, 2), NEW_YORK) if o.practice.id == "group-walk"
    ]
    moved = replace(first, practice=replace(first.practice, location="Elsewhere"))
    assert fingerprint(moved) != fingerprint(first)
    linked = replace(first, practice=replace(first.practice, url="https://example.org/x"))
    assert fingerprint(linked) != fingerprint(first)


# --- invitations: the series is written in the session's zone -----------------------------------


def invite(plan: Plan, start: date, zone: ZoneInfo) -> tuple[str, list[datetime], list[datetime]]:
    items = series(plan, start, zone)
    data = build(plan, items)
    want = sorted(o.utc for o in expand(plan, start, zone) if "calendar" in o.practice.channels)
    return data.decode(), sorted(instants(data)), want


def test_the_invitation_across_the_march_changes() -> None:
    text, got, want = invite(group(), date(2026, 3, 2), NEW_YORK)
    assert got == want
    walks = [t for t in got if t.minute == 0]
    assert walks == [
        utc(2026, 3, 7, 10), utc(2026, 3, 14, 10), utc(2026, 3, 21, 10),
        utc(2026, 3, 28, 10), utc(2026, 4, 4, 9), utc(2026, 4, 11, 9),
    ]  # fmt: skip
    assert "DTSTART;TZID=Europe/London:20260307T100000\r\n" in text
    assert "RRULE:FREQ=WEEKLY;UNTIL=20260411T225959Z;BYDAY=SA\r\n" in text
    assert "DTSTART;TZID=America/New_York:20260307T123000\r\n" in text  # own walk
    calendar = icalendar.Calendar.from_ical(text)
    assert sorted(str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")) == [
        "America/New_York",
        "Europe/London",
    ]
    walk = next(e for e in calendar.walk("VEVENT") if str(e["SUMMARY"]) == "Group walk")
    assert str(walk["LOCATION"]) == "Hollin Bank Park, by the bandstand"
    assert str(walk["URL"]) == "https://example.org/group-walk"
    own = next(e for e in calendar.walk("VEVENT") if str(e["SUMMARY"]) == "Own walk")
    assert "LOCATION" not in own
    assert "URL" not in own


def test_the_invitation_across_the_autumn_changes() -> None:
    text, got, want = invite(group(), date(2026, 10, 12), NEW_YORK)
    assert got == want
    walks = [t for t in got if t.minute == 0]
    assert walks == [
        utc(2026, 10, 17, 9), utc(2026, 10, 24, 9), utc(2026, 10, 31, 10),
        utc(2026, 11, 7, 10), utc(2026, 11, 14, 10), utc(2026, 11, 21, 10),
    ]  # fmt: skip
    assert "DTSTART;TZID=Europe/London:20261017T100000\r\n" in text


@pytest.mark.parametrize("zone", [TOKYO, AUCKLAND, LONDON, ZoneInfo("Australia/Lord_Howe")])
def test_the_invitation_matches_the_reminders_anywhere(zone: ZoneInfo) -> None:
    for start in (date(2026, 3, 2), date(2026, 10, 12)):
        _, got, want = invite(group(), start, zone)
        assert got == want


def test_one_wall_time_in_the_participants_zone_would_be_wrong() -> None:
    # What the invitation must not do: the series at New York's 05:00 every Saturday puts
    # the three March sessions that are at 06:00 there an hour early.
    plan = group()
    [walk] = [s for s in series(plan, date(2026, 3, 2), NEW_YORK) if s.key == "group-walk.0"]
    assert (walk.zone, walk.wall_time) == (LONDON, time(10))
    naive = replace(walk, zone=NEW_YORK, wall_time=time(5))
    assert sorted(instants(build(plan, [naive]))) == [
        utc(2026, 3, 7, 10), utc(2026, 3, 14, 9), utc(2026, 3, 21, 9),
        utc(2026, 3, 28, 9), utc(2026, 4, 4, 9), utc(2026, 4, 11, 9),
    ]  # fmt: skip
    assert sorted(instants(build(plan, [walk]))) == list(walk.instants)


# --- the shipped example ---------------------------------------------------------------------------


def test_the_shipped_group_walk() -> None:
    plan = shipped("rhythmic-movement")
    walk = plan.practice("group-walk")
    assert (walk.timezone, walk.weekdays) == ("Europe/London", frozenset({5}))
    assert walk.location == "Hollin Bank Park, by the bandstand"
    assert walk.url == "https://example.org/tend/group-walk"
    assert "calendar" in walk.channels
    new_york = [o for o in expand(plan, date(2026, 3, 2), NEW_YORK) if o.practice.id == walk.id]
    tokyo = [o for o in expand(plan, date(2026, 3, 2), TOKYO) if o.practice.id == walk.id]
    assert [o.utc for o in new_york] == [o.utc for o in tokyo]
    assert new_york[1].utc == utc(2026, 3, 14, 10)
    _, got, want = invite(plan, date(2026, 3, 2), NEW_YORK)
    assert got == want
