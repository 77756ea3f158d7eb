"""`every` as coaches write it: any case, full or abbreviated, singular or plural, a list
or a comma-separated text. Every spelling is the same plan as the plain one; typos are
errors at their own line and column.

`practice(...)` (tests/support/plans.py) puts its lines from line 11, indented 4, so
`every:` written second is on line 12 with its value at column 12.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from service.core.days import (
    DAY_CHOICES,
    DAY_PATTERN,
    DAYS_TEXT_PATTERN,
    EVERY_WORD_PATTERN,
    EVERY_WORDS,
    day_number,
)
from service.core.plan import EVERY_KEYWORDS, WEEKDAYS, Plan
from tests.support.plans import assert_only, find, load, load_ok, practice

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def plan_with(every: str) -> Plan:
    return load_ok(practice("at: '07:00'", f"every: {every}", "message: hi"))


def same(plan: Plan) -> Plan:
    """The plan as it means: without the hash of its text."""
    return replace(plan, content_hash="")


@pytest.mark.parametrize(
    ("written", "canonical", "days"),
    [
        ("sunday", "[sun]", {SUN}),
        ("Sundays", "[sun]", {SUN}),
        ("SUN", "[sun]", {SUN}),
        ("Sun.", "[sun]", {SUN}),
        ("sun", "[sun]", {SUN}),
        ("'  Sunday '", "[sun]", {SUN}),
        ("Tues", "[tue]", {TUE}),
        ("thurs.", "[thu]", {THU}),
        ("[Mon, Wed]", "[mon, wed]", {MON, WED}),
        ("[monday, Wednesdays]", "[mon, wed]", {MON, WED}),
        ("[MON., weds, FRIDAYS]", "[mon, wed, fri]", {MON, WED, FRI}),
        ('"Mon, Wed"', "[mon, wed]", {MON, WED}),
        ("Mon, Wed", "[mon, wed]", {MON, WED}),
        ("Mondays, Thursdays,", "[mon, thu]", {MON, THU}),
        ("Weekdays", "weekday", {MON, TUE, WED, THU, FRI}),
        ("weekends", "weekend", {SAT, SUN}),
        ("Daily", "day", set(range(7))),
        ("every day", "day", set(range(7))),
        ("DAY", "day", set(range(7))),
    ],
)
def test_every_form_is_the_same_plan_as_the_plain_one(
    written: str, canonical: str, days: set[int]
) -> None:
    plan = plan_with(written)
    assert plan.practices[0].weekdays == frozenset(days)
    assert same(plan) == same(plan_with(canonical))


def test_every_as_a_block_list_of_any_spelling() -> None:
    plan = load_ok(
        practice("at: '07:00'", "every:", "  - Monday", "  - wed.", "  - FRIDAYS", "message: hi")
    )
    assert same(plan) == same(plan_with("[mon, wed, fri]"))


def test_every_spelling_in_defaults() -> None:
    text = (
        "plan: x\ntitle: t\nweeks: 2\ndefaults:\n  every: Sundays\npractices:\n"
        "  - {id: a, category: sleep, title: A, at: '07:00', message: hi}\n"
    )
    assert load_ok(text).practices[0].weekdays == frozenset({SUN})


def test_the_content_hash_is_of_the_text_as_written() -> None:
    # The plans mean the same, but the hash is of the coach's file: a respelling is a
    # new text (and moves live enrollments forward as any edit does).
    plain, respelt = plan_with("[mon, wed]"), plan_with("[Mon, Wed]")
    assert same(plain) == same(respelt)
    assert plain.content_hash != respelt.content_hash


# --- typos, at their place -----------------------------------------------------------


@pytest.mark.parametrize(
    ("every", "column", "message"),
    [
        ("sundy", 12, "unknown value for every: 'sundy' (did you mean 'sunday'?)"),
        ("Sundys", 12, "unknown value for every: 'Sundys' (did you mean 'sunday'?)"),
        ("wekends", 12, "unknown value for every: 'wekends' (did you mean 'weekends'?)"),
        ("[Mon, sundy]", 18, "unknown day 'sundy' (did you mean 'sunday'?)"),
        ("[Mon, Wdn]", 18, "unknown day 'Wdn' (did you mean 'wed'?)"),
        ("Mon, Wdn", 17, "unknown day 'Wdn' (did you mean 'wed'?)"),
        ('"Mon,  Wdn"', 19, "unknown day 'Wdn' (did you mean 'wed'?)"),
        ("'mon, tusday'", 18, "unknown day 'tusday' (did you mean 'tuesday'?)"),
        ("[mon, Mondays]", 18, "'Mondays' is listed twice (as 'mon')"),
        ("mon, Mon.", 17, "'Mon.' is listed twice (as 'mon')"),
        ("[sun, sun]", 18, "'sun' is listed twice"),
        ('","', 12, "every needs at least one day"),
    ],
)
def test_every_typo_is_reported_where_it_is_written(every: str, column: int, message: str) -> None:
    result = load(practice("at: '07:00'", f"every: {every}", "message: hi"))
    assert_only(result, 12, column, "error", message)


def test_every_typo_says_what_may_be_written() -> None:
    result = load(practice("at: '07:00'", "every: sundy", "message: hi"))
    found = assert_only(result, 12, 12, "error", "sundy")
    assert found.message.endswith(
        "write day, weekday, weekend, a day such as sunday, "
        "or a list of days such as [mon, wed, fri]"
    )


def test_every_in_a_block_text_is_reported_at_the_value() -> None:
    # A folded text has no one column for an item: the error points at the value.
    result = load(practice("at: '07:00'", "every: >-", "  mon, wdn", "message: hi"))
    find(result, 12, 12, "error", "unknown day 'wdn' (did you mean 'wed'?)")


def test_weekly_summary_day_in_any_spelling() -> None:
    text = (
        "plan: x\ntitle: t\nweeks: 2\npractices:\n"
        "  - {id: a, category: sleep, title: A, at: '07:00', message: hi}\n"
        "weekly_summary: {day: Saturdays, channels: [sms]}\n"
    )
    summary = load_ok(text, templates={"summaries/weekly.sms.j2": "Your week."}).weekly_summary
    assert summary is not None
    assert summary.weekday == SAT


# --- the spellings, the keywords and the schema agree ----------------------------------


def test_the_plain_spellings_are_the_plan_format() -> None:
    assert DAY_CHOICES[:7] == WEEKDAYS
    assert set(EVERY_WORDS.values()) == set(EVERY_KEYWORDS)
    assert [day_number(name) for name in WEEKDAYS] == list(range(7))


@pytest.mark.parametrize(
    "written",
    ["Sunday", "sundays", "SUN", "Sun.", "tues", "Thurs.", "weds", "WEDNESDAYS"],
)
def test_the_schema_accepts_what_the_loader_reads(written: str) -> None:
    assert day_number(written) is not None
    assert re.match(DAY_PATTERN, written)
    assert re.match(DAYS_TEXT_PATTERN, f"Mon, {written}")


@pytest.mark.parametrize("written", ["sundy", "mons", "su", "sunday sunday", "mon;wed"])
def test_the_schema_refuses_what_the_loader_refuses(written: str) -> None:
    assert day_number(written) is None
    assert not re.match(DAY_PATTERN, written)
    assert not re.match(DAYS_TEXT_PATTERN, written)


def test_the_schema_patterns_are_ecmascript_friendly() -> None:
    # No inline flags or lookbehinds: editors read them as JavaScript regular expressions.
    for pattern in (DAY_PATTERN, DAYS_TEXT_PATTERN, EVERY_WORD_PATTERN):
        assert "(?i" not in pattern
        assert "(?<" not in pattern
        json.dumps(pattern)
    assert re.match(EVERY_WORD_PATTERN, "Every  Day")
