"""Warnings: reported at their place, and never blocking the plan."""

from __future__ import annotations

import pytest

from tests.support.plans import assert_only, find, load, practice


def _message(text: str) -> str:
    """A practice whose SMS is exactly `text` (as a double-quoted YAML scalar)."""
    return practice("at: '07:00'", f'message: "{text}"')


def test_sms_of_exactly_one_gsm7_segment_has_no_warning() -> None:
    result = load(_message("a" * 160))
    assert result.diagnostics == []
    assert result.plan is not None


def test_sms_longer_than_one_gsm7_segment() -> None:
    result = load(_message("a" * 161))
    found = assert_only(
        result, 12, 14, "warning", "the SMS needs 2 segments (GSM-7, 161 characters)"
    )
    assert "one segment holds 160 GSM-7 or 70 UCS-2 characters" in found.message
    assert result.plan is not None


def test_extension_characters_count_twice_toward_the_segment() -> None:
    # 80 euro signs are 160 septets: one segment; 81 are 162: two.
    assert load(_message("€" * 80)).diagnostics == []
    assert_only(load(_message("€" * 81)), 12, 14, "warning", "2 segments (GSM-7, 162 characters)")


def test_an_emoji_forces_ucs2_and_is_named() -> None:
    result = load(_message("a" * 69 + "😀"))
    found = assert_only(
        result, 12, 14, "warning", "the SMS needs 2 segments (UCS-2, 71 UTF-16 units"
    )
    assert "UCS-2 forced by '😀' U+1F600" in found.message
    assert result.plan is not None


def test_a_character_outside_gsm7_forces_ucs2_and_is_named() -> None:
    result = load(_message("Ça va? " + "a" * 70 + " ç"))
    found = assert_only(result, 12, 14, "warning", "2 segments (UCS-2, 79 UTF-16 units")
    # Only ç is outside GSM-7 (Ç is in it), so only ç is named.
    assert found.message.endswith(
        "UCS-2 forced by 'ç' U+00E7); one segment holds 160 GSM-7 or 70 UCS-2 characters"
    )


def test_a_short_ucs2_message_has_no_warning() -> None:
    assert load(_message("a" * 68 + "😀")).diagnostics == []  # 70 UTF-16 units


def test_smart_quotes_are_cleaned_before_counting() -> None:
    # The curly apostrophe would force UCS-2 (100 characters: 2 segments), but SMS are
    # cleaned to plain GSM-7 first, so this fits one segment.
    assert load(_message("It\u2019s time " + "a" * 90)).diagnostics == []


def test_the_warning_names_what_the_cleaning_cannot_fix() -> None:
    result = load(_message("It\u2019s time 😀 " + "a" * 70))
    found = find(result, 12, 14, "warning", "UCS-2 forced by '😀' U+1F600")
    assert "U+2019" not in found.message


def test_long_sms_from_a_template_points_at_the_template_name() -> None:
    result = load(
        practice("at: '07:00'", "template: long/one"),
        templates={"long/one.sms.j2": "{{ 'x' * 200 }}"},
    )
    assert_only(result, 12, 15, "warning", "the SMS needs 2 segments (GSM-7, 200 characters)")


def test_long_sms_in_only_one_rotate_item() -> None:
    result = load(practice("at: '07:00'", "message: '{{ item }}'", f"rotate: [short, {'b' * 170}]"))
    assert_only(result, 12, 14, "warning", "2 segments (GSM-7, 170 characters)")


def test_long_sms_in_a_phase_points_at_the_phase_message() -> None:
    result = load(
        practice(
            "at: '07:00'", "message: hi", "phases:", "  - weeks: 2", f"    message: {'c' * 200}"
        )
    )
    assert_only(result, 15, 18, "warning", "2 segments (GSM-7, 200 characters)")


def test_long_nudge() -> None:
    result = load(
        practice("at: '07:00'", "message: hi", "nudge:", "  after: 1h", f"  message: {'d' * 161}")
    )
    assert_only(result, 15, 16, "warning", "the nudge needs 2 segments")


def test_no_segment_warning_for_a_practice_without_sms() -> None:
    result = load(practice("at: '07:00'", "channels: [email]", f"message: {'e' * 400}"))
    assert result.diagnostics == []


@pytest.mark.parametrize(
    ("at", "shown"),
    [("'00:00'", "00:00"), ("'03:15'", "03:15"), ("'04:59'", "04:59"), ("wake - 4h", "03:00")],
)
def test_practice_in_the_small_hours(at: str, shown: str) -> None:
    result = load(practice(f"at: {at}", "message: hi"))
    found = assert_only(result, 11, 9, "warning", f"{shown} is in the small hours")
    assert "a reminder then may wake someone" in found.message
    assert result.plan is not None


@pytest.mark.parametrize("at", ["'05:00'", "'23:59'", "bedtime + 1h29m"])
def test_no_small_hours_warning_outside_them(at: str) -> None:
    assert load(practice(f"at: {at}", "message: hi")).diagnostics == []


def test_bedtime_plus_past_midnight_is_in_the_small_hours() -> None:
    result = load(practice("at: bedtime + 2h", "message: hi"))
    assert_only(result, 11, 9, "warning", "00:30 is in the small hours")


def test_plan_without_any_check_in() -> None:
    result = load(practice("at: '07:00'", "message: hi", "check_in: none"))
    assert_only(result, 7, 1, "warning", "no practice asks for a check-in")
    assert result.plan is not None


def test_one_practice_with_a_check_in_is_enough() -> None:
    text = practice("at: '07:00'", "message: hi", "check_in: none") + (
        "  - {id: b, category: sleep, title: B, at: '08:00', message: hi, check_in: text}\n"
    )
    assert load(text).diagnostics == []


def test_practice_that_never_occurs() -> None:
    text = (
        "plan: x\ntitle: t\ndays: 3\npractices:\n"
        "  - {id: a, category: sleep, title: A, at: '07:00', message: hi, every: [sun]}\n"
    )
    # Week 1 of a 3-day plan has no Sunday when the sample enrollment starts on a Monday.
    assert_only(load(text), 5, 5, "warning", "practice 'a' never occurs within the plan")


def test_phase_outside_the_practice_weeks() -> None:
    result = load(
        practice(
            "at: '07:00'", "message: hi", "weeks: 1-2", "phases:", "  - weeks: 5", "    at: '08:00'"
        )
    )
    assert_only(
        result, 15, 16, "warning", "this phase covers no week in which the practice is active"
    )


def test_warnings_do_not_hide_errors_and_errors_block_the_plan() -> None:
    result = load(practice("at: '03:00'", f"message: {'a' * 170}", "duration: 45s"))
    # The small hours (line 11), the long SMS (line 12: its text is readable, so it is
    # rendered despite the error in its duration) and the duration (line 13).
    assert [(d.line, d.severity) for d in result.diagnostics] == [
        (11, "warning"),
        (12, "warning"),
        (13, "error"),
    ]
    assert result.plan is None


def test_several_warnings_and_still_a_plan() -> None:
    result = load(practice("at: '03:00'", "check_in: none", f"message: {'a' * 170}"))
    assert [(d.line, d.column, d.severity) for d in result.diagnostics] == [
        (7, 1, "warning"),
        (11, 9, "warning"),
        (13, 14, "warning"),
    ]
    assert result.warnings == result.diagnostics
    assert result.plan is not None
