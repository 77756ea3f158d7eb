"""People's details (service/core/validate.py): what each check takes, in what form it
returns it, and what it refuses, with a message that says why and what to write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from service.core import validate
from service.core.validate import Invalid


def refused(check: Callable[[Any], object], value: Any) -> str:
    """The message of `check(value)`'s refusal."""
    with pytest.raises(Invalid) as caught:
        check(value)
    return str(caught.value)


def test_invalid_is_a_value_error() -> None:
    """Pydantic reports a ValueError raised by a validator as a 422 with its message."""
    assert issubclass(Invalid, ValueError)


# --- name ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("Rae", "Rae"),
        ("  Rae   Example ", "Rae Example"),
        ("Rae\tvan\nder Berg", "Rae van der Berg"),  # tabs and line breaks: one space
        ("Zoë O'Brien-Núñez", "Zoë O'Brien-Núñez"),
        ("محمد", "محمد"),
        ("R" * validate.MAX_NAME, "R" * validate.MAX_NAME),
    ],
)
def test_a_name_is_stored_with_its_spaces_collapsed(text: str, stored: str) -> None:
    assert validate.name(text) == stored


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "a name cannot be empty"),
        ("  \t\n ", "a name cannot be empty"),
        ("R" * (validate.MAX_NAME + 1), "a name has at most 200 characters"),
        ("Ra\x00e", "a name cannot contain control characters (NUL)"),
        ("Ra\x1b[31me", "a name cannot contain control characters (U+001B)"),
        ("Rae\x7f", "(U+007F)"),
        ("Rae\x9b", "(U+009B)"),
        ("Ra\udc80e", "a name must be valid Unicode text; it has a lone surrogate (U+DC80)"),
    ],
)
def test_a_bad_name_is_refused(text: str, words: str) -> None:
    assert words in refused(validate.name, text)


# --- phone -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("+14155550123", "+14155550123"),
        ("+1 (415) 555-0123", "+14155550123"),
        ("+44 20 7946 0958", "+442079460958"),
        (" +33 1 42 68 53 00 ", "+33142685300"),
    ],
)
def test_a_phone_number_is_stored_in_e164(text: str, stored: str) -> None:
    assert validate.phone(text) == stored


@pytest.mark.parametrize(
    "text",
    ["555-0123", "+1415555012", "+999 123", "phone", "", "+1" + "4" * 40],
)
def test_a_bad_phone_number_is_refused_with_the_form_to_write(text: str) -> None:
    message = refused(validate.phone, text)
    assert "is not a valid phone number; write it in E.164, such as +14155550123" in message


def test_a_refused_phone_number_is_quoted_on_one_line() -> None:
    assert refused(validate.phone, "555-0123").startswith("'555-0123' is not a valid phone")
    assert "'+1 415\\n555' is not" in refused(validate.phone, "+1 415\n555")


def test_a_phone_number_with_a_control_character_is_refused() -> None:
    assert "a phone number cannot contain control characters (NUL)" in refused(
        validate.phone, "+14155550123\x00"
    )


# --- email -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("rae@example.com", "rae@example.com"),
        (" rae@example.com ", "rae@example.com"),
        ("rae+tend@mail.example.co.uk", "rae+tend@mail.example.co.uk"),
        ('"odd@local"@example.com', '"odd@local"@example.com'),
    ],
)
def test_an_email_address_is_stored_stripped(text: str, stored: str) -> None:
    assert validate.email(text) == stored


@pytest.mark.parametrize(
    "text", ["rae.example.com", "@example.com", "rae@example", "rae @example.com", "rae@"]
)
def test_a_bad_email_address_is_refused(text: str) -> None:
    message = refused(validate.email, text)
    assert message == f"'{text}' is not an email address; write it as name@example.com"


def test_an_email_address_has_limits() -> None:
    long = "r" * 320 + "@example.com"
    assert "an email address has at most 320 characters" in refused(validate.email, long)
    assert "cannot contain control characters (U+0007)" in refused(
        validate.email, "rae\x07@example.com"
    )


# --- zone ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["UTC", "Europe/London", "America/New_York", "Asia/Kolkata"])
def test_a_known_zone_is_taken_as_given(text: str) -> None:
    assert validate.zone(text) == text


def test_an_unknown_zone_suggests_a_near_miss() -> None:
    assert refused(validate.zone, "America/New_Yrok") == (
        "unknown time zone 'America/New_Yrok' (did you mean 'America/New_York'?); "
        "use an IANA name such as America/New_York"
    )


@pytest.mark.parametrize(
    "text",
    ["Mars/Base", "", "../../etc/passwd", "europe/london ", " UTC", "Europe/London\x00"],
)
def test_an_unknown_zone_is_refused(text: str) -> None:
    message = refused(validate.zone, text)
    assert message.startswith("unknown time zone '")
    assert message.endswith("use an IANA name such as America/New_York")


def test_a_huge_zone_is_refused_quickly_and_quoted_short() -> None:
    message = refused(validate.zone, "Europe/" + "x" * 100_000)
    assert "did you mean" not in message
    assert len(message) < 200


# --- variables -------------------------------------------------------------------------


def test_variables_are_stored_stripped() -> None:
    given = {"wake": " 06:30 ", "bedtime": "wake + 15h", "_x1": "bedtime - 1h30m"}
    assert validate.variables(given) == {
        "wake": "06:30",
        "bedtime": "wake + 15h",
        "_x1": "bedtime - 1h30m",
    }
    assert validate.variables({}) == {}


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"wake": "7pm"}, "variable 'wake': '7pm' is not a time; write 07:30"),
        ({"wake": "25:00"}, "variable 'wake': '25:00' is not a time of day"),
        ({"wake": " "}, "variable 'wake': '' is not a time"),
        ({"Wake": "07:00"}, "'Wake' is not a variable name; names are lower case letters"),
        ({"1st": "07:00"}, "'1st' is not a variable name"),
        ({"w" * 64: "07:00"}, "is not a variable name"),
        ({"wake": "07:00" + " " * 60}, "variable 'wake': a value has at most 64 characters"),
        ({"wake": "07:\x0000"}, "variable 'wake' cannot contain control characters (NUL)"),
        ({f"v{i}": "07:00" for i in range(51)}, "at most 50 variables"),
    ],
)
def test_bad_variables_are_refused(values: dict[str, str], words: str) -> None:
    assert words in refused(validate.variables, values)


# --- text ------------------------------------------------------------------------------


def test_free_text_keeps_everything_but_nul_and_lone_surrogates() -> None:
    assert validate.text("Hi\tRae,\nare you \x1b there?") == "Hi\tRae,\nare you \x1b there?"
    assert refused(validate.text, "a\x00b") == "must not contain NUL characters"
    assert refused(validate.text, "a\ud800b") == "must be valid Unicode text"
