"""Durations and time expressions: parsing, resolving modulo 24 hours, printing back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.core.timeexpr import (
    MINUTES_PER_DAY,
    TimeExpr,
    TimeSyntaxError,
    VariableError,
    format_clock,
    parse_clock,
    parse_duration,
    resolve_variables,
)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("5m", 5),
        ("1h", 60),
        ("1h30m", 90),
        ("90m", 90),
        ("2d", 2880),
        ("1d2h3m", 1563),
        (" 1h 30m ", 90),
        ("1H30M", 90),
    ],
)
def test_parse_duration(text: str, minutes: int) -> None:
    assert parse_duration(text) == minutes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("45s", "has seconds"),
        ("1m30s", "has seconds"),
        ("0m", "is zero"),
        ("0h0m", "is zero"),
        ("", "is not a duration"),
        ("abc", "is not a duration"),
        ("90", "is not a duration"),
        ("1m1h", "is not a duration"),
        ("-5m", "is not a duration"),
        ("1.5h", "is not a duration"),
    ],
)
def test_bad_durations(text: str, message: str) -> None:
    with pytest.raises(TimeSyntaxError, match=message):
        parse_duration(text)


def test_zero_duration_allowed_when_asked() -> None:
    assert parse_duration("0m", allow_zero=True) == 0


@pytest.mark.parametrize(
    ("text", "minutes"), [("0:00", 0), ("7:30", 450), ("07:30", 450), ("23:59", 1439)]
)
def test_parse_clock(text: str, minutes: int) -> None:
    assert parse_clock(text) == minutes


@pytest.mark.parametrize("text", ["24:00", "25:00", "07:60", "99:99"])
def test_clock_out_of_range(text: str) -> None:
    with pytest.raises(TimeSyntaxError, match="is not a time of day; use 00:00 to 23:59"):
        parse_clock(text)


@pytest.mark.parametrize("text", ["wake", "7", "730", "7:3", "007:30", "7.30"])
def test_not_a_clock(text: str) -> None:
    assert parse_clock(text) is None


@pytest.mark.parametrize(
    ("text", "expr"),
    [
        ("07:30", TimeExpr(None, 450)),
        ("wake", TimeExpr("wake", 0)),
        ("wake + 10m", TimeExpr("wake", 10)),
        ("wake+10m", TimeExpr("wake", 10)),
        ("bedtime - 1h30m", TimeExpr("bedtime", -90)),
        ("wake + 20h", TimeExpr("wake", 1200)),
        ("wake - 0m", TimeExpr("wake", 0)),
        ("  wake_2  ", TimeExpr("wake_2", 0)),
    ],
)
def test_parse_time_expression(text: str, expr: TimeExpr) -> None:
    assert TimeExpr.parse(text) == expr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7h", "is not a time"),
        ("wake +", "is not a time"),
        ("wake + ", "is not a time"),
        ("+ 10m", "is not a time"),
        ("wake * 2", "is not a time"),
        ("wake + 10", "is not a duration"),
        ("wake + 45s", "has seconds"),
        ("Wake", "is not a variable name"),
        ("WAKE + 1h", "is not a variable name"),
        ("25:00", "is not a time of day"),
    ],
)
def test_bad_time_expressions(text: str, message: str) -> None:
    with pytest.raises(TimeSyntaxError, match=message):
        TimeExpr.parse(text)


@pytest.mark.parametrize(
    ("text", "variables", "minutes"),
    [
        ("bedtime - 1h30m", {"bedtime": 22 * 60 + 30}, 21 * 60),
        ("bedtime - 1h30m", {"bedtime": 60}, 23 * 60 + 30),  # back past midnight
        ("wake + 20h", {"wake": 7 * 60}, 3 * 60),  # forward past midnight
        ("wake + 1d", {"wake": 7 * 60}, 7 * 60),
        ("wake - 3d", {"wake": 7 * 60}, 7 * 60),
        ("wake", {"wake": 0}, 0),
        ("23:59", {}, 1439),
    ],
)
def test_resolve_modulo_24_hours(text: str, variables: dict[str, int], minutes: int) -> None:
    assert TimeExpr.parse(text).resolve(variables) == minutes


def test_resolve_unknown_variable_raises_key_error() -> None:
    with pytest.raises(KeyError):
        TimeExpr.parse("wake").resolve({})


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        (TimeExpr(None, 450), "07:30"),
        (TimeExpr("wake", 0), "wake"),
        (TimeExpr("wake", 10), "wake + 10m"),
        (TimeExpr("bedtime", -90), "bedtime - 1h30m"),
        (TimeExpr("wake", 120), "wake + 2h"),
    ],
)
def test_str(expr: TimeExpr, text: str) -> None:
    assert str(expr) == text


def test_format_clock_wraps() -> None:
    assert format_clock(0) == "00:00"
    assert format_clock(1439) == "23:59"
    assert format_clock(1440 + 61) == "01:01"
    assert format_clock(-30) == "23:30"


def test_resolve_variables_in_terms_of_each_other() -> None:
    definitions = {
        "bedtime": TimeExpr.parse("wake + 15h30m"),
        "wake": TimeExpr.parse("06:45"),
        "screens": TimeExpr.parse("bedtime - 1h"),
    }
    assert resolve_variables(definitions) == {"bedtime": 1335, "wake": 405, "screens": 1275}


def test_resolve_variables_wraps_past_midnight() -> None:
    definitions = {"bedtime": TimeExpr.parse("23:30"), "late": TimeExpr.parse("bedtime + 1h")}
    assert resolve_variables(definitions)["late"] == 30


def test_resolve_variables_cycle() -> None:
    definitions = {
        "a": TimeExpr.parse("b + 1h"),
        "b": TimeExpr.parse("c"),
        "c": TimeExpr.parse("a"),
    }
    with pytest.raises(VariableError, match="loop: a -> b -> c -> a") as raised:
        resolve_variables(definitions)
    assert raised.value.name == "a"


def test_resolve_variables_unknown_reference() -> None:
    with pytest.raises(VariableError, match="variable 'a' uses unknown variable 'nope'"):
        resolve_variables({"a": TimeExpr.parse("nope + 1h")})


_NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)
_CLOCKS = st.integers(0, MINUTES_PER_DAY - 1)
_OFFSETS = st.integers(-3 * MINUTES_PER_DAY, 3 * MINUTES_PER_DAY)


@settings(max_examples=200, deadline=None)
@given(_CLOCKS)
def test_clock_round_trip(minutes: int) -> None:
    assert TimeExpr.parse(format_clock(minutes)) == TimeExpr(None, minutes)
    assert parse_clock(format_clock(minutes)) == minutes


@settings(max_examples=200, deadline=None)
@given(_NAMES, _OFFSETS)
def test_expression_round_trip(name: str, offset: int) -> None:
    expr = TimeExpr(name, offset)
    assert TimeExpr.parse(str(expr)) == expr


@settings(max_examples=200, deadline=None)
@given(_NAMES, _CLOCKS, _OFFSETS)
def test_resolve_is_value_plus_offset_modulo_a_day(name: str, value: int, offset: int) -> None:
    minutes = TimeExpr(name, offset).resolve({name: value})
    assert 0 <= minutes < MINUTES_PER_DAY
    assert (minutes - value - offset) % MINUTES_PER_DAY == 0


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 30), st.integers(0, 100), st.integers(0, 1000))
def test_duration_round_trip(days: int, hours: int, minutes: int) -> None:
    text = f"{days}d{hours}h{minutes}m"
    total = days * MINUTES_PER_DAY + hours * 60 + minutes
    if total == 0:
        with pytest.raises(TimeSyntaxError):
            parse_duration(text)
    else:
        assert parse_duration(text) == total
