"""Reading a plan: YAML text with positions, into a checked `Plan` or a list of problems.

Three passes, each reporting every problem it finds with the line and column of the
offending key or value: YAML syntax (ruamel.yaml, which keeps positions), structure
(the pydantic `PlanDocument`), and meaning (times, days, weeks, variables, RRULEs,
templates), followed by a sample rendering of every message. Structure and meaning are
checked on the same pass over the file, so one run shows every problem. No I/O here:
the text comes in as a string and templates through the renderer's loader.
"""

from __future__ import annotations

import functools
import hashlib
import re
import typing
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date
from typing import Any
from urllib.parse import urlsplit

import jinja2
from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    Event,
    ScalarEvent,
)
from ruamel.yaml.parser import RoundTripParser
from ruamel.yaml.reader import ReaderError

from service.core import translations
from service.core.days import (
    DAY_CHOICES,
    EVERY_WORDS,
    day_number,
    every_keyword,
    near_word,
    split_days,
)
from service.core.diagnostics import Diagnostic, did_you_mean, line_column, one_of
from service.core.expand import Occurrence, expand
from service.core.language import LocalizedLines
from service.core.plan import (
    CATEGORIES,
    CHANNELS,
    CHECK_IN_KINDS,
    EVERY_KEYWORDS,
    MAX_LOCATION,
    MAX_URL,
    SUMMARY_CHANNELS,
    WEEKDAYS,
    CheckIn,
    Nudge,
    Plan,
    PlanDocument,
    Practice,
    Variant,
    WeeklySummary,
)
from service.core.render import (
    DISCREET_DEFAULT,
    EMAIL_BLOCKS,
    SAMPLE_PERSON,
    SUMMARY_TEMPLATE,
    InlineSyntaxError,
    Renderer,
    RenderError,
    default_template,
    template_file,
    valid_template_name,
)
from service.core.replies import RESERVED_WORDS
from service.core.sms import clean_for_sms, count_segments
from service.core.summary import sample_summary_contexts
from service.core.timeexpr import (
    MAX_DURATION,
    MINUTES_PER_DAY,
    VARIABLE_PATTERN,
    TimeExpr,
    TimeSyntaxError,
    VariableError,
    format_clock,
    format_duration,
    parse_duration,
    resolve_variables,
)

Loc = tuple[str | int, ...]

DEFAULT_DURATION = 15
DEFAULT_WINDOW = 12 * 60
# A practice occurs at most once a day, and its duration is the length of its calendar
# event: at most a day. A check-in window, and a nudge's wait, at most the longest plan.
MAX_PRACTICE_DURATION = MINUTES_PER_DAY
MAX_WINDOW = MAX_DURATION
_DURATION_LIMIT = "a practice lasts at most 24h (the length of its calendar event)"
_WINDOW_LIMIT = f"a check-in window is at most {format_duration(MAX_WINDOW)}, the longest plan"
_AFTER_LIMIT = (
    "a nudge comes before the check-in window closes, "
    f"and a window is at most {format_duration(MAX_WINDOW)}"
)
SMALL_HOURS_END = 5 * 60
SAMPLE_START = date(2026, 1, 5)  # a Monday; sample renders need some date
SAMPLE_CHECK_IN_URL = "https://tend.example/check-in/sample"
_RRULE_ALLOWED_FREQ = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
_RRULE_KEYS = {
    "FREQ", "UNTIL", "COUNT", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO",
    "BYMONTH", "BYSETPOS", "WKST", "BYHOUR", "BYMINUTE", "BYSECOND",
}  # fmt: skip
_WEEKS_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_VARIABLE_NAME = re.compile(VARIABLE_PATTERN)

_FIELD_HELP = {
    "every": (
        "every is day, weekday, weekend, a day such as sunday, "
        "or a list of days such as [mon, wed, fri]"
    ),
    "weeks": 'weeks is a week number, a range such as "1-4", or a list of those',
    "check_in": (
        f"check_in is one of {one_of(CHECK_IN_KINDS)}, "
        "or a mapping such as {kind: rating, scale: [1, 5]}"
    ),
}
_LITERAL_NAMES = {"category": "category", "channels": "channel", "kind": "check-in kind"}
# The keys a practice's text is made of: an error in one of them stops its rendering.
_TEXT_KEYS = frozenset(
    {"id", "category", "title", "channels", "message", "template", "rotate", "discreet_message"}
)


def _most(field: str) -> int:
    """The largest value `PlanDocument` allows for `field`: one limit for the structure
    pass, the schema and the compiler."""
    for rule in PlanDocument.model_fields[field].metadata:
        most = getattr(rule, "le", None)
        if isinstance(most, int):
            return most
    raise LookupError(field)


MAX_WEEKS = _most("weeks")  # 520
MAX_DAYS = _most("days")  # 3640
# The shape of the YAML itself. A plan nests lists and mappings at most six deep and
# holds a few hundred values; these bounds are far above that, and far below what
# would exhaust the stack (deep nesting) or memory (aliases of aliases: each level
# multiplies, so 430 bytes can stand for a billion values).
MAX_DEPTH = 32
MAX_REPEATED = 10_000  # values that aliases may repeat, in all
MAX_NUMBER_DIGITS = 1_000  # Python refuses to read an integer of 4300 digits
_PLAIN_INTEGER = re.compile(r"^[-+]?(?:0o)?[0-9_]+$")


@dataclass(slots=True)
class LoadResult:
    plan: Plan | None
    diagnostics: list[Diagnostic]
    declared_id: str | None = None  # the `plan:` id, even when the plan has errors
    id_position: tuple[int, int] = (1, 1)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]


def load_plan(text: str, path: str, renderer: Renderer | None = None) -> LoadResult:
    """Check a plan's text. `plan` is None when there is any error."""
    renderer = renderer or Renderer()
    report = _Report(path)
    tree = _parse_yaml(text, report)
    if tree is None:
        return LoadResult(None, report.sorted())
    report.tree = tree
    try:
        data = _plain(tree)
    except _TooDeep:
        report.add_at("error", 1, 1, f"nested too deeply: more than {MAX_DEPTH} levels")
        return LoadResult(None, report.sorted())
    if not isinstance(data, dict):
        report.error((), f"a plan is a mapping of keys (plan, title, ...), not {_kind(data)}")
        return LoadResult(None, report.sorted())
    try:
        PlanDocument.model_validate(data)
    except ValidationError as exc:
        _report_structure(exc, data, report)
    compiler = _Compiler(data, report, renderer, text)
    compiler.texts = translations.localize(
        data, lambda sev, loc, msg, key: report.add(sev, loc, msg, key=key), compiler.compile_inline
    )
    plan = compiler.compile()
    compiler.warn_untranslated()
    if compiler.sample is not None:
        languages = sorted(compiler.texts.languages | renderer.languages())
        _sample_render(
            compiler.sample, report, renderer, compiler.origins, compiler.exact, languages
        )
    declared = data.get("plan")
    return LoadResult(
        None if report.has_errors else plan,
        report.sorted(),
        declared if isinstance(declared, str) else None,
        report.position(("plan",)),
    )


# --- positions and reporting ---------------------------------------------------------


class _Report:
    def __init__(self, path: str) -> None:
        self.path = path
        self.tree: Any = None
        self.items: dict[tuple[int, int, str, str], Diagnostic] = {}
        self.error_locs: list[Loc] = []  # where each error was reported, in order

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items.values())

    def position(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of the value at `loc` (or its key), or its nearest parent."""
        node = self.tree
        line, column = 0, 0
        for i, part in enumerate(loc):
            if isinstance(node, CommentedMap) and part in node:
                # An empty value has no place of its own: point at its key.
                if (key and i == len(loc) - 1) or node[part] is None:
                    line, column = node.lc.key(part)
                else:
                    line, column = node.lc.value(part)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line, column = node.lc.item(part)
                node = node[part]
        return line + 1, column + 1

    def add(self, severity: str, loc: Loc, message: str, *, key: bool = False) -> None:
        if severity == "error":
            self.error_locs.append(loc)
        line, column = self.position(loc, key=key)
        self.add_at(severity, line, column, message)

    def add_at(self, severity: str, line: int, column: int, message: str) -> None:
        diagnostic = Diagnostic(self.path, line, column, severity, message)  # type: ignore[arg-type]
        self.items.setdefault((line, column, severity, message), diagnostic)

    def error(self, loc: Loc, message: str, *, key: bool = False) -> None:
        self.add("error", loc, message, key=key)

    def warning(self, loc: Loc, message: str, *, key: bool = False) -> None:
        self.add("warning", loc, message, key=key)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items.values(), key=lambda d: (d.line, d.column, d.severity))


class _Refused(YAMLError):
    """YAML that is well formed but that no plan needs: too deep, too many repeats."""

    def __init__(self, event: Event, message: str) -> None:
        super().__init__(message)
        self.line = event.start_mark.line + 1
        self.column = event.start_mark.column + 1
        self.message = message


@dataclass(slots=True)
class _Open:
    """A list or mapping being read: its anchor, the depth of what is in it so far
    (itself included) and how many values it holds with aliases expanded."""

    anchor: str | None
    height: int = 1
    size: int = 1


class _ShapeCheck:
    """Follows the parser's events as the composer takes them, and refuses nesting
    deeper than MAX_DEPTH (counting what aliases stand for), aliases that repeat more
    than MAX_REPEATED values, an alias inside the very value it names (which would
    never end) and integers too long to read. The composer and constructor recurse
    once per level, so the check comes before they could exhaust the stack."""

    def __init__(self) -> None:
        self.open: list[_Open] = []
        self.anchors: dict[str, tuple[int, int]] = {}  # name: height, size
        self.repeated = 0

    def see(self, event: Event) -> None:
        if isinstance(event, AliasEvent):
            name = event.anchor
            if any(item.anchor == name for item in self.open):
                raise _Refused(
                    event, f"alias *{name} is inside the value &{name} it names: it never ends"
                )
            height, size = self.anchors.get(name, (0, 1))
            self.repeated += size
            if self.repeated > MAX_REPEATED:
                raise _Refused(
                    event,
                    f"aliases repeat more than {MAX_REPEATED} values by here (aliases of "
                    "aliases multiply); a plan needs far fewer: write the values out",
                )
            self._add(event, height, size)
        elif isinstance(event, CollectionStartEvent):
            self.open.append(_Open(event.anchor))
            self._check_depth(event, 0)
        elif isinstance(event, CollectionEndEvent) and self.open:
            done = self.open.pop()
            if done.anchor is not None:
                self.anchors[done.anchor] = (done.height, done.size)
            self._add(event, done.height, done.size)
        elif isinstance(event, ScalarEvent):
            value = event.value
            if (
                event.style is None
                and len(value) > MAX_NUMBER_DIGITS
                and _PLAIN_INTEGER.match(value)
            ):
                raise _Refused(
                    event,
                    f"a number of {len(value)} digits is too long to read; "
                    "no number in a plan needs more than a few",
                )
            if event.anchor is not None:
                self.anchors[event.anchor] = (0, 1)
            self._add(event, 0, 1)
        elif isinstance(event, DocumentEndEvent):
            self.anchors.clear()  # anchors belong to their document

    def _add(self, event: Event, height: int, size: int) -> None:
        if self.open:
            parent = self.open[-1]
            parent.height = max(parent.height, height + 1)
            parent.size += size
        self._check_depth(event, height)

    def _check_depth(self, event: Event, height: int) -> None:
        if len(self.open) + height > MAX_DEPTH:
            through = " (with what its aliases stand for)" if height else ""
            raise _Refused(
                event,
                f"nested too deeply{through}: more than {MAX_DEPTH} levels of lists and "
                "mappings, where a plan needs six at most",
            )


class _CheckedParser(RoundTripParser):
    """ruamel's round-trip parser, with every event it hands out checked for shape."""

    def __init__(self, loader: Any) -> None:
        super().__init__(loader)
        self.shape = _ShapeCheck()

    def get_event(self) -> Any:
        event = super().get_event()
        self.shape.see(event)
        return event


def _parse_yaml(text: str, report: _Report) -> Any:
    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        report.add_at(
            "error",
            1,
            1,
            "the file is empty; a plan needs plan, title, weeks or days, and practices",
        )
        return None
    yaml = YAML(typ="rt", pure=True)
    yaml.Parser = _CheckedParser
    yaml.allow_duplicate_keys = False
    # An anchor used twice is valid YAML (the later one counts): no warning on stderr.
    yaml.composer.warn_double_anchors = False
    try:
        tree = yaml.load(text)
    except _Refused as exc:
        report.add_at("error", exc.line, exc.column, exc.message)
        return None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        if "found duplicate key" in str(exc):
            problem = _duplicate_key_message(exc, text)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        report.add_at("error", line, column, f"YAML syntax: {problem or exc}")
        return None
    except ReaderError as exc:
        line, column = line_column(text, exc.position)
        report.add_at("error", line, column, _unreadable(exc))
        return None
    except YAMLError as exc:
        report.add_at("error", 1, 1, f"YAML syntax: {' '.join(str(exc).split())}")
        return None
    except RecursionError:  # (the shape check stops nesting long before this)
        report.add_at("error", 1, 1, "nested too deeply to read")
        return None
    if tree is None:
        report.add_at(
            "error",
            1,
            1,
            "the file is empty; a plan needs plan, title, weeks or days, and practices",
        )
    return tree


def _unreadable(exc: ReaderError) -> str:
    character = exc.character
    if isinstance(character, bytes):  # (only when ruamel decodes bytes itself)
        return f"not {exc.encoding} text: byte 0x{ord(character):02x}: {exc.reason}"
    code = character if isinstance(character, int) else ord(character)
    kind = "control character" if code < 0x20 or 0x7F <= code <= 0x9F else "character"
    return (
        f"a YAML file cannot hold the {kind} U+{code:04X}: delete it "
        f"(inside double quotes, write it as \\u{code:04x})"
    )


def _duplicate_key_message(exc: MarkedYAMLError, text: str) -> str:
    match = re.search(r'found duplicate key "([^"]*)"', str(exc))
    name = match.group(1) if match else "?"
    first = _first_key_line(text, name, exc)
    where = f" (first on line {first})" if first else ""
    return f"key '{name}' appears twice in the same mapping{where}"


def _first_key_line(text: str, name: str, exc: MarkedYAMLError) -> int | None:
    """The line where a duplicate key was first written: in its mapping, at the same column."""
    start, again = exc.context_mark, exc.problem_mark
    if start is None or again is None:
        return None
    key = re.compile(rf"[\"']?{re.escape(name)}[\"']?\s*:")
    lines = text.splitlines()
    for number in range(start.line, min(again.line, len(lines))):
        line = lines[number]
        if line[: again.column].strip() in ("", "-") and key.match(line, again.column):
            return number + 1
    return None


class _TooDeep(Exception):
    """A tree deeper than MAX_DEPTH: the shape check refuses it first, so never seen."""


def _plain(node: Any, depth: int = 1) -> Any:
    """The ruamel tree as plain Python values, for validation."""
    if isinstance(node, dict | list) and depth > MAX_DEPTH:
        raise _TooDeep
    if isinstance(node, dict):
        return {str(k): _plain(v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, depth + 1) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text '{value}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# --- structure: pydantic errors in plain words ---------------------------------------


def _real_loc(loc: Sequence[str | int], data: Any, missing: bool) -> tuple[Loc, bool]:
    """Drop union tags from a pydantic loc; say whether there were any."""
    out: list[str | int] = []
    node = data
    tagged = False
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif missing and i == len(loc) - 1 and isinstance(part, str) and isinstance(node, dict):
            out.append(part)  # a missing key
        else:
            tagged = True
    return tuple(out), tagged


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that describes the mapping at `loc` (a real loc)."""
    model: type[BaseModel] | None = PlanDocument
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _find_model(field.annotation) if field else None
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


_TYPE_ERRORS = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "list_type": "a list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "bool_type": "true or false",
}


def _report_structure(exc: ValidationError, data: dict[str, Any], report: _Report) -> None:
    errors = []
    for error in exc.errors():
        loc, tagged = _real_loc(error["loc"], data, error["type"] == "missing")
        errors.append((loc, tagged, error))
    reported_types: set[Loc] = set()
    for loc, tagged, error in errors:
        kind = error["type"]
        if kind in _TYPE_ERRORS and tagged:
            # One branch of a union: say nothing when another branch explains more.
            deeper = any(
                other_loc[: len(loc)] == loc
                and other is not error
                and other["type"] not in _TYPE_ERRORS
                for other_loc, _, other in errors
            )
            if deeper or loc in reported_types:
                continue
            reported_types.add(loc)
            field = next((p for p in reversed(loc) if isinstance(p, str)), "")
            help_text = _FIELD_HELP.get(field)
            if help_text:
                report.error(loc, f"{help_text}, not {_kind(error['input'])}")
                continue
        report.error(loc, _structure_message(loc, error), key=kind == "extra_forbidden")


def _structure_message(loc: Loc, error: Any) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = list(model.model_fields) if model else []
        hint = did_you_mean(field, allowed)
        if not hint and allowed:
            hint = f"; allowed here: {one_of(allowed)}"
        return f"unknown key '{field}'{hint}"
    if kind == "missing":
        return f"missing required key '{field}'"
    if kind in _TYPE_ERRORS:
        label = f"item {loc[-1] + 1} of '{loc[-2]}'" if isinstance(loc[-1], int) else f"'{field}'"
        return f"{label} must be {_TYPE_ERRORS[kind]}, not {_kind(value)}"
    if kind == "literal_error":
        name = _LITERAL_NAMES.get(field, field)
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = did_you_mean(str(value), expected) if isinstance(value, str) else ""
        shown = _kind(value).removeprefix("the text ")
        return f"unknown {name} {shown}{hint}; expected one of {one_of(expected)}"
    if kind == "string_pattern_mismatch":
        return (
            f"'{value}' is not a valid id: lower case letters, digits and -, "
            "starting with a letter or digit, at most 63 characters"
        )
    if kind == "too_short":
        if field == "practices":
            return "a plan needs at least one practice"
        return f"'{field}' needs at least {ctx.get('min_length')} items"
    if kind == "too_long":
        return f"'{field}' takes at most {ctx.get('max_length')} items"
    if kind == "greater_than_equal":
        return f"'{field}' must be at least {ctx.get('ge')}, not {value}"
    if kind == "less_than_equal":
        return f"'{field}' must be at most {ctx.get('le')}, not {value}"
    return f"'{field}': {error['msg']}"


# --- meaning: compile the document into a Plan ------------------------------------------


@dataclass(slots=True)
class _Field:
    """A practice key's value and where it was written (in the practice or in defaults)."""

    value: Any
    loc: Loc


class _Compiler:
    def __init__(self, data: dict[str, Any], report: _Report, renderer: Renderer, text: str):
        self.data = data
        self.report = report
        self.renderer = renderer
        self.text = text
        self.weeks_total: int | None = None
        self.variables: dict[str, TimeExpr] = {}
        self.declared: set[str] = set()  # every variable name, even those with errors
        self.resolved: dict[str, int] = {}
        # where each variant's message (or template) and time were written
        self.origins: dict[int, tuple[Loc, Loc]] = {}
        # Practices whose text can be read though their schedule has errors, by index: they
        # are rendered with the plan's sample, so their text's errors show in the same run.
        self.sketches: dict[int, Practice] = {}
        self.sample: Plan | None = None  # what the sample rendering renders
        self.exact: frozenset[str] = frozenset()  # practices that should occur in it
        self.plan_zone: str | None = None  # the plan's own `timezone`, when valid
        self.texts = translations.Texts("en")  # its texts per language (translations.py)
        # The plan's own templates (not the category defaults): name, channel, where.
        self.own_templates: list[tuple[str, str, Loc]] = []

    def compile(self) -> Plan | None:
        data = self.data
        days = self._length()
        self._variables()
        self._plan_zone()
        defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
        practices: list[Practice] = []
        readable: list[Practice] = []
        seen: dict[str, int] = {}
        raw_practices = data.get("practices")
        if isinstance(raw_practices, list):
            for index, raw in enumerate(raw_practices):
                if not isinstance(raw, dict):
                    continue
                practice = self._practice(index, raw, defaults or {}, seen)
                if practice is not None:
                    practices.append(practice)
                    readable.append(practice)
                elif index in self.sketches:
                    readable.append(self.sketches[index])
            if practices and not any(p.check_in.asks for p in practices):
                self.report.warning(
                    ("practices",),
                    "no practice asks for a check-in, so adherence cannot be tracked",
                    key=True,
                )
        weekly_summary = self._weekly_summary()
        # With errors elsewhere in the file, the practices that compiled cleanly still make
        # a plan: rendering their messages finds the errors in their text in the same run.
        # So do the sketches, and a plan without a length of its own gets a sample length.
        plan_id, title = data.get("plan"), data.get("title")
        summary = data.get("summary")
        plan = Plan(
            id=plan_id if isinstance(plan_id, str) else "plan",
            title=title if isinstance(title, str) else "",
            summary=summary if isinstance(summary, str) else None,
            days=days or _sample_days(readable),
            variables=self.variables,
            practices=tuple(practices),
            source=self.report.path,
            content_hash=hashlib.sha256(self.text.encode()).hexdigest(),
            practice_index={p.id: p for p in practices},
            weekly_summary=weekly_summary,
            timezone=self.plan_zone,
            language=self.texts.language,
        )
        if readable:
            self.sample = replace(
                plan, practices=tuple(readable), practice_index={p.id: p for p in readable}
            )
            self.exact = frozenset(p.id for p in practices) if days else frozenset()
        if days is None or not practices:
            return None
        return plan

    def _errors(self) -> int:
        return sum(1 for d in self.report.items.values() if d.severity == "error")

    # plan-level keys

    def _length(self) -> int | None:
        weeks, days = self.data.get("weeks"), self.data.get("days")
        if weeks is not None and days is not None:
            self.report.error(
                ("days",), "write the plan's length as weeks or days, not both", key=True
            )
            return None
        if weeks is None and days is None:
            self.report.error((), "the plan needs a length: weeks: 8, or days: 56")
            return None
        value = weeks if weeks is not None else days
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return None  # reported with the structure
        if value > (MAX_WEEKS if weeks is not None else MAX_DAYS):
            return None  # reported with the structure; a plan that long is never expanded
        total = value * 7 if weeks is not None else value
        self.weeks_total = -(-total // 7)
        return total

    def _variables(self) -> None:
        raw = self.data.get("variables")
        if not isinstance(raw, dict):
            return
        for name, text in raw.items():
            if not _VARIABLE_NAME.match(name):
                self.report.error(
                    ("variables", name),
                    f"'{name}' is not a variable name; use lower case letters, digits and _",
                    key=True,
                )
                continue
            self.declared.add(name)
            if name.casefold() in RESERVED_WORDS:
                self.report.warning(
                    ("variables", name),
                    f"'{name}' is also a word participants text to Tend "
                    f"({name.upper()} ...), so they cannot set it by text; rename it",
                    key=True,
                )
            if not isinstance(text, str):
                continue
            try:
                self.variables[name] = TimeExpr.parse(text)
            except TimeSyntaxError as exc:
                self.report.error(("variables", name), str(exc))
        try:
            self.resolved = resolve_variables(self.variables)
        except VariableError as exc:
            self.report.error(("variables", exc.name), str(exc))
            self.variables = {}

    def _weekly_summary(self) -> WeeklySummary | None:
        """The optional weekly summary; written with nothing after it, all its defaults."""
        if "weekly_summary" not in self.data:
            return None
        raw = self.data["weekly_summary"]
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            return None  # reported with the structure
        loc: Loc = ("weekly_summary",)
        errors_before = self._errors()
        summary = WeeklySummary()
        # A value of the wrong type is reported with the structure; it makes no summary.
        complete = all(
            raw.get(name) is None or isinstance(raw[name], kind)
            for name, kind in (("day", str), ("at", str), ("channels", list))
        )
        day = raw.get("day")
        if isinstance(day, str):
            number = day_number(day)
            if number is not None:
                summary = replace(summary, weekday=number)
            else:
                hint = did_you_mean(near_word(day), DAY_CHOICES)
                self.report.error(
                    (*loc, "day"), f"unknown day '{day}'{hint}; days are {one_of(WEEKDAYS)}"
                )
        if raw.get("at") is not None:
            # None also when `at` names a variable whose own definition has an error.
            at = self._time(_Field(raw["at"], (*loc, "at")))
            if at is None:
                complete = False
            else:
                summary = replace(summary, at=at)
        channels = raw.get("channels")
        if isinstance(channels, list):
            chosen: list[str] = []
            for i, item in enumerate(channels):
                if not isinstance(item, str):
                    continue  # reported with the structure
                if item in chosen:
                    self.report.error((*loc, "channels", i), f"channel '{item}' is listed twice")
                elif item == "calendar":
                    self.report.error(
                        (*loc, "channels", i),
                        "a weekly summary is not a calendar event; "
                        f"send it by {' or '.join(SUMMARY_CHANNELS)}",
                    )
                elif item not in SUMMARY_CHANNELS:
                    hint = did_you_mean(item, SUMMARY_CHANNELS)
                    self.report.error(
                        (*loc, "channels", i),
                        f"unknown channel '{item}'{hint}; "
                        f"a weekly summary goes by {one_of(SUMMARY_CHANNELS)}",
                    )
                else:
                    chosen.append(item)
            if not channels:
                self.report.error(
                    (*loc, "channels"), f"choose at least one channel: {one_of(SUMMARY_CHANNELS)}"
                )
            if chosen:
                summary = replace(summary, channels=tuple(chosen))
        for channel in summary.channels:
            self._check_template(SUMMARY_TEMPLATE, channel, loc, key=True, summary=True)
        if not complete or self._errors() > errors_before:
            return None
        return summary

    # practices

    def _practice(
        self, index: int, raw: dict[str, Any], defaults: dict[str, Any], seen: dict[str, int]
    ) -> Practice | None:
        base: Loc = ("practices", index)

        def get(name: str) -> _Field | None:
            # An empty value (`at:`) is as if unwritten: the default applies.
            if raw.get(name) is not None:
                return _Field(raw[name], (*base, name))
            if defaults.get(name) is not None:
                return _Field(defaults[name], ("defaults", name))
            return None

        errors_before = self._errors()
        error_places = len(self.report.error_locs)
        practice_id = raw.get("id")
        if isinstance(practice_id, str):
            if practice_id in seen:
                self.report.error(
                    (*base, "id"),
                    f"practice id '{practice_id}' is used twice in this plan "
                    f"(first in practice {seen[practice_id] + 1})",
                )
            else:
                seen[practice_id] = index
        name = f"practice '{practice_id}'" if isinstance(practice_id, str) else "this practice"
        category = get("category")
        title = get("title")
        at = get("at")
        for key, present in (("category", category), ("title", title), ("at", at)):
            if present is None and key in raw:
                self.report.error((*base, key), f"{name} has an empty '{key}'", key=True)
            elif present is None:
                self.report.error(base, f"{name} is missing required key '{key}'")

        weekdays = self._every(get("every"), get("rrule"))
        rrule = self._rrule(get("rrule"))
        weeks = self._weeks(get("weeks"))
        channels = self._channels(get("channels"))
        check_in = self._check_in(get("check_in"))
        window = self._duration(get("window"), DEFAULT_WINDOW, MAX_WINDOW, _WINDOW_LIMIT)
        duration = self._duration(get("duration"), DEFAULT_DURATION)
        time = self._time(at)
        message, template = self._text(get("message"), get("template"), channels, category)
        rotate = self._rotate(get("rotate"))
        nudge = self._nudge(get("nudge"), check_in, window)
        variant = Variant(
            at=time or TimeExpr(None, 0),
            duration_minutes=duration,
            message=message,
            template=template,
            rotate=rotate,
        )
        text_loc = next((f.loc for f in (get("message"), get("template")) if f), base)
        self.origins[id(variant)] = (text_loc, at.loc if at else base)
        phases = self._phases(get("phases"), variant, weeks, channels, category)
        zone_field = get("timezone")
        timezone = self._zone(zone_field) if zone_field is not None else self.plan_zone
        if timezone is not None:
            self._fixed_times(timezone, (variant, *(v for _, v in phases)))
        location = self._location(get("location"))
        url = self._url(get("url"))
        discreet = get("discreet_message")
        discreet_message = discreet.value if discreet and isinstance(discreet.value, str) else None
        if discreet is not None and discreet_message is not None:
            self._compile_inline(discreet_message, discreet.loc)
        broken = self._errors() > errors_before
        if broken and not self._readable(base, error_places, category, title):
            return None
        if not all(isinstance(v.value, str) for v in (category, title) if v):
            return None
        if not isinstance(practice_id, str):
            return None  # reported with the structure
        assert category is not None
        assert title is not None
        practice = Practice(
            id=practice_id,
            category=category.value,
            title=title.value,
            weekdays=weekdays,
            rrule=rrule,
            weeks=weeks,
            channels=channels,
            check_in=check_in,
            window_minutes=window,
            nudge=nudge,
            base=variant,
            phases=phases,
            timezone=timezone,
            location=location,
            url=url,
            discreet_message=discreet_message,
        )
        if broken:
            # Its text is rendered with the sample, on every day of every week: the
            # errors in its schedule are reported, those in its text are found too.
            self.sketches[index] = replace(
                practice, weekdays=EVERY_KEYWORDS["day"], rrule=None, weeks=None
            )
            return None
        return practice

    def _readable(
        self, base: Loc, errors_from: int, category: _Field | None, title: _Field | None
    ) -> bool:
        """Whether a practice with errors can still have its text rendered: its errors
        since `errors_from` (an index into the report's error places) are all in its
        schedule (at, every, weeks, durations, check-in, a missing key), none in what its
        text is made of, and it has an id, a known category and a title."""
        if category is None or category.value not in CATEGORIES or title is None:
            return False
        for loc in self.report.error_locs[errors_from:]:
            if loc[: len(base)] == base:
                own = loc[len(base) :]
            elif loc[:1] == ("defaults",):
                own = loc[1:]
            else:
                return False
            if any(part in _TEXT_KEYS for part in own):
                return False
        return True

    # group sessions: a zone of their own, a location and a link

    def _plan_zone(self) -> None:
        """The plan's `timezone`, for all its practices; written once, at the top or
        under `defaults`."""
        if self.data.get("timezone") is None:
            return
        self.plan_zone = self._zone(_Field(self.data["timezone"], ("timezone",)))
        defaults = self.data.get("defaults")
        if isinstance(defaults, dict) and defaults.get("timezone") is not None:
            line, _ = self.report.position(("timezone",), key=True)
            self.report.error(
                ("defaults", "timezone"),
                f"the plan's timezone is already written on line {line}; write it once",
                key=True,
            )

    def _zone(self, field: _Field) -> str | None:
        """An IANA zone's name, as the tz database spells it."""
        if not isinstance(field.value, str):
            return None  # reported with the structure
        name = field.value.strip()
        if name in _zone_names():
            return name
        shown = name if len(name) <= 64 else f"{name[:40]}..."
        self.report.error(
            field.loc,
            f"unknown time zone '{shown}'{_zone_hint(name)}; write an IANA name such as "
            "Europe/London or America/New_York",
        )
        return None

    def _fixed_times(self, timezone: str, variants: Sequence[Variant]) -> None:
        """A group session is at one time for everyone: its `at` (and its phases') is a
        clock time, never a participant's variable."""
        for variant in variants:
            if variant.at.variable is None:
                continue
            _, at_loc = self.origins.get(id(variant), ((), ()))
            self.report.error(
                at_loc,
                f"a group session (timezone: {timezone}) is at the same time for everyone; "
                f"write a clock time such as 09:00, not '{variant.at}', which is each "
                "participant's own",
            )

    def _location(self, field: _Field | None) -> str | None:
        if field is None or not isinstance(field.value, str):
            return None  # reported with the structure
        text = field.value.strip()
        problem = None
        if not text:
            problem = "location is empty; write where it happens, or leave location out"
        elif "\n" in text or "\r" in text:
            problem = "a location is one line of text"
        elif len(text) > MAX_LOCATION:
            problem = f"a location has at most {MAX_LOCATION} characters"
        elif _CONTROL.search(text):
            problem = "a location cannot hold control characters"
        if problem:
            self.report.error(field.loc, problem)
            return None
        return text

    def _url(self, field: _Field | None) -> str | None:
        if field is None or not isinstance(field.value, str):
            return None  # reported with the structure
        text = field.value.strip()
        shown = text if len(text) <= 80 else f"{text[:60]}..."
        example = "such as https://example.org/group-walk"
        problem = None
        if len(text) > MAX_URL:
            problem = f"a url has at most {MAX_URL} characters"
        elif any(c.isspace() for c in text) or _CONTROL.search(text):
            problem = f"'{shown}' has a space or a control character in it; write a space as %20"
        else:
            try:
                parts = urlsplit(text)
                host = parts.hostname
            except ValueError:
                parts, host = None, None
            scheme = parts.scheme.lower() if parts else ""
            if scheme not in ("http", "https") or not host:
                hint = did_you_mean(scheme, ("https", "http")) if scheme else ""
                problem = (
                    f"'{shown}' is not a web address{hint}; a url starts with https:// "
                    f"(or http://) and a host name, {example}"
                )
        if problem:
            self.report.error(field.loc, problem)
            return None
        return text

    def _time(self, field: _Field | None) -> TimeExpr | None:
        if field is None or not isinstance(field.value, str):
            if (
                field is not None
                and isinstance(field.value, int)
                and not isinstance(field.value, bool)
            ):
                self.report.error(
                    field.loc,
                    f"'{field.value}' is not a time; write hours and minutes, such as 07:30",
                )
            return None
        try:
            expr = TimeExpr.parse(field.value)
        except TimeSyntaxError as exc:
            self.report.error(field.loc, str(exc))
            return None
        if expr.variable is not None and expr.variable not in self.variables:
            if expr.variable in self.declared:
                return None  # the variable's own error is reported where it is written
            known = ", ".join(self.variables) or "none"
            hint = did_you_mean(expr.variable, self.variables)
            self.report.error(
                field.loc,
                f"unknown variable '{expr.variable}'{hint}; the plan's variables are: {known}",
            )
            return None
        if expr.variable is None or self.resolved:
            minutes = expr.resolve(self.resolved)
            if minutes < SMALL_HOURS_END:
                self.report.warning(
                    field.loc,
                    f"{format_clock(minutes)} is in the small hours; "
                    "a reminder then may wake someone",
                )
        return expr

    def _duration(
        self,
        field: _Field | None,
        default: int,
        maximum: int = MAX_PRACTICE_DURATION,
        limit: str = _DURATION_LIMIT,
    ) -> int:
        """A practice's duration, at most a day; or, with its own maximum, its window."""
        if field is None or not isinstance(field.value, str):
            return default
        try:
            return parse_duration(field.value, maximum=maximum, limit=limit)
        except TimeSyntaxError as exc:
            self.report.error(field.loc, str(exc))
            return default

    def _every(self, every: _Field | None, rrule: _Field | None) -> frozenset[int] | None:
        """The days `every` names. Coaches write them as they speak: any case, full or
        abbreviated, singular or plural (`Sundays`, `[Mon, Wed]`, `"Mon, Wed"`); each
        spelling means the same days as the plain one."""
        if every is not None and rrule is not None:
            self.report.error(rrule.loc, "write every or rrule, not both", key=True)
        if every is None:
            return None if rrule is not None else EVERY_KEYWORDS["day"]
        value = every.value
        if isinstance(value, str):
            keyword = every_keyword(value)
            if keyword is not None:
                return EVERY_KEYWORDS[keyword]
            if "," in value:
                return self._days(split_days(value), every.loc, written=value)
            number = day_number(value)
            if number is not None:
                return frozenset({number})
            hint = did_you_mean(near_word(value), [*EVERY_WORDS, *DAY_CHOICES])
            self.report.error(
                every.loc,
                f"unknown value for every: '{value}'{hint}; write day, weekday, weekend, "
                "a day such as sunday, or a list of days such as [mon, wed, fri]",
            )
            return None
        if isinstance(value, list):
            items = [(item, i) for i, item in enumerate(value) if isinstance(item, str)]
            return self._days(items, every.loc, empty=not value)
        return None

    def _days(
        self,
        items: list[tuple[str, int]],
        loc: Loc,
        *,
        written: str | None = None,
        empty: bool = False,
    ) -> frozenset[int]:
        """The days of a list: items of a YAML list (with their index), or of a
        comma-separated text `written` (with their offset in it)."""
        chosen: dict[int, str] = {}
        for item, where in items:

            def error(message: str, item: str = item, where: int = where) -> None:
                if written is None:
                    self.report.error((*loc, where), message)
                else:
                    self._error_in_text(loc, written, where, message)

            number = day_number(item)
            if number is None:
                hint = did_you_mean(near_word(item), DAY_CHOICES)
                error(f"unknown day '{item}'{hint}; days are {one_of(WEEKDAYS)}")
            elif number in chosen:
                first = chosen[number]
                again = "" if first == item else f" (as '{first}')"
                error(f"'{item}' is listed twice{again}")
            else:
                chosen[number] = item
        if empty or (written is not None and not items):
            self.report.error(loc, "every needs at least one day")
        return frozenset(chosen)

    def _error_in_text(self, loc: Loc, written: str, offset: int, message: str) -> None:
        """An error at `offset` in the text value at `loc`: at its own column when the
        value is written on one line as it reads (plain or quoted), else at the value."""
        line, column = self.report.position(loc)
        lines = self.text.split("\n")
        source = lines[line - 1] if 0 < line <= len(lines) else ""
        start = column - 1
        if source[start : start + 1] in ("'", '"'):
            start += 1
        if source[start : start + len(written)] == written:
            self.report.add_at("error", line, start + offset + 1, message)
        else:
            self.report.error(loc, message)

    def _rrule(self, field: _Field | None) -> str | None:
        if field is None or not isinstance(field.value, str):
            return None
        body = field.value.strip()
        if body.upper().startswith("RRULE:"):
            body = body[len("RRULE:") :]
        problem = _check_rrule(body, self.weeks_total)
        if problem:
            self.report.error(field.loc, problem)
            return None
        return body

    def _weeks(self, field: _Field | None) -> frozenset[int] | None:
        if field is None:
            return None
        return self._week_set(field.value, field.loc)

    def _week_set(self, value: Any, loc: Loc) -> frozenset[int] | None:
        items = value if isinstance(value, list) else [value]
        weeks: set[int] = set()
        for i, item in enumerate(items):
            item_loc = (*loc, i) if isinstance(value, list) else loc
            first: int
            last: int
            if isinstance(item, bool):
                continue
            if isinstance(item, int):
                first = last = item
            elif isinstance(item, str):
                match = _WEEKS_RANGE.match(item)
                if not match:
                    self.report.error(
                        item_loc, f"'{item}' is not a week or a range of weeks; write 3 or \"1-4\""
                    )
                    continue
                numbers = [match[1], match[2] or match[1]]
                huge = next((n.lstrip("0") for n in numbers if len(n.lstrip("0")) > 9), None)
                if huge is not None:  # (not read: Python refuses numbers of 4300 digits)
                    self.report.error(item_loc, _past_any_plan(huge))
                    continue
                first, last = int(numbers[0]), int(numbers[1])
            else:
                continue
            if first < 1:
                self.report.error(item_loc, f"week {first} does not exist; weeks count from 1")
                continue
            if last < first:
                self.report.error(item_loc, f"'{item}' runs backwards; write {last}-{first}")
                continue
            # Checked before a week is counted: '1-3000000000' must not build a set of
            # three billion weeks, even when the plan's own length is wrong.
            if self.weeks_total is not None and last > self.weeks_total:
                self.report.error(
                    item_loc,
                    f"week {last} is past the plan's end (the plan has {self.weeks_total} weeks)",
                )
                continue
            if last > MAX_WEEKS:
                self.report.error(item_loc, _past_any_plan(str(last)))
                continue
            weeks.update(range(first, last + 1))
        if isinstance(value, list) and not value:
            self.report.error(loc, "weeks needs at least one week")
        return frozenset(weeks)

    def _channels(self, field: _Field | None) -> tuple[str, ...]:
        if field is None or not isinstance(field.value, list):
            return ("sms",)
        channels: list[str] = []
        for i, item in enumerate(field.value):
            if item in channels:
                self.report.error((*field.loc, i), f"channel '{item}' is listed twice")
            elif item in CHANNELS:
                channels.append(item)
        if not field.value:
            self.report.error(field.loc, f"choose at least one channel: {one_of(CHANNELS)}")
        return tuple(channels) or ("sms",)

    def _check_in(self, field: _Field | None) -> CheckIn:
        if field is None:
            return CheckIn()
        value = field.value
        if isinstance(value, str):
            kind = value.strip().lower()
            if kind not in CHECK_IN_KINDS:
                hint = did_you_mean(kind, CHECK_IN_KINDS)
                self.report.error(
                    field.loc,
                    f"unknown check-in kind '{value}'{hint}; "
                    f"expected one of {one_of(CHECK_IN_KINDS)}",
                )
                return CheckIn()
            return CheckIn(kind, scale=(1, 5) if kind == "rating" else None)
        if not isinstance(value, dict) or value.get("kind") not in CHECK_IN_KINDS:
            return CheckIn()
        kind = value["kind"]
        scale = value.get("scale")
        unit = value.get("unit")
        question = value.get("question")
        if scale is not None and kind != "rating":
            self.report.error(
                (*field.loc, "scale"), f"scale is for rating check-ins, not {kind}", key=True
            )
        if unit is not None and kind != "number":
            self.report.error(
                (*field.loc, "unit"), f"unit is for number check-ins, not {kind}", key=True
            )
        bounds: tuple[int, int] | None = None
        if kind == "rating":
            bounds = (1, 5)
            if (
                isinstance(scale, list)
                and len(scale) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in scale)
            ):
                bounds = (scale[0], scale[1])
                if bounds[0] >= bounds[1]:
                    self.report.error(
                        (*field.loc, "scale"),
                        f"scale [{bounds[0]}, {bounds[1]}] must go from low to high",
                    )
                elif bounds[1] - bounds[0] > 100:
                    self.report.error(
                        (*field.loc, "scale"), "a rating scale spans at most 100 steps"
                    )
        return CheckIn(
            kind=kind,
            scale=bounds,
            unit=unit if isinstance(unit, str) else None,
            question=question if isinstance(question, str) else None,
        )

    def _rotate(self, field: _Field | None) -> tuple[str, ...]:
        if field is not None and isinstance(field.value, LocalizedLines):
            if not field.value:
                self.report.error(field.loc, "rotate needs at least one line")
            return field.value
        if field is None or not isinstance(field.value, list):
            return ()
        if not field.value:
            self.report.error(field.loc, "rotate needs at least one line")
        return tuple(v for v in field.value if isinstance(v, str))

    def _text(
        self,
        message: _Field | None,
        template: _Field | None,
        channels: tuple[str, ...],
        category: _Field | None,
    ) -> tuple[str | None, str | None]:
        if message is not None and template is not None:
            # A practice's own key beats a default; two of its own is an error.
            if message.loc[0] == "defaults" and template.loc[0] != "defaults":
                message = None
            elif template.loc[0] == "defaults" and message.loc[0] != "defaults":
                template = None
            else:
                self.report.error(template.loc, "write message or template, not both", key=True)
                return None, None
        if message is not None and isinstance(message.value, str):
            self._compile_inline(message.value, message.loc)
            if isinstance(category, _Field) and isinstance(category.value, str):
                for channel in ("email", "calendar"):
                    if channel in channels:
                        self._check_template(
                            default_template(category.value), channel, message.loc, default=True
                        )
            return message.value, None
        if template is not None and isinstance(template.value, str):
            name = template.value.strip()
            if not valid_template_name(name):
                self.report.error(
                    template.loc,
                    f"'{name}' is not a template name; write a path under templates/ "
                    "such as sleep/wind-down, without the file's ending",
                )
                return None, None
            for channel in channels:
                self._check_template(name, channel, template.loc)
            return None, name
        if isinstance(category, _Field) and category.value in CATEGORIES:
            for channel in channels:
                self._check_template(
                    default_template(category.value), channel, category.loc, default=True
                )
        return None, None

    def warn_untranslated(self) -> None:
        """Each text, and each of the plan's own templates, lacking one of the languages
        the plan is written in: a participant in that language gets the plan's own."""
        for name, channel, _ in self.own_templates:
            self.texts.languages |= {
                lang
                for lang in self.renderer.languages()
                if self.renderer.has_template(f"{name}.{lang}", channel)
            }
        self.texts.languages.discard(self.texts.language)
        translations.missing(
            self.texts, lambda sev, loc, msg, key: self.report.add(sev, loc, msg, key=key)
        )
        for lang in sorted(self.texts.languages):
            for name, channel, loc in dict.fromkeys(self.own_templates):
                if not self.renderer.has_template(f"{name}.{lang}", channel):
                    self.report.warning(
                        loc,
                        f"no {translations.language_name(lang)} version of template "
                        f"'{name}' for {channel} (templates/{template_file(name, channel, lang)}): "
                        f"participants who read {translations.language_name(lang)} get "
                        f"the {translations.language_name(self.texts.language)} one",
                    )

    def compile_inline(self, source: str, loc: Loc) -> None:
        self._compile_inline(source, loc)

    def _compile_inline(self, source: str, loc: Loc) -> None:
        try:
            self.renderer.compile_inline(source)
        except jinja2.TemplateSyntaxError as exc:
            where = f" (line {exc.lineno} of the text)" if "\n" in source.strip() else ""
            self.report.error(loc, f"template syntax{where}: {exc.message}")

    def _check_template(
        self,
        name: str,
        channel: str,
        loc: Loc,
        *,
        default: bool = False,
        key: bool = False,
        summary: bool = False,
    ) -> None:
        filename = f"templates/{template_file(name, channel)}"
        if not default and not summary:
            self.own_templates.append((name, channel, loc))
        # Read every translation there is, so that a published version holds them all.
        for lang in sorted(self.renderer.languages()):
            self.renderer.has_template(f"{name}.{lang}", channel)
        try:
            template = self.renderer.template(name, channel)
        except jinja2.TemplateNotFound:
            if summary:
                self.report.error(
                    loc, f"the weekly summary's {channel} template is missing: {filename}", key=key
                )
            elif default:
                self.report.error(
                    loc,
                    f"the default {channel} template for this category is missing: {filename}",
                    key=key,
                )
            else:
                self.report.error(
                    loc,
                    f"template '{name}' has no {channel} file: {filename} does not exist",
                    key=key,
                )
            return
        except jinja2.TemplateSyntaxError as exc:
            self.report.error(
                loc, f"{filename}:{exc.lineno}: template syntax: {exc.message}", key=key
            )
            return
        if channel == "email":
            missing = [block for block in EMAIL_BLOCKS if block not in template.blocks]
            if missing:
                self.report.error(
                    loc,
                    f"{filename} lacks the block{'s' if len(missing) > 1 else ''} "
                    f"{one_of(missing)}; an email template defines subject, text and html",
                    key=key,
                )

    def _nudge(self, field: _Field | None, check_in: CheckIn, window: int) -> Nudge | None:
        if field is None or not isinstance(field.value, dict):
            return None
        after_text, message = field.value.get("after"), field.value.get("message")
        if not isinstance(after_text, str) or not isinstance(message, str):
            return None
        try:
            after = parse_duration(after_text, maximum=MAX_WINDOW, limit=_AFTER_LIMIT)
        except TimeSyntaxError as exc:
            self.report.error((*field.loc, "after"), str(exc))
            return None
        if not check_in.asks:
            self.report.error(
                field.loc, "a nudge waits for a check-in, but check_in is none", key=True
            )
        elif after >= window:
            self.report.error(
                (*field.loc, "after"),
                f"the nudge comes after the check-in window closes ({_minutes(window)})",
            )
        self._compile_inline(message, (*field.loc, "message"))
        return Nudge(after, message)

    def _phases(
        self,
        field: _Field | None,
        base: Variant,
        active: frozenset[int] | None,
        channels: tuple[str, ...],
        category: _Field | None,
    ) -> tuple[tuple[frozenset[int], Variant], ...]:
        if field is None or not isinstance(field.value, list):
            return ()
        phases: list[tuple[frozenset[int], Variant]] = []
        for i, raw in enumerate(field.value):
            if not isinstance(raw, dict) or "weeks" not in raw:
                continue
            loc = (*field.loc, i)

            def own(name: str, loc: Loc = loc, raw: dict[str, Any] = raw) -> _Field | None:
                return _Field(raw[name], (*loc, name)) if name in raw else None

            weeks = self._week_set(raw["weeks"], (*loc, "weeks")) or frozenset()
            for earlier, _ in phases:
                if weeks & earlier:
                    overlap = ", ".join(str(w) for w in sorted(weeks & earlier))
                    self.report.error((*loc, "weeks"), f"phases overlap in week {overlap}")
                    break
            if active is not None and weeks and not weeks & active:
                self.report.warning(
                    (*loc, "weeks"), "this phase covers no week in which the practice is active"
                )
            message, template = own("message"), own("template")
            new_message, new_template = base.message, base.template
            if message is not None or template is not None:
                new_message, new_template = self._text(message, template, channels, category)
            at = own("at")
            time = self._time(at) if at else base.at
            variant = Variant(
                at=time or base.at,
                duration_minutes=self._duration(own("duration"), base.duration_minutes),
                message=new_message,
                template=new_template,
                rotate=self._rotate(own("rotate")) if "rotate" in raw else base.rotate,
            )
            base_text_loc, base_at_loc = self.origins[id(base)]
            text_loc = next((f.loc for f in (message, template) if f), base_text_loc)
            self.origins[id(variant)] = (text_loc, at.loc if at else base_at_loc)
            phases.append((weeks, variant))
        return tuple(phases)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _zone_hint(name: str) -> str:
    """A near miss of a zone's name: its case (europe/london), spaces for _ (America/New
    York), a city alone (London), or a misspelling (Europe/Londn)."""
    wanted = "_".join(name.split()).lower()
    names = sorted(_zone_names())
    for candidate in names:
        if candidate.lower() == wanted:
            return f" (did you mean '{candidate}'?)"
    cities = [c for c in names if "/" in c and c.rsplit("/", 1)[1].lower() == wanted]
    if len(cities) == 1:
        return f" (did you mean '{cities[0]}'?)"
    return did_you_mean(name, names)


def _past_any_plan(week: str) -> str:
    shown = f"week {week}" if len(week) <= 12 else f"a week number of {len(week)} digits"
    return f"{shown} is past the end of any plan (a plan has at most {MAX_WEEKS} weeks)"


def _minutes(total: int) -> str:
    hours, minutes = divmod(total, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or not hours else "")


def _check_rrule(body: str, weeks_total: int | None) -> str | None:
    """A message saying what is wrong with an RRULE body, or None."""
    from dateutil.rrule import rrulestr

    parts: dict[str, str] = {}
    for part in body.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip().upper()
        if not sep or not value.strip():
            return f"invalid RRULE: '{part}' is not NAME=VALUE"
        if name == "DTSTART":
            return "invalid RRULE: leave DTSTART out; a practice starts with the enrollment"
        if name not in _RRULE_KEYS:
            hint = did_you_mean(name, _RRULE_KEYS)
            return f"invalid RRULE: unknown part '{name}'{hint}"
        parts[name] = value.strip().upper()
    freq = parts.get("FREQ")
    if freq is None:
        return "invalid RRULE: FREQ is required, such as FREQ=WEEKLY;BYDAY=MO,TH"
    if freq in {"HOURLY", "MINUTELY", "SECONDLY"}:
        return (
            f"RRULE FREQ={freq} is more frequent than daily; a practice occurs at most once a day"
        )
    if freq not in _RRULE_ALLOWED_FREQ:
        return f"invalid RRULE: unknown FREQ '{freq}'; use DAILY, WEEKLY, MONTHLY or YEARLY"
    for name in ("BYHOUR", "BYMINUTE", "BYSECOND"):
        if name in parts:
            return f"RRULE {name} is not allowed: the time of day comes from `at`"
    if "UNTIL" in parts and parts["UNTIL"].endswith("Z"):
        return "RRULE UNTIL is a local date here, such as UNTIL=20260601, without a Z"
    try:
        from datetime import datetime as _dt

        rrulestr(body, dtstart=_dt(2026, 1, 5))
    except (ValueError, TypeError) as exc:
        return f"invalid RRULE: {exc}"
    return None


# --- sample rendering: every message renders, and SMS fit -------------------------------


def _sample_render(
    plan: Plan,
    report: _Report,
    renderer: Renderer,
    origins: Mapping[int, tuple[Loc, Loc]],
    exact: frozenset[str],
    languages: Sequence[str] = (),
) -> None:
    """Render every message of `plan` for Alex. A practice in `exact` that never occurs
    is warned of; the others (sketches, or a plan without a length) may not occur."""
    occurrences = expand(plan, SAMPLE_START, UTC)
    by_practice: dict[str, list[Occurrence]] = {}
    for occurrence in occurrences:
        by_practice.setdefault(occurrence.practice.id, []).append(occurrence)
    variables = resolve_variables(plan.variables)
    practice_locs = _practice_locs(report)
    for practice in plan.practices:
        found = by_practice.get(practice.id, [])
        if not found and practice.id not in exact:
            continue
        if not found:
            report.warning(
                practice_locs.get(practice.id, ()),
                f"practice '{practice.id}' never occurs within the plan's "
                f"{plan.weeks} week{'s' if plan.weeks != 1 else ''}",
            )
            continue
        for variant in practice.variants():
            sample = next((o for o in found if o.variant is variant), found[0])
            text_loc, _ = origins.get(id(variant), ((), ()))
            for occurrence in _with_items(sample, variant):
                _render_one(plan, occurrence, variables, renderer, report, text_loc, languages)
        if practice.nudge is not None:
            context = renderer.context(
                plan, found[0], SAMPLE_PERSON, variables, SAMPLE_CHECK_IN_URL
            )
            loc = (*practice_locs.get(practice.id, ()), "nudge", "message")
            try:
                text = renderer.nudge(practice, context)
            except RenderError as exc:
                report.error(loc, str(exc))
            else:
                _warn_segments(text, loc, report, "the nudge")
    if plan.weekly_summary is not None:
        _render_summary(plan, plan.weekly_summary, report, renderer)


def _sample_days(practices: Sequence[Practice]) -> int:
    """A length for a plan whose own is in error, long enough for its practices to occur:
    to the last week they name, and a year when one follows an RRULE."""
    weeks = [1]
    for practice in practices:
        weeks.extend(practice.weeks or ())
        weeks.extend(week for active, _ in practice.phases for week in active)
        if practice.rrule:
            weeks.append(53)
    return 7 * min(max(weeks), MAX_WEEKS)


def _render_summary(
    plan: Plan, summary: WeeklySummary, report: _Report, renderer: Renderer
) -> None:
    """Render the weekly summary for Alex on each channel, in every sample week; problems
    are reported at the `weekly_summary` key, a long SMS once (the longest)."""
    loc: Loc = ("weekly_summary",)
    longest = ""
    try:
        for context in sample_summary_contexts(plan):
            if "sms" in summary.channels:
                text = clean_for_sms(renderer.summary_sms(context))
                if _sms_units(text) > _sms_units(longest):
                    longest = text
            if "email" in summary.channels:
                renderer.summary_email(context)
    except RenderError as exc:
        report.error(loc, f"the weekly summary: {exc}", key=True)
    if longest:
        _warn_segments(longest, loc, report, "the weekly summary SMS", key=True)


def _sms_units(text: str) -> tuple[int, int]:
    segments = count_segments(text)
    return segments.count, segments.length


def _practice_locs(report: _Report) -> dict[str, Loc]:
    practices = report.tree.get("practices") if isinstance(report.tree, dict) else None
    if not isinstance(practices, list):
        return {}
    return {
        str(raw["id"]): ("practices", i)
        for i, raw in enumerate(practices)
        if isinstance(raw, dict) and isinstance(raw.get("id"), str)
    }


def _with_items(sample: Occurrence, variant: Variant) -> Iterator[Occurrence]:
    base = replace(sample, variant=variant)
    if not variant.rotate:
        yield replace(base, item=None)
        return
    for item in dict.fromkeys(variant.rotate):
        yield replace(base, item=item)


def _render_one(
    plan: Plan,
    occurrence: Occurrence,
    variables: Mapping[str, int],
    renderer: Renderer,
    report: _Report,
    loc: Loc,
    languages: Sequence[str] = (),
) -> None:
    """Render the occurrence's messages as everyone gets them: in the plan's language
    (whose SMS length is warned of), in each translation, and for discreet participants."""
    practice, variant = occurrence.practice, occurrence.variant
    for language in (None, *languages):
        context = renderer.context(
            plan, occurrence, SAMPLE_PERSON, variables, SAMPLE_CHECK_IN_URL, language=language
        )
        try:
            if "sms" in practice.channels:
                sms = renderer.sms(variant, practice, context)
                if language is None:
                    _warn_segments(sms, loc, report, "the SMS")
            if "email" in practice.channels:
                renderer.email(variant, practice, context)
            if "calendar" in practice.channels:
                renderer.calendar(variant, practice, context)
            renderer.text(variant, practice, context)
        except InlineSyntaxError:
            continue  # reported where the text is written
        except RenderError as exc:
            shown = f" ({language})" if language else ""
            report.error(loc, f"{exc}{shown}" if shown else str(exc))
    if practice.discreet_message is None and not renderer.has_template(DISCREET_DEFAULT, "sms"):
        return  # no neutral wording here to check (the catalog checks Tend's own)
    try:
        for language in (None, *languages):
            context = renderer.context(
                plan,
                occurrence,
                SAMPLE_PERSON,
                variables,
                SAMPLE_CHECK_IN_URL,
                language=language,
                discreet=True,
            )
            for channel, render in (
                ("sms", renderer.sms),
                ("email", renderer.email),
                ("calendar", renderer.calendar),
            ):
                if channel in practice.channels:
                    render(variant, practice, context)
            if practice.nudge is not None:
                renderer.nudge(practice, context)
    except InlineSyntaxError:
        pass  # reported where the text is written
    except RenderError as exc:
        if practice.discreet_message is not None:
            report.error(loc, f"the discreet message: {exc}")
        else:
            report.warning(
                loc,
                f"discreet participants' texts cannot be written ({exc}); give the "
                "practice a discreet_message",
            )


def _warn_segments(text: str, loc: Loc, report: _Report, what: str, *, key: bool = False) -> None:
    segments = count_segments(clean_for_sms(text))
    if segments.count > 1:
        report.warning(
            loc,
            f"{what} needs {segments.describe()}; one segment holds 160 GSM-7 "
            "or 70 UCS-2 characters",
            key=key,
        )
