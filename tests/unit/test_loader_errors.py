"""Every kind of error a plan file can have, each at its exact line and column.

Plans are written inline; `practice(...)` (see conftest) appends keys to a practice whose
lines start at 11, so `at` written first is on line 11 with its value at column 9.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.catalog import Catalog
from service.core.loader import load_plan
from service.core.render import Renderer
from tests.support.plans import TEMPLATES, assert_only, find, load, load_ok, practice

ONE = "  - {id: a, category: sleep, title: A, at: '07:00', message: hi}\n"

# --- unknown keys -------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_near_miss() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\nvariabls: {}\npractices:\n" + ONE)
    assert_only(result, 4, 1, "error", "unknown key 'variabls' (did you mean 'variables'?)")


def test_unknown_key_far_from_any_lists_the_allowed_keys() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\nzzz: 1\npractices:\n" + ONE)
    found = assert_only(result, 4, 1, "error", "unknown key 'zzz'")
    assert "allowed here: plan, title, summary, language, weeks, days" in found.message


def test_unknown_practice_key() -> None:
    result = load(practice("at: '07:00'", "mesage: hi"))
    assert_only(result, 12, 5, "error", "unknown key 'mesage' (did you mean 'message'?)")


def test_unknown_defaults_key() -> None:
    result = load(
        """\
        plan: x
        title: t
        weeks: 2
        defaults:
          chanels: [sms]
        practices:
        """
        + ONE
    )
    assert_only(result, 5, 3, "error", "unknown key 'chanels' (did you mean 'channels'?)")


def test_unknown_nudge_key() -> None:
    result = load(practice("at: '07:00'", "message: hi", "nudge:", "  afer: 90m", "  message: x"))
    find(result, 14, 7, "error", "unknown key 'afer' (did you mean 'after'?)")
    find(result, 14, 7, "error", "missing required key 'after'")
    assert len(result.errors) == 2


def test_unknown_phase_key() -> None:
    result = load(
        practice("at: '07:00'", "message: hi", "phases:", "  - weeks: 1-2", "    mesage: x")
    )
    assert_only(result, 15, 9, "error", "unknown key 'mesage' (did you mean 'message'?)")


def test_unknown_check_in_key() -> None:
    result = load(
        practice("at: '07:00'", "message: hi", "check_in:", "  kind: rating", "  scal: [1, 5]")
    )
    assert_only(result, 15, 7, "error", "unknown key 'scal' (did you mean 'scale'?)")


# --- required keys ------------------------------------------------------------------


def test_missing_plan_id() -> None:
    result = load("title: t\nweeks: 2\npractices:\n" + ONE)
    assert_only(result, 1, 1, "error", "missing required key 'plan'")


def test_missing_title_and_practices_and_length_all_reported() -> None:
    result = load("plan: x\nsummary: s\n")
    find(result, 1, 1, "error", "missing required key 'title'")
    find(result, 1, 1, "error", "missing required key 'practices'")
    find(result, 1, 1, "error", "the plan needs a length: weeks: 8, or days: 56")
    assert len(result.errors) == 3


def test_practice_missing_category_title_and_at() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\npractices:\n  - id: a\n    message: hi\n")
    for key in ("category", "title", "at"):
        find(result, 5, 5, "error", f"practice 'a' is missing required key '{key}'")
    assert len(result.errors) == 3
    assert result.plan is None


def test_defaults_supply_a_required_category() -> None:
    plan = load_ok(
        """\
        plan: x
        title: t
        weeks: 2
        defaults:
          category: movement
        practices:
          - id: a
            title: A
            at: "07:00"
            message: hi
        """
    )
    assert plan.practices[0].category == "movement"


def test_an_empty_required_value_points_at_its_key() -> None:
    result = load(
        "plan: x\ntitle: t\nweeks: 2\npractices:\n  - id: a\n    category: sleep\n"
        "    title: A\n    at:\n    message: hi\n"
    )
    assert_only(result, 8, 5, "error", "practice 'a' has an empty 'at'")


def test_an_empty_category_is_an_error_not_a_silently_dropped_practice() -> None:
    text = (
        "plan: x\ntitle: t\nweeks: 2\npractices:\n"
        "  - id: a\n    category:\n    title: A\n    at: '07:00'\n    message: hi\n"
        "  - id: b\n    category: sleep\n    title: B\n    at: '07:00'\n    message: hi\n"
    )
    assert_only(load(text), 6, 5, "error", "practice 'a' has an empty 'category'")


def test_an_empty_plan_title_points_at_the_key() -> None:
    result = load("plan: x\ntitle:\nweeks: 2\npractices:\n" + ONE)
    assert_only(result, 2, 1, "error", "'title' must be text, not empty")


def test_no_practices() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\npractices: []\n")
    assert_only(result, 4, 12, "error", "a plan needs at least one practice")


def test_practices_not_a_list() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\npractices: hello\n")
    assert_only(result, 4, 12, "error", "'practices' must be a list, not the text 'hello'")


def test_a_practice_that_is_not_a_mapping() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\npractices:\n  - hello\n")
    assert_only(result, 5, 5, "error", "item 1 of 'practices' must be a mapping")


def test_bad_plan_id() -> None:
    result = load("plan: Sleep_Plan\ntitle: t\nweeks: 2\npractices:\n" + ONE)
    assert_only(result, 1, 7, "error", "'Sleep_Plan' is not a valid id")


def test_bad_practice_id() -> None:
    result = load(practice("at: '07:00'", "message: hi").replace("id: screens-off", "id: Screens"))
    assert_only(
        result, 8, 9, "error", "'Screens' is not a valid id: lower case letters, digits and -"
    )


def test_days_beyond_ten_years() -> None:
    result = load("plan: x\ntitle: t\ndays: 3641\npractices:\n" + ONE)
    assert_only(result, 3, 7, "error", "'days' must be at most 3640, not 3641")


def test_empty_practice_id_is_reported_not_raised() -> None:
    result = load(
        "plan: x\ntitle: t\nweeks: 2\npractices:\n  - id:\n    category: sleep\n"
        "    title: A\n    at: '07:00'\n    message: hi\n"
    )
    assert_only(result, 5, 5, "error", "'id' must be text, not empty")


# --- plan length --------------------------------------------------------------------


def test_weeks_and_days_both() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\ndays: 14\npractices:\n" + ONE)
    assert_only(result, 4, 1, "error", "write the plan's length as weeks or days, not both")


def test_neither_weeks_nor_days() -> None:
    result = load("plan: x\ntitle: t\npractices:\n" + ONE)
    assert_only(result, 1, 1, "error", "the plan needs a length")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "'weeks' must be at least 1, not 0"),
        ("521", "'weeks' must be at most 520, not 521"),
        ("eight", "'weeks' must be a whole number, not the text 'eight'"),
        ("2.5", "'weeks' must be a whole number, not the number 2.5"),
        ("true", "'weeks' must be a whole number, not true"),
    ],
)
def test_bad_plan_length(value: str, message: str) -> None:
    result = load(f"plan: x\ntitle: t\nweeks: {value}\npractices:\n" + ONE)
    assert_only(result, 3, 8, "error", message)


# --- times and variables ------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("'25:00'", "'25:00' is not a time of day; use 00:00 to 23:59"),
        ("'07:60'", "'07:60' is not a time of day"),
        ("7h", "'7h' is not a time; write 07:30, a variable such as wake"),
        ("wake +", "'wake +' is not a time"),
        ("wake + 45s", "'45s' has seconds"),
        ("Wake", "'Wake' is not a variable name"),
        ("0730", "'730' is not a time; write hours and minutes, such as 07:30"),
    ],
)
def test_bad_times(at: str, message: str) -> None:
    result = load(practice(f"at: {at}", "message: hi"))
    find(result, 11, 9, "error", message)
    assert result.plan is None


def test_unquoted_clock_time_is_a_time_not_a_number() -> None:
    plan = load_ok(practice("at: 7:30", "message: hi"))
    assert plan.practices[0].base.at.minutes == 7 * 60 + 30


def test_unknown_variable_suggests_the_near_miss() -> None:
    result = load(practice("at: wak + 10m", "message: hi"))
    found = assert_only(result, 11, 9, "error", "unknown variable 'wak' (did you mean 'wake'?)")
    assert "the plan's variables are: wake, bedtime" in found.message


def test_unknown_variable_in_a_plan_without_variables() -> None:
    result = load(
        "plan: x\ntitle: t\nweeks: 2\npractices:\n"
        "  - {id: a, category: sleep, title: A, at: wake, message: hi}\n"
    )
    assert_only(result, 5, 44, "error", "unknown variable 'wake'; the plan's variables are: none")


def test_variable_cycle() -> None:
    result = load(
        """\
        plan: x
        title: t
        weeks: 2
        variables:
          a: b + 1h
          b: a - 1h
          wake: "07:00"
        practices:
          - {id: a, category: sleep, title: A, at: wake, message: hi}
        """
    )
    # One error, where the loop starts; `at: wake` is not reported as unknown.
    assert_only(result, 5, 6, "error", "variables refer to each other in a loop: a -> b -> a")


def test_variable_referring_to_itself() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\nvariables:\n  a: a + 1h\npractices:\n" + ONE)
    assert_only(result, 5, 6, "error", "loop: a -> a")


def test_variable_using_an_unknown_variable() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\nvariables:\n  bed: wak + 15h\npractices:\n" + ONE)
    assert_only(result, 5, 8, "error", "variable 'bed' uses unknown variable 'wak'")


def test_bad_variable_name() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\nvariables:\n  Wake: '07:00'\npractices:\n" + ONE)
    assert_only(result, 5, 3, "error", "'Wake' is not a variable name")


def test_bad_variable_value() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\nvariables:\n  bed: '24:10'\npractices:\n" + ONE)
    assert_only(result, 5, 8, "error", "'24:10' is not a time of day")


def test_a_broken_variable_is_reported_once_not_again_as_unknown() -> None:
    result = load(
        "plan: x\ntitle: t\nweeks: 2\nvariables:\n  wake: 700\npractices:\n"
        "  - {id: a, category: sleep, title: A, at: wake, message: hi}\n"
    )
    assert_only(result, 5, 9, "error", "'wake' must be text, not the number 700")


def test_an_empty_variable_points_at_its_name() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\nvariables:\n  wake:\npractices:\n" + ONE)
    assert_only(result, 5, 3, "error", "'wake' must be text, not empty")


# --- durations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("45s", "'45s' has seconds; durations are whole minutes"),
        ("1m30s", "'1m30s' has seconds"),
        ("0m", "'0m' is zero; a duration is at least 1m"),
        ("abc", "'abc' is not a duration"),
        ("'90'", "'90' is not a duration"),
        ("90", "'duration' must be text, not the number 90"),
    ],
)
def test_bad_duration(value: str, message: str) -> None:
    result = load(practice("at: '07:00'", f"duration: {value}", "message: hi"))
    assert_only(result, 12, 15, "error", message)


def test_bad_window() -> None:
    result = load(practice("at: '07:00'", "window: 10s", "message: hi"))
    assert_only(result, 12, 13, "error", "'10s' has seconds")


# --- practice ids -------------------------------------------------------------------


def test_duplicate_practice_id() -> None:
    text = practice("at: '07:00'", "message: hi") + (
        "  - id: screens-off\n    category: sleep\n    title: Again\n"
        "    at: '08:00'\n    message: hi\n"
    )
    assert_only(load(text), 13, 9, "error", "practice id 'screens-off' is used twice in this plan")


def test_yaml_alias_of_a_whole_practice_is_a_duplicate_id() -> None:
    text = (
        "plan: x\ntitle: t\nweeks: 2\npractices:\n"
        "  - &p {id: a, category: sleep, title: A, at: '07:00', message: hi}\n  - *p\n"
    )
    find(load(text), 5, 13, "error", "practice id 'a' is used twice")


# --- every and rrule ----------------------------------------------------------------


def test_weekday_typo_in_a_flow_list_points_at_the_item() -> None:
    result = load(practice("at: '07:00'", "every: [mon, wdn]", "message: hi"))
    found = assert_only(result, 12, 18, "error", "unknown day 'wdn' (did you mean 'wed'?)")
    assert "days are mon, tue, wed, thu, fri, sat, sun" in found.message


def test_weekday_typo_in_a_block_list_points_at_the_item() -> None:
    result = load(practice("at: '07:00'", "every:", "  - mon", "  - wdn", "message: hi"))
    assert_only(result, 14, 9, "error", "unknown day 'wdn' (did you mean 'wed'?)")


def test_weekday_listed_twice() -> None:
    result = load(practice("at: '07:00'", "every: [mon, mon]", "message: hi"))
    assert_only(result, 12, 18, "error", "'mon' is listed twice")


def test_every_empty_list() -> None:
    result = load(practice("at: '07:00'", "every: []", "message: hi"))
    assert_only(result, 12, 12, "error", "every needs at least one day")


def test_bad_every_keyword() -> None:
    result = load(practice("at: '07:00'", "every: wekday", "message: hi"))
    assert_only(
        result, 12, 12, "error", "unknown value for every: 'wekday' (did you mean 'weekday'?)"
    )


def test_every_single_day_name_typo() -> None:
    # A single day is fine (tests/unit/test_loader_every.py); a misspelt one is not.
    result = load(practice("at: '07:00'", "every: mnday", "message: hi"))
    assert_only(result, 12, 12, "error", "'mnday' (did you mean 'monday'?)")


def test_every_of_the_wrong_type() -> None:
    result = load(practice("at: '07:00'", "every: 3", "message: hi"))
    assert_only(
        result,
        12,
        12,
        "error",
        "every is day, weekday, weekend, a day such as sunday, or a list of days",
    )


def test_every_and_rrule_both() -> None:
    result = load(practice("at: '07:00'", "every: day", "rrule: FREQ=DAILY", "message: hi"))
    assert_only(result, 13, 5, "error", "write every or rrule, not both")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=WEEKLY;BYDAY=XX", "invalid RRULE"),
        ("FREQ=WEEKLY;BYDAY", "invalid RRULE: 'BYDAY' is not NAME=VALUE"),
        ("FREQ=HOURLY", "RRULE FREQ=HOURLY is more frequent than daily"),
        ("FREQ=MINUTELY;INTERVAL=30", "RRULE FREQ=MINUTELY is more frequent than daily"),
        ("FREQ=SECONDLY", "RRULE FREQ=SECONDLY is more frequent than daily"),
        ("FREQ=FORTNIGHTLY", "unknown FREQ 'FORTNIGHTLY'"),
        ("FREQ=DAILY;BYHOUR=7", "RRULE BYHOUR is not allowed: the time of day comes from `at`"),
        ("FREQ=DAILY;BYMINUTE=5", "RRULE BYMINUTE is not allowed"),
        ("DTSTART=20260101T000000;FREQ=DAILY", "leave DTSTART out"),
        ("BYDAY=MO", "FREQ is required"),
        ("FREQ=WEEKLY;BYDAYS=MO", "unknown part 'BYDAYS' (did you mean 'BYDAY'?)"),
        ("FREQ=DAILY;UNTIL=20260301T000000Z", "UNTIL is a local date here"),
        ("FREQ=DAILY;COUNT=x", "invalid RRULE"),
    ],
)
def test_bad_rrule(rule: str, message: str) -> None:
    result = load(practice("at: '07:00'", f"rrule: {rule}", "message: hi"))
    assert_only(result, 12, 12, "error", message)


def test_rrule_with_its_property_name_is_accepted() -> None:
    plan = load_ok(practice("at: '07:00'", "rrule: 'RRULE:FREQ=WEEKLY;BYDAY=MO'", "message: hi"))
    assert plan.practices[0].rrule == "FREQ=WEEKLY;BYDAY=MO"


# --- weeks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weeks", "column", "message"),
    [
        ("3-9", 12, "week 9 is past the plan's end (the plan has 8 weeks)"),
        ("9", 12, "week 9 is past the plan's end"),
        ("0", 12, "week 0 does not exist; weeks count from 1"),
        ("4-2", 12, "'4-2' runs backwards; write 2-4"),
        ("first", 12, "'first' is not a week or a range of weeks"),
        ("[1, 9, 3-4]", 16, "week 9 is past the plan's end"),
        ("[]", 12, "weeks needs at least one week"),
    ],
)
def test_bad_active_weeks(weeks: str, column: int, message: str) -> None:
    result = load(practice("at: '07:00'", f"weeks: {weeks}", "message: hi"))
    assert_only(result, 12, column, "error", message)


def test_days_based_plan_has_weeks_rounded_up() -> None:
    text = (
        "plan: x\ntitle: t\ndays: 10\npractices:\n  - id: a\n    category: sleep\n"
        "    title: A\n    at: '07:00'\n    weeks: {weeks}\n    message: hi\n"
    )
    assert load_ok(text.format(weeks=2)).weeks == 2
    assert_only(load(text.format(weeks=3)), 9, 12, "error", "the plan has 2 weeks")


# --- channels, categories, check-ins --------------------------------------------------


def test_unknown_channel_points_at_the_item() -> None:
    result = load(practice("at: '07:00'", "channels: [sms, emial]", "message: hi"))
    assert_only(result, 12, 21, "error", "unknown channel 'emial' (did you mean 'email'?)")


def test_duplicate_channel() -> None:
    result = load(practice("at: '07:00'", "channels: [sms, sms]", "message: hi"))
    assert_only(result, 12, 21, "error", "channel 'sms' is listed twice")


def test_empty_channel_list() -> None:
    result = load(practice("at: '07:00'", "channels: []", "message: hi"))
    assert_only(result, 12, 15, "error", "choose at least one channel: sms, email, calendar")


def test_unknown_category() -> None:
    text = with_category("slep") + "    at: '07:00'\n    message: hi\n"
    found = assert_only(
        load(text), 9, 15, "error", "unknown category 'slep' (did you mean 'sleep'?)"
    )
    assert "expected one of sleep, movement, affirmation" in found.message


def with_category(category: str) -> str:
    return practice().replace("category: sleep", f"category: {category}")


def test_unknown_check_in_kind_as_text() -> None:
    result = load(practice("at: '07:00'", "check_in: rate", "message: hi"))
    assert_only(result, 12, 15, "error", "unknown check-in kind 'rate' (did you mean 'rating'?)")


def test_unknown_check_in_kind_in_a_flow_mapping() -> None:
    result = load(practice("at: '07:00'", "check_in: {kind: rate}", "message: hi"))
    assert_only(result, 12, 22, "error", "unknown check-in kind 'rate' (did you mean 'rating'?)")


def test_unknown_check_in_kind_in_a_block_mapping() -> None:
    result = load(practice("at: '07:00'", "check_in:", "  kind: ratng", "message: hi"))
    assert_only(result, 13, 13, "error", "unknown check-in kind 'ratng' (did you mean 'rating'?)")


def test_scale_on_a_check_in_that_is_not_a_rating() -> None:
    result = load(
        practice("at: '07:00'", "check_in:", "  kind: number", "  scale: [1, 5]", "message: hi")
    )
    assert_only(result, 14, 7, "error", "scale is for rating check-ins, not number")


def test_unit_on_a_check_in_that_is_not_a_number() -> None:
    result = load(
        practice("at: '07:00'", "check_in:", "  kind: rating", "  unit: minutes", "message: hi")
    )
    assert_only(result, 14, 7, "error", "unit is for number check-ins, not rating")


@pytest.mark.parametrize("scale", ["[5, 5]", "[5, 1]"])
def test_rating_scale_must_go_up(scale: str) -> None:
    result = load(
        practice("at: '07:00'", "check_in:", "  kind: rating", f"  scale: {scale}", "message: hi")
    )
    assert_only(result, 14, 14, "error", "must go from low to high")


def test_rating_scale_of_the_wrong_length() -> None:
    result = load(
        practice("at: '07:00'", "check_in:", "  kind: rating", "  scale: [1, 5, 9]", "message: hi")
    )
    find(result, 14, 14, "error", "'scale' takes at most 2 items")
    assert result.plan is None
    short = load(
        practice("at: '07:00'", "check_in:", "  kind: rating", "  scale: [1]", "message: hi")
    )
    find(short, 14, 14, "error", "'scale' needs at least 2 items")


def test_rating_scale_of_more_than_a_hundred_steps() -> None:
    result = load(
        practice("at: '07:00'", "check_in:", "  kind: rating", "  scale: [0, 101]", "message: hi")
    )
    assert_only(result, 14, 14, "error", "a rating scale spans at most 100 steps")


# --- templates and messages ---------------------------------------------------------


def test_template_that_does_not_exist() -> None:
    result = load(practice("at: '07:00'", "template: sleep/nope"))
    assert_only(
        result,
        12,
        15,
        "error",
        "template 'sleep/nope' has no sms file: templates/sleep/nope.sms.j2 does not exist",
    )


def test_template_missing_for_one_of_its_channels() -> None:
    result = load(practice("at: '07:00'", "channels: [sms, email]", "template: broken/no-html"))
    find(result, 13, 15, "error", "template 'broken/no-html' has no sms file")
    find(result, 13, 15, "error", "templates/broken/no-html.email.j2 lacks the block html")
    assert len(result.errors) == 2


def test_template_with_a_syntax_error() -> None:
    result = load(practice("at: '07:00'", "template: broken/syntax"))
    found = assert_only(
        result, 12, 15, "error", "templates/broken/syntax.sms.j2:1: template syntax"
    )
    assert "expected 'end of print statement'" in found.message


def test_email_template_missing_a_block() -> None:
    result = load(practice("at: '07:00'", "channels: [email]", "template: broken/no-html"))
    assert_only(
        result,
        13,
        15,
        "error",
        "templates/broken/no-html.email.j2 lacks the block html; an email template defines "
        "subject, text and html",
    )


def test_email_template_missing_two_blocks() -> None:
    result = load(
        practice("at: '07:00'", "channels: [email]", "template: mail/bare"),
        templates={"mail/bare.email.j2": "{% block subject %}S{% endblock %}"},
    )
    assert_only(result, 13, 15, "error", "lacks the blocks text, html")


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "Sleep/Wind", "sleep/wind-down.sms.j2"])
def test_bad_template_name(name: str) -> None:
    result = load(practice("at: '07:00'", f"template: '{name}'"))
    assert_only(result, 12, 15, "error", f"'{name}' is not a template name")


def test_message_and_template_both() -> None:
    result = load(practice("at: '07:00'", "template: sleep/wind-down", "message: hi"))
    assert_only(result, 12, 5, "error", "write message or template, not both")


def test_a_practice_message_beats_a_default_template() -> None:
    plan = load_ok(
        """\
        plan: x
        title: t
        weeks: 1
        defaults:
          template: sleep/wind-down
        practices:
          - {id: a, category: sleep, title: A, at: '07:00', message: hi}
          - {id: b, category: sleep, title: B, at: '08:00'}
        """
    )
    a, b = plan.practices
    assert (a.base.message, a.base.template) == ("hi", None)
    assert (b.base.message, b.base.template) == (None, "sleep/wind-down")


def test_missing_default_template_for_the_category() -> None:
    text = with_category("journaling") + "    at: '07:00'\n"
    assert_only(
        load(text),
        9,
        15,
        "error",
        "the default sms template for this category is missing: "
        "templates/default/journaling.sms.j2",
    )


def test_inline_message_with_a_jinja_syntax_error() -> None:
    result = load(practice("at: '07:00'", "message: 'Hi {{ participant.name '"))
    assert_only(result, 12, 14, "error", "template syntax: unexpected end of template")


def test_multi_line_message_syntax_error_names_the_line_of_the_text() -> None:
    result = load(practice("at: '07:00'", "message: |", "  Hello.", "  {% if x %}no end"))
    assert_only(result, 12, 14, "error", "template syntax (line 2 of the text)")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("{{ participant.nme }}", "'participant' has no 'nme' (did you mean 'name'?)"),
        ("{{ vars.wak }}", "'vars' has no 'wak' (did you mean 'wake'?); it has wake, bedtime"),
        ("{{ practice.titel }}", "'practice' has no 'titel' (did you mean 'title'?)"),
        ("{{ occurrence.wek }}", "'occurrence' has no 'wek' (did you mean 'week'?)"),
        ("{{ participnt.name }}", "'participnt' is not defined (did you mean 'participant'?)"),
        ("{{ item.upper() }}", "None has no attribute 'upper'"),
    ],
)
def test_undefined_names_in_a_message(message: str, expected: str) -> None:
    result = load(practice("at: '07:00'", f"message: '{message}'"))
    found = assert_only(result, 12, 14, "error", expected)
    assert found.message.startswith("unknown name in the text: ")


def test_undefined_name_in_a_phase_message_points_at_the_phase() -> None:
    result = load(
        practice(
            "at: '07:00'",
            "message: hi",
            "phases:",
            "  - weeks: 2",
            "    message: '{{ vars.nope }}'",
        )
    )
    assert_only(result, 15, 18, "error", "'vars' has no 'nope'")


def test_undefined_name_in_a_rotate_item_context() -> None:
    # every rotate item is tried; the message uses one item's attribute that is unknown
    result = load(practice("at: '07:00'", "message: '{{ item.nope }}'", "rotate: [a, b]"))
    assert_only(result, 12, 14, "error", "has no attribute 'nope'")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("{{ 1/0 }}", "ZeroDivisionError"),
        ('{{ 1 + "a" }}', "TypeError"),
        ('{% include "nope" %}', "template nope does not exist"),
        ("{{ range(10**7)|list|length }}", "Range too big"),
    ],
)
def test_a_message_that_fails_when_rendered_is_an_error_not_a_traceback(
    message: str, expected: str
) -> None:
    result = load(practice("at: '07:00'", f"message: '{message}'"))
    assert_only(result, 12, 14, "error", expected)


@pytest.mark.parametrize(
    "message", ["{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}"]
)
def test_unsafe_message_is_refused(message: str) -> None:
    result = load(practice("at: '07:00'", f'message: "{message}"'))
    assert_only(result, 12, 14, "error", "not allowed in a message")


# --- rotate, nudges, phases ---------------------------------------------------------


def test_empty_rotate() -> None:
    result = load(practice("at: '07:00'", "message: hi", "rotate: []"))
    assert_only(result, 13, 13, "error", "rotate needs at least one line")


def test_nudge_without_a_check_in() -> None:
    result = load(
        practice(
            "at: '07:00'",
            "message: hi",
            "check_in: none",
            "nudge:",
            "  after: 90m",
            "  message: hey",
        )
    )
    assert_only(result, 14, 5, "error", "a nudge waits for a check-in, but check_in is none")


@pytest.mark.parametrize("after", ["1h", "2h"])
def test_nudge_at_or_after_the_window(after: str) -> None:
    result = load(
        practice(
            "at: '07:00'",
            "message: hi",
            "window: 1h",
            "nudge:",
            f"  after: {after}",
            "  message: hey",
        )
    )
    assert_only(result, 15, 14, "error", "the nudge comes after the check-in window closes (1h)")


def test_nudge_just_inside_the_window_is_fine() -> None:
    plan = load_ok(
        practice(
            "at: '07:00'", "message: hi", "window: 1h", "nudge:", "  after: 59m", "  message: hey"
        )
    )
    assert plan.practices[0].nudge is not None
    assert plan.practices[0].nudge.after_minutes == 59


def test_nudge_after_with_seconds() -> None:
    result = load(
        practice("at: '07:00'", "message: hi", "nudge:", "  after: 90s", "  message: hey")
    )
    assert_only(result, 14, 14, "error", "'90s' has seconds")


def test_nudge_message_with_an_undefined_name() -> None:
    result = load(
        practice(
            "at: '07:00'",
            "message: hi",
            "nudge:",
            "  after: 1h",
            "  message: '{{ participant.nme }}'",
        )
    )
    assert_only(result, 15, 16, "error", "'participant' has no 'nme' (did you mean 'name'?)")


def test_overlapping_phases() -> None:
    result = load(
        practice(
            "at: '07:00'",
            "message: hi",
            "phases:",
            "  - weeks: 1-3",
            "    at: '08:00'",
            "  - weeks: 3-4",
            "    at: '09:00'",
        )
    )
    assert_only(result, 16, 16, "error", "phases overlap in week 3")


def test_phase_with_weeks_past_the_end() -> None:
    result = load(
        practice("at: '07:00'", "message: hi", "phases:", "  - weeks: 7-9", "    at: '08:00'")
    )
    assert_only(result, 14, 16, "error", "week 9 is past the plan's end")


def test_phase_without_weeks() -> None:
    result = load(practice("at: '07:00'", "message: hi", "phases:", "  - at: '08:00'"))
    assert_only(result, 14, 9, "error", "missing required key 'weeks'")


def test_phase_with_a_bad_time() -> None:
    result = load(practice("at: '07:00'", "message: hi", "phases:", "  - weeks: 2", "    at: nope"))
    assert_only(result, 15, 13, "error", "unknown variable 'nope'")


# --- YAML itself --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        (
            "plan: x\ntitle: t\nweeks: 2\npractices:\n"
            "  - id: a\n    title: [unclosed\n    at: '07:00'\n",
            7,
            7,
            "YAML syntax: while parsing a flow sequence expected ',' or ']'",
        ),
        (
            "plan: x\ntitle: 'unterminated\nweeks: 2\n",
            4,
            1,
            "YAML syntax: while scanning a quoted scalar",
        ),
        (
            "plan: x\ntitle: t\n\tweeks: 2\n",
            3,
            1,
            "found character '\\t' that cannot start any token",
        ),
        (
            "plan: x\n  title: t\nweeks: 2\n",
            2,
            8,
            "YAML syntax: mapping values are not allowed here",
        ),
    ],
)
def test_yaml_syntax_error_position(text: str, line: int, column: int, message: str) -> None:
    assert_only(load(text), line, column, "error", message)


def test_duplicate_key() -> None:
    result = load("plan: x\ntitle: t\nweeks: 2\ntitle: u\npractices:\n" + ONE)
    assert_only(
        result, 4, 1, "error", "key 'title' appears twice in the same mapping (first on line 2)"
    )


def test_duplicate_key_in_a_practice() -> None:
    text = (
        "plan: x\ntitle: t\nweeks: 2\npractices:\n  - id: a\n    category: sleep\n"
        "    title: A\n    at: '07:00'\n    at: '08:00'\n    message: hi\n"
    )
    assert_only(
        load(text), 9, 5, "error", "key 'at' appears twice in the same mapping (first on line 8)"
    )


@pytest.mark.parametrize("text", ["", "   \n\n", "# a plan\n   # to come\n", "---\n"])
def test_empty_file(text: str) -> None:
    assert_only(load(text), 1, 1, "error", "the file is empty")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("- plan: x\n- title: y\n", "not a list"),
        ("just text\n", "not the text 'just text'"),
        ("42\n", "not the number 42"),
    ],
)
def test_file_that_is_not_a_mapping(text: str, kind: str) -> None:
    assert_only(
        load(text), 1, 1, "error", f"a plan is a mapping of keys (plan, title, ...), {kind}"
    )


def test_python_tags_are_not_executed() -> None:
    result = load(
        "plan: !!python/object/apply:os.system ['false']\ntitle: t\nweeks: 1\npractices:\n" + ONE
    )
    find(result, 1, 7, "error", "'plan' must be text")


# --- files and folders (the Catalog) ------------------------------------------------


def test_non_utf8_file(tmp_path: Path, templates_dir: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("plan: l\ntitle: caf\xe9\n".encode("latin-1"))
    result = Catalog(tmp_path, templates_dir).check([path])
    assert [str(d) for d in result.diagnostics] == [
        f"{path}:2:11: error: not UTF-8 text: byte 0xe9 here (invalid continuation byte); "
        "save the file as UTF-8"
    ]


def test_duplicate_plan_ids_across_files(tmp_path: Path, templates_dir: Path) -> None:
    folder = tmp_path / "schedules"
    folder.mkdir()
    text = "plan: same\ntitle: t\nweeks: 1\npractices:\n" + ONE
    (folder / "a.yaml").write_text(text)
    (folder / "b.yml").write_text(text)
    result = Catalog(folder, templates_dir).check()
    assert result.files == 2
    assert [str(d) for d in result.errors] == [
        f"{folder / 'b.yml'}:1:7: error: plan id 'same' is already used by {folder / 'a.yaml'}"
    ]
    assert list(result.plans) == ["same"]


def test_template_file_with_a_syntax_error_on_disk(tmp_path: Path, templates_dir: Path) -> None:
    (templates_dir / "sleep" / "broken.sms.j2").write_text("line one\n{% if %}\n")
    plan = tmp_path / "p.yaml"
    plan.write_text(practice("at: '07:00'", "template: sleep/broken"))
    result = Catalog(tmp_path, templates_dir).check([plan])
    [error] = result.errors
    assert (error.line, error.column) == (12, 15)
    assert error.message.startswith("templates/sleep/broken.sms.j2:2: template syntax")


def test_byte_order_mark_and_crlf_keep_positions(tmp_path: Path, templates_dir: Path) -> None:
    text = with_category("slep") + "    at: '07:00'\n    message: hi\n"
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    crlf = tmp_path / "crlf.yaml"
    crlf.write_bytes(text.replace("plan: sleep", "plan: other").replace("\n", "\r\n").encode())
    result = Catalog(tmp_path, templates_dir).check([bom, crlf])
    assert [(d.path, d.line, d.column) for d in result.errors] == [
        (str(bom), 9, 15),
        (str(crlf), 9, 15),
    ]


def test_plan_with_a_byte_order_mark_is_found_by_id(tmp_path: Path, templates_dir: Path) -> None:
    (tmp_path / "bom.yaml").write_bytes(
        b"\xef\xbb\xbf" + practice("at: '07:00'", "message: hi").encode()
    )
    catalog = Catalog(tmp_path, templates_dir)
    assert catalog.find("sleep") == tmp_path / "bom.yaml"
    assert catalog.load("sleep").plan is not None


# --- one pass, never a traceback ----------------------------------------------------


def test_every_error_in_a_file_is_reported_in_one_pass() -> None:
    result = load(
        """\
        plan: Bad_Id
        title: t
        weeks: 2
        summry: oops
        practices:
          - id: a
            category: slep
            title: A
            at: '25:00'
            duration: 45s
            every: [mon, wdn]
            channels: [sms, emial]
            weeks: 3
            check_in: rate
            message: hi
          - id: a
            category: sleep
            title: B
            at: wak
            message: hi
        """
    )
    assert [(d.line, d.column) for d in result.errors] == [
        (1, 7),  # id
        (4, 1),  # summry
        (7, 15),  # slep
        (9, 9),  # 25:00
        (10, 15),  # 45s
        (11, 18),  # wdn
        (12, 21),  # emial
        (13, 12),  # week 3 of 2
        (14, 15),  # rate
        (16, 9),  # duplicate id
        (19, 9),  # wak
    ]
    assert result.plan is None


def test_diagnostics_are_sorted_and_not_repeated() -> None:
    result = load(practice("at: '07:00'", "channels: [sms, emial, emial]", "message: hi"))
    keys = [(d.line, d.column, d.message) for d in result.diagnostics]
    assert keys == sorted(keys)
    assert len(keys) == len(set(keys))


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.sampled_from(
        [
            "07:00",
            "7:30",
            "wake",
            "wake + 10m",
            "bedtime - 1h30m",
            "25:00",
            "1-4",
            "0",
            "9-2",
            "day",
            "weekday",
            "mon",
            "sms",
            "email",
            "calendar",
            "rating",
            "number",
            "none",
            "15m",
            "45s",
            "0m",
            "FREQ=DAILY",
            "FREQ=WEEKLY;BYDAY=MO",
            "FREQ=HOURLY",
            "BYDAY=MO",
            "FREQ=DAILY;COUNT=0",
            "FREQ=DAILY;INTERVAL=0",
            "FREQ=YEARLY;BYWEEKNO=60",
            "{{ item }}",
            "{{ participant.nme }}",
            "{{ 1/0 }}",
            "{% if %}",
            "sleep",
            "slep",
            "sleep/wind-down",
            "broken/syntax",
            "../x",
        ]
    ),
)
_NESTED = st.recursive(
    _VALUES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["kind", "scale", "unit", "after", "message", "weeks", "at", "x"]),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=6,
)
_PRACTICE_KEYS = [
    "id",
    "category",
    "title",
    "at",
    "every",
    "rrule",
    "weeks",
    "duration",
    "channels",
    "message",
    "template",
    "rotate",
    "check_in",
    "window",
    "nudge",
    "phases",
    "bogus",
]
_PRACTICE = st.dictionaries(st.sampled_from(_PRACTICE_KEYS), _NESTED, max_size=6).map(
    lambda extra: {"id": "a", "category": "sleep", "title": "A", "at": "07:00", **extra}
)
_DOCUMENT = st.fixed_dictionaries(
    {
        "plan": st.sampled_from(["x", "Bad", None]),
        "title": st.just("t"),
        "weeks": st.one_of(st.integers(-1, 5), _NESTED),
        "variables": st.one_of(
            st.none(), st.dictionaries(st.sampled_from(["wake", "Bad", "t"]), _NESTED, max_size=3)
        ),
        "defaults": st.one_of(
            st.none(), st.dictionaries(st.sampled_from(_PRACTICE_KEYS[1:]), _NESTED, max_size=3)
        ),
        "practices": st.one_of(_NESTED, st.lists(_PRACTICE, max_size=3)),
    }
)
_FUZZ_RENDERER = Renderer(jinja2.DictLoader(TEMPLATES))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_DOCUMENT)
def test_loading_never_raises(document: dict[str, Any]) -> None:
    # JSON is YAML: any structure the fuzzer builds is a well-formed file.
    result = load_plan(json.dumps(document), "fuzz.yaml", _FUZZ_RENDERER)
    assert (result.plan is None) == bool(result.errors)
    for d in result.diagnostics:
        assert d.line >= 1
        assert d.column >= 1
        assert d.message


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_loading_arbitrary_text_never_raises(text: str) -> None:
    result = load_plan(text, "fuzz.yaml", _FUZZ_RENDERER)
    assert (result.plan is None) == bool(result.errors)
