"""Errors and warnings about a plan, each pinned to a place in its file."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]

# What would break a message over lines (or hide or reorder its text) when a value
# quoted in it holds it: C0 and C1 controls, DEL, the Unicode line and paragraph
# separators and the bidirectional overrides. Python's splitlines() breaks at all of
# the line breaks among them.
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters written as escapes (\\n,
    \\x00, \\u2028), so that it shows as one line of plain characters."""
    return _UNSHOWABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


def line_column(text: str, index: int) -> tuple[int, int]:
    """The 1-based line and column of `text[index]`, counted as YAML marks count them:
    a line ends at \\n, \\r\\n or a lone \\r, and a byte order mark takes no column."""
    head = text[:index]
    line = head.count("\n") + head.count("\r") - head.count("\r\n")
    start = max(head.rfind("\n"), head.rfind("\r")) + 1
    current = head[start:]
    return line + 1, len(current) - current.count("\ufeff") + 1


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a file. `line` and `column` are 1-based."""

    path: str
    line: int
    column: int
    severity: Severity
    message: str

    def __post_init__(self) -> None:
        # Every message is one line, whatever values it quotes (a key with a line break).
        object.__setattr__(self, "message", one_line(self.message))

    def __str__(self) -> str:
        path = one_line(self.path)
        return f"{path}:{self.line}:{self.column}: {self.severity}: {self.message}"


class PlanError(Exception):
    """A plan that cannot be used, with every diagnostic found in it."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.path, d.line, d.column))
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix when `word` is a near miss of one of `choices`."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def one_of(choices: Iterable[str]) -> str:
    return ", ".join(choices)
