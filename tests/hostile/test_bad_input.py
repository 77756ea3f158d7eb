"""Bad input (issue 9, reliability): whatever arrives at one of Tend's edges, it is
answered with an error that says where, never with a traceback, a 5xx or unbounded work.

- Plan files, as `tend plans check` reads them (`Catalog.load_file`): plan-shaped YAML
  with random and wrong-typed values, odd indentation, unicode, duplicate keys,
  anchors and aliases, deep nesting, huge numbers, tabs, a BOM, NUL and non-UTF-8
  bytes; and the shipped plans with random lines deleted, duplicated, re-indented,
  rewritten or cut off. The loader never raises, and every diagnostic has a line and
  column inside the file and a message.
- SMS replies: `decide` (and so `parse_reply`, `interpret`, `match_practice`) on random
  text against random situations: never raises, answers with known templates and
  JSON-able contexts, opts out only on a whole-message keyword, records only what the
  open check-in asks for (a finite number; a rating on the practice's scale).
- HTTP: every route, on SQLite and PostgreSQL. The operations routes through
  schemathesis (they are the only non-`/api` routes in /openapi.json; the API has its
  own run in tests/integration/test_api_schema.py); Twilio's webhooks with signed forms
  that are malformed, huge, of the wrong type, with lying lengths, unsigned or badly
  signed, and wrong methods (4xx, or 2xx when the input is in fact valid; a refused
  request stores nothing); check-in, calendar, unsubscribe, dashboard and outbox
  routes with random tokens, queries, headers, methods and bodies: never 5xx.
- Message templates: the classic Jinja2 escapes (class walks to `os`, globals, config,
  includes, format-string attribute access, huge ranges, strings and powers) are refused
  with an error at the message's line, or render to harmless text, and never run
  anything or take unbounded memory.

Hypothesis is derandomized (no flakiness) and, where an example may be slow until a bug
is fixed, does not shrink (the failure names the input and the exception instead).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
import traceback
import tracemalloc
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import Table, func, select

from service.actions import cohorts
from service.actions.enrollments import enroll
from service.actions.links import check_in_link, feed_link
from service.catalog import Catalog
from service.clock import ManualClock
from service.core.conversation import ANSWERS, Asked, Decision, OpenCheckIn, Situation, decide
from service.core.expand import expand, resolve_plan_variables
from service.core.loader import LoadResult, load_plan
from service.core.plan import CheckIn, Plan
from service.core.preview import as_ics, as_json, build_preview
from service.core.render import SAMPLE_PERSON, Renderer, RenderError
from service.core.replies import KEYWORDS, interpret, match_practice, parse_reply
from service.core.sandbox import MAX_SIZE
from service.runtime import Runtime
from service.settings import load_settings
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.storage.tables import deliveries, occurrences, participants, replies, signups
from service.web.app import create_app
from service.web.unsubscribe import unsubscribe_url
from tests.support.engine import (
    Folders,
    RecordingChannel,
    make_folders,
    published_runtime,
    settings_for,
    sqlite_url,
)
from tests.support.plans import TEMPLATES as LOADER_TEMPLATES
from tests.support.services import TEMPLATE_DATABASE, PostgresServer, running
from tests.support.twilio_signing import twilio_signature

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "schedules").glob("*.yaml"))

# Examples may share a function-scoped fixture (a folder, an app): each example leaves
# it as valid as it found it.
FUZZ = settings(
    phases=(Phase.explicit, Phase.generate, Phase.shrink),  # no "explain": it takes long
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
# For inputs that may take seconds each while a bug stands (a plan of 10**20 days, say):
# no shrinking, so that a failure is reported at once, with the input that caused it.
NO_SHRINK = (Phase.explicit, Phase.generate)


def _crash(what: str, shown: object) -> str:
    """A failure message: the exception's last frames and the input, shortened."""
    text = repr(shown)
    return f"{what}\n{traceback.format_exc(limit=-6, chain=False)}\ninput: {text[:1500]}"


# =====================================================================================
# Plan files
# =====================================================================================


def assert_diagnosed(result: LoadResult, text: str, shown: object) -> None:
    """A loaded plan, or errors; every diagnostic with a place in the file and words.
    (Python's splitlines() breaks lines at least wherever YAML does, and a line is at
    most as long as the longest between two newlines.)"""
    last_line = len(text.splitlines()) + 1
    widest = max(len(line) for line in text.split("\n"))
    assert (result.plan is None) == bool(result.errors), (result.diagnostics, shown)
    for found in result.diagnostics:
        where = f"{found} (input {shown!r:.600})"
        assert found.message.strip(), where
        assert found.severity in ("error", "warning"), where
        assert 1 <= found.line <= last_line, where
        assert 1 <= found.column <= widest + 1, where


def _seen_text(data: bytes) -> str:
    """The text `Catalog.load_file` reads from these bytes (universal newlines)."""
    text = data.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def check_file(catalog: Catalog, path: Path, data: bytes, shown: object = None) -> LoadResult:
    """Write `data` to `path` and load it as `tend plans check` does; never raises."""
    path.write_bytes(data)
    shown = data if shown is None else shown
    try:
        result = catalog.load_file(path)
    except Exception:
        pytest.fail(_crash("the plan loader raised", shown), pytrace=False)
    assert_diagnosed(result, _seen_text(data), shown)
    return result


@pytest.fixture
def loader_catalog(tmp_path: Path) -> Catalog:
    """A catalog on the loader tests' templates (tests/support/plans.py), broken ones included."""
    root = tmp_path / "templates"
    summary = {
        "summaries/weekly.sms.j2": "Your week, {{ participant.first_name }}.",
        "summaries/weekly.email.j2": (
            "{% block subject %}Your week{% endblock %}{% block text %}T{% endblock %}"
            "{% block html %}<p>H</p>{% endblock %}"
        ),
    }
    for name, source in {**LOADER_TEMPLATES, **summary}.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")
    (tmp_path / "schedules").mkdir()
    return Catalog(tmp_path / "schedules", root)


@pytest.fixture
def shipped_catalog(tmp_path: Path) -> Catalog:
    """The shipped plans' own templates, which they need to load cleanly."""
    return Catalog(tmp_path, REPO / "templates")


# --- a small YAML writer, so that the fuzzer controls style, duplicates and aliases ----


@dataclass(frozen=True)
class Raw:
    """YAML source written as it is: `.inf`, `!!binary aGk=`, `0x1F`, an undefined alias."""

    source: str


@dataclass(frozen=True)
class Pairs:
    """A mapping as written, so that a key may come twice."""

    items: tuple[tuple[Any, Any], ...]


@dataclass(frozen=True)
class Anchor:
    name: str
    value: Any


@dataclass(frozen=True)
class Alias:
    name: str


_PLAIN_SAFE = re.compile(r"[A-Za-z][A-Za-z0-9 _./+-]*[A-Za-z0-9]|[A-Za-z]")


class Writer:
    """Writes a tree of Pairs, lists and scalars as YAML, choosing styles at random:
    block or flow collections, plain, single- or double-quoted scalars, an indentation
    step of 1 to 4, sequences indented under their key or not. A `careless` writer also
    leaves the quotes off text that needs them, as people do."""

    def __init__(self, rnd: random.Random, *, careless: bool = True) -> None:
        self.rnd = rnd
        self.careless = careless
        self.step = rnd.choice([1, 2, 2, 2, 3, 4])
        self.dash_indent = rnd.random() < 0.5
        self.lines: list[str] = []

    def document(self, tree: Any) -> str:
        if isinstance(tree, Pairs) and tree.items:
            for key, value in tree.items:
                self._block(value, 0, f"{self._key(key)}:")
        else:
            self.lines.append(self._inline(tree))
        return "\n".join(self.lines) + "\n"

    def _block(self, value: Any, indent: int, head: str) -> None:
        anchor = ""
        if isinstance(value, Anchor):
            anchor, value = f" &{value.name}", value.value
        pad = " " * indent
        flow = self.rnd.random() < 0.25
        if isinstance(value, Pairs) and value.items and not flow:
            self.lines.append(f"{pad}{head}{anchor}")
            for key, item in value.items:
                self._block(item, indent + self.step, f"{self._key(key)}:")
        elif isinstance(value, list) and value and not flow:
            self.lines.append(f"{pad}{head}{anchor}")
            inner = indent + (self.step if self.dash_indent or head == "-" else 0)
            for item in value:
                self._block(item, inner, "-")
        else:
            self.lines.append(f"{pad}{head}{anchor} {self._inline(value)}".rstrip())

    def _inline(self, value: Any) -> str:
        if isinstance(value, Anchor):
            return f"&{value.name} {self._inline(value.value)}"
        if isinstance(value, Alias):
            return f"*{value.name}"
        if isinstance(value, Raw):
            return value.source
        if isinstance(value, Pairs):
            inner = ", ".join(f"{self._key(k)}: {self._inline(v)}" for k, v in value.items)
            return "{" + inner + "}"
        if isinstance(value, list):
            return "[" + ", ".join(self._inline(v) for v in value) + "]"
        return self._scalar(value)

    def _key(self, key: Any) -> str:
        if isinstance(key, str) and re.fullmatch(r"[a-z_][a-z0-9_-]*", key):
            return key
        return self._inline(key)

    def _scalar(self, value: Any) -> str:
        if value is None:
            return self.rnd.choice(["~", "null", "''"])
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            if math.isnan(value):
                return ".nan"
            if math.isinf(value):
                return ".inf" if value > 0 else "-.inf"
            return repr(value)
        if isinstance(value, int):
            return str(value)
        text = str(value)
        style = self.rnd.random()
        if style < 0.3 and _PLAIN_SAFE.fullmatch(text):
            return text
        if style < 0.45 and text.isprintable():
            return "'" + text.replace("'", "''") + "'"
        if style < 0.5 and self.careless:
            return text  # as written by someone who forgot the quotes: maybe not YAML
        return _double_quoted(text, ascii_only=self.rnd.random() < 0.3)


def _double_quoted(text: str, *, ascii_only: bool) -> str:
    """A YAML double-quoted scalar; what YAML does not allow raw is escaped."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable() and not 0xD800 <= code <= 0xDFFF and (code < 128 or not ascii_only):
            out.append(char)
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


# --- plan-shaped documents ---------------------------------------------------------------

HUGE = [10**20, -(10**20), 2**63, 2**64 + 1, 1e308, 1e309, -1e309, math.nan]
ODD_TEXT = [
    "",
    " ",
    "\u202ertl\u202c",
    "zero\u200bwidth\u200djoin",
    "tab\there",
    "nul\x00byte",
    "bell\x07",
    "line\nbreak",
    "Ünïcödé 👍🏽",
    "ｆｕｌｌ",
    "x" * 300,
    "{{",
    "%",
    "&a",
    "*a",
    "- a",
    "? a",
    "a: b",
    "# c",
    "@",
    "`",
]
ODD_RAW = [
    Raw(".inf"),
    Raw("-.inf"),
    Raw(".nan"),
    Raw("0x1F"),
    Raw("0o17"),
    Raw("1_000"),
    Raw("!!binary aGk="),
    Raw("!!timestamp 2026-01-05"),
    Raw("2026-01-05"),
    Raw("!!set {a, b}"),
    Raw("!!omap [a: 1]"),
    Raw("!custom x"),
    Raw("*undefined"),
    Raw("|\n  a block\n"),
    Raw("yes"),
    Raw("off"),
    Raw("<<"),
]
SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([*HUGE, *ODD_TEXT, *ODD_RAW, True, False, None, 0, -1, 1, 1.5]),
    st.text(max_size=12),
    st.integers(-10_000, 10_000),  # (the huge ones are above: they take seconds each)
    st.floats(),
)


def _pairs(keys: st.SearchStrategy[Any], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(st.tuples(keys, values), max_size=4).map(lambda items: Pairs(tuple(items)))


CHAOS: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), _pairs(st.one_of(st.text(max_size=6), SCALARS), inner)
    ),
    max_leaves=6,
)


# Each key's values: the first is right, the others are right-shaped (some of them
# subtly wrong). A document draws how messy it is: 0 takes the right value of every key
# (it loads), 1 any right-shaped values, 2 now and then anything at all (CHAOS).
Values = tuple[Any, ...]
TIMES: Values = (
    "07:00", "7:30", "23:59", "24:00", "7:5", "wake", "wake + 10m", "bedtime - 1h30m",
    "wake + 99999999999999999999d", "nope + 1h", "Wake", "07:00:00", "wake +", "wake * 2", 730,
)  # fmt: skip
DURATIONS: Values = (
    "5m", "1h", "1h30m", "2d", "45s", "0m", "m", "5 m", "-5m", "1000000d",
    "99999999999999999999m",
)  # fmt: skip
PRACTICE_FIELDS: dict[str, Values] = {
    "id": ("a", "walk", "Bad", "", "a" * 64, "-a"),
    "category": ("sleep", "movement", "other", "sleeep", "Sleep"),
    "title": ("Screens off", "", "Ünïcödé ☕", "{{ 7 * 7 }}"),
    "at": TIMES,
    "message": (
        "hi",
        "{{ participant.first_name }}, {{ vars.wake }}",
        "{{ nope }}",
        "{{ item }} {{ check_in_url }}",
        "{% if %}",
        "{{ practice.title }} {{ occurrence.local.strftime('%A') }}",
        "{{ 1 / 0 }}",
        "x" * 400,
        "Ünïcödé 👍 \u202e\u200d",
    ),
    "every": ("day", "weekday", "weekend", "mon", "daily", ["mon", "fri"], ["mon", "mon"], []),
    "rrule": (
        "FREQ=WEEKLY;BYDAY=MO",
        "FREQ=DAILY;INTERVAL=2",
        "FREQ=HOURLY",
        "FREQ=DAILY;BYHOUR=7",
        "DTSTART=20260101",
        "FREQ=WEEKLY;BYDAY=XX",
        "garbage",
        "FREQ=DAILY;UNTIL=20260101Z",
        "FREQ=YEARLY;BYYEARDAY=366;BYMONTH=2",
        "FREQ=DAILY;COUNT=99999999999999999999",
        "FREQ=DAILY;INTERVAL=0",
        ";;",
    ),
    "weeks": (1, 3, "1-2", "2-1", "0", "1-999", [1, "2-3"], [], -1, True),
    "duration": DURATIONS,
    "channels": (["sms"], ["sms", "email", "calendar"], ["fax"], ["sms", "sms"], [], "sms"),
    "template": ("sleep/wind-down", "broken/syntax", "broken/no-html", "nope", "../etc/x"),
    "rotate": (["a", "b"], [], ["{{ nope }}"], "a"),
    "check_in": (
        "done",
        "none",
        "rating",
        "number",
        "text",
        "ratin",
        Pairs((("kind", "rating"), ("scale", [1, 5]))),
        Pairs((("kind", "rating"), ("scale", [5, 1]))),
        Pairs((("kind", "rating"), ("scale", [10**30, -(10**30)]))),
        Pairs((("kind", "rating"), ("scale", [1]))),
        Pairs((("kind", "number"), ("unit", "minutes"), ("question", "How long?"))),
        Pairs((("kind", "text"), ("scale", [1, 5]))),
    ),
    "window": DURATIONS,
    "nudge": (
        Pairs((("after", "90m"), ("message", "Still time."))),
        Pairs((("after", "99999999999999999999m"), ("message", "x"))),
        Pairs((("afer", "90m"),)),
    ),
    "phases": (
        [Pairs((("weeks", "1-2"), ("message", "early")))],
        [Pairs((("weeks", 1), ("at", "08:00"))), Pairs((("weeks", "1-3"), ("duration", "5m")))],
        [Pairs((("message", "no weeks"),))],
    ),
    "bogus": (1, "x", None),
}
PLAN_FIELDS: dict[str, Values] = {
    "plan": ("sleep", "a-b", "Bad Id", "", "x" * 70),
    "title": ("Sleep", "", "Ünïcödé"),
    "summary": ("Wind down.", None),
    # Lengths past the longest plan are in CHAOS (huge integers) as well.
    "weeks": (8, -1, 0, 1, 2, 520, 521, "8", 1.5),
    "days": (7, 1, 3640, 3641, 0),
    "variables": (
        Pairs((("wake", "07:00"), ("bedtime", "22:30"))),
        Pairs((("wake", "bedtime - 9h"), ("bedtime", "wake + 15h"))),
        Pairs((("Bad", "07:00"), ("t", "nope"))),
        Pairs((("wake", 700),)),
    ),
    "weekly_summary": (
        Pairs((("day", "sun"), ("at", "18:00"), ("channels", ["sms", "email"]))),
        None,
        Pairs((("day", "sunday"), ("channels", ["calendar"]))),
        Pairs((("at", "wake + 1h"),)),
    ),
    "defaults": (None,),  # drawn as a practice without required keys
    "bogus": (1, "x", None),
}
PRACTICE_REQUIRED = ["id", "category", "title", "at", "message"]


def _value(draw: st.DrawFn, values: Values, mess: int) -> Any:
    if mess == 0:
        return values[0]
    if mess == 2 and draw(st.integers(0, 4)) == 4:  # (Hypothesis favours small numbers)
        return draw(CHAOS)
    return draw(st.sampled_from(values))


def _keys(draw: st.DrawFn, required: list[str], optional: Sequence[str], mess: int) -> list[str]:
    """The required keys and some others, in any order; in a mess, one of them twice."""
    others = [key for key in optional if key not in required and (mess or key != "bogus")]
    keys = list(required)
    if others:
        keys += draw(st.lists(st.sampled_from(others), max_size=4, unique=True))
    if draw(st.booleans()):
        keys = draw(st.permutations(keys))
    if mess == 2 and keys and draw(st.integers(0, 4)) == 4:
        keys.append(draw(st.sampled_from(keys)))
    return keys


def _practice(draw: st.DrawFn, mess: int, required: list[str]) -> Pairs:
    # Optional keys in a tidy practice would clash (message and template, every and
    # rrule), so it has none.
    optional = sorted(PRACTICE_FIELDS) if mess else []
    keys = _keys(draw, required, optional, mess)
    return Pairs(tuple((key, _value(draw, PRACTICE_FIELDS[key], mess)) for key in keys))


@st.composite
def plan_documents(draw: st.DrawFn) -> Pairs:
    mess = draw(st.integers(0, 2))
    length = draw(st.sampled_from(["weeks", "days"]))
    optional = [key for key in PLAN_FIELDS if mess == 2 or key not in ("weeks", "days")]
    keys = _keys(draw, ["plan", "title", length, "practices"], optional, mess)
    items: list[tuple[Any, Any]] = []
    for key in keys:
        if key == "practices":
            count = draw(st.integers(1 if mess < 2 else 0, 3))
            value: Any = [_practice(draw, mess, PRACTICE_REQUIRED) for _ in range(count)]
            if mess == 2 and draw(st.integers(0, 4)) == 4:
                value = draw(CHAOS)
        elif key == "defaults":
            value = _practice(draw, mess, [])
        else:
            value = _value(draw, PLAN_FIELDS[key], mess)
        items.append((key, value))
    # Anchors and aliases: one value anchored, and used again under another key (or an
    # alias to nothing, or before its anchor).
    if draw(st.integers(0, 2)) == 2:
        at = draw(st.integers(0, len(items) - 1))
        key, value = items[at]
        items[at] = (key, Anchor("shared", value))
        target = draw(st.integers(at + 1, len(items))) if draw(st.integers(0, 4)) < 4 else 0
        name = "undefined" if mess and draw(st.integers(0, 4)) == 4 else "shared"
        items.insert(target, (draw(st.sampled_from(["summary", "defaults", "copy"])), Alias(name)))
    return Pairs(tuple(items))


@dataclass(frozen=True)
class Noise:
    """One change to a written document, in text or in bytes."""

    kind: str
    at: float = 0.0  # where, as a fraction of the length
    what: Any = None

    def apply(self, data: bytes) -> bytes:
        where = int(len(data) * self.at)
        if self.kind == "bom":
            return b"\xef\xbb\xbf" + data
        if self.kind == "crlf":
            return data.replace(b"\n", b"\r\n")
        if self.kind == "cr":
            return data.replace(b"\n", b"\r")
        if self.kind == "insert":
            inserted: bytes = self.what
            return data[:where] + inserted + data[where:]
        if self.kind == "truncate":
            return data[:where]
        depth: int = self.what
        if self.kind == "nest":
            return data + b"deep: " + b"[" * depth + b"]" * depth + b"\n"
        if self.kind == "nest-block":
            return data + b"".join(b" " * i + b"k:\n" for i in range(depth)) + b"\n"
        if self.kind == "duplicate-first-line":
            return data.split(b"\n", 1)[0] + b"\n" + data
        raise AssertionError(self.kind)


INSERTS = [b"\t", b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\r", b"\x07",
           b"\xe2\x80\xae", b"\xc2\x85", b"&a ", b"*a", b"{", b"[", b"'", b'"', b"{{", b": ",
           b"\n  ", b"\n- ", b"#"]  # fmt: skip
NOISE = st.one_of(
    st.sampled_from([Noise("bom"), Noise("crlf"), Noise("cr"), Noise("duplicate-first-line")]),
    st.builds(Noise, st.just("insert"), st.floats(0, 1), st.sampled_from(INSERTS)),
    st.builds(
        Noise,
        st.just("insert"),
        st.floats(0, 1),
        st.characters().map(lambda c: c.encode("utf-8", "surrogatepass")),
    ),
    st.builds(Noise, st.just("truncate"), st.floats(0, 1)),
    st.builds(Noise, st.just("nest"), st.just(0.0), st.sampled_from([1000, 100, 10])),
    st.builds(Noise, st.just("nest-block"), st.just(0.0), st.sampled_from([1000, 100, 10])),
)


@settings(FUZZ, max_examples=250, phases=NO_SHRINK)
@given(
    tree=plan_documents(),
    rnd=st.randoms(use_true_random=False),
    careless=st.integers(0, 3).map(lambda n: n == 3),
    noise=st.lists(NOISE, max_size=2),
)
def test_plan_shaped_files_load_or_say_where_they_are_wrong(
    loader_catalog: Catalog, tree: Pairs, rnd: random.Random, careless: bool, noise: list[Noise]
) -> None:
    data = Writer(rnd, careless=careless).document(tree).encode("utf-8", "surrogatepass")
    for change in noise:
        data = change.apply(data)
    check_file(loader_catalog, loader_catalog.schedules_dir / "fuzz.yaml", data)


def test_the_plan_writer_writes_plans_the_loader_accepts(loader_catalog: Catalog) -> None:
    """The fuzzer's writer, in every style, writes a good plan as a loadable file: the
    fuzz above is about the values, not about a writer that only makes syntax errors."""
    tree = Pairs(
        (
            ("plan", "sleep"),
            ("title", "Sleep"),
            ("weeks", 2),
            ("variables", Anchor("v", Pairs((("wake", "07:00"),)))),
            ("practices", [Pairs((("id", "a"), ("category", "sleep"), ("title", "A"),
                                  ("at", "wake + 10m"), ("channels", ["sms", "calendar"]),
                                  ("message", "Hi {{ participant.first_name }}: it's 7")))]),
        )
    )  # fmt: skip
    for seed in range(40):
        data = Writer(random.Random(seed), careless=False).document(tree).encode()
        result = check_file(loader_catalog, loader_catalog.schedules_dir / "w.yaml", data)
        assert result.errors == [], (data.decode(), result.diagnostics)


# --- the shipped plans, mutated ------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    kind: str
    line: int  # taken modulo the number of lines
    arg: Any = None

    def apply(self, lines: list[bytes]) -> list[bytes]:
        if not lines:
            return lines
        # Each kind of change picks among the lines it can change. (A plan's length made
        # huge costs seconds per example while that bug stands: it has a test of its
        # own, "days-past-the-longest-plan".)
        fit = {
            "bignum": rb"^(?!weeks:|days:)[^#]*\d",
            "scalar": rb"^\s*(?:- )?[\w-]+:\s|^\s*- ",
        }.get(self.kind)
        where = [n for n, text in enumerate(lines) if fit is None or re.search(fit, text)]
        if not where:
            return lines
        i = where[self.line % len(where)]
        line = lines[i]
        if self.kind == "delete":
            return lines[:i] + lines[i + 1 :]
        if self.kind == "duplicate":
            return lines[: i + 1] + lines[i:]
        if self.kind == "indent":
            body = line.lstrip(b" ")
            return [
                *lines[:i],
                b" " * max(0, len(line) - len(body) + self.arg) + body,
                *lines[i + 1 :],
            ]
        if self.kind == "scalar":
            match = re.match(rb"^(\s*(?:- )?[\w-]+:\s|\s*- )(.*)$", line)
            if match is None:
                return lines
            return [*lines[:i], match.group(1) + self.arg, *lines[i + 1 :]]
        if self.kind == "bignum":
            return [*lines[:i], re.sub(rb"\d+", self.arg, line, count=1), *lines[i + 1 :]]
        if self.kind == "swap":
            j = self.arg % len(lines)
            out = list(lines)
            out[i], out[j] = out[j], out[i]
            return out
        if self.kind == "join":
            return [*lines[:i], line + b" " + b"".join(lines[i + 1 : i + 2]), *lines[i + 2 :]]
        if self.kind == "truncate":
            return [*lines[:i], line[: len(line) // 2]]
        if self.kind == "insert-bytes":
            cut = len(line) // 2
            return [*lines[:i], line[:cut] + self.arg + line[cut:], *lines[i + 1 :]]
        raise AssertionError(self.kind)


SCALAR_SOURCES = st.one_of(
    st.sampled_from(
        [
            b"",
            b"~",
            b"0",
            b"-1",
            b"1e309",
            b".nan",
            b"[]",
            b"{}",
            b"[a, [b, [c]]]",
            b"'unclosed",
            b'"\\x00"',
            b'"\\ud83d"',
            b"*nope",
            b"&a x",
            b"!!binary aGk=",
            b"99999999999999999999m",
            b"'1-999'",
            b"{{ nope }}",
            b"'{{ participant.phone }}'",
            b"\t",
            b"\xff\xfe",
            b"\xef\xbb\xbf",
            b"FREQ=HOURLY",
            b"24:00",
            b"wake + 99999999999999999999d",
            b"yes",
            b"null",
        ]
    ),
    st.text(max_size=15).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(-10_000, 10_000).map(lambda n: str(n).encode()),  # big ones: "bignum"
)
LINE = st.integers(0, 10**6)  # any line: taken modulo the lines a change fits
BIG_NUMBERS = [b"100000000000000000000", b"9" * 400, b"3641", b"521", b"99", b"0", b"-1"]
MUTATIONS = st.one_of(
    st.builds(Mutation, st.sampled_from(["delete", "duplicate", "join", "truncate"]), LINE),
    st.builds(Mutation, st.just("indent"), LINE, st.integers(-4, 4)),
    st.builds(Mutation, st.just("scalar"), LINE, SCALAR_SOURCES),
    st.builds(Mutation, st.just("bignum"), LINE, st.sampled_from(BIG_NUMBERS)),
    st.builds(Mutation, st.just("swap"), LINE, LINE),
    st.builds(Mutation, st.just("insert-bytes"), LINE, st.sampled_from(INSERTS)),
)


def test_the_shipped_plans_load_cleanly_before_mutation(shipped_catalog: Catalog) -> None:
    """What the mutation fuzz starts from: every shipped plan, as is, loads."""
    assert SHIPPED, "no shipped plans in schedules/"
    for path in SHIPPED:
        result = check_file(
            shipped_catalog, shipped_catalog.schedules_dir / path.name, path.read_bytes()
        )
        assert result.plan is not None, result.diagnostics


@settings(FUZZ, max_examples=120, phases=NO_SHRINK)
@given(
    source=st.sampled_from(SHIPPED),
    mutations=st.lists(MUTATIONS, min_size=1, max_size=4),
    cut=st.none() | st.floats(0, 1),
)
def test_mutated_shipped_plans_load_or_say_where_they_are_wrong(
    shipped_catalog: Catalog, source: Path, mutations: list[Mutation], cut: float | None
) -> None:
    lines = source.read_bytes().split(b"\n")
    for mutation in mutations:
        lines = mutation.apply(lines)
    data = b"\n".join(lines)
    if cut is not None:
        data = data[: int(len(data) * cut)]
    shown = (source.name, mutations, cut)
    check_file(shipped_catalog, shipped_catalog.schedules_dir / source.name, data, shown)


# --- hostile files, one at a time ------------------------------------------------------

ONE_PRACTICE = "plan: x\ntitle: t\n{length}\npractices:\n  - id: a\n    category: sleep\n    title: A\n    at: '07:00'\n    message: hi\n{extra}"


def _plan(length: str = "weeks: 1", *extra: str) -> bytes:
    return ONE_PRACTICE.format(length=length, extra="".join(f"    {x}\n" for x in extra)).encode()


HOSTILE = {
    "deep-flow-nesting": _plan() + b"summary: " + b"[" * 300 + b"]" * 300 + b"\n",
    "deep-block-nesting": _plan()
    + b"summary:\n"
    + b"".join(b" " * i + b"k:\n" for i in range(1, 300)),
    "deep-alias-chain": b"a0: &a0 [x]\n"
    + b"".join(b"a%d: &a%d [*a%d]\n" % (i, i, i - 1) for i in range(1, 700)),
    "days-past-the-longest-plan": _plan("days: 3000000"),
    "a-window-of-10**20-minutes": _plan("weeks: 1", "window: 99999999999999999999m"),
    "a-nudge-after-10**20-minutes": _plan(
        "weeks: 1",
        "window: 99999999999999999999m",
        "nudge: {after: 99999999999999999998m, message: x}",
    ),
    "a-scale-of-10**30": _plan(
        "weeks: 1",
        "check_in: {kind: rating, scale: [-1000000000000000000000000000000, 1000000000000000000000000000000]}",
    ),
    "every-tag": b"plan: !!binary aGk=\ntitle: !!timestamp 2026-01-05\nweeks: !!float 1\npractices: !!set {a}\nvariables: !!omap [wake: '07:00']\n",
    "a-python-tag": b"plan: !!python/object/apply:os.system ['touch SENTINEL']\ntitle: t\nweeks: 1\n",
    "complex-keys": b"? [a, b]\n: c\n? {d: e}\n: f\nplan: x\n1: 2\n~: 3\n",
    "merge-keys": b"base: &b {id: a, category: sleep}\nplan: x\ntitle: t\nweeks: 1\npractices:\n  - <<: *b\n    <<: *b\n",
    "two-documents": b"plan: x\n---\nplan: y\n...\n",
    "a-bom-and-crlf": b"\xef\xbb\xbf" + _plan().replace(b"\n", b"\r\n"),
    "only-a-bom": b"\xef\xbb\xbf",
    "nothing": b"",
    "tabs-for-indentation": _plan().replace(b"    ", b"\t"),
    "non-utf8": b"plan: x\ntitle: caf\xe9\n",
    "utf16": "plan: x\ntitle: t\n".encode("utf-16"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_plan_files_get_errors_with_positions(
    loader_catalog: Catalog, tmp_path: Path, name: str
) -> None:
    sentinel = tmp_path / "pwned"
    data = HOSTILE[name].replace(b"SENTINEL", str(sentinel).encode())
    check_file(loader_catalog, loader_catalog.schedules_dir / f"{name}.yaml", data)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("data", "line", "column"),
    [
        (b"plan: x\ntitle: t\nweeks: 1\nsummary: a\x00b\n", 4, 11),
        (b"plan: x\ntitle: t\nweeks: 1\n\nsummary: bell\x07\n", 5, 14),
        (b"plan: x\ntitle: t\nweeks: 1\nsummary: caf\xe9\n", 4, 13),
    ],
    ids=["nul", "control-character", "not-utf8"],
)
def test_an_unreadable_character_is_reported_where_it_is(
    loader_catalog: Catalog, data: bytes, line: int, column: int
) -> None:
    """Contract 1, Errors: LINE and COL point at the offending value, and each error is
    one line of `tend plans check`'s output."""
    result = check_file(loader_catalog, loader_catalog.schedules_dir / "bad.yaml", data)
    assert len(result.errors) == 1, result.errors
    found = result.errors[0]
    assert "\n" not in found.message, repr(found.message)
    assert (found.line, found.column) == (line, column), str(found)


def _peak_bytes(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _alias_bomb(levels: int) -> str:
    """The billion laughs: each level a list of ten aliases of the one before."""
    lines = ["plan: x", "title: t", "weeks: 1", "variables: &l0 {wake: '07:00'}"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    lines.append("practices: [{id: a, category: sleep, title: A, at: '07:00', message: hi}]")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "text",
    [
        _alias_bomb(5),  # 10**5 copies from 430 bytes; 9 levels would be 10**9
        _plan("weeks: 0", "weeks: '1-200000'").decode(),  # a range no plan can have
    ],
    ids=["billion-laughs", "weeks-range-of-an-unknown-length"],
)
def test_a_small_plan_file_takes_little_memory(loader_catalog: Catalog, text: str) -> None:
    """A plan file of a few hundred bytes must not make the loader build millions of
    values: the same file with a few more characters would exhaust the machine."""
    baseline = _peak_bytes(lambda: load_plan(_plan().decode(), "x.yaml", loader_catalog.renderer))
    peak = _peak_bytes(lambda: load_plan(text, "x.yaml", loader_catalog.renderer))
    assert peak < baseline + 8_000_000, f"{peak / 1e6:.0f} MB for {len(text)} bytes"


def test_a_plan_that_loads_can_be_previewed(loader_catalog: Catalog) -> None:
    """What `tend plans check` accepts, `tend plans preview` (and the scheduler) can use:
    a calendar length it cannot represent is an error at its line."""
    text = _plan("weeks: 1", "channels: [sms, calendar]", "duration: 99999999999999999999m")
    result = check_file(loader_catalog, loader_catalog.schedules_dir / "long.yaml", text)
    if result.plan is None:
        assert any(d.line == 11 for d in result.errors), result.errors
        return
    try:
        preview = build_preview(result.plan, date(2026, 3, 2), ZoneInfo("America/New_York"), {},
                                loader_catalog.renderer, "https://tend.test/c")  # fmt: skip
        as_json(preview)
        as_ics(
            preview,
            loader_catalog.renderer,
            "https://tend.test/c",
            datetime(2026, 3, 1, tzinfo=UTC),
        )
    except Exception:
        pytest.fail(_crash("a plan that passed the check cannot be previewed", text), pytrace=False)


def test_every_error_is_one_line_of_the_check_output(loader_catalog: Catalog) -> None:
    """Contract 1, Errors: one error a line, `PATH:LINE:COL: error: MESSAGE`. A value
    quoted in a message is the writer's, and may hold a line break."""
    texts = [
        'plan: "Bad\\nId"\ntitle: t\nweeks: 1\npractices: [{id: a, category: sleep, title: A, at: "07:00", message: hi}]\n',
        '"odd\\nkey": 1\nplan: x\ntitle: t\nweeks: 1\npractices: [{id: a, category: sleep, title: A, at: "07:00", message: hi}]\n',
        'plan: x\ntitle: t\nweeks: 1\npractices: [{id: a, category: "sle\\nep", title: A, at: "7:00\\n", message: hi}]\n',
    ]
    broken = []
    for number, text in enumerate(texts):
        result = check_file(
            loader_catalog, loader_catalog.schedules_dir / f"l{number}.yaml", text.encode()
        )
        assert result.errors, text
        broken += [str(d) for d in result.diagnostics if len(str(d).splitlines()) != 1]
    assert broken == []


# =====================================================================================
# SMS replies
# =====================================================================================

OPT_OUT = frozenset(word for word, kind in KEYWORDS.items() if kind == "opt_out")
ACTIONS = frozenset(
    {"opt_out", "opt_in", "help", "pause", "resume", "check_in", "ask", "none"}
    | {"later", "set_time", "times", "quiet"}
)
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SPECS = [
    CheckIn("done"),
    CheckIn("none"),
    CheckIn("text"),
    CheckIn("rating", (1, 5)),
    CheckIn("rating", (0, 10)),
    CheckIn("rating", (-5, 5)),
    CheckIn("rating", None),
    CheckIn("number", unit="minutes"),
    CheckIn("number", unit="hours"),
    CheckIn("number", unit="km"),
    CheckIn("number", unit=None),
]
PRACTICES = {
    "walk": "Morning walk",
    "mood": "Mood check",
    "scan": "Body scan",
    "stop-and-breathe": "Stop and breathe",
    "yes-list": "Yes",
    "cafe": "Café ☕ time",
    "full": "Ｆｕｌｌ ｗｉｄｔｈ",
    "five": "5",
}

# Pieces of messages people (and phones) send.
WORDS = [
    *sorted(KEYWORDS), "done", "did it", "DONE!", "y", "n", "skip", "skipped", "no", "yes",
    "pause", "resume", "not", "didn't", "can't", "walk", "walked", "mood", "scan", "breathe",
    "minutes", "min", "mins", "hours", "h", "stars", "km", "please", "today", "I", "just",
]  # fmt: skip
NUMBERS = [
    "4", "-0", "0", "-1", "5", "10", "4/5", "7/10", "1,5", "10,000", "1.000,5", "1e309", "1e5",
    "NaN", "nan", "inf", "Infinity", "-inf", "∞", "４", "٤", "߄", "½", "⁴", "①", "9" * 400,
    "1" * 20, "0x10", "1_000", ".5", "5.", "3.14159", "-.5", "+5", "5-", "1-5", "2:30",
]  # fmt: skip
ODD = [
    "👍", "👍🏽", "✅", "🛑", "💪", "\u200f", "\u200e", "\u202e", "\u200d", "\u200b", "\ufeff",
    "\x00", "\t", "\n", "\r\n", "\u2028", "  ", "!", "?", ".", ",", "...", "¡", "¿", "«", "»",
    "\u0301", "ﬁ", "ß", "İ", "Σ", "\U0001f3fb",
]  # fmt: skip
PIECE = st.one_of(st.sampled_from(WORDS), st.sampled_from(NUMBERS), st.sampled_from(ODD))
SEPARATOR = st.sampled_from([" ", "", ", ", "\n", "  ", "-", "\u200d", "\u00a0", "\u3000"])
MESSAGE = st.one_of(
    st.text(),
    st.lists(PIECE, max_size=8).flatmap(lambda pieces: SEPARATOR.map(lambda sep: sep.join(pieces))),
    st.tuples(st.sampled_from(WORDS + NUMBERS + ODD), st.integers(100, 2500)).map(
        lambda repeat: (repeat[0] + " ") * repeat[1]
    ),  # up to about 10 KB
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=400),
)


def _whole_keyword(text: str) -> str | None:
    """The keyword when the message is one word and nothing else, as a reader sees it."""
    words = re.findall(r"[^\W_]+", text)
    if len(words) != 1:
        return None
    folded = unicodedata.normalize("NFKC", words[0]).casefold()
    return folded if folded in KEYWORDS else None


@st.composite
def situations(draw: st.DrawFn) -> Situation:
    ids = draw(st.lists(st.sampled_from(sorted(PRACTICES)), max_size=5))
    open_: list[OpenCheckIn] = []
    for number, practice in enumerate(ids, start=1):
        instant = NOW - timedelta(minutes=draw(st.integers(0, 600)))
        open_.append(
            OpenCheckIn(
                occurrence_id=number,
                practice_id=practice,
                title=PRACTICES[practice],
                instant=instant,
                window_end=instant + timedelta(hours=12),
                check_in=draw(st.sampled_from(SPECS)),
                current=draw(st.sampled_from([None, "done", "skipped"])),
            )
        )
    asked = None
    asking = draw(st.booleans())
    if open_ and asking:
        candidates = draw(st.lists(st.sampled_from([o.occurrence_id for o in open_]), min_size=1))
        asked = Asked(body=draw(MESSAGE), candidates=tuple(candidates))
    paused = draw(st.sampled_from([None, NOW - timedelta(days=1), NOW + timedelta(days=3)]))
    return Situation(
        known=draw(st.integers(0, 4)) > 0,
        opted_out=draw(st.booleans()),
        paused_until=paused,
        open=open_,
        practices=PRACTICES,
        now=NOW,
        asked=asked,
    )


def assert_sound(decision: Decision, situation: Situation, text: str) -> None:
    """What any decision must be, whatever the message said."""
    assert decision.action in ACTIONS
    assert decision.answer is None or decision.answer in ANSWERS
    assert decision.understood
    assert len(decision.understood) <= 32  # replies.understood
    assert decision.detail.strip()
    json.dumps(decision.context, allow_nan=False)  # stored and rendered: JSON values only
    if not situation.known:
        assert decision.action == "none"
        assert decision.answer in (None, "stranger")
        return
    if decision.action in ("opt_out", "opt_in"):
        assert _whole_keyword(text) is not None, "only a whole-message keyword opts out or in"
    if decision.action == "opt_out":
        assert _whole_keyword(text) in OPT_OUT
    if situation.opted_out and decision.action not in ("opt_in", "help"):
        assert decision.answer is None, "nothing but START and HELP is answered after STOP"
    by_id = {o.occurrence_id: o for o in situation.open}
    if decision.action == "ask":
        assert len(decision.candidates) >= 2
        assert set(decision.candidates) <= set(by_id)
    if decision.action != "check_in":
        return
    target = by_id[decision.occurrence_id]  # type: ignore[index]
    found = decision.interpretation
    assert found is not None
    assert found.applies
    spec = target.check_in
    assert spec.kind != "none"
    if found.outcome == "rating":
        low, high = spec.scale or (1, 5)
        assert spec.kind == "rating"
        assert isinstance(found.rating, int)
        assert low <= found.rating <= high
    elif found.outcome == "number":
        assert spec.kind == "number"
        assert found.number is not None
        assert math.isfinite(found.number)
        assert found.unit is None or len(found.unit) <= 32  # occurrences.check_in_unit
    elif found.outcome == "text":
        assert spec.kind == "text"
        assert found.text
    else:
        assert found.outcome in ("done", "skipped")


@settings(FUZZ, max_examples=300)
@given(text=MESSAGE, situation=situations())
def test_any_reply_in_any_situation_gets_a_sound_decision(text: str, situation: Situation) -> None:
    try:
        decision = decide(parse_reply(text), situation)
    except Exception:
        pytest.fail(_crash("decide raised", (text, situation)), pytrace=False)
    assert_sound(decision, situation, text)


@settings(FUZZ, max_examples=150)
@given(
    keyword=st.sampled_from(sorted(OPT_OUT)),
    before=st.lists(PIECE, max_size=3),
    after=st.lists(PIECE, max_size=3),
    separator=SEPARATOR,
    situation=situations(),
)
def test_stop_among_other_words_never_opts_out(
    keyword: str, before: list[str], after: list[str], separator: str, situation: Situation
) -> None:
    text = separator.join([*before, keyword.upper(), *after])
    decision = decide(parse_reply(text), situation)
    assert_sound(decision, situation, text)
    if len(re.findall(r"[^\W_]+", text)) > 1:
        assert decision.action != "opt_out", text


@settings(FUZZ, max_examples=150)
@given(
    keyword=st.sampled_from(sorted(OPT_OUT)),
    cases=st.lists(st.booleans(), min_size=12, max_size=12),
    before=st.text(alphabet=" \t\n.!?,;:'\"()-*~🛑👋\u200f\u202e", max_size=4),
    after=st.text(alphabet=" \t\n.!?,;:'\"()-*~🛑👋\u200f\u202e", max_size=4),
    situation=situations(),
)
def test_stop_alone_always_opts_out(
    keyword: str, cases: list[bool], before: str, after: str, situation: Situation
) -> None:
    word = "".join(c.upper() if up else c for c, up in zip(keyword, cases, strict=False))
    known = replace(situation, known=True)
    decision = decide(parse_reply(before + word + after), known)
    assert decision.action == "opt_out", (before + word + after, decision)


@settings(FUZZ, max_examples=250)
@given(text=MESSAGE, spec=st.sampled_from(SPECS))
def test_interpretations_record_only_what_the_check_in_asks(text: str, spec: CheckIn) -> None:
    reply = parse_reply(text)
    assert reply.text == text.strip()
    if reply.number is not None:
        assert math.isfinite(reply.number), reply
    found = interpret(reply, spec.kind, spec.scale, spec.unit)
    assert found.applies == (found.reason is None)
    if found.outcome == "rating":
        low, high = spec.scale or (1, 5)
        assert found.rating is not None
        assert low <= found.rating <= high, (text, found)
    if found.outcome == "number":
        assert found.number is not None
        assert math.isfinite(found.number), (text, found)
    if spec.kind == "none":
        assert not found.applies
    hint = reply.practice_hint or text
    assert match_practice(hint, PRACTICES) in (None, *PRACTICES)


# =====================================================================================
# HTTP
# =====================================================================================

TWILIO_TOKEN = "bad-input-twilio-token"
ADMIN = "bad-input-admin-token"
BASE = "https://tend.test"
RAE = "+14155550123"
FORM = "application/x-www-form-urlencoded"
NEW_YORK = ZoneInfo("America/New_York")
SITE_NOW = datetime(2026, 3, 2, 9, 0, tzinfo=NEW_YORK)  # every practice's window is open
SITE_PLAN = """
    plan: calm
    title: Calm
    weeks: 2
    practices:
      - id: rate
        category: sleep
        title: Rate your sleep
        at: "08:00"
        channels: [sms, email, calendar]
        message: "How did you sleep, {{ participant.first_name }}?"
        check_in: {kind: rating, scale: [1, 5]}
      - id: walk
        category: movement
        title: Morning walk
        at: "08:10"
        channels: [sms, calendar]
        message: "Walk, then say how long."
        check_in: {kind: number, unit: minutes}
      - id: count
        category: movement
        title: Push-ups
        at: "08:20"
        message: "How many?"
        check_in: number
      - id: note
        category: mindfulness
        title: Evening note
        at: "08:30"
        channels: [sms, email]
        message: "A few words?"
        check_in: text
      - id: scan
        category: mindfulness
        title: Body scan
        at: "08:40"
        message: "Scan."
        check_in: done
"""
_databases = iter(range(10**6))


def _folders(root: Path) -> Folders:
    """As the `folders` fixture: the engine's test templates, and Tend's own answers,
    summaries and digest as shipped."""
    return make_folders(root)


@dataclass
class Site:
    """The app on a seeded database: Rae, enrolled in `calm`, every check-in window open;
    her real check-in links, feed and unsubscribe link."""

    runtime: Runtime
    client: TestClient
    participant: str
    check_ins: dict[str, str]  # practice id -> path
    feed: str
    unsubscribe: str
    join: str  # the path of a cohort's sign-up page

    def rows(self, table: Table) -> int:
        with transaction(self.runtime.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def states(self) -> list[tuple[Any, ...]]:
        with transaction(self.runtime.engine) as conn:
            return [tuple(r) for r in conn.execute(select(deliveries.c.id, deliveries.c.state))]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """One site per database for the whole module (building one takes a while): the tests
    that share it only ask that nothing fails, whatever the others did to it."""
    root = tmp_path_factory.mktemp("site")
    if request.param == "sqlite":
        database = sqlite_url(root)
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        running(server)
        database = server.create_database(
            f"bad_input_{next(_databases)}", template=TEMPLATE_DATABASE
        )
    with pytest.MonkeyPatch.context() as environment:
        for name in [name for name in os.environ if name.startswith("TEND_")]:
            environment.delenv(name)  # as tests/conftest.py does for each test
        with _site(database, root) as made:
            yield made


@contextmanager
def _site(database: str, tmp_path: Path) -> Iterator[Site]:
    folders = _folders(tmp_path)
    folders.write_plan("calm", SITE_PLAN)
    clock = ManualClock(SITE_NOW - timedelta(hours=3))
    settings = settings_for(
        database,
        folders,
        admin_token=ADMIN,
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=TWILIO_TOKEN,
        twilio_from="+15005550006",
    )
    channels = {"sms": RecordingChannel("sms"), "email": RecordingChannel("email")}
    runtime = published_runtime(settings, clock=clock, channels=dict(channels))
    with transaction(runtime.engine) as conn:
        rae = participant_rows.add_participant(conn, name="Rae Example", timezone=NEW_YORK.key, phone=RAE,
                                   email="rae@example.com", now=clock.now(),
                                   welcomed_at=clock.now())  # fmt: skip
    plan = runtime.plans.get("calm")
    assert plan is not None
    enroll(runtime, rae.id, plan, SITE_NOW.date(), {})
    clock.set(SITE_NOW)
    with transaction(runtime.engine) as conn:
        today = conn.execute(
            select(occurrences.c.id, occurrences.c.practice_id, occurrences.c.window_end).where(
                occurrences.c.local_date == SITE_NOW.date()
            )
        ).all()
    check_ins = {
        r.practice_id: urlsplit(check_in_link(runtime, r.id, r.window_end)).path for r in today
    }
    assert len(check_ins) == 5, check_ins
    group = cohorts.create(runtime, name="Calm group", plan="calm", signup=True, keyword="CALM")
    client = TestClient(create_app(runtime), base_url=BASE, raise_server_exceptions=False)
    try:
        yield Site(
            runtime,
            client,
            rae.id,
            check_ins,
            urlsplit(feed_link(runtime, rae.id, 1)).path,
            urlsplit(unsubscribe_url(runtime, rae.id)).path,
            f"/join/{group.signup_token}",
        )
    finally:
        client.close()
        runtime.close()


def signed_by_twilio(params: Sequence[tuple[str, str]], path: str, base: str = BASE) -> str:
    """What Twilio sends as X-Twilio-Signature for these parameters posted to `path`."""
    return twilio_signature(TWILIO_TOKEN, f"{base}{path}", params)


def signed_post(site: Site, path: str, body: bytes | str, **headers: str) -> Any:
    """POST `body` as a form, signed over what the server will read from it."""
    raw = body.encode() if isinstance(body, str) else body
    params = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    sent = {"Content-Type": FORM, "X-Twilio-Signature": signed_by_twilio(params, path), **headers}
    return site.client.post(path, content=raw, headers=sent)


# --- the operations routes, from the OpenAPI document ----------------------------------

# The document is read from an app made when this module is collected (the cases are
# built from it then); each test sends them to its own app, on its own database.
_DOCUMENT_APP = create_app(
    Runtime.build(
        load_settings(
            database_url="sqlite://",
            schedules_dir=Path(__file__).parent / "no-schedules-here",
            templates_dir=Path(__file__).parent / "no-templates-here",
            secret_key="test-secret",
            admin_token=ADMIN,
        ),
        channels={},
        check_schema=False,
    )
)
_OPERATIONS = schemathesis.openapi.from_asgi(
    "/openapi.json", _DOCUMENT_APP, config=SchemathesisConfig.from_dict({"seed": 20260302})
).exclude(path_regex="^/api/")


def test_only_the_api_and_operations_routes_are_in_the_openapi_document() -> None:
    """The other routes (webhooks, links, pages) are not in /openapi.json: the fuzz
    below covers them by hand."""
    paths = set(_DOCUMENT_APP.openapi()["paths"])
    assert {p for p in paths if not p.startswith("/api/")} == {"/healthz", "/readyz", "/metrics"}


@_OPERATIONS.parametrize()
@settings(FUZZ, max_examples=10)
def test_the_operations_routes_answer_as_their_openapi_document_says(case: Any, site: Site) -> None:
    case.call_and_validate(
        app=site.client.app, checks=[not_a_server_error, response_schema_conformance]
    )


# --- Twilio's webhooks ----------------------------------------------------------------

FIELD_NAMES = ["MessageSid", "SmsSid", "From", "To", "Body", "AccountSid", "NumMedia",
               "MessageStatus", "ErrorCode", "", "from", "Body[]"]  # fmt: skip
FIELD_VALUES = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(
        [
            RAE,
            "",
            "STOP",
            "stop please",
            "done",
            "4",
            "25 minutes",
            "PAUSE 3",
            "\x00",
            "do\x00ne",
            "x" * 1700,
            "+1" * 200,
            "S" * 100,
            "%FF",
            "a=b&c=d",
            "delivered",
            "failed",
            "30007",
            "5 " + "u" * 40,
            "\ud7ff",
            "👍🏽",
        ]
    ),
)
FORMS = st.lists(st.tuples(st.sampled_from(FIELD_NAMES), FIELD_VALUES), max_size=7)


def _first(params: Sequence[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in params if key == name), None)


SIDS = st.one_of(
    st.integers(0, 2**64).map(lambda n: f"SM{n:032x}"),
    st.sampled_from(["SM" + "7" * 32, "S" * 100, "SM\x00x", "", " ", "\u00e9" * 30]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=70),
)
SENDERS = st.one_of(
    st.just(RAE),
    st.sampled_from(["+1" * 200, "\x00", "", "+1555000\x001111", "x" * 400, "+15550001111"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
)


@settings(FUZZ, max_examples=80)
@given(
    complete=st.booleans(),
    sid=SIDS,
    sender=SENDERS,
    body=FIELD_VALUES,
    extra=FORMS,
    shuffle=st.booleans(),
    data=st.data(),
)
def test_signed_inbound_sms_forms_get_twiml_or_a_4xx(
    site: Site,
    complete: bool,
    sid: str,
    sender: str,
    body: str,
    extra: list[tuple[str, str]],
    shuffle: bool,
    data: st.DataObject,
) -> None:
    params = [("MessageSid", sid), ("From", sender), ("Body", body), *extra] if complete else extra
    if shuffle:
        params = data.draw(st.permutations(params))
    before = site.rows(replies)
    answer = signed_post(site, "/twilio/sms", urlencode(params))
    assert answer.status_code < 500, (params, answer.status_code)
    found = _first(params, "MessageSid") or _first(params, "SmsSid")
    if not (found and _first(params, "From")):
        assert answer.status_code == 400, (params, answer.status_code)
    if answer.status_code >= 400:
        assert site.rows(replies) == before
    else:
        assert answer.status_code == 200, (params, answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("application/xml")
        assert site.rows(replies) <= before + 1


def test_signed_inbound_sms_with_values_a_database_may_refuse(site: Site) -> None:
    """Twilio's own values are short and clean; a signed request is only trusted to come
    from Twilio, not to fit the database: a 4xx, or a 2xx that stores it."""
    cases = {
        "NUL in Body": {"Body": "do\x00ne"},
        "NUL in From": {"From": RAE + "\x00"},
        "NUL in MessageSid": {"MessageSid": "SM\x00" + "1" * 30},
        "MessageSid of 100": {"MessageSid": "SM" + "1" * 98},
        "From of 400": {"From": "+1" * 200},
        "unit of 40": {"Body": "push-ups 5 " + "u" * 40},  # a number check-in's unit
    }
    problems = []
    for number, (name, change) in enumerate(cases.items()):
        form = {"MessageSid": f"SMdb{number:030d}", "From": RAE, "Body": "done", **change}
        before = site.rows(replies)
        answer = signed_post(site, "/twilio/sms", urlencode(list(form.items())))
        stored = site.rows(replies) - before
        if answer.status_code >= 500 or stored != (answer.status_code < 400):
            problems.append(f"{name}: {answer.status_code}, {stored} stored")
    assert not problems, "\n".join(problems)


@settings(FUZZ, max_examples=40)
@given(extra=FORMS)
def test_signed_status_callbacks_never_fail(site: Site, extra: list[tuple[str, str]]) -> None:
    before, stored = site.states(), site.rows(replies)
    answer = signed_post(site, "/twilio/status", urlencode(extra))
    assert answer.status_code == 200, (extra, answer.status_code)
    assert site.rows(replies) == stored
    assert site.states() == before  # nothing was sent, so no report can move anything


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b"Body=" + b"x" * (min(size, total - sent) - 5)
        sent += len(chunk)
        yield chunk


@pytest.mark.timeout(120)
def test_webhook_envelopes_that_are_wrong_are_refused_and_store_nothing(site: Site) -> None:
    """Unsigned, badly signed, of the wrong type, too large, lying about their length,
    chunked, sent with the wrong method: a 4xx (2xx only where the request is in fact a
    valid one), never a 5xx, and a refused one leaves no reply behind."""
    ok = [("MessageSid", "SM" + "1" * 32), ("From", RAE), ("Body", "done")]
    body = urlencode(ok)
    sign = signed_by_twilio(ok, "/twilio/sms")
    post = site.client.post
    huge = urlencode([*ok, ("Pad", "x" * 1_000_000)])
    cases: dict[str, tuple[Callable[[], Any], set[int]]] = {
        "unsigned": (lambda: post("/twilio/sms", content=body, headers={"Content-Type": FORM}), {403}),
        "empty signature": (lambda: post("/twilio/sms", content=body, headers={"Content-Type": FORM, "X-Twilio-Signature": ""}), {403}),
        "wrong signature": (lambda: post("/twilio/sms", content=body, headers={"Content-Type": FORM, "X-Twilio-Signature": sign[::-1]}), {403}),
        "signed for another url": (lambda: post("/twilio/sms", content=body, headers={"Content-Type": FORM, "X-Twilio-Signature": signed_by_twilio(ok, "/twilio/sms", "http://testserver")}), {403}),
        "signed for the status url": (lambda: post("/twilio/sms", content=body, headers={"Content-Type": FORM, "X-Twilio-Signature": signed_by_twilio(ok, "/twilio/status")}), {403}),
        "tampered body": (lambda: post("/twilio/sms", content=body.replace("done", "STOP"), headers={"Content-Type": FORM, "X-Twilio-Signature": sign}), {403}),
        "json": (lambda: post("/twilio/sms", content=json.dumps(dict(ok)), headers={"Content-Type": "application/json", "X-Twilio-Signature": sign}), {403, 415}),
        "multipart": (lambda: post("/twilio/sms", data=dict(ok), files={"f": ("a.txt", b"x")}, headers={"X-Twilio-Signature": sign}), {403, 415}),
        "text/plain": (lambda: post("/twilio/sms", content=body, headers={"Content-Type": "text/plain", "X-Twilio-Signature": sign}), {403, 415}),
        "no content type": (lambda: post("/twilio/sms", content=body, headers={"X-Twilio-Signature": sign}), {403, 415}),
        "raw latin-1 bytes": (lambda: signed_post(site, "/twilio/sms", body.encode() + b"&Body=caf\xe9"), {400, 403}),
        "non-utf8 percent escapes": (lambda: signed_post(site, "/twilio/sms", body + "&Body=%FF%FE%C3"), {200}),
        "repeated fields": (lambda: signed_post(site, "/twilio/sms", body.replace("SM1", "SM2") + "&From=%2B15550001111&Body=skip"), {200}),
        "1 MB": (lambda: signed_post(site, "/twilio/sms", huge), {403, 413}),
        "10 MB": (lambda: signed_post(site, "/twilio/sms", huge * 10), {403, 413}),
        "content-length says less": (lambda: post("/twilio/sms", content=huge, headers={"Content-Type": FORM, "X-Twilio-Signature": sign, "Content-Length": "10"}), {400, 403, 413}),
        "content-length says 1 TB": (lambda: post("/twilio/sms", content=body, headers={"Content-Type": FORM, "X-Twilio-Signature": sign, "Content-Length": str(10**12)}), {400, 403, 413}),
        "content-length not a number": (lambda: post("/twilio/sms", content=body, headers={"Content-Type": FORM, "X-Twilio-Signature": sign, "Content-Length": "lots"}), {200, 400, 403}),
        "chunked, 2 MB, no length": (lambda: post("/twilio/sms", content=_chunks(2_000_000), headers={"Content-Type": FORM, "X-Twilio-Signature": sign}), {403, 413}),
        "GET": (lambda: site.client.get("/twilio/sms", params=dict(ok), headers={"X-Twilio-Signature": sign}), {405}),
        "PUT": (lambda: site.client.put("/twilio/sms", content=body, headers={"Content-Type": FORM, "X-Twilio-Signature": sign}), {405}),
        "DELETE": (lambda: site.client.delete("/twilio/sms"), {405}),
        "status unsigned": (lambda: post("/twilio/status", content="MessageSid=SM1&MessageStatus=delivered", headers={"Content-Type": FORM}), {403}),
        "status 10 MB": (lambda: signed_post(site, "/twilio/status", huge * 10), {403, 413}),
        "status GET": (lambda: site.client.get("/twilio/status"), {405}),
    }  # fmt: skip
    problems = []
    for name, (send, expected) in cases.items():
        before = site.rows(replies)
        try:
            answer = send()
        except Exception as exc:  # the test client itself refused to send it
            problems.append(f"{name}: could not be sent: {exc!r}")
            continue
        stored = site.rows(replies) - before
        if answer.status_code not in expected:
            problems.append(f"{name}: {answer.status_code}, expected one of {sorted(expected)}")
        if answer.status_code >= 400 and stored:
            problems.append(f"{name}: refused with {answer.status_code}, but stored {stored} reply")
    assert problems == []


# --- every other route -------------------------------------------------------------------

ODD_TOKENS = [
    "", ".", "..", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%00", "%", "%zz", "%2e%2e",
    "a" * 5000, "p_x.y", ".x", "x.", "1.2", "-1.99999999999999999999", "0.0", "\u202e", "😀",
    "a/b", "a?b", "a#b", "a b", "a;b", "NUL\x00",
]  # fmt: skip
TOKEN_TEXT = st.one_of(
    st.sampled_from(ODD_TOKENS),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40),
    st.from_regex(r"[A-Za-z0-9_.-]{1,80}", fullmatch=True),
)
METHODS = st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
FORM_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "1",
            "3",
            "5",
            "6",
            "-0",
            "0",
            "1e309",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "∞",
            "４",
            "٤",
            "1,5",
            "2.5",
            "9" * 400,
            "x" * 1100,
            "a\x00b",
            "25 minutes",
            "done",
            "skipped",
            "rating",
            "number",
            "text",
            "note",
            "\u202e",
        ]
    ),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30),
)
FORM_FIELDS = st.lists(
    st.tuples(
        st.sampled_from(["outcome", "rating", "number", "text", "csrf", "next", "token", "x", ""]),
        FORM_VALUES,
    ),
    max_size=5,
)
BODIES = st.one_of(
    FORM_FIELDS.map(lambda fields: urlencode(fields).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"", b"%FF%FE", b"\xff\xfe", b"a=%", b"=&=&", b"x" * 20_000, b"{}"]),
)
CONTENT_TYPES = st.sampled_from(
    [FORM, FORM, "application/json", "multipart/form-data; boundary=x", "text/plain", "",
     f"{FORM}; charset=latin-1", "application/x-www-form-urlencoded\x7f"]
)  # fmt: skip


def _variant(real: str) -> st.SearchStrategy[str]:
    """The real token, or a near miss of it: cut, grown, one character changed, NUL in it."""
    return st.one_of(
        st.just(real),
        st.integers(0, len(real)).map(lambda n: real[:n]),
        st.tuples(
            st.integers(0, len(real)), st.sampled_from(["x", ".", "\x00", "%", "é", "A"])
        ).map(lambda t: real[: t[0]] + t[1] + real[t[0] + 1 :]),
        st.sampled_from([real + real, real.replace(".", ".."), real.upper(), real + "%00"]),
    )


def _path(prefix: str, token: str, suffix: str = "") -> str:
    """The URL path: the token quoted, except for what a client would send as it is."""
    raw = token in ("..", ".", "../../etc/passwd", "%00", "%", "%zz", "%2e%2e") or "%2F" in token
    return prefix + (token if raw else quote(token, safe="")) + suffix


def send(site: Site, method: str, path: str, **kwargs: Any) -> Any:
    try:
        answer = site.client.request(method, path, **kwargs)
    except Exception:
        pytest.fail(_crash("the request could not be made", (method, path, kwargs)), pytrace=False)
    assert answer.status_code < 500, (method, path, kwargs, answer.status_code, answer.text[:300])
    return answer


def _body_kwargs(body: bytes, content_type: str) -> dict[str, Any]:
    return {"content": body, "headers": {"Content-Type": content_type} if content_type else {}}


@settings(FUZZ, max_examples=70)
@given(data=st.data(), method=METHODS, body=BODIES, content_type=CONTENT_TYPES, form=FORM_FIELDS)
def test_check_in_links_never_fail(
    site: Site,
    data: st.DataObject,
    method: str,
    body: bytes,
    content_type: str,
    form: list[tuple[str, str]],
) -> None:
    practice = data.draw(st.sampled_from(sorted(site.check_ins)))
    token = site.check_ins[practice].removeprefix("/check-in/")
    token = data.draw(st.one_of(_variant(token), TOKEN_TEXT))
    path = _path("/check-in/", token)
    if method == "POST" and data.draw(st.booleans()):
        body, content_type = urlencode(form).encode(), FORM  # a form like the page's own
    answer = send(site, method, path, **_body_kwargs(body, content_type))
    if method not in ("GET", "HEAD", "POST") and path == site.check_ins[practice]:
        assert answer.status_code == 405


@settings(FUZZ, max_examples=50)
@given(data=st.data(), method=METHODS, etag=st.one_of(st.none(), HEADER_TEXT, st.just("*")))
def test_calendar_feeds_never_fail(
    site: Site, data: st.DataObject, method: str, etag: str | None
) -> None:
    token = site.feed.removeprefix("/calendar/").removesuffix(".ics")
    token = data.draw(st.one_of(_variant(token), TOKEN_TEXT))
    suffix = data.draw(st.sampled_from([".ics", ".ics", "", ".ICS", ".ics/", ".ics?x=%00"]))
    headers = {} if etag is None else {"If-None-Match": etag}
    answer = send(site, method, _path("/calendar/", token, suffix), headers=headers)
    if (
        token == site.feed[len("/calendar/") : -len(".ics")]
        and suffix == ".ics"
        and method == "GET"
    ):
        assert answer.status_code in (200, 304), answer.status_code  # the real feed works


@settings(FUZZ, max_examples=40)
@given(
    data=st.data(),
    method=METHODS,
    via=st.one_of(st.none(), HEADER_TEXT),
    body=BODIES,
    content_type=CONTENT_TYPES,
)
def test_unsubscribe_links_never_fail(
    site: Site, data: st.DataObject, method: str, via: str | None, body: bytes, content_type: str
) -> None:
    token = site.unsubscribe.removeprefix("/unsubscribe/")
    token = data.draw(st.one_of(_variant(token), TOKEN_TEXT))
    kwargs = _body_kwargs(body, content_type)
    if via is not None:
        kwargs["params"] = {"via": via}
    send(site, method, _path("/unsubscribe/", token), **kwargs)


JOIN_FIELDS = st.lists(
    st.tuples(
        st.sampled_from(["name", "phone", "email", "timezone", "var_x", "language", "csrf", ""]),
        FORM_VALUES | HEADER_TEXT,
    ),
    max_size=7,
)


@settings(FUZZ, max_examples=30)
@given(data=st.data(), method=METHODS, body=BODIES, content_type=CONTENT_TYPES, form=JOIN_FIELDS)
def test_sign_up_pages_never_fail(
    site: Site,
    data: st.DataObject,
    method: str,
    body: bytes,
    content_type: str,
    form: list[tuple[str, str]],
) -> None:
    token = site.join.removeprefix("/join/")
    token = data.draw(st.one_of(_variant(token), TOKEN_TEXT))
    if method == "POST" and data.draw(st.booleans()):
        body, content_type = urlencode(form).encode(), FORM  # a form like the page's own
    send(site, method, _path("/join/", token), **_body_kwargs(body, content_type))


SIGN_UP = {"name": "Ana Pérez", "phone": "+14155550177", "email": "", "timezone": "America/New_York",
           "language": "es"}  # fmt: skip
HOSTILE_SIGN_UPS = {
    "NUL in the name": {"name": "Ana\x00Pérez"},
    "a name of 10,000 characters": {"name": "a" * 10_000},
    "only spaces for a name": {"name": "   "},
    "words for a phone": {"phone": "call me maybe"},
    "a phone too long": {"phone": "+1" + "4" * 40},
    "an email that is not one": {"email": "ana@"},
    "a zone that is not one": {"timezone": "Mars/Olympus_Mons"},
    "a zone with a NUL": {"timezone": "America/New_York\x00"},
    "a time that is not one": {"var_x": "25:00"},
    "a time that is an expression": {"var_x": "wake + 1h"},
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SIGN_UPS))
def test_hostile_sign_ups_are_refused_with_why_and_store_nothing(site: Site, case: str) -> None:
    form = {**SIGN_UP, **HOSTILE_SIGN_UPS[case]}
    before = site.rows(signups), site.rows(participants)
    answer = site.client.post(site.join, data=form)
    if case.startswith("a time"):
        # Calm asks no times: a variable it does not have is ignored, never stored.
        assert answer.status_code in (200, 429), (case, answer.text[:300])
    else:
        assert answer.status_code in (400, 413, 429), (case, answer.status_code, answer.text[:300])
        assert (site.rows(signups), site.rows(participants)) == before
    assert "\x00" not in answer.text


DASHBOARD_PATHS = [
    "/dashboard", "/dashboard/", "/dashboard/login", "/dashboard/logout", "/dashboard/plans",
    "/dashboard/plans/{plan}", "/dashboard/participants/{participant}", "/dashboard/outbox",
    "/dashboard/static/dashboard.js", "/dashboard/enrollments/{enrollment}/{action}",
    "/dashboard/participants/{participant}/rotate-feed",
    "/dashboard/participants/{participant}/test-message",
    "/dashboard/import", "/dashboard/import/check", "/dashboard/people/new",
]  # fmt: skip
QUERY = st.lists(
    st.tuples(
        st.sampled_from(["sort", "dir", "start", "tz", "next", "limit", "via", "x"]),
        FORM_VALUES | HEADER_TEXT,
    ),
    max_size=4,
)


@settings(FUZZ, max_examples=50)
@given(
    data=st.data(),
    method=METHODS,
    logged_in=st.booleans(),
    query=QUERY,
    form=FORM_FIELDS,
    origin=st.one_of(st.none(), st.sampled_from([BASE, "https://evil.test", "null", ""])),
)
def test_the_dashboard_never_fails(
    site: Site,
    data: st.DataObject,
    method: str,
    logged_in: bool,
    query: list[tuple[str, str]],
    form: list[tuple[str, str]],
    origin: str | None,
) -> None:
    site.client.cookies.clear()
    if logged_in:
        login = site.client.post("/dashboard/login", data={"token": ADMIN}, follow_redirects=False)
        assert login.status_code == 303, login.text
    # A login form with random fields, now and then.
    if data.draw(st.booleans()):
        send(site, "POST", "/dashboard/login", content=urlencode(form).encode(),
             headers={"Content-Type": FORM}, follow_redirects=False)  # fmt: skip
    template = data.draw(st.sampled_from(DASHBOARD_PATHS))
    values = {
        name: data.draw(st.one_of(st.just(real), TOKEN_TEXT))
        for name, real in (
            ("plan", "calm"),
            ("participant", site.participant),
            ("enrollment", "e_x"),
            ("action", "pause"),
        )
    }
    path = template.format(**{k: quote(v, safe="") for k, v in values.items()})
    headers = {"Content-Type": FORM} | ({"Origin": origin} if origin is not None else {})
    send(site, method, path, params=query, content=urlencode(form).encode(), headers=headers,
         follow_redirects=False)  # fmt: skip


@settings(FUZZ, max_examples=30)
@given(
    query=QUERY,
    authorization=st.one_of(
        st.none(), st.just(f"Bearer {ADMIN}"), st.just("Bearer"), st.just("Basic x"), HEADER_TEXT
    ),
    limit=st.one_of(st.none(), st.integers(), FORM_VALUES),
)
def test_the_outbox_page_never_fails(
    site: Site, query: list[tuple[str, str]], authorization: str | None, limit: object
) -> None:
    params = [*query, *([("limit", str(limit))] if limit is not None else [])]
    headers = {"Authorization": authorization} if authorization is not None else {}
    answer = send(site, "GET", "/outbox", params=params, headers=headers)
    if authorization is None:  # not from this machine, no token: nothing shown
        assert answer.status_code in (404, 422), answer.status_code


@settings(FUZZ, max_examples=50)
@given(
    method=METHODS,
    segments=st.lists(
        st.one_of(
            TOKEN_TEXT,
            st.sampled_from(
                [
                    "twilio",
                    "check-in",
                    "calendar",
                    "unsubscribe",
                    "dashboard",
                    "outbox",
                    "api",
                    "metrics",
                    "healthz",
                    "readyz",
                    "openapi.json",
                ]
            ),
        ),
        min_size=1,
        max_size=4,
    ),
    query=QUERY,
    body=BODIES,
    content_type=CONTENT_TYPES,
)
def test_any_path_any_method_never_fails(
    site: Site,
    method: str,
    segments: list[str],
    query: list[tuple[str, str]],
    body: bytes,
    content_type: str,
) -> None:
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    send(site, method, path, params=query, **_body_kwargs(body, content_type))


def test_nul_and_overlong_values_in_paths_queries_and_forms_are_4xx(site: Site) -> None:
    """Values PostgreSQL refuses (a NUL in text, text longer than its column) are refused
    as bad requests before they reach the database, on every route that takes them."""
    login = site.client.post("/dashboard/login", data={"token": ADMIN}, follow_redirects=False)
    assert login.status_code == 303
    note = site.check_ins["note"]
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/calendar/p%00x.abc.ics", {}),
        ("GET", "/calendar/" + "p" * 300 + ".abc.ics", {}),
        ("GET", "/check-in/1%00.2.abc", {}),
        ("GET", "/unsubscribe/p%00x.abc", {}),
        ("POST", "/unsubscribe/p%00x.abc", {}),
        (
            "GET",
            "/outbox",
            {"params": {"limit": "\x00"}, "headers": {"Authorization": f"Bearer {ADMIN}"}},
        ),
        ("GET", "/dashboard/plans/calm%00", {}),
        ("GET", "/dashboard/plans/" + "c" * 300, {}),
        (
            "GET",
            "/dashboard/plans/calm",
            {"params": {"tz": "America/New_York\x00", "start": "2026-03-02\x00"}},
        ),
        ("GET", "/dashboard", {"params": {"sort": "\x00", "dir": "\x00"}}),
        ("GET", "/dashboard/participants/p%00", {}),
        ("GET", "/dashboard/login", {"params": {"next": "/dashboard/\x00"}}),
        ("POST", note, {"data": {"outcome": "text", "text": "calm\x00ish"}}),
        ("POST", note, {"data": {"outcome": "text", "text": "x" * 999}}),
        ("POST", site.check_ins["rate"], {"data": {"outcome": "rating", "rating": "4\x00"}}),
        ("POST", site.check_ins["walk"], {"data": {"outcome": "number", "number": "1e308"}}),
        ("POST", "/dashboard/participants/p%00/test-message", {"data": {"csrf": "x"}}),
    ]
    problems = []
    for method, path, kwargs in requests:
        answer = site.client.request(method, path, follow_redirects=False, **kwargs)
        if answer.status_code >= 500:
            problems.append(f"{method} {path[:60]} {kwargs}: {answer.status_code}")
    assert not problems, "\n".join(problems)


def test_a_participant_in_any_zone_gets_a_calendar_feed(site: Site) -> None:
    """Found by the feed fuzz: zones that are UTC all year round (icalendar writes no
    VTIMEZONE for them) get a 500 instead of their feed."""
    plan = site.runtime.plans.get("calm")
    assert plan is not None
    problems = []
    for number, zone in enumerate(["Europe/London", "UTC", "Etc/UTC", "Africa/Abidjan"]):
        with transaction(site.runtime.engine) as conn:
            person = participant_rows.add_participant(conn, name="Ana Zone", timezone=zone,
                                          phone=f"+1555000222{number}", now=SITE_NOW,
                                          welcomed_at=SITE_NOW)  # fmt: skip
        enroll(site.runtime, person.id, plan, SITE_NOW.date() + timedelta(days=1), {})
        answer = site.client.get(urlsplit(feed_link(site.runtime, person.id, 1)).path)
        if answer.status_code != 200 or "BEGIN:VEVENT" not in answer.text:
            problems.append(f"{zone}: {answer.status_code} {answer.text[:80]!r}")
    assert not problems, "\n".join(problems)


IMPORT = "/api/participants/import"
CSV_TYPE = {"Content-Type": "text/csv"}
IMPORT_BODIES = [
    b"",
    b"\x00" * 100,
    b"\xff\xfe" + "name,timezone\n".encode("utf-16-le"),
    b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    b"name,timezone\nA\x00B,UTC\n",
    b"name,timezone\n" + b"x" * 200_000 + b",UTC\n",  # over the csv module's field limit
    b'name,timezone\n"never closed,UTC\n' + b"A,UTC\n" * 50,
    b"name,timezone\n" + b",".join([b"a"] * 20_000) + b"\n",
    b"," * 50_000 + b"\n",
    ("name,timezone," + ",".join(f"v{i}" for i in range(2000)) + "\n").encode(),
    b"name,timezone\n" + b"A,UTC\n" * 10_001,
    "name,timezone\n\ud800,UTC\n".encode("utf-8", "surrogatepass"),
    b"\r\r\r\n\n\n",
    b"name;timezone\nA;UTC\n",
]


@pytest.mark.parametrize("body", IMPORT_BODIES, ids=range(len(IMPORT_BODIES)))
def test_hostile_import_bodies_are_refused_with_where_and_store_nothing(
    site: Site, body: bytes
) -> None:
    before = site.rows(participants)
    answer = send(site, "POST", IMPORT, content=body, headers={**CSV_TYPE, **_ADMIN_AUTH})
    assert answer.status_code == 422, answer.text[:300]
    for error in answer.json()["errors"]:
        assert error["line"] >= 1
        assert error["message"]
    assert site.rows(participants) == before


def test_import_envelopes_that_are_wrong_are_refused(site: Site) -> None:
    before = site.rows(participants)
    data = b"name,timezone\nA,UTC\n"
    for headers, body, status in [
        ({"Content-Type": "application/octet-stream"}, data, 415),
        ({"Content-Type": "multipart/form-data; boundary=x"}, data, 415),
        ({}, data, 415),
        (CSV_TYPE, b"x" * (5 * 1024 * 1024 + 1), 413),
        ({**CSV_TYPE, "Content-Length": str(10**12)}, data, 413),
    ]:
        answer = send(site, "POST", IMPORT, content=body, headers={**headers, **_ADMIN_AUTH})
        assert answer.status_code in (status, 400), (headers, answer.status_code, answer.text)
    for params in [{"cohort": "a\x00b"}, {"filename": "x" * 300}, {"plan": "../etc"},
                   {"start": "9999-99-99", "plan": "calm"}, {"dry_run": "maybe"}]:  # fmt: skip
        answer = send(site, "POST", IMPORT, content=data, params=params,
                      headers={**CSV_TYPE, **_ADMIN_AUTH})  # fmt: skip
        assert 400 <= answer.status_code < 500, (params, answer.text)
    assert site.rows(participants) == before


def test_a_formula_in_an_imported_name_is_stored_as_text(site: Site) -> None:
    """Tend never evaluates what it imports: a spreadsheet formula is a name like any
    other. (Writing people back out as CSV would have to escape it: nothing does yet.)"""
    formula = "=cmd|' /C calc'!A0"
    body = f'name,timezone,phone\n"{formula}",UTC,+14155550177\n+SUM(A1:A9),UTC,\n'.encode()
    answer = send(site, "POST", IMPORT, content=body, params={"filename": "=evil().csv"},
                  headers={**CSV_TYPE, **_ADMIN_AUTH})  # fmt: skip
    assert answer.status_code == 200, answer.text
    with transaction(site.runtime.engine) as conn:
        names = {
            conn.execute(select(participants.c.name).where(participants.c.id == pid)).scalar_one()
            for pid in answer.json()["participants"]
        }
    assert names == {formula, "+SUM(A1:A9)"}


@settings(FUZZ, max_examples=60)
@given(
    rows=st.lists(st.lists(FORM_VALUES | HEADER_TEXT, max_size=6), max_size=6),
    header=st.lists(st.sampled_from(["name", "timezone", "phone", "email", "language", "wake",
                                     "Name ", "", "x y", "\x00", "é"]), max_size=7),
    dry_run=st.booleans(),
)  # fmt: skip
def test_any_csv_is_imported_or_refused_with_its_lines(
    site: Site, rows: list[list[str]], header: list[str], dry_run: bool
) -> None:
    import csv as csv_module
    import io

    out = io.StringIO()
    writer = csv_module.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    body = out.getvalue().encode("utf-8", "surrogatepass")
    answer = send(site, "POST", IMPORT, content=body, params={"dry_run": str(dry_run).lower()},
                  headers={**CSV_TYPE, **_ADMIN_AUTH})  # fmt: skip
    assert answer.status_code in (200, 422), answer.text[:300]
    if answer.status_code == 422:
        lines = body.count(b"\n") + 1
        assert all(1 <= e["line"] <= lines for e in answer.json()["errors"]), answer.json()


_ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}


# =====================================================================================
# Message templates
# =====================================================================================

# Each would, outside the sandbox, read something secret or create the file SENTINEL.
ESCAPES = {
    "class-walk": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "class-walk-to-os": "{{ ''.__class__.__mro__[1].__subclasses__()[0].__init__.__globals__['sys'].modules['os'].system('touch SENTINEL') }}",
    "cycler-globals": "{{ cycler.__init__.__globals__.os.popen('touch SENTINEL').read() }}",
    "joiner-globals": "{{ joiner.__init__.__globals__.os.system('touch SENTINEL') }}",
    "namespace-globals": "{{ namespace.__init__.__globals__.os.system('touch SENTINEL') }}",
    "lipsum-globals": "{{ lipsum.__globals__ }}",
    "lipsum-os": "{{ lipsum.__globals__['os'].system('touch SENTINEL') }}",
    "builtins-open": "{{ self.__init__.__globals__.__builtins__.open('SENTINEL', 'w').write('x') }}",
    "template-context": "{{ self._TemplateReference__context }}",
    "config": "{{ config }}",
    "request": "{{ request }}",
    "participant-dict": "{{ participant.__dict__ }}",
    "participant-phone": "{{ participant.phone }}",
    "participant-email": "{{ participant.email }}",
    "name-class": "{{ participant.name.__class__ }}",
    "datetime-class": "{{ occurrence.local.__class__.__subclasses__() }}",
    "format-attribute": "{{ '{0.__class__}'.format(participant) }}",
    "format-globals": "{{ '{0.__init__.__globals__[os].system}'.format(cycler) }}",
    "format-map": "{{ '{x.__class__}'.format_map({'x': participant}) }}",
    "percent-format": "{{ '%s' % participant }}",
    "mutate-participant": "{{ participant.update({'name': 'Mallory'}) }}{{ participant.clear() }}",
    "setitem": "{% set x = participant.__setitem__('name', 'Mallory') %}{{ participant.name }}",
    "include-passwd": "{% include '/etc/passwd' %}",
    "include-traversal": "{% include '../../../../../../etc/passwd' %}",
    "extends-passwd": "{% extends '/etc/passwd' %}",
    "import-os": "{% import 'os' as os %}{{ os.system('touch SENTINEL') }}",
    "from-import": "{% from 'os' import system %}{{ system('touch SENTINEL') }}",
    "huge-range": "{% for i in range(10**9) %}x{% endfor %}",
    "huge-string": "{{ 'a' * 10**9 }}",
    "huge-list": "{{ [1] * 10**9 }}",
    "huge-power": "{{ 9 ** 999999999 }}",
    "recursion": "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}",
}
# Work without a bound: each size is small here (so that the test is quick while the
# bug stands) but could be made as large as one likes in a message of the same length.
EXPENSIVE = {
    "ljust": "{{ 'x'.ljust(5000000, 'y') }}|",
    "center-filter": "{{ 'x' | center(5000000) }}|",
    "zfill": "{{ 'x'.zfill(5000000) }}",
    "format-width": "{{ '{:>5000000}'.format('x') }}|",
    "percent-width": "{{ '%-5000000s|' % 'x' }}",
    "percent-precision": "{{ '%.5000000f' % 1 }}",
    "indent-filter": "{{ 'a\\nb' | indent(5000000) }}",
    "replace-chain": "{{ ('x' * 1000).replace('x', 'x' * 10000) | length }}",
    "concat-doubling": "{% set s = namespace(t='x' * 1000) %}{% for i in range(14) %}{% set s.t = s.t ~ s.t %}{% endfor %}{{ s.t | length }}",
}  # fmt: skip
LEAKS = ("uid=", "root:", "__", "<class", "<function", "<module", "<built-in", "Mallory",
         "popen", "system", "globals", "subclasses", "phone", "@example.")  # fmt: skip
ATTACK_LINES = (9, 12)  # where ATTACK_PLAN has the message and the nudge's message
ATTACK_PLAN = """\
plan: attack
title: Attack
weeks: 1
practices:
  - id: a
    category: sleep
    title: A
    at: "07:00"
    message: {message}
    channels: [sms, email, calendar]
    check_in: done
    nudge: {{after: 90m, message: {message}}}
"""


def _attack(source: str, sentinel: Path) -> str:
    return source.replace("SENTINEL", str(sentinel))


def _rendered(renderer: Renderer, plan: Plan) -> list[str]:
    """Every text of the plan's first occurrences, on every channel, nudges too."""
    texts: list[str] = []
    variables = resolve_plan_variables(plan, {})
    for occurrence in expand(plan, date(2026, 3, 2), ZoneInfo("America/New_York"))[:3]:
        practice, variant = occurrence.practice, occurrence.variant
        context = renderer.context(
            plan, occurrence, SAMPLE_PERSON, variables, "https://tend.test/c/x"
        )
        texts.append(renderer.sms(variant, practice, context))
        email = renderer.email(variant, practice, context)
        texts += [email.subject, email.text, email.html]
        texts.append(renderer.calendar(variant, practice, context))
        if practice.nudge is not None:
            texts.append(renderer.nudge(practice, context))
    return texts


def assert_harmless(texts: Sequence[str], sentinel: Path) -> None:
    assert not sentinel.exists(), "a template ran a command"
    for text in texts:
        assert len(text) <= 10 * MAX_SIZE, f"{len(text)} characters"
        found = [leak for leak in LEAKS if leak in text]
        assert not found, (found, text[:300])


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_template_injection_in_a_plan_is_refused_where_it_is_written(
    loader_catalog: Catalog, tmp_path: Path, name: str
) -> None:
    """As `tend plans check` sees it: an error at the message's line, or (for what the
    sandbox allows) a plan whose every text is harmless."""
    sentinel = tmp_path / "escaped"
    message = json.dumps(_attack(ESCAPES[name], sentinel))
    path = loader_catalog.schedules_dir / "attack.yaml"
    path.write_text(ATTACK_PLAN.format(message=message), encoding="utf-8")
    try:
        checked = loader_catalog.check([path])
        loaded = loader_catalog.load_file(path)
    except Exception:
        pytest.fail(_crash("the plan loader raised", message), pytrace=False)
    assert not sentinel.exists(), "a template ran a command"
    errors = [d for d in checked.diagnostics if d.severity == "error"]
    for found in errors:
        assert found.line in ATTACK_LINES, str(found)
        assert found.column > 1, str(found)
        assert found.message.strip(), str(found)
    if loaded.plan is None:
        assert errors, checked.diagnostics
        return
    assert_harmless(_rendered(loader_catalog.renderer, loaded.plan), sentinel)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_template_injection_in_a_template_file_is_refused_where_it_is_named(
    tmp_path: Path, name: str
) -> None:
    """The same, in the calendar and email templates a practice names (`template:`)."""
    sentinel = tmp_path / "escaped"
    attack = _attack(ESCAPES[name], sentinel)
    files = {
        **LOADER_TEMPLATES,
        "evil/x.sms.j2": attack,
        "evil/x.calendar.j2": attack,
        "evil/x.email.j2": (
            f"{{% block subject %}}S{{% endblock %}}{{% block text %}}{attack}{{% endblock %}}"
            f"{{% block html %}}<p>{attack}</p>{{% endblock %}}"
        ),
    }
    for relative, source in files.items():
        target = tmp_path / "templates" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")
    (tmp_path / "schedules").mkdir()
    catalog = Catalog(tmp_path / "schedules", tmp_path / "templates")
    path = catalog.schedules_dir / "attack.yaml"
    text = ATTACK_PLAN.replace("message: {message}\n", "template: evil/x\n", 1)
    path.write_text(text.format(message='"hi"'), encoding="utf-8")
    try:
        checked = catalog.check([path])
        loaded = catalog.load_file(path)
    except Exception:
        pytest.fail(_crash("the plan loader raised", attack), pytrace=False)
    assert not sentinel.exists(), "a template ran a command"
    errors = [d for d in checked.diagnostics if d.severity == "error"]
    for found in errors:
        assert found.line == 9, str(found)
        assert found.message.strip(), str(found)
    if loaded.plan is None:
        assert errors, checked.diagnostics
        return
    assert_harmless(_rendered(catalog.renderer, loaded.plan), sentinel)


@pytest.fixture
def benign_plan(loader_catalog: Catalog) -> Plan:
    """A plan whose message the next tests swap for an attack, as if a plan had reached
    the workers without being checked."""
    result = load_plan(ATTACK_PLAN.format(message='"hi"'), "benign.yaml", loader_catalog.renderer)
    assert result.plan is not None, result.diagnostics
    return result.plan


def _with_message(plan: Plan, source: str) -> Plan:
    practice = plan.practices[0]
    assert practice.nudge is not None
    changed = replace(
        practice,
        base=replace(practice.base, message=source),
        nudge=replace(practice.nudge, message=source),
    )
    return replace(plan, practices=(changed,), practice_index={changed.id: changed})


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_the_workers_renderer_refuses_escapes_too(
    loader_catalog: Catalog, benign_plan: Plan, tmp_path: Path, name: str
) -> None:
    sentinel = tmp_path / "escaped"
    plan = _with_message(benign_plan, _attack(ESCAPES[name], sentinel))
    texts: list[str] = []
    refusal = ""
    try:
        texts = _rendered(loader_catalog.renderer, plan)
    except RenderError as refused:
        refusal = str(refused)
    assert texts or refusal.strip()  # rendered, or refused in words
    assert_harmless(texts, sentinel)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", sorted(EXPENSIVE))
def test_a_short_message_takes_little_time_and_memory(
    loader_catalog: Catalog, benign_plan: Plan, name: str
) -> None:
    """sandbox.py bounds `*` and `**` so that a message cannot stall a worker; no other
    way of making a short message expensive may get round that (here at sizes that are
    cheap to try: each is unbounded)."""
    plan = _with_message(benign_plan, EXPENSIVE[name])
    began = time.perf_counter()
    tracemalloc.start()
    try:
        texts = _rendered(loader_catalog.renderer, plan)
    except RenderError:
        texts = []
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 8_000_000, f"{peak / 1e6:.0f} MB to render {EXPENSIVE[name]!r}"
    assert all(len(text) <= 10 * MAX_SIZE for text in texts), [len(t) for t in texts]
    assert time.perf_counter() - began < 10
    result = load_plan(ATTACK_PLAN.format(message=json.dumps(EXPENSIVE[name])), "x.yaml",
                       loader_catalog.renderer)  # fmt: skip
    assert all(d.line in ATTACK_LINES for d in result.errors), result.errors


def test_powers_stay_bounded_however_they_are_written(
    benign_plan: Plan, loader_catalog: Catalog
) -> None:
    """`**` refuses an exponent above 64, but Jinja's `**` groups from the left, so
    9 ** 64 ** 64 ** 64 is ((9 ** 64) ** 64) ** 64: a number of 830,000 bits, made in
    milliseconds; one more `** 64` (53 million bits) takes about a CPU-minute."""
    plan = _with_message(benign_plan, "{{ (9 ** 64 ** 64 ** 64).bit_length() }}")
    try:
        texts = _rendered(loader_catalog.renderer, plan)
    except RenderError:
        return
    assert int(texts[0]) <= 100_000, f"a number of {texts[0]} bits"


def test_a_title_is_text_not_a_template(loader_catalog: Catalog, tmp_path: Path) -> None:
    """Names and titles reach templates as values: what they hold is shown, not run."""
    text = ATTACK_PLAN.format(message='"Now: {{ practice.title }} for {{ participant.name }}"')
    text = text.replace("title: A\n", "title: \"{{ 7 * 7 }}{% include '/etc/passwd' %}\"\n")
    result = load_plan(text, "t.yaml", loader_catalog.renderer)
    assert result.plan is not None, result.diagnostics
    renderer = loader_catalog.renderer
    occurrence = expand(result.plan, date(2026, 3, 2), ZoneInfo("UTC"))[0]
    person = replace(SAMPLE_PERSON, name="{{ 6 * 7 }} {% include '/etc/passwd' %}")
    context = renderer.context(result.plan, occurrence, person, {}, "https://tend.test/c")
    sms = renderer.sms(occurrence.variant, occurrence.practice, context)
    assert (
        sms
        == "Now: {{ 7 * 7 }}{% include '/etc/passwd' %} for {{ 6 * 7 }} {% include '/etc/passwd' %}"
    )
