"""People's details as a coach gives them: a name, a phone number, an email address, a
time zone, variables (and `text`, free text a database stores as given). One set of
rules for every way in (`tend participants add`, the JSON API), each refusal an
`Invalid` whose message says why and what to write instead.

Every function takes the text as given and returns it as Tend stores it (a name with
its spaces collapsed, a phone number in E.164, an address stripped). The lengths are
the API's (its schema says them too). Pure: the only thing read is the list of time
zones that `zoneinfo` knows, as `zoneinfo.ZoneInfo` itself reads it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping

from service.core.diagnostics import did_you_mean, one_line
from service.core.timeexpr import TimeExpr, TimeSyntaxError

MAX_NAME = 200  # characters of a name
MAX_PHONE = 32  # characters of a phone number as written (+1 (415) 555-0123 ...)
MAX_EMAIL = 320  # characters of an email address (RFC 3696: 64 + @ + 255)
MAX_ZONE = 64  # characters of a time zone's name (the longest IANA name has 32)
MAX_VARIABLES = 50  # variables of one participant or enrollment
MAX_VARIABLE = 64  # characters of a variable's value ("bedtime - 1h30m")
VARIABLE_NAME = r"^[a-z_][a-z0-9_]{0,62}$"  # as the plan language's, at most 63 characters

_SHOWN = 80  # characters of a refused value quoted in a message


class Invalid(ValueError):
    """A value a person gave that Tend cannot take; str() says why and what to write instead."""


def name(text: str) -> str:
    """A person's full name, its runs of spaces (tabs, line breaks) made one space."""
    if len(text) > MAX_NAME:
        raise Invalid(f"a name has at most {MAX_NAME} characters; write a shorter one")
    cleaned = " ".join(text.split())
    if not cleaned:
        raise Invalid("a name cannot be empty")
    _plain(cleaned, "a name")
    return cleaned


def phone(text: str, region: str | None = None) -> str:
    """A mobile number in E.164 (+14155550123), from any way of writing it with its
    country code (+1 (415) 555-0123), or without one when `region` (a country code such
    as US) says whose numbers it is written as ((415) 555-0123)."""
    import phonenumbers  # here: the CLI's plan commands do not pay for importing it

    wrong = f"{_shown(text)} is not a valid phone number; write it in E.164, such as +14155550123"
    if len(text) > MAX_PHONE:
        raise Invalid(wrong)
    _plain(text, "a phone number")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise Invalid(wrong) from None
    if not phonenumbers.is_valid_number(number):
        raise Invalid(wrong)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email(text: str) -> str:
    """An email address, stripped: something@somewhere.tld, with no spaces in it."""
    if len(text) > MAX_EMAIL:
        raise Invalid(f"an email address has at most {MAX_EMAIL} characters")
    address = text.strip()
    _plain(address, "an email address")
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in address):
        raise Invalid(f"{_shown(text)} is not an email address; write it as name@example.com")
    return address


def zone(text: str) -> str:
    """An IANA time zone's name (Europe/London), as given."""
    if text not in _zones():
        hint = ""
        if len(text) <= MAX_ZONE and _control(text) is None:
            hint = did_you_mean(text, _zones())
        raise Invalid(
            f"unknown time zone {_shown(text)}{hint}; use an IANA name such as America/New_York"
        )
    return text


def variables(values: Mapping[str, str]) -> dict[str, str]:
    """Variables by name, each value a time (07:30, wake, bedtime - 1h), stripped."""
    if len(values) > MAX_VARIABLES:
        raise Invalid(f"at most {MAX_VARIABLES} variables; give fewer")
    out: dict[str, str] = {}
    for key, text in values.items():
        if not re.fullmatch(VARIABLE_NAME, key):
            raise Invalid(
                f"{_shown(key)} is not a variable name; names are lower case letters, digits "
                "and _, such as wake, at most 63 of them"
            )
        if len(text) > MAX_VARIABLE:
            raise Invalid(f"variable '{key}': a value has at most {MAX_VARIABLE} characters")
        cleaned = text.strip()
        _plain(cleaned, f"variable '{key}'")
        try:
            TimeExpr.parse(cleaned)
        except TimeSyntaxError as exc:
            raise Invalid(f"variable '{key}': {exc}") from None
        out[key] = cleaned
    return out


def text(value: str) -> str:
    """Free text (a test message) that every database stores as given: any characters but
    NUL, and no lone surrogates."""
    if "\x00" in value:
        raise Invalid("must not contain NUL characters")
    if _surrogate(value) is not None:
        raise Invalid("must be valid Unicode text")
    return value


# --- internals ---------------------------------------------------------------------------


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _plain(value: str, what: str) -> None:
    """Refuse a value with a control character (other than spaces, tabs and line breaks,
    which each rule treats as it must) or a lone surrogate, which no database stores."""
    bad = _surrogate(value)
    if bad is not None:
        raise Invalid(
            f"{what} must be valid Unicode text; it has a lone surrogate (U+{ord(bad):04X})"
        )
    bad = _control(value)
    if bad is not None:
        shown = "NUL" if bad == "\x00" else f"U+{ord(bad):04X}"
        raise Invalid(f"{what} cannot contain control characters ({shown}); write plain text")


def _control(value: str) -> str | None:
    for char in value:
        if unicodedata.category(char) == "Cc" and not char.isspace():
            return char
    return None


def _surrogate(value: str) -> str | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return value[exc.start]
    return None


def _shown(value: str) -> str:
    """`value` quoted for a message: on one line, cut short, lone surrogates escaped."""
    cut = value if len(value) <= _SHOWN else value[:_SHOWN] + "..."
    shown = one_line(cut).encode("utf-8", "backslashreplace").decode("utf-8")
    return f"'{shown}'"
