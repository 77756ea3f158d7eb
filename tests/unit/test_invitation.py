"""Calendar invitations: the series an enrollment's calendar practices become expand, in
an independent parser (vobject, with dateutil's reading of the invitation's own
VTIMEZONE), to exactly the instants Tend reminds about; and the invitation says what
RFC 5545/5546 and the mail clients need (METHOD, ORGANIZER, ATTENDEE, UID, SEQUENCE).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.catalog import Catalog
from service.core.expand import expand
from service.core.invitation import CANCEL, REQUEST, Series, event_uid, invitation, series
from service.core.plan import Plan
from tests.support.plans import REPO, load_ok

vobject = pytest.importorskip("vobject")
vobject_icalendar = pytest.importorskip("vobject.icalendar")

STAMP = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SHIPPED = ("sleep-hygiene", "rhythmic-movement", "body-awareness")
# (zone, start): New York across the March change, London across its own, Lord Howe
# (a 30-minute shift) across the October change.
ZONES = (
    ("America/New_York", date(2026, 3, 2)),
    ("Europe/London", date(2026, 3, 23)),
    ("Australia/Lord_Howe", date(2026, 9, 28)),
)


def shipped(plan_id: str) -> Plan:
    loaded = Catalog(REPO / "schedules", REPO / "templates").load_file(
        Path(REPO / "schedules" / f"{plan_id}.yaml")
    )
    assert loaded.plan is not None, loaded.errors
    return loaded.plan


def build(plan: Plan, items: list[Series], method: str = REQUEST, sequence: int = 0) -> bytes:
    return invitation(
        plan, "e_test", "Rae Example", "rae@example.com", "tend@tend.test", items, method,
        sequence, STAMP, {s.key: f"About {s.practice.title}" for s in items},
    )  # fmt: skip


def parse(data: bytes) -> object:
    """vobject's reading of the invitation. vobject resolves a TZID it knows through pytz
    when pytz is installed and attaches that tzinfo without localizing, which puts every
    instance after a DST change an hour off; so each TZID is first registered with
    the VTIMEZONE the invitation itself carries (dateutil's tzical), as a calendar client
    reads it."""
    text = data.decode("utf-8")
    for vtimezone in vobject.readOne(text).contents.get("vtimezone", []):
        vobject_icalendar.registerTzid(vtimezone.tzid.value, vtimezone.gettzinfo())
    return vobject.readOne(text)


def instants(data: bytes) -> list[datetime]:
    """Every instance of every VEVENT, in UTC, as vobject expands RRULE and EXDATE."""
    calendar = parse(data)
    out: list[datetime] = []
    for event in calendar.vevent_list:  # type: ignore[attr-defined]
        rules = event.getrruleset(addRDate=True)
        starts = list(rules) if rules is not None else [event.dtstart.value]
        out.extend(start.astimezone(UTC) for start in starts)
    return out


def reminded(
    plan: Plan, start: date, zone: str, variables: dict[str, str] | None = None
) -> list[datetime]:
    return sorted(
        o.utc
        for o in expand(plan, start, ZoneInfo(zone), variables)
        if "calendar" in o.practice.channels
    )


def assert_same(plan: Plan, start: date, zone: str, variables: dict[str, str] | None = None,
                not_before: datetime | None = None) -> list[Series]:  # fmt: skip
    items = series(plan, start, ZoneInfo(zone), variables, not_before=not_before)
    got = instants(build(plan, items))
    want = [
        t for t in reminded(plan, start, zone, variables) if not_before is None or t >= not_before
    ]
    assert len(got) == len(set(got)), "an instance appears twice"
    assert sorted(got) == want
    return items


# --- the shipped plans -------------------------------------------------------------------


@pytest.mark.parametrize("plan_id", SHIPPED)
@pytest.mark.parametrize(("zone", "start"), ZONES)
def test_shipped_plans_expand_to_exactly_the_reminders(
    plan_id: str, zone: str, start: date
) -> None:
    plan = shipped(plan_id)
    items = assert_same(plan, start, zone)
    assert items, f"{plan_id} has calendar practices"


@pytest.mark.parametrize("plan_id", SHIPPED)
def test_shipped_plans_with_times_in_the_new_york_gap(plan_id: str) -> None:
    plan = shipped(plan_id)
    wanted = {"wake": "2:30", "bedtime": "4:00", "walk": "2:15"}  # bedtime - 1h15m = 02:45
    variables = {k: v for k, v in wanted.items() if k in plan.variables}
    assert_same(plan, date(2026, 3, 2), "America/New_York", variables)


def test_the_rules_are_the_plain_ones() -> None:
    plan = shipped("rhythmic-movement")
    items = series(plan, date(2026, 3, 2), ZoneInfo("America/New_York"))
    text = build(plan, items).decode()
    # Strength at 18:00, until the end of its last day, Fri 8 May (23:59:59 EDT).
    assert "RRULE:FREQ=WEEKLY;UNTIL=20260509T035959Z;BYDAY=TU,FR" in text
    # Weekend yoga, weeks 3-10 (from Mon 16 Mar) at 09:30: one weekly rule, no exceptions.
    assert "DTSTART;TZID=America/New_York:20260321T093000" in text
    assert "RRULE:FREQ=WEEKLY;UNTIL=20260511T035959Z;BYDAY=SA,SU" in text
    assert "EXDATE" not in text
    sleep = shipped("sleep-hygiene")
    text = build(sleep, series(sleep, date(2026, 3, 2), ZoneInfo("America/New_York"))).decode()
    assert "RRULE:FREQ=DAILY;UNTIL=20260427T035959Z" in text  # wake time, to Sun 26 Apr


def test_body_scan_phases_are_two_series_with_their_own_length() -> None:
    plan = shipped("body-awareness")
    items = series(plan, date(2026, 3, 2), ZoneInfo("Europe/London"))
    scans = [s for s in items if s.practice.id == "body-scan"]
    assert [(s.key, s.variant.duration_minutes, len(s.dates)) for s in scans] == [
        ("body-scan.0", 5, 6),
        ("body-scan.1", 10, 18),
    ]
    assert all(
        s.rrule() == {"freq": "weekly", "byday": ["MO", "WE", "FR"], "until": s.rrule_until}
        for s in scans
    )


# --- the DST gap ---------------------------------------------------------------------------


GAP_PLAN = """
plan: gap
title: Gap
weeks: 2
practices:
  - id: early
    category: sleep
    title: Early
    at: "2:30"
    channels: [calendar]
    message: hi
"""


def test_a_time_in_the_spring_forward_gap() -> None:
    plan = load_ok(GAP_PLAN)
    # Starting on the day of the change: DTSTART keeps the planned 02:30 ...
    items = assert_same(plan, date(2026, 3, 8), "America/New_York")
    [only] = items
    text = build(plan, items).decode()
    assert "DTSTART;TZID=America/New_York:20260308T023000" in text
    # ... which every reader takes at the offset from before the gap: 03:30 EDT.
    assert min(instants(build(plan, items))) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert only.instants[0] == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    # Starting the week before, the change falls inside the series.
    got = instants(build(plan, series(plan, date(2026, 3, 2), ZoneInfo("America/New_York"))))
    assert datetime(2026, 3, 8, 7, 30, tzinfo=UTC) in got
    assert datetime(2026, 3, 7, 7, 30, tzinfo=UTC) in got  # 02:30 EST
    assert datetime(2026, 3, 9, 6, 30, tzinfo=UTC) in got  # 02:30 EDT


@pytest.mark.parametrize(
    ("zone", "start", "at"),
    [
        ("America/New_York", date(2026, 10, 26), "1:30"),  # fall back: the first 01:30
        ("Australia/Lord_Howe", date(2026, 9, 28), "2:15"),  # a 30-minute gap
        ("Australia/Lord_Howe", date(2026, 4, 1), "1:45"),  # a 30-minute fold
        ("Europe/London", date(2026, 3, 23), "1:30"),
    ],
)
def test_gaps_and_folds_elsewhere(zone: str, start: date, at: str) -> None:
    assert_same(load_ok(GAP_PLAN.replace('"2:30"', f'"{at}"')), start, zone)


# --- runs, exceptions and the enrollment's start ---------------------------------------------


MIXED = """
plan: mixed
title: Mixed
weeks: 9
variables:
  bedtime: "22:30"
practices:
  - id: fortnightly
    category: sleep
    title: Every other Monday and Thursday
    at: bedtime - 1h
    rrule: FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH
    channels: [sms, calendar]
    message: hi
  - id: gaps
    category: movement
    title: Some weeks
    at: "18:00"
    every: [mon, wed, sat]
    weeks: ["1-2", "5", "7-9"]
    channels: [calendar]
    message: move
    phases:
      - weeks: "7-8"
        at: "7:15"
        duration: 45m
  - id: not-in-calendar
    category: sleep
    title: SMS only
    at: "12:00"
    message: lunch
"""


@pytest.mark.parametrize(("zone", "start"), ZONES)
def test_rrules_inactive_weeks_and_phases(zone: str, start: date) -> None:
    plan = load_ok(MIXED)
    items = assert_same(plan, start, zone, {"bedtime": "3:30"})
    keys = [s.key for s in items]
    assert keys == ["fortnightly.0", "gaps.0", "gaps.1", "gaps.2", "gaps.3"]
    fortnightly = items[0]
    assert fortnightly.exdates  # the weeks in between
    assert all(not s.exdates for s in items[1:])


def test_an_enrollment_made_late_in_the_day_leaves_out_what_is_past() -> None:
    plan = load_ok(MIXED)
    not_before = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # 18:30 in New York on day 1
    items = assert_same(plan, date(2026, 3, 2), "America/New_York", not_before=not_before)
    assert items[1].dates[0] == date(2026, 3, 4)  # Monday's 18:00 had passed


weekdays = st.sets(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1)
clock = st.builds(lambda h, m: f"{h}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    days=weekdays,
    at=clock,
    later=clock,
    weeks=st.sets(st.integers(1, 6), min_size=1),
    phase=st.sets(st.integers(1, 6)),
    zone=st.sampled_from(["America/New_York", "Europe/London", "Australia/Lord_Howe"]),
    start=st.dates(date(2026, 1, 1), date(2026, 12, 31)),
)
def test_any_weekly_plan(days: set[str], at: str, later: str, weeks: set[int], phase: set[int],
                         zone: str, start: date) -> None:  # fmt: skip
    phases = (
        f'    phases:\n      - weeks: {sorted(phase)}\n        at: "{later}"\n' if phase else ""
    )
    plan = load_ok(
        "plan: any\ntitle: Any\nweeks: 6\npractices:\n  - id: p\n    category: sleep\n"
        f'    title: P\n    at: "{at}"\n    every: {sorted(days)}\n    weeks: {sorted(weeks)}\n'
        f"    channels: [calendar]\n    message: hi\n{phases}"
    )
    assert_same(plan, start, zone)


# --- what the invitation says --------------------------------------------------------------


def test_a_request_names_organizer_attendee_and_stable_uids() -> None:
    plan = shipped("sleep-hygiene")
    items = series(plan, date(2026, 3, 2), ZoneInfo("America/New_York"))
    calendar = icalendar.Calendar.from_ical(build(plan, items, sequence=3))
    assert str(calendar["METHOD"]) == "REQUEST"
    assert calendar["PRODID"]
    assert str(calendar["VERSION"]) == "2.0"
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["America/New_York"]
    events = calendar.walk("VEVENT")
    assert [str(e["UID"]) for e in events] == [
        event_uid("e_test", "wake-time.0"),
        event_uid("e_test", "wind-down.0"),
    ]
    for event in events:
        assert int(event["SEQUENCE"]) == 3
        assert str(event["STATUS"]) == "CONFIRMED"
        assert str(event["TRANSP"]) == "TRANSPARENT"
        assert event["DTSTAMP"].dt == STAMP
        organizer = event["ORGANIZER"]
        assert str(organizer) == "mailto:tend@tend.test"
        assert organizer.params["CN"] == plan.title
        attendee = event["ATTENDEE"]
        assert str(attendee) == "mailto:rae@example.com"
        assert dict(attendee.params) == {
            "CN": "Rae Example", "ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION",
            "RSVP": "FALSE",
        }  # fmt: skip
        [alarm] = event.walk("VALARM")
        assert str(alarm["ACTION"]) == "DISPLAY"
        assert str(event["DESCRIPTION"]).startswith("About ")
    wind = events[1]
    assert (wind["DTEND"].dt - wind["DTSTART"].dt).total_seconds() == 75 * 60


def test_a_cancel_carries_the_same_uids_cancelled() -> None:
    plan = shipped("sleep-hygiene")
    items = series(plan, date(2026, 3, 2), ZoneInfo("America/New_York"))
    request = icalendar.Calendar.from_ical(build(plan, items, sequence=0))
    cancel = icalendar.Calendar.from_ical(
        invitation(
            plan,
            "e_test",
            "Rae Example",
            "rae@example.com",
            "tend@tend.test",
            items,
            CANCEL,
            1,
            STAMP,
            cancelled_keys=["screens-off.0"],
        )
    )
    assert str(cancel["METHOD"]) == "CANCEL"
    uids = [str(e["UID"]) for e in cancel.walk("VEVENT")]
    assert uids[:2] == [str(e["UID"]) for e in request.walk("VEVENT")]
    assert uids[2] == event_uid("e_test", "screens-off.0")
    for event in cancel.walk("VEVENT"):
        assert str(event["STATUS"]) == "CANCELLED"
        assert int(event["SEQUENCE"]) == 1
        assert "ORGANIZER" in event
        assert "ATTENDEE" in event
        assert not event.walk("VALARM")


def test_only_a_cancel_names_series_by_key_alone() -> None:
    plan = shipped("sleep-hygiene")
    with pytest.raises(ValueError, match="CANCEL"):
        invitation(plan, "e", "R", "r@example.com", "t@tend.test", [], REQUEST, 0, STAMP,
                   cancelled_keys=["x.0"])  # fmt: skip
    with pytest.raises(ValueError, match="method"):
        invitation(plan, "e", "R", "r@example.com", "t@tend.test", [], "PUBLISH", 0, STAMP)
