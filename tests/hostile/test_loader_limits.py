"""The plan loader on hostile input: deep nesting, alias bombs, lengths and durations
past any plan, unreadable characters and values with line breaks. Each is an error at its
place, in one line, in little time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from service.catalog import Catalog
from service.core.loader import MAX_DAYS, MAX_DEPTH, MAX_REPEATED, MAX_WEEKS, LoadResult
from service.core.timeexpr import MAX_DURATION, MINUTES_PER_DAY
from tests.support.plans import assert_only, find, load, load_ok, practice

ONE = "practices:\n  - {id: a, category: sleep, title: A, at: '07:00', message: hi}\n"
HEAD = "plan: x\ntitle: t\nweeks: 1\n"


def _quick(text: str, seconds: float = 2.0) -> LoadResult:
    began = time.perf_counter()
    result = load(text)
    assert time.perf_counter() - began < seconds
    return result


# --- nesting and aliases ----------------------------------------------------------------


def test_deep_flow_nesting_is_an_error_where_it_gets_too_deep() -> None:
    result = _quick(HEAD + ONE + "summary: " + "[" * 300 + "]" * 300 + "\n")
    # summary's value opens level 2 at column 10: level MAX_DEPTH + 1 is the one refused
    assert_only(result, 6, 10 + MAX_DEPTH - 1, "error", "nested too deeply")


def test_deep_block_nesting_is_an_error() -> None:
    text = HEAD + ONE + "".join(" " * i + "k:\n" for i in range(300))
    result = _quick(text)
    assert len(result.errors) == 1
    assert "nested too deeply" in result.errors[0].message


def test_nesting_a_plan_uses_is_fine() -> None:
    load_ok(HEAD + ONE.replace("message: hi", "message: hi, phases: [{weeks: [1], at: '08:00'}]"))


def test_an_alias_chain_counts_what_the_aliases_stand_for() -> None:
    text = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 700))
    result = _quick(text)
    # a1 is two levels deep (the root and its list), a31 holds 32 lists: a31 is too deep.
    assert_only(result, 32, 12, "error", "nested too deeply (with what its aliases stand for)")


def test_the_billion_laughs_is_refused_at_the_alias_that_goes_past_the_budget() -> None:
    lines = [HEAD.rstrip("\n"), "variables: &l0 {wake: '07:00'}"]
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    result = _quick("\n".join(lines) + "\n" + ONE)
    found = assert_only(result, 8, 20, "error", f"aliases repeat more than {MAX_REPEATED} values")
    assert "\n" not in str(found)


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    result = _quick(HEAD + ONE + "summary: &a [1, *a]\n")
    assert_only(result, 6, 17, "error", "alias *a is inside the value &a it names")


def test_aliases_a_plan_uses_still_work() -> None:
    plan = load_ok(
        HEAD
        + "defaults: {channels: [sms, calendar]}\n"
        + "practices:\n"
        + "  - {id: a, category: sleep, title: A, at: '07:00', message: hi}\n"
        + "  - {id: b, category: sleep, title: B, at: '08:00', message: hi, channels: &ch [sms]}\n"
        + "  - {id: c, category: sleep, title: C, at: '09:00', message: hi, channels: *ch}\n"
    )
    assert [p.channels for p in plan.practices] == [("sms", "calendar"), ("sms",), ("sms",)]


def test_a_reused_anchor_is_valid_yaml_without_a_warning(
    recwarn: pytest.WarningsRecorder,
) -> None:
    load_ok(HEAD + "summary: &a u\nvariables: {wake: &a '07:00'}\n" + ONE)
    assert not recwarn.list


def test_an_integer_too_long_to_read_is_an_error() -> None:
    result = _quick("plan: x\ntitle: t\nweeks: " + "9" * 5000 + "\n" + ONE)
    assert_only(result, 3, 8, "error", "a number of 5000 digits is too long to read")


# --- plan lengths and week ranges ----------------------------------------------------------


def test_the_limits_are_the_structure_passs() -> None:
    assert (MAX_WEEKS, MAX_DAYS) == (520, 3640)
    assert MAX_DURATION == MAX_DAYS * MINUTES_PER_DAY


def test_a_plan_past_the_longest_is_not_expanded() -> None:
    result = _quick("plan: x\ntitle: t\ndays: 3000000\n" + ONE, seconds=1.0)
    assert_only(result, 3, 7, "error", "'days' must be at most 3640, not 3000000")
    result = _quick("plan: x\ntitle: t\nweeks: 100000000000000000000\n" + ONE, seconds=1.0)
    assert_only(result, 3, 8, "error", "'weeks' must be at most 520")


def test_a_week_range_past_any_plan_is_an_error_when_the_length_is_wrong_too() -> None:
    text = "plan: x\ntitle: t\nweeks: 0\n" + ONE.replace("hi}", "hi, weeks: '1-3000000000'}")
    result = _quick(text, seconds=1.0)
    find(result, 3, 8, "error", "'weeks' must be at least 1, not 0")
    find(
        result,
        5,
        73,
        "error",
        "week 3000000000 is past the end of any plan (a plan has at most 520",
    )
    assert len(result.errors) == 2


def test_a_week_number_too_long_to_read_is_an_error() -> None:
    result = _quick(practice("at: '07:00'", "message: hi", f"weeks: '1-{'9' * 5000}'"))
    assert_only(result, 13, 12, "error", "a week number of 5000 digits is past the end")


def test_a_week_range_within_the_plan_still_works() -> None:
    plan = load_ok(practice("at: '07:00'", "message: hi", "weeks: '2-8'"))
    assert plan.practices[0].weeks == frozenset(range(2, 9))


# --- durations ----------------------------------------------------------------------------


def test_a_practice_lasts_at_most_a_day() -> None:
    result = load(practice("at: '07:00'", "message: hi", "duration: 24h1m"))
    assert_only(result, 13, 15, "error", "'24h1m' is too long: a practice lasts at most 24h")
    plan = load_ok(practice("at: '07:00'", "message: hi", "duration: 24h"))
    assert plan.practices[0].base.duration_minutes == 24 * 60


def test_a_phase_duration_is_bounded_too() -> None:
    result = load(practice("at: '07:00'", "message: hi", "phases:", "  - {weeks: 1, duration: 2d}"))
    assert_only(result, 14, 30, "error", "'2d' is too long: a practice lasts at most 24h")


def test_a_window_is_at_most_the_longest_plan() -> None:
    result = load(practice("at: '07:00'", "message: hi", "window: 99999999999999999999m"))
    assert_only(result, 13, 13, "error", "is too long: a check-in window is at most 3640d")
    plan = load_ok(practice("at: '07:00'", "message: hi", "window: 3640d"))
    assert plan.practices[0].window_minutes == MAX_DURATION


def test_a_nudge_after_past_any_window_is_an_error_at_after() -> None:
    result = load(
        practice("at: '07:00'", "message: hi", "nudge: {after: 99999999999999999999m, message: x}")
    )
    assert_only(result, 13, 20, "error", "is too long: a nudge comes before the check-in window")


def test_a_duration_too_long_to_read_is_an_error_shortened() -> None:
    result = _quick(practice("at: '07:00'", "message: hi", f"duration: {'9' * 5000}m"))
    found = assert_only(result, 13, 15, "error", "is too long: a practice lasts at most 24h")
    assert len(found.message) < 200


def test_time_offsets_of_days_still_wrap() -> None:
    plan = load_ok(practice("at: wake + 1d", "message: hi"))
    assert plan.practices[0].base.at.minutes == MINUTES_PER_DAY


# --- unreadable characters -------------------------------------------------------------


def test_a_control_character_is_reported_where_it_is() -> None:
    result = load("plan: x\ntitle: t\nweeks: 1\n\nsummary: bell\x07\n")
    found = assert_only(result, 5, 14, "error", "cannot hold the control character U+0007")
    assert "\n" not in found.message


def test_a_byte_that_is_not_utf8_is_reported_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"plan: x\r\ntitle: t\r\nweeks: 1\r\nsummary: \xc3\xa9t\xe9\n")
    result = Catalog(tmp_path, tmp_path).load_file(path)
    assert [str(d) for d in result.diagnostics] == [
        f"{path}:4:12: error: not UTF-8 text: byte 0xe9 here (invalid continuation byte); "
        "save the file as UTF-8"
    ]


def test_a_utf16_file_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "wide.yaml"
    path.write_bytes("plan: x\n".encode("utf-16"))
    result = Catalog(tmp_path, tmp_path).load_file(path)
    assert [d.message for d in result.diagnostics] == ["the file is UTF-16 text; save it as UTF-8"]


# --- one line per error --------------------------------------------------------------------


def test_values_with_line_breaks_are_quoted_on_one_line() -> None:
    result = load('plan: "Bad\\nId"\ntitle: t\nweeks: 1\n' + ONE)
    found = assert_only(result, 1, 7, "error", "'Bad\\nId' is not a valid id")
    assert len(str(found).splitlines()) == 1
