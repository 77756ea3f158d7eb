"""The template sandbox: a Jinja environment that is safe and bounded.

Jinja's immutable sandbox keeps a template from Python's internals and from changing what
it is given (no `participant.clear()`). On top of it, every way a short template could
take much memory or time is bounded (see "limits" below): a limit reached is a
`jinja2.exceptions.SecurityError`, raised before the text, list or number is made.

Apart from the sizes its limits are chosen for, this module knows nothing of Tend's
messages: `service.core.render` builds on it. Its surface:

- `environment(loader, autoescape, undefined=...)`: an environment whose templates render
  within the limits (`Template.render` has a budget);
- `render_block`: one block of such a template, rendered within the same limits;
- `compiled`: the ways Jinja's parser fails on deeply nested or unreadable text turned
  into syntax errors;
- `short`: any value written for an error message, without writing all of it out;
- the limits themselves, `MAX_*`.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import re
import time
import types
from collections import abc, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import make_attrgetter
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from jinja2.utils import Namespace, generate_lorem_ipsum
from markupsafe import Markup

__all__ = [
    "MAX_BITS",
    "MAX_DEPTH",
    "MAX_LIPSUM",
    "MAX_MADE",
    "MAX_OUTPUT",
    "MAX_PRECISION",
    "MAX_RANGE",
    "MAX_SECONDS",
    "MAX_SIZE",
    "MAX_STEPS",
    "MAX_TEXT",
    "compiled",
    "environment",
    "render_block",
    "short",
]


# --- limits ------------------------------------------------------------------------------
#
# An SMS is at most 1,600 characters (ten segments) and an email body a few thousand; the
# longest text Tend renders, the coach's digest, grows by about 60 characters (of html) a
# participant. The limits below are far above that and far below what would hurt a worker,
# so that no template, however short, can take much memory or time:
#
# - what one expression makes (`~`, `+`, `%`, `format`, padding, `replace`, `join`,
#   `indent`, ...) is at most MAX_TEXT characters, checked *before* it is made (widths,
#   counts and separators are worked out first), and `*` at most MAX_SIZE as before;
# - what a template writes (the whole text, and the body of a block, macro, `{% call %}`
#   or `{% set %}`) is at most MAX_OUTPUT characters, and so is whatever a filter or a
#   method makes from it (they grow their input by at most a small factor);
# - a list is measured as the text it would print as (a list holding one long string ten
#   times prints it ten times), so printing, comparing or hashing any value is bounded too;
# - numbers made by `*` and `**` have at most MAX_BITS bits;
# - one rendering has a budget: MAX_STEPS loop turns, calls and filters, MAX_MADE
#   characters made in all, calls nested MAX_DEPTH deep, and MAX_SECONDS of CPU time as a
#   backstop for whatever the others miss.
#
# A limit reached is a SecurityError, which service.core.render's Renderer reports as a
# RenderError ("not allowed in a message: ...") and the loader as a plan error at the
# message.

MAX_SIZE = 10_000  # characters or items `*` may make ('-' * 20 draws a line)
MAX_TEXT = 100_000  # characters an expression may make: 60 SMS, a 25-page email
MAX_OUTPUT = 1_000_000  # characters a rendering writes: a digest of 15,000 participants
MAX_MADE = 5 * MAX_OUTPUT  # characters (and list items) one rendering may make in all
MAX_BITS = 10_000  # bits of a number made by `*` or `**`: about 3,000 digits
MAX_RANGE = 10_000  # numbers `range()` may give (Jinja's own limit is 100,000)
MAX_STEPS = 50_000  # loop turns, calls and filters in one rendering
MAX_DEPTH = 50  # calls inside calls: macros, caller(), loop() of a recursive loop
MAX_SECONDS = 2.0  # CPU seconds of one rendering (of this thread, not the wall clock)
MAX_LIPSUM = 10_000  # words lipsum() may make
MAX_PRECISION = 100  # digits `round` may keep


def _too_much(what: str) -> jinja2.exceptions.SecurityError:
    return jinja2.exceptions.SecurityError(what)


@dataclass(slots=True)
class _Budget:
    """What one rendering has used so far."""

    deadline: float
    steps: int = 0
    made: int = 0
    depth: int = 0
    # id -> (value, text size, depth, exact?) of each list, tuple or dict measured
    shapes: dict[int, tuple[Any, int, int, bool]] = field(default_factory=dict)

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _too_much(f"more than {MAX_STEPS:,} loop turns, calls and filters")
        if time.thread_time() > self.deadline:
            raise _too_much(f"more than {MAX_SECONDS:g} seconds of work")

    def make(self, size: int) -> None:
        self.made += size
        if self.made > MAX_MADE:
            raise _too_much(f"more than {MAX_MADE:,} characters made in all")


_BUDGET: ContextVar[_Budget | None] = ContextVar("tend_render_budget", default=None)


@contextmanager
def _rendering() -> Iterator[None]:
    """A budget for one rendering; an inner rendering (none today) shares the outer one."""
    if _BUDGET.get() is not None:
        yield
        return
    token = _BUDGET.set(_Budget(deadline=time.thread_time() + MAX_SECONDS))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _step() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step()


def _make(size: int) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.make(size)


_CONTAINERS = (list, tuple, set, frozenset, deque, abc.KeysView, abc.ValuesView, abc.ItemsView)
_COMPOUND = (Namespace, Mapping, *_CONTAINERS)  # what _text_shape looks inside
_END = object()
_REMEMBERED = 256  # text size from which a rendering remembers a list's size
_MAX_REMEMBERED = 10_000  # lists remembered (and so kept alive) by one rendering


def _leaf_size(item: Any) -> int | None:
    """The text size of a value that holds no others; None for a container."""
    if isinstance(item, str | bytes | bytearray):
        return len(item) + 2
    if item is None or isinstance(item, bool | jinja2.Undefined):
        return 5
    if isinstance(item, int):
        return item.bit_length() // 3 + 2
    if isinstance(item, range):
        ends = (item.start, item.stop, item.step)
        return sum(end.bit_length() // 3 + 2 for end in ends) + 8
    if isinstance(item, _COMPOUND):
        return None
    return 64  # a float, a date, a generator, an object from the context


def _children(container: Any) -> Iterator[Any]:
    if isinstance(container, Namespace):  # not remembered: its values change
        attrs = object.__getattribute__(container, "_Namespace__attrs")
        return itertools.chain.from_iterable(attrs.items())
    if isinstance(container, Mapping):
        return itertools.chain.from_iterable(container.items())
    return iter(container)


def _text_shape(value: Any, limit: int) -> tuple[int, int]:
    """About len(str(value)), and how deeply `value` nests (0: no lists in it, 1: a list
    of lists...), found without making the text.

    A shared item counts as often as it is shared, as str() writes it, but is measured
    once: the rendering remembers the size of the lists it has measured (templates cannot
    change lists), so [a, a] costs two steps once `a` is known. Measuring stops as soon as
    the size passes `limit`, so it never takes more than about `limit` steps."""
    leaf = _leaf_size(value)
    if leaf is not None:
        return (len(value) if isinstance(value, str | bytes) else leaf), 0
    budget = _BUDGET.get()
    known = budget.shapes if budget is not None else {}
    # each frame: [container, its children still to see, size so far, depth below it]
    frames: list[list[Any]] = [[value, _children(value), 2, 0]]
    path = {id(value)}
    while frames:
        frame = frames[-1]
        size, deeper = frame[2], None
        for child in frame[1]:
            size += 2  # a separator
            kind = type(child)
            if kind is str:  # the common cases first, without calls
                size += len(child) + 2
            elif kind is int:
                size += child.bit_length() // 3 + 2
            elif kind is float or kind is bool or child is None:
                size += 24
            elif (leaf := _leaf_size(child)) is not None:
                size += leaf
            elif (
                (seen := known.get(id(child))) is not None
                and seen[0] is child
                and (seen[3] or seen[1] > limit)
            ):
                size += seen[1]
                frame[3] = max(frame[3], seen[2] + 1)
            elif id(child) in path:  # a value inside itself: str() writes [...]
                size += 5
            else:
                deeper = child
                break
            if size > limit:
                break
        frame[2] = size
        if deeper is not None and size <= limit:
            frames.append([deeper, _children(deeper), 2, 0])
            path.add(id(deeper))
            continue
        container, _, size, depth = frames.pop()
        path.discard(id(container))
        remember = size >= _REMEMBERED and len(known) < _MAX_REMEMBERED
        if remember and not isinstance(container, Namespace):  # its values change
            known[id(container)] = (container, size, depth, size <= limit)
        if frames:
            frames[-1][2] += size
            frames[-1][3] = max(frames[-1][3], depth + 1)
        else:
            return size, depth
    raise AssertionError("unreachable")


def _text_size(value: Any, limit: int) -> int:
    return _text_shape(value, limit)[0]


def _sized(value: Any, limit: int, what: str) -> int:
    """The text size of `value`; a SecurityError when it is above `limit`."""
    size = _text_size(value, limit)
    if size > limit:
        raise _too_much(f"{what} longer than {limit:,} characters")
    return size


_T = TypeVar("_T")


def _made(value: _T) -> _T:
    """Check and count a value that an operator, filter or call has just made."""
    if isinstance(value, str | bytes):
        if len(value) > MAX_OUTPUT:
            raise _too_much(f"text longer than {MAX_OUTPUT:,} characters")
        _make(len(value))
    elif isinstance(value, list | tuple | dict | set | frozenset):
        _sized(value, MAX_OUTPUT, "a list (as text)")
        _make(len(value))
    elif isinstance(value, int) and value.bit_length() > MAX_BITS:
        # (0).from_bytes(text), '{{ s | int(base=16) }}': dividing such numbers takes hours
        raise _too_much(f"a number above {MAX_BITS:,} bits")
    return value


def _joined(parts: Iterable[str], limit: int) -> str:
    """The parts joined, refused as soon as they pass `limit` characters."""
    kept: list[str] = []
    total = 0
    for part in parts:
        total += len(part)
        if total > limit:
            raise _too_much(f"text longer than {limit:,} characters")
        kept.append(part)
    return "".join(kept)


def _limited(items: Iterable[_T]) -> Iterator[_T]:
    """`items`, refused past MAX_TEXT of them: what a filter or call reads into a list
    (`s | batch(1) | list` of a long text would make a list for each character)."""
    for count, item in enumerate(items):
        if count >= MAX_TEXT:
            raise _too_much(f"a list of more than {MAX_TEXT:,} items")
        yield item


def short(value: Any, limit: int = 80) -> str:
    """`str(value)` for a message, cut short: a name looked up may be any value."""
    if isinstance(value, str):
        text = value
    elif _text_size(value, limit) > limit:
        return f"a long {type(value).__name__}"
    else:
        text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _int(value: Any) -> int:
    """An int argument as a size (a wrong type is left for the method to refuse)."""
    return abs(value) if isinstance(value, int) else 0


def _number(digits: str) -> int:
    """A width or precision written in a format (huge ones without int()'s digit limit)."""
    return int(digits) if len(digits) < 10 else 10**10


# `%` formats: %(key)flags width .precision length type
_PERCENT = re.compile(r"%(?:\(([^)]*)\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.?)", re.DOTALL)
_DIGITS = re.compile(r"\d+")
_FLOAT_DIGITS = 310  # '%f' % 1e308 has 309 digits before the point


def _percent_size(template: str, args: Any) -> int:
    """About len(template % args): the widths, precisions and values of its conversions."""
    values = args if isinstance(args, tuple) else (args,)
    mapping = args if isinstance(args, Mapping) else None
    size, taken = len(template), 0
    for match in _PERCENT.finditer(template):
        key, width, precision, kind = match.groups()
        for number in (width, precision):
            if number == "*":
                star = values[taken] if taken < len(values) else 0
                taken += 1
                size += _int(star)
            elif number:
                size += _number(number)
        if kind == "%":
            continue
        if kind in ("f", "F"):
            size += _FLOAT_DIGITS
        if key is not None:
            try:
                value = mapping[key] if mapping is not None else None
            except Exception:  # a missing key: `%` says so itself
                value = None
        else:
            value = values[taken] if taken < len(values) else None
            taken += 1
        size += _text_size(value, MAX_TEXT)
        if size > MAX_TEXT:
            break
    return size


def _check_percent(template: str, args: Any) -> None:
    if _percent_size(template, args) > MAX_TEXT:
        raise _too_much(f"formatted text longer than {MAX_TEXT:,} characters")


class _BoundedFormatter(SandboxedFormatter):
    """str.format in the sandbox, refusing widths, precisions and values that would make
    the text longer than MAX_TEXT before it is made."""

    _size = 0

    def vformat(self, format_string: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        self._size = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        _sized(value, MAX_TEXT, "a value to format")  # before str() or repr() writes it
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        numbers = sum(_number(digits) for digits in _DIGITS.findall(format_spec))
        # a date's spec is strftime's: '%c' writes 24 characters
        self._size += numbers + 12 * len(format_spec) + _text_size(value, MAX_TEXT)
        if format_spec[-1:] in ("f", "F", "%"):
            self._size += _FLOAT_DIGITS
        if self._size > MAX_TEXT:
            raise _too_much(f"formatted text longer than {MAX_TEXT:,} characters")
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, SandboxedEscapeFormatter):
    """The same, for Markup.format (html)."""


def _replace_growth(text: Any, old: Any, new: Any, count: Any) -> int:
    """How many characters text.replace(old, new, count) adds."""
    if not (isinstance(text, str | bytes) and isinstance(old, str | bytes)):
        return 0
    if not isinstance(new, str | bytes):
        return 0
    try:
        found = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    except TypeError:  # str and bytes mixed: replace() refuses it itself
        return 0
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return found * max(len(new) - len(old), 0)


def _arg(
    args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str, default: Any = None
) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


_PADDING = frozenset({"center", "ljust", "rjust", "zfill"})


def _method_args(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Refuse a call of a method that would make too much text before it makes it; the
    arguments to call it with (join's iterable, read once to be measured, as a list)."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    added = 0
    if isinstance(owner, str | bytes):
        if name in _PADDING:
            added = _int(_arg(args, kwargs, 0, "width"))
        elif name == "expandtabs":
            tab = "\t" if isinstance(owner, str) else b"\t"
            added = owner.count(tab) * _int(_arg(args, kwargs, 0, "tabsize", 8))  # type: ignore[arg-type]
        elif name == "replace":
            old, new = _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new")
            added = _replace_growth(owner, old, new, _arg(args, kwargs, 2, "count", -1))
        elif name == "join" and args:
            items = list(_limited(args[0]))
            args = (items, *args[1:])
            added = len(owner) * max(len(items) - 1, 0)
            total = added + sum(len(item) for item in items if isinstance(item, str | bytes))
            if total > MAX_OUTPUT and added <= MAX_TEXT:
                raise _too_much(f"joined text longer than {MAX_OUTPUT:,} characters")
        elif name == "encode":  # '\\N{LATIN SMALL LETTER A WITH GRAVE}' for 'à'
            errors = _arg(args, kwargs, 1, "errors", "strict")
            if errors in ("namereplace", "xmlcharrefreplace", "backslashreplace"):
                added = len(owner) * (100 if errors == "namereplace" else 10)
        elif name == "translate" and args and isinstance(args[0], Mapping):
            lengths = (len(v) for v in args[0].values() if isinstance(v, str | bytes))
            added = len(owner) * max(max(lengths, default=1) - 1, 0)
    elif name == "strftime":
        written = _arg(args, kwargs, 0, "format")
        added = 12 * len(written) if isinstance(written, str) else 0
    elif name == "to_bytes" and isinstance(owner, int):
        added = _int(_arg(args, kwargs, 0, "length", 1))
    if added > MAX_TEXT:
        raise _too_much(f"{name}() making more than {MAX_TEXT:,} characters")
    return args


def _check_filter(name: str, a: dict[str, Any]) -> None:
    """Refuse a filter whose arguments would make too much text before it runs; `a` holds
    its arguments by name, and join's and sum's iterables are read here into lists."""
    added = 0
    if name == "center":
        added = _int(a["width"])
    elif name == "indent":
        width, text = a["width"], a["s"]
        per_line = len(width) if isinstance(width, str) else _int(width)
        lines = text.count("\n") + 1 if isinstance(text, str) else _text_size(text, MAX_OUTPUT)
        added = lines * per_line
    elif name == "wordwrap":
        size = _text_size(a["s"], MAX_OUTPUT)
        wrap = a["wrapstring"]
        if isinstance(a["width"], int) and a["width"] < size:  # at most a line per word
            added = (size // 2 + 1) * (len(wrap) if isinstance(wrap, str) else 2)
    elif name == "format":
        _check_percent(str(a["value"]), a["kwargs"] or a["args"])
    elif name == "replace":  # on str(s), str(old), str(new): a list's text too
        count = a["count"] if a["count"] is not None else -1
        text, old, new = (str(a[key]) for key in ("s", "old", "new"))
        added = _replace_growth(text, old, new, count)
    elif name == "join":
        items = list(a["value"])
        if a["attribute"] is not None:
            getter = make_attrgetter(a["eval_ctx"].environment, a["attribute"])
            items = [getter(item) for item in items]
        a["value"], a["attribute"] = items, None
        added = len(str(a["d"])) * max(len(items) - 1, 0)
        total = added + sum(_text_size(item, MAX_OUTPUT) for item in items)
        if total > MAX_OUTPUT and added <= MAX_TEXT:
            raise _too_much(f"joined text longer than {MAX_OUTPUT:,} characters")
    elif name in ("batch", "slice"):
        count = _int(a["linecount" if name == "batch" else "slices"])
        if count > MAX_SIZE:
            raise _too_much(f"|{name} into more than {MAX_SIZE:,}")
    elif name == "tojson":  # escapes write up to 6 characters for one; indent each level
        size, depth = _text_shape(a["value"], MAX_OUTPUT)
        indent = a["indent"]
        per_level = len(indent) if isinstance(indent, str) else _int(indent)
        added = size * (5 + (depth + 1) * per_level)
    elif name == "pprint":  # a line for each item, indented by one for each level
        size, depth = _text_shape(a["value"], MAX_OUTPUT)
        added = size * (depth + 1)
    elif name == "urlize":
        size = _text_size(a["value"], MAX_OUTPUT)
        extra = sum(len(str(a[key])) for key in ("target", "rel") if a[key] is not None)
        added = (size // 4 + 1) * extra  # a link every four characters at most
    elif name == "round":
        if _int(a["precision"]) > MAX_PRECISION:
            raise _too_much(f"|round to more than {MAX_PRECISION} digits")
    elif name == "sum" and isinstance(a["start"], str | list | tuple):
        items = list(a["iterable"])  # adding lists copies each sum again
        a["iterable"] = items
        total = len(a["start"]) + sum(len(item) for item in items if isinstance(item, Sized))
        added = len(items) * total
    if added > MAX_TEXT:
        raise _too_much(f"|{name} making more than {MAX_TEXT:,} characters")


_CHECKED_FILTERS = frozenset(
    {"center", "indent", "wordwrap", "format", "replace", "join", "batch", "slice",
     "tojson", "pprint", "urlize", "round", "sum"}
)  # fmt: skip


# filters that do not write their value out as text (all others may: str(value))
_UNWRITTEN = frozenset(
    {"abs", "attr", "batch", "count", "d", "default", "dictsort", "first", "float", "groupby",
     "int", "items", "last", "length", "list", "map", "max", "min", "random", "reject",
     "rejectattr", "reverse", "round", "select", "selectattr", "slice", "sort", "sum", "unique"}
)  # fmt: skip


# filters that read their value into a list
_LISTING = frozenset(
    {"batch", "dictsort", "groupby", "join", "list", "reverse", "slice", "sort", "sum", "unique"}
)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` counted as a step, its value measured before it is written out, its size
    arguments checked, and what it makes checked and counted."""
    signature = inspect.signature(func)
    passed = hasattr(func, "jinja_pass_arg")  # gets a context, eval_ctx or environment first
    first = 1 if passed else 0  # where the value is
    # Jinja's filters with an async variant (list, slice) get an eval_ctx their signature
    # (the sync function's) does not show
    params = list(signature.parameters)
    hidden = passed and not (params and params[0] in ("context", "eval_ctx", "environment", "env"))
    skip = 1 if hidden else 0

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _step()
        if len(args) > first:
            value = args[first]
            if isinstance(value, abc.Iterator):  # map(), select(), batch()...: read lazily
                args = (*args[:first], _limited(value), *args[first + 1 :])
            elif name in _LISTING and isinstance(value, Sized) and len(value) > MAX_TEXT:
                raise _too_much(f"|{name} of more than {MAX_TEXT:,} items")
            if name not in _UNWRITTEN:  # str(a list) before it is made
                _sized(value, MAX_OUTPUT, f"a value given to |{name}")
        if name in _CHECKED_FILTERS:
            bound = signature.bind(*args[skip:], **kwargs)
            bound.apply_defaults()
            _check_filter(name, bound.arguments)
            args, kwargs = (*args[:skip], *bound.args), bound.kwargs
        return _made(func(*args, **kwargs))

    return bounded


def _range(*args: Any) -> range:
    """range() up to MAX_RANGE numbers."""
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:
        count = MAX_RANGE + 1
    if count > MAX_RANGE:
        raise _too_much(f"Range too big: range() gives at most {MAX_RANGE:,} numbers")
    return numbers


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """lipsum() up to MAX_LIPSUM words."""
    if _int(n) * _int(max) > MAX_LIPSUM:
        raise _too_much(f"lipsum() of more than {MAX_LIPSUM:,} words")
    return generate_lorem_ipsum(n, html, min, max)


def _stored(value: Any) -> None:
    if isinstance(value, Namespace):
        raise _too_much("a namespace inside a namespace")
    _sized(value, MAX_OUTPUT, "a value kept in a namespace")


class _Namespace(Namespace):
    """namespace(), whose values are measured like any other: no namespaces inside."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # as Namespace's: any keyword names
        Namespace.__init__(*args, **kwargs)
        for value in object.__getattribute__(args[0], "_Namespace__attrs").values():
            _stored(value)

    def __setitem__(self, name: str, value: Any) -> None:
        _step()
        _stored(value)
        super().__setitem__(name, value)


class _LoopItems:
    """A for loop's iterable: each turn is a step, and writes up to `weight` characters of
    the loop's own text (which no other count sees when a macro collects it)."""

    __slots__ = ("items", "weight")

    def __init__(self, items: Any, weight: int) -> None:
        self.items = items
        self.weight = weight

    def __iter__(self) -> Iterator[Any]:
        budget = _BUDGET.get()
        for item in self.items:
            if budget is not None:
                budget.step()
                budget.make(self.weight)
            yield item

    def __len__(self) -> int:  # loop.length, loop.last: a TypeError makes Jinja count
        return len(self.items)


class _CodeGenerator(CodeGenerator):
    """Jinja's compiler, with hooks where the sandbox has none: every for loop counts its
    turns, `~` measures its parts before joining them, list, tuple and dict literals are
    measured, and each template's output is counted as it is written."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        super().visit_Template(node, frame)
        self.writeline("root = environment._counted_render(root)")
        self.writeline("blocks = {k: environment._counted_render(v) for k, v in blocks.items()}")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        if not _is_counted(node.iter):  # `for x in environment._loop_items(items, weight)`
            text = sum(len(data.data) for part in node.body for data in _template_data(part))
            counted = nodes.EnvironmentAttribute("_loop_items", lineno=node.lineno)
            weight = nodes.Const(1 + text, lineno=node.lineno)
            node.iter = nodes.Call(counted, [node.iter, weight], [], None, None, lineno=node.lineno)
        super().visit_For(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        _limit_star_args(node)
        super().visit_Call(node, frame, forward_caller=forward_caller)

    def visit_Filter(self, node: nodes.Filter, frame: Frame) -> None:
        _limit_star_args(node)
        super().visit_Filter(node, frame)

    def visit_Test(self, node: nodes.Test, frame: Frame) -> None:
        _limit_star_args(node)
        super().visit_Test(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment._concat_values({join}, (")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment._literal(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment._literal(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # `{% for a, b in ... %}`: a target, not a value
            super().visit_Tuple(node, frame)
            return
        self.write("environment._literal(")
        super().visit_Tuple(node, frame)
        self.write(")")


def _is_counted(node: nodes.Node, name: str = "_loop_items") -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.EnvironmentAttribute)
        and node.node.name == name
    )


def _limit_star_args(node: nodes.Call | nodes.Filter | nodes.Test) -> None:
    """`f(*items)` as `f(*environment._limited_items(items))`: Python reads `*items` into
    a tuple before any hook sees the call."""
    star = node.dyn_args
    if star is not None and not _is_counted(star, "_limited_items"):
        limited = nodes.EnvironmentAttribute("_limited_items", lineno=star.lineno)
        node.dyn_args = nodes.Call(limited, [star], [], None, None, lineno=star.lineno)


def _template_data(node: nodes.Node) -> Iterator[nodes.TemplateData]:
    if isinstance(node, nodes.TemplateData):
        yield node
    yield from node.find_all(nodes.TemplateData)


class _Template(jinja2.Template):
    """A template whose render() has a budget and a bounded output."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        with _rendering():
            return _joined(self.generate(*args, **kwargs), MAX_OUTPUT)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox (no `participant.clear()`), bounded in memory and time
    (see "limits" above): `'a' * 10**9`, `9 ** 9 ** 9`, `'x'.ljust(10**9)`, a loop in a
    loop in a loop, all stop at once with a SecurityError."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _CodeGenerator
    template_class = _Template

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.update(range=_range, lipsum=_lipsum, namespace=_Namespace)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_times(left, right)
        elif operator == "+":
            _check_plus(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        return _made(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, LoopContext) and args:  # loop(children) in a recursive loop
            weight = getattr(obj._iterable, "weight", 1)
            args = (_LoopItems(args[0], weight), *args[1:])
        else:
            args = tuple(_limited(a) if isinstance(a, abc.Iterator) else a for a in args)
            args = _method_args(obj, args, kwargs)
        budget = _BUDGET.get()
        if budget is None:
            return _made(super().call(context, obj, *args, **kwargs))
        budget.step()
        budget.depth += 1
        try:
            if budget.depth > MAX_DEPTH:
                raise _too_much(f"calls nested more than {MAX_DEPTH} deep")
            result = super().call(context, obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return _made(result)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """As Jinja's, with formatters that bound widths and precisions."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType):
            return None
        if value.__name__ not in ("format", "format_map"):
            return None
        owner = value.__self__
        if not isinstance(owner, str):
            return None
        text_type = type(owner)
        is_format_map = value.__name__ == "format_map"
        formatter: _BoundedFormatter
        if isinstance(owner, Markup):
            formatter = _BoundedEscapeFormatter(self, escape=owner.escape)
        else:
            formatter = _BoundedFormatter(self)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            return text_type(formatter.vformat(owner, args, kwargs))

        return functools.update_wrapper(wrapper, value)

    def concat(self, parts: Iterable[str]) -> str:
        """What compiled templates join a block's, macro's or `{% set %}`'s output with."""
        text = _joined(parts, MAX_OUTPUT)
        _make(len(text))
        return text

    # -- called by the code _CodeGenerator writes ---------------------------------------

    def _loop_items(self, items: Any, weight: int) -> _LoopItems:
        return _LoopItems(items, weight)

    def _limited_items(self, items: Iterable[Any]) -> Iterator[Any]:
        return _limited(items)

    def _concat_values(self, join: Callable[[Iterable[Any]], str], values: tuple[Any, ...]) -> str:
        total = 0
        for value in values:
            total += _text_size(value, MAX_TEXT)
            if total > MAX_TEXT:
                raise _too_much(f"text joined with ~ longer than {MAX_TEXT:,} characters")
        return _made(join(values))

    def _literal(self, value: _T) -> _T:
        _sized(value, MAX_OUTPUT, "a list (as text)")
        _make(len(value))  # type: ignore[arg-type]
        return value

    def _counted_render(
        self, render: Callable[[Context], Iterator[str]]
    ) -> Callable[[Context], Iterator[str]]:
        def counted(context: Context) -> Iterator[str]:
            budget = _BUDGET.get()
            if budget is None:
                yield from render(context)
                return
            for event in render(context):
                budget.make(len(event))
                yield event

        return counted


def _check_power(base: Any, exponent: Any) -> None:
    """Refuse an int power of more than MAX_BITS bits: `**` groups from the left in Jinja,
    so a bound on the exponent alone lets 9 ** 64 ** 64 ** 64 ** 64 through."""
    if not (isinstance(base, int) and isinstance(exponent, int)):
        return  # a float power overflows at once instead
    if exponent <= 0 or abs(base) <= 1:
        return
    if exponent > MAX_BITS or exponent * math.log2(abs(base)) > MAX_BITS:
        raise _too_much(f"a power above {MAX_BITS:,} bits: {short(base)} ** {short(exponent)}")


def _check_times(left: Any, right: Any) -> None:
    for sized, count in ((left, right), (right, left)):
        if isinstance(sized, str | bytes | list | tuple) and isinstance(count, int) and count > 1:
            if len(sized) * count > MAX_SIZE:
                raise _too_much(f"text or a list longer than {MAX_SIZE:,}")
            if (
                not isinstance(sized, str | bytes)
                and _text_size(sized, MAX_TEXT) * count > MAX_TEXT
            ):
                raise _too_much(f"a list longer than {MAX_TEXT:,} characters as text")
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and left.bit_length() + right.bit_length() > MAX_BITS
    ):
        raise _too_much(f"a number above {MAX_BITS:,} bits")


def _check_plus(left: Any, right: Any) -> None:
    if isinstance(left, str | bytes) and isinstance(right, str | bytes):
        if len(left) + len(right) > MAX_TEXT:
            raise _too_much(f"text longer than {MAX_TEXT:,} characters")
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        if len(left) + len(right) > MAX_TEXT:
            raise _too_much(f"a list longer than {MAX_TEXT:,} items")
        if _text_size(left, MAX_OUTPUT) + _text_size(right, MAX_OUTPUT) > MAX_OUTPUT:
            raise _too_much(f"a list longer than {MAX_OUTPUT:,} characters as text")


def environment(
    loader: jinja2.BaseLoader | None,
    autoescape: bool,
    *,
    undefined: type[jinja2.Undefined] = jinja2.StrictUndefined,
) -> jinja2.Environment:
    """A sandboxed, bounded environment for templates from `loader`; `undefined` is what a
    name the context lacks becomes (its message is the caller's to word)."""
    return _Sandbox(
        loader=loader,
        undefined=undefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
        cache_size=1000,
        finalize=_finalize,
        optimized=False,  # no folding of constants at compile time: all of it runs bounded
    )


@jinja2.pass_eval_context  # also keeps Jinja from finalizing constants at compile time
def _finalize(eval_ctx: EvalContext, value: Any) -> Any:
    """What `{{ ... }}` writes: nothing for None (`{{ item }}` in a practice without
    `rotate`), and nothing that would be too long once written out."""
    if value is None:
        return ""
    _make(_sized(value, MAX_OUTPUT, "a value to write") + 1)
    return value


def compiled(compile: Callable[[], jinja2.Template]) -> jinja2.Template:
    """`compile()`, whose other failures are syntax errors too: Jinja's parser and compiler
    recurse (`[[[[...]]]]`, `1 + 1 + ... + 1`) and its lexer reads numbers with int()."""
    try:
        return compile()
    except RecursionError as exc:
        raise jinja2.TemplateSyntaxError("the text is nested too deeply", 1) from exc
    except ValueError as exc:  # a number of 5,000 digits; a template file not in UTF-8
        raise jinja2.TemplateSyntaxError(f"cannot be read: {short(str(exc), 100)}", 1) from exc


def render_block(template: jinja2.Template, block: str, context: Mapping[str, Any]) -> str:
    """The block `block` of `template` (a KeyError when it has none), rendered with a
    budget and a bounded output as `Template.render` renders a whole template."""
    render = template.blocks[block]
    with _rendering():
        return _joined(render(template.new_context(dict(context))), MAX_OUTPUT)
