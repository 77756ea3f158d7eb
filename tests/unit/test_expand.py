"""Expansion, as CONTRACT.md section 1 "Days and instants" says, with literal expectations,
then properties checked against an independent computation of local time."""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.core.expand import Occurrence, expand, resolve_plan_variables
from service.core.plan import Plan
from service.core.timeexpr import VariableError
from tests.support.plans import load_ok

MONDAY = date(2026, 3, 2)


def one_practice(*lines: str, length: str = "weeks: 2", variables: str = "") -> Plan:
    """A plan with one practice `p` (category, title and a message given) plus `lines`."""
    body = "".join(f"    {line}\n" for line in lines)
    return load_ok(
        f"plan: x\ntitle: t\n{length}\n{variables}practices:\n"
        f"  - id: p\n    category: sleep\n    title: P\n    message: hi\n{body}"
    )


def at_on(at: str, day: date, zone: str) -> Occurrence:
    """The one occurrence of a one-day plan with `at`, starting on `day`."""
    [occurrence] = expand(one_practice(f"at: '{at}'", length="days: 1"), day, ZoneInfo(zone))
    return occurrence


def dates(occurrences: list[Occurrence], practice: str = "p") -> list[str]:
    return [o.date.isoformat() for o in occurrences if o.practice.id == practice]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- instants: daylight saving time ----------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "at", "local", "instant"),
    [
        # spring forward: 02:30 does not exist; the offset from before the gap applies
        (
            "America/New_York",
            date(2026, 3, 8),
            "02:30",
            "2026-03-08T03:30:00-04:00",
            "2026-03-08T07:30:00Z",
        ),
        # fall back: 01:30 happens twice; the first is meant
        (
            "America/New_York",
            date(2026, 11, 1),
            "01:30",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T05:30:00Z",
        ),
        (
            "Europe/London",
            date(2026, 3, 29),
            "01:30",
            "2026-03-29T02:30:00+01:00",
            "2026-03-29T01:30:00Z",
        ),
        (
            "Europe/London",
            date(2026, 10, 25),
            "01:30",
            "2026-10-25T01:30:00+01:00",
            "2026-10-25T00:30:00Z",
        ),
        # Lord Howe shifts by 30 minutes: 02:00 -> 02:30 in October, back in April
        (
            "Australia/Lord_Howe",
            date(2026, 10, 4),
            "02:15",
            "2026-10-04T02:45:00+11:00",
            "2026-10-03T15:45:00Z",
        ),
        (
            "Australia/Lord_Howe",
            date(2026, 4, 5),
            "01:45",
            "2026-04-05T01:45:00+11:00",
            "2026-04-04T14:45:00Z",
        ),
        # Chatham: 02:45 -> 03:45 in September, +12:45 -> +13:45
        (
            "Pacific/Chatham",
            date(2026, 9, 27),
            "03:00",
            "2026-09-27T04:00:00+13:45",
            "2026-09-26T14:15:00Z",
        ),
        (
            "Pacific/Chatham",
            date(2026, 9, 27),
            "02:45",
            "2026-09-27T03:45:00+13:45",
            "2026-09-26T14:00:00Z",
        ),
        (
            "Pacific/Chatham",
            date(2026, 9, 27),
            "03:45",
            "2026-09-27T03:45:00+13:45",
            "2026-09-26T14:00:00Z",
        ),
        (
            "Pacific/Chatham",
            date(2026, 4, 5),
            "03:00",
            "2026-04-05T03:00:00+13:45",
            "2026-04-04T13:15:00Z",
        ),
        # an ordinary day
        (
            "America/New_York",
            date(2026, 3, 2),
            "21:30",
            "2026-03-02T21:30:00-05:00",
            "2026-03-03T02:30:00Z",
        ),
    ],
)
def test_local_time_to_instant(zone: str, day: date, at: str, local: str, instant: str) -> None:
    occurrence = at_on(at, day, zone)
    assert occurrence.local.isoformat() == local
    assert occurrence.utc == utc(instant)
    assert occurrence.utc.tzinfo is UTC
    assert occurrence.key == f"p:{day.isoformat()}"


def test_gap_day_in_a_longer_plan_keeps_every_other_day_at_its_time() -> None:
    plan = one_practice("at: '02:30'", length="days: 3")
    locals_ = [
        o.local.isoformat() for o in expand(plan, date(2026, 3, 7), ZoneInfo("America/New_York"))
    ]
    assert locals_ == [
        "2026-03-07T02:30:00-05:00",
        "2026-03-08T03:30:00-04:00",
        "2026-03-09T02:30:00-04:00",
    ]


def test_key_is_the_local_date_not_the_utc_date() -> None:
    plan = one_practice("at: '07:00'", length="days: 2")
    tokyo = expand(plan, MONDAY, ZoneInfo("Asia/Tokyo"))
    assert [o.key for o in tokyo] == ["p:2026-03-02", "p:2026-03-03"]
    assert [o.utc.date().isoformat() for o in tokyo] == ["2026-03-01", "2026-03-02"]
    honolulu = expand(
        one_practice("at: '22:00'", length="days: 1"), MONDAY, ZoneInfo("Pacific/Honolulu")
    )
    assert honolulu[0].key == "p:2026-03-02"
    assert honolulu[0].utc == utc("2026-03-03T08:00:00Z")


# --- which days -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("every", "expected"),
    [
        (
            "day",
            ["02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15"],
        ),
        ("weekday", ["02", "03", "04", "05", "06", "09", "10", "11", "12", "13"]),
        ("weekend", ["07", "08", "14", "15"]),
        ("[mon, wed, fri]", ["02", "04", "06", "09", "11", "13"]),
        ("[sun]", ["08", "15"]),
        ("[Tue, THU]", ["03", "05", "10", "12"]),
    ],
)
def test_every(every: str, expected: list[str]) -> None:
    plan = one_practice("at: '07:00'", f"every: {every}")
    assert dates(expand(plan, MONDAY, UTC)) == [f"2026-03-{d}" for d in expected]


def test_every_day_is_the_default() -> None:
    assert len(expand(one_practice("at: '07:00'"), MONDAY, UTC)) == 14


def test_weeks_start_on_the_enrollment_day_not_on_monday() -> None:
    thursday = date(2026, 3, 5)
    plan = one_practice("at: '07:00'", "weeks: 2", length="weeks: 3")
    occurrences = expand(plan, thursday, UTC)
    assert dates(occurrences) == [f"2026-03-{d}" for d in range(12, 19)]
    assert {o.week for o in occurrences} == {2}


@pytest.mark.parametrize(
    ("weeks", "expected"),
    [
        ("'1-2'", {1, 2}),
        ("3", {3}),
        ("[1, '4-5']", {1, 4, 5}),
        ("[2, 6]", {2, 6}),
        ("'1-6'", {1, 2, 3, 4, 5, 6}),
    ],
)
def test_active_weeks(weeks: str, expected: set[int]) -> None:
    plan = one_practice("at: '07:00'", f"weeks: {weeks}", "every: [mon]", length="weeks: 6")
    occurrences = expand(plan, MONDAY, UTC)
    assert [o.week for o in occurrences] == sorted(expected)
    assert [o.date for o in occurrences] == [
        MONDAY + timedelta(weeks=w - 1) for w in sorted(expected)
    ]


def test_days_based_plan_ends_mid_week() -> None:
    plan = one_practice("at: '07:00'", "every: weekday", length="days: 10")
    occurrences = expand(plan, MONDAY, UTC)
    assert dates(occurrences) == [f"2026-03-{d:02d}" for d in (2, 3, 4, 5, 6, 9, 10, 11)]
    assert [o.week for o in occurrences][-3:] == [2, 2, 2]


@pytest.mark.parametrize(
    ("rule", "start", "expected"),
    [
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", MONDAY, ["2026-03-02", "2026-03-16", "2026-03-30"]),
        # from a Wednesday, the first Monday of the first two-week period has passed
        (
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO",
            date(2026, 3, 4),
            ["2026-03-16", "2026-03-30", "2026-04-13"],
        ),
        ("FREQ=DAILY;COUNT=3", MONDAY, ["2026-03-02", "2026-03-03", "2026-03-04"]),
        (
            "FREQ=DAILY;INTERVAL=10",
            MONDAY,
            ["2026-03-02", "2026-03-12", "2026-03-22", "2026-04-01", "2026-04-11"],
        ),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15", MONDAY, ["2026-03-15", "2026-04-01"]),
        ("FREQ=DAILY;UNTIL=20260304", MONDAY, ["2026-03-02", "2026-03-03", "2026-03-04"]),
    ],
)
def test_rrule(rule: str, start: date, expected: list[str]) -> None:
    plan = one_practice("at: '07:00'", f"rrule: {rule}", length="weeks: 6")
    assert dates(expand(plan, start, UTC)) == expected


def test_rrule_never_runs_past_the_plan_end() -> None:
    for rule in ("FREQ=DAILY", "FREQ=DAILY;COUNT=100", "FREQ=DAILY;UNTIL=20300101"):
        plan = one_practice("at: '07:00'", f"rrule: {rule}", length="days: 5")
        assert dates(expand(plan, MONDAY, UTC)) == [f"2026-03-0{d}" for d in range(2, 7)]


def test_rrule_and_weeks_both_apply() -> None:
    plan = one_practice(
        "at: '07:00'", "rrule: FREQ=WEEKLY;BYDAY=MO,TH", "weeks: 2", length="weeks: 3"
    )
    assert dates(expand(plan, MONDAY, UTC)) == ["2026-03-09", "2026-03-12"]


def test_rrule_counts_from_each_enrollment_start() -> None:
    plan = one_practice("at: '07:00'", "rrule: FREQ=DAILY;INTERVAL=3", length="days: 7")
    assert dates(expand(plan, MONDAY, UTC)) == ["2026-03-02", "2026-03-05", "2026-03-08"]
    assert dates(expand(plan, date(2026, 3, 3), UTC)) == ["2026-03-03", "2026-03-06", "2026-03-09"]


# --- phases and rotation ----------------------------------------------------------------


PHASED = """\
plan: x
title: t
weeks: 3
variables:
  wake: "07:00"
practices:
  - id: p
    category: sleep
    title: P
    at: wake
    every: [mon, thu]
    duration: 10m
    message: "base {{ item }}"
    rotate: [r0, r1, r2]
    phases:
      - weeks: 2
        at: wake + 1h
        duration: 20m
        message: "second {{ item }}"
      - weeks: [3]
        rotate: [x, y]
  - id: q
    category: sleep
    title: Q
    at: "12:00"
    every: [mon]
    message: other
"""


def test_phases_override_at_duration_message_and_rotate() -> None:
    occurrences = [o for o in expand(load_ok(PHASED), MONDAY, UTC) if o.practice.id == "p"]
    assert [
        (
            o.date.isoformat(),
            o.week,
            o.local.strftime("%H:%M"),
            o.variant.duration_minutes,
            o.variant.message,
            o.item,
        )
        for o in occurrences
    ] == [
        ("2026-03-02", 1, "07:00", 10, "base {{ item }}", "r0"),
        ("2026-03-05", 1, "07:00", 10, "base {{ item }}", "r1"),
        ("2026-03-09", 2, "08:00", 20, "second {{ item }}", "r2"),
        ("2026-03-12", 2, "08:00", 20, "second {{ item }}", "r0"),
        # week 3 keeps the base time and text but rotates its own list, still counting
        # the practice's occurrences from the start: n = 4, 5
        ("2026-03-16", 3, "07:00", 10, "base {{ item }}", "x"),
        ("2026-03-19", 3, "07:00", 10, "base {{ item }}", "y"),
    ]
    assert [o.index for o in occurrences] == [0, 1, 2, 3, 4, 5]


def test_rotation_counts_only_the_practice_own_occurrences() -> None:
    plan = one_practice("at: '07:00'", "every: [mon, fri]", "rotate: [a, b, c]", length="weeks: 2")
    assert [o.item for o in expand(plan, MONDAY, UTC)] == ["a", "b", "c", "a"]
    # Starting on a Wednesday the first occurrence is a Friday, and it gets item 0.
    assert [o.item for o in expand(plan, date(2026, 3, 4), UTC)] == ["a", "b", "c", "a"]


def test_phase_variables_follow_overrides() -> None:
    occurrences = expand(load_ok(PHASED), MONDAY, UTC, {"wake": "06:15"})
    times = {(o.practice.id, o.week): o.local.strftime("%H:%M") for o in occurrences}
    assert times[("p", 1)] == "06:15"
    assert times[("p", 2)] == "07:15"
    assert times[("q", 1)] == "12:00"


# --- check-in windows -------------------------------------------------------------------


def test_window_defaults_to_twelve_hours() -> None:
    [first, *_] = expand(one_practice("at: '07:00'", "every: [mon]"), MONDAY, UTC)
    assert first.window_end == first.utc + timedelta(hours=12)


def test_window_never_runs_past_the_next_occurrence() -> None:
    plan = one_practice("at: '21:00'", "window: 2d", length="days: 3")
    occurrences = expand(plan, MONDAY, UTC)
    ends = [o.window_end for o in occurrences]
    assert ends[:2] == [occurrences[1].utc, occurrences[2].utc]
    assert ends[2] == occurrences[2].utc + timedelta(days=2)


def test_window_across_a_phase_that_moves_the_time_earlier() -> None:
    plan = load_ok(
        """\
        plan: x
        title: t
        weeks: 2
        practices:
          - id: p
            category: sleep
            title: P
            at: "22:00"
            message: hi
            every: [sun, mon]
            phases:
              - weeks: 2
                at: "06:00"
        """
    )
    occurrences = expand(plan, MONDAY, UTC)
    sunday, monday = (o for o in occurrences if o.date in (date(2026, 3, 8), date(2026, 3, 9)))
    # Sunday 22:00 (week 1), then Monday 06:00 (week 2): 8 hours, less than the 12h window.
    assert monday.utc - sunday.utc == timedelta(hours=8)
    assert sunday.window_end == monday.utc


def test_window_of_a_practice_across_spring_forward() -> None:
    plan = one_practice("at: '02:30'", "window: 23h30m", length="days: 3")
    occurrences = expand(plan, date(2026, 3, 7), ZoneInfo("America/New_York"))
    # 02:30 EST, then 03:30 EDT (24h later), then 02:30 EDT (23h later)
    assert [b.utc - a.utc for a, b in pairwise(occurrences)] == [
        timedelta(hours=24),
        timedelta(hours=23),
    ]
    assert occurrences[0].window_end == occurrences[0].utc + timedelta(hours=23, minutes=30)
    assert occurrences[1].window_end == occurrences[2].utc


def test_window_trimmed_across_a_three_hour_shift() -> None:
    # Antarctica/Casey moved from +08 to +11 on 2020-10-04: 07:00 then 07:00 is 21 hours.
    plan = one_practice("at: '07:00'", "window: 22h", length="days: 3")
    occurrences = expand(plan, date(2020, 10, 3), ZoneInfo("Antarctica/Casey"))
    assert occurrences[1].utc - occurrences[0].utc == timedelta(hours=21)
    assert occurrences[0].window_end == occurrences[1].utc
    assert occurrences[1].window_end == occurrences[1].utc + timedelta(hours=22)


# --- order and variables ----------------------------------------------------------------


def test_sorted_by_instant_then_practice_id() -> None:
    plan = load_ok(
        """\
        plan: x
        title: t
        days: 1
        practices:
          - {id: zz, category: sleep, title: Z, at: "07:00", message: hi}
          - {id: mm, category: sleep, title: M, at: "06:00", message: hi}
          - {id: aa, category: sleep, title: A, at: "07:00", message: hi}
        """
    )
    assert [o.practice.id for o in expand(plan, MONDAY, UTC)] == ["mm", "aa", "zz"]


def test_sorting_uses_the_instant_not_the_wall_clock() -> None:
    # On the spring-forward day, b's 02:50 is earlier on the clock than a's 03:10, but
    # it does not exist and becomes 03:50 EDT: by instant, a comes first.
    plan = load_ok(
        """\
        plan: x
        title: t
        days: 1
        practices:
          - {id: a, category: sleep, title: A, at: "03:10", message: hi}
          - {id: b, category: sleep, title: B, at: "02:50", message: hi}
        """
    )
    occurrences = expand(plan, date(2026, 3, 8), ZoneInfo("America/New_York"))
    assert [(o.practice.id, o.local.strftime("%H:%M")) for o in occurrences] == [
        ("a", "03:10"),
        ("b", "03:50"),
    ]


VARIABLES = 'variables:\n  wake: "07:00"\n  bedtime: wake + 15h30m\n'


def test_variable_overrides() -> None:
    plan = one_practice("at: bedtime - 1h", length="days: 1", variables=VARIABLES)
    assert expand(plan, MONDAY, UTC)[0].local.strftime("%H:%M") == "21:30"
    assert expand(plan, MONDAY, UTC, {"wake": "06:00"})[0].local.strftime("%H:%M") == "20:30"
    assert expand(plan, MONDAY, UTC, {"bedtime": "23:45"})[0].local.strftime("%H:%M") == "22:45"
    assert resolve_plan_variables(plan, {"wake": "08:00"}) == {"wake": 480, "bedtime": 1410}


def test_variable_override_past_midnight_stays_on_its_own_date() -> None:
    plan = one_practice("at: bedtime + 1h", length="days: 1", variables=VARIABLES)
    [occurrence] = expand(plan, MONDAY, UTC, {"bedtime": "23:30"})
    assert occurrence.local.isoformat() == "2026-03-02T00:30:00+00:00"


def test_unknown_variable_override() -> None:
    plan = one_practice("at: wake", length="days: 1", variables=VARIABLES)
    with pytest.raises(
        VariableError, match=r"plan 'x' has no variable 'wak' \(its variables: bedtime, wake\)"
    ):
        expand(plan, MONDAY, UTC, {"wak": "06:00"})


def test_bad_variable_override() -> None:
    plan = one_practice("at: wake", length="days: 1", variables=VARIABLES)
    with pytest.raises(
        VariableError, match="variable 'wake': '25:00' is not a time of day"
    ) as raised:
        expand(plan, MONDAY, UTC, {"wake": "25:00"})
    assert raised.value.name == "wake"


def test_override_that_makes_a_loop() -> None:
    plan = one_practice("at: wake", length="days: 1", variables=VARIABLES)
    with pytest.raises(VariableError, match="loop"):
        expand(plan, MONDAY, UTC, {"wake": "bedtime - 1h"})


# --- properties -------------------------------------------------------------------------

ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Europe/Dublin",  # negative daylight saving time in the tz database
    "America/St_Johns",  # -03:30
    "America/Santiago",
    "Asia/Kathmandu",  # +05:45
    "Asia/Kolkata",
    "Antarctica/Casey",  # shifted by three hours in 2020-2023
    "Antarctica/Troll",  # two-hour daylight saving time
    "Africa/Casablanca",
    "Australia/Eucla",  # +08:45
    "UTC",
]


def _transition_dates(zone: str) -> list[date]:
    tz = ZoneInfo(zone)
    found: list[date] = []
    day = date(2020, 1, 1)
    previous = datetime.combine(day, time(12), tz).utcoffset()
    while day < date(2031, 1, 1):
        day += timedelta(days=1)
        offset = datetime.combine(day, time(12), tz).utcoffset()
        if offset != previous:
            found.extend([day - timedelta(days=1), day])
        previous = offset
    return found


TRANSITIONS = {zone: _transition_dates(zone) for zone in ZONES}


@st.composite
def _zone_and_start(draw: st.DrawFn) -> tuple[str, date]:
    zone = draw(st.sampled_from(ZONES))
    known = TRANSITIONS[zone]
    if known and draw(st.integers(0, 3)):  # three times in four near a clock change
        start = draw(st.sampled_from(known)) - timedelta(days=draw(st.integers(0, 6)))
    else:
        start = draw(st.dates(date(2020, 1, 1), date(2030, 12, 31)))
    return zone, start


# Any time, but mostly the small hours, when clocks change.
_CLOCK = st.one_of(st.integers(0, 4 * 60), st.integers(0, 24 * 60 - 1)).map(
    lambda m: f"{m // 60:02d}:{m % 60:02d}"
)


@functools.cache
def _property_plan(days: int, window: str) -> Plan:
    return load_ok(
        f"""\
        plan: prop
        title: Property
        days: {days}
        variables:
          t: "07:00"
          s: t + 30m
        practices:
          - {{id: daily, category: sleep, title: D, at: t, window: {window}, message: hi}}
          - id: some
            category: sleep
            title: S
            at: s
            every: [mon, wed, sat]
            window: {window}
            rotate: [a, b, c]
            message: "{{{{ item }}}}"
          - id: phased
            category: sleep
            title: P
            at: t
            window: {window}
            message: hi
            phases:
              - weeks: 2
                at: s - 2h
          - id: rule
            category: sleep
            title: R
            at: s
            rrule: FREQ=DAILY;INTERVAL=2
            message: hi
        """
    )


@functools.cache
def _offsets_near(zone: ZoneInfo, day: date) -> frozenset[timedelta]:
    """Every UTC offset the zone uses from the day before `day` to the day after."""
    first = datetime.combine(day - timedelta(days=1), time(), UTC)
    return frozenset(
        offset
        for hour in range(73)
        if (offset := (first + timedelta(hours=hour)).astimezone(zone).utcoffset()) is not None
    )


def _wall_clock_oracle(naive: datetime, zone: ZoneInfo) -> tuple[datetime, timedelta]:
    """The instant for a wall-clock time, found without zoneinfo's fold rules: the first
    UTC instant whose local time is `naive`, or, in a gap, `naive` with the offset from
    before the gap. Also how much later the wall clock shows (the gap's size, or 0)."""
    offsets = _offsets_near(zone, naive.date())
    if len(offsets) == 1:
        [offset] = offsets
        return (naive - offset).replace(tzinfo=UTC), timedelta(0)
    first = naive.replace(tzinfo=UTC) - timedelta(hours=16)
    grid = [
        first + timedelta(minutes=15 * k) for k in range(129)
    ]  # offsets are 15-minute multiples
    shown = [moment.astimezone(zone).replace(tzinfo=None) for moment in grid]
    for moment, wall in zip(grid, shown, strict=True):
        if wall == naive:
            return moment, timedelta(0)
    for (m1, w1), (m2, w2) in pairwise(zip(grid, shown, strict=True)):
        if w1 < naive < w2:
            before = w1 - m1.replace(tzinfo=None)
            after = w2 - m2.replace(tzinfo=None)
            return (naive - before).replace(tzinfo=UTC), after - before
    raise AssertionError(f"no instant found for {naive} in {zone}")


@settings(max_examples=200, deadline=None)
@given(
    _zone_and_start(),
    _CLOCK,
    _CLOCK,
    st.integers(8, 21),  # at least 2 weeks: the phase is in week 2
    st.sampled_from(["1h", "12h", "21h", "22h", "2d"]),
)
def test_expansion_agrees_with_wall_clock_time(
    zone_and_start: tuple[str, date], t: str, s: str, days: int, window: str
) -> None:
    zone_name, start = zone_and_start
    zone = ZoneInfo(zone_name)
    plan = _property_plan(days, window)
    occurrences = expand(plan, start, zone, {"t": t, "s": s})
    resolved = resolve_plan_variables(plan, {"t": t, "s": s})

    keys = [(o.utc, o.practice.id) for o in occurrences]
    assert keys == sorted(keys)

    by_practice: dict[str, list[Occurrence]] = defaultdict(list)
    for o in occurrences:
        by_practice[o.practice.id].append(o)
    assert len(by_practice["daily"]) == days

    for practice_id, items in by_practice.items():
        seen = [o.date for o in items]
        assert seen == sorted(set(seen)), "a local date twice, or out of order"
        for n, o in enumerate(items):
            assert o.key == f"{practice_id}:{o.date.isoformat()}"
            assert start <= o.date < start + timedelta(days=days)
            assert o.week == (o.date - start).days // 7 + 1
            assert o.index == n
            minutes = o.variant.at.resolve(resolved)
            wall = datetime.combine(o.date, time(minutes // 60, minutes % 60))
            expected, shift = _wall_clock_oracle(wall, zone)
            assert o.utc == expected
            assert o.utc == wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
            assert o.local.replace(tzinfo=None) == wall + shift
            assert timedelta(0) <= shift <= timedelta(hours=3)
            if o.variant.rotate:
                assert o.item == o.variant.rotate[n % len(o.variant.rotate)]
        for current, following in pairwise(items):
            assert current.window_end == min(
                current.utc + timedelta(minutes=current.practice.window_minutes), following.utc
            )
        last = items[-1]
        assert last.window_end == last.utc + timedelta(minutes=last.practice.window_minutes)

    assert {o.date.weekday() for o in by_practice["some"]} <= {0, 2, 5}
    assert [(o.date - start).days % 2 for o in by_practice["rule"]] == [0] * len(
        by_practice["rule"]
    )


@settings(max_examples=100, deadline=None)
@given(_zone_and_start(), _CLOCK)
def test_the_same_plan_expands_the_same_way_twice(zone_and_start: tuple[str, date], t: str) -> None:
    zone_name, start = zone_and_start
    plan = _property_plan(14, "12h")
    first = expand(plan, start, ZoneInfo(zone_name), {"t": t})
    again = expand(plan, start, ZoneInfo(zone_name), {"t": t})
    assert [(o.key, o.utc, o.window_end, o.item) for o in first] == [
        (o.key, o.utc, o.window_end, o.item) for o in again
    ]
