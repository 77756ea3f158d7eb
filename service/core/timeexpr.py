"""Durations (`1h30m`) and time expressions (`7:30`, `wake`, `bedtime - 1h`).

Times are minutes after local midnight; expressions are taken modulo 24 hours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MINUTES_PER_DAY = 24 * 60

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_HAS_SECONDS = re.compile(r"^(?:\d+[dhm])*\d+s$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_VARIABLE = re.compile(r"^[a-z_][a-z0-9_]*$")
_EXPR = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:([+-])\s*(\S+))?$")

VARIABLE_PATTERN = _VARIABLE.pattern


class TimeSyntaxError(ValueError):
    """A duration or time that cannot be read; the message says what to write instead."""


# No duration in a plan is longer than the longest plan (3640 days, or 520 weeks): the
# default bound of `parse_duration`, which each use may narrow (a practice's duration
# is at most a day). It keeps every datetime made from a duration representable.
MAX_DURATION = 3640 * MINUTES_PER_DAY
_MAX_DIGITS = 12  # a number longer than this is past any bound, and not read at all


def parse_duration(
    text: str, *, allow_zero: bool = False, maximum: int = MAX_DURATION, limit: str = ""
) -> int:
    """`5m`, `1h`, `1h30m`, `2d` as whole minutes, at most `maximum`. `limit` says in
    words what the maximum is for (`a practice lasts at most 24h`), for the message."""
    compact = text.strip().replace(" ", "").lower()
    if _HAS_SECONDS.match(compact):
        raise TimeSyntaxError(
            f"'{text}' has seconds; durations are whole minutes, such as 5m, 1h or 1h30m"
        )
    match = _DURATION.match(compact)
    if not compact or not match:
        raise TimeSyntaxError(f"'{text}' is not a duration; write minutes and hours: 5m, 1h, 1h30m")
    groups = [g or "0" for g in match.groups()]
    total = maximum + 1
    if all(len(g.lstrip("0")) <= _MAX_DIGITS for g in groups):
        days, hours, minutes = (int(g) for g in groups)
        total = days * MINUTES_PER_DAY + hours * 60 + minutes
    if total > maximum:
        limit = limit or f"a duration is at most {format_duration(maximum)}"
        shown = text if len(text) <= 40 else f"{text[:20]}...{text[-8:]}"
        raise TimeSyntaxError(f"'{shown}' is too long: {limit}")
    if total == 0 and not allow_zero:
        raise TimeSyntaxError(f"'{text}' is zero; a duration is at least 1m")
    return total


def format_duration(minutes: int) -> str:
    """Whole minutes as a duration a plan may hold: `90` is `1h30m`, `5241600` is `3640d`."""
    days, rest = divmod(minutes, MINUTES_PER_DAY)
    if days and rest:
        return f"{days}d{_format_duration(rest)}"
    return f"{days}d" if days else _format_duration(rest)


def parse_clock(text: str) -> int | None:
    """`7:30` or `07:30` as minutes after midnight; None when `text` is not of that form."""
    match = _CLOCK.match(text.strip())
    if not match:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours > 23 or minutes > 59:
        raise TimeSyntaxError(f"'{text}' is not a time of day; use 00:00 to 23:59")
    return hours * 60 + minutes


def format_clock(minutes: int) -> str:
    minutes %= MINUTES_PER_DAY
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class TimeExpr:
    """A wall-clock time: a fixed clock time, or a variable plus an offset in minutes."""

    variable: str | None
    minutes: int

    @classmethod
    def parse(cls, text: str) -> TimeExpr:
        text = text.strip()
        clock = parse_clock(text)
        if clock is not None:
            return cls(None, clock)
        match = _EXPR.match(text)
        if not match:
            raise TimeSyntaxError(
                f"'{text}' is not a time; write 07:30, a variable such as wake, "
                "or a variable plus or minus a duration such as bedtime - 1h"
            )
        name, sign, duration = match.groups()
        if not _VARIABLE.match(name):
            raise TimeSyntaxError(
                f"'{name}' is not a variable name; names are lower case letters, digits and _"
            )
        offset = 0
        if sign:
            offset = parse_duration(duration, allow_zero=True)
            if sign == "-":
                offset = -offset
        return cls(name, offset)

    def resolve(self, variables: Mapping[str, int]) -> int:
        """Minutes after midnight, modulo 24 hours. Raises KeyError for an unknown variable."""
        base = 0 if self.variable is None else variables[self.variable]
        return (base + self.minutes) % MINUTES_PER_DAY

    def __str__(self) -> str:
        if self.variable is None:
            return format_clock(self.minutes)
        if self.minutes == 0:
            return self.variable
        sign = "+" if self.minutes > 0 else "-"
        return f"{self.variable} {sign} {_format_duration(abs(self.minutes))}"


def _format_duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + (f"{rest}m" if rest or not hours else "")


class VariableError(ValueError):
    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


def resolve_variables(definitions: Mapping[str, TimeExpr]) -> dict[str, int]:
    """Resolve variables that may be written in terms of each other (`bedtime: wake + 15h`)."""
    resolved: dict[str, int] = {}

    def visit(name: str, chain: tuple[str, ...]) -> int:
        if name in resolved:
            return resolved[name]
        if name in chain:
            cycle = " -> ".join((*chain[chain.index(name) :], name))
            raise VariableError(chain[0], f"variables refer to each other in a loop: {cycle}")
        expr = definitions[name]
        if expr.variable is None:
            value = expr.minutes
        elif expr.variable not in definitions:
            raise VariableError(name, f"variable '{name}' uses unknown variable '{expr.variable}'")
        else:
            value = (visit(expr.variable, (*chain, name)) + expr.minutes) % MINUTES_PER_DAY
        resolved[name] = value
        return value

    for name in definitions:
        visit(name, ())
    return resolved
