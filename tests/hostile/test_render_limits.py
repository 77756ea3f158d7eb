"""Render limits (service/core/sandbox.py): no template, however short, takes much memory or
time. Each way round the old bounds on `*` and `**` that tests/hostile/test_bad_input.py
found is refused at once with a RenderError (a plan error at the message, when the loader
renders its sample), and what real templates do renders as plain Jinja renders it."""

from __future__ import annotations

import json
import time
import tracemalloc
from datetime import datetime
from typing import Any

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from service.core.render import Renderer, RenderError
from service.core.sandbox import MAX_OUTPUT, MAX_RANGE, MAX_SIZE, MAX_STEPS, MAX_TEXT
from tests.support.plans import assert_only, load, practice

CONTEXT: dict[str, Any] = {
    "participant": {"name": "Alex Rivera", "first_name": "Alex"},
    "when": datetime(2026, 3, 2, 7, 30),
    "rate": 0.4567,
    "titles": ["Screens off", "Stretch", "Journal"],
    "people": [
        {"name": "Sam", "plan": "sleep", "done": 3, "decided": 5, "streak": 2},
        {"name": "Jo", "plan": "movement", "done": 0, "decided": 4, "streak": 0},
        {"name": "Rae", "plan": "sleep", "done": 5, "decided": 5, "streak": 5},
    ],
    "tree": [{"name": "a", "children": [{"name": "b", "children": []}]}],
}
PARTIALS = {
    "part.sms.j2": "[{{ participant.first_name }}]",
    "macros.sms.j2": "{% macro box(x) %}<{{ x }}|{{ caller() }}>{% endmacro %}",
}


def _templates(source: str) -> dict[str, str]:
    return {**PARTIALS, "replies/t.sms.j2": source}


def render(source: str, **context: Any) -> str:
    """`source` as a template file, rendered as the workers render an SMS answer."""
    renderer = Renderer(jinja2.DictLoader(_templates(source)))
    return renderer.answer("t", {**CONTEXT, **context})


def plain_jinja(source: str, **context: Any) -> str:
    """The same with Jinja's own sandbox and nothing of Tend's limits."""
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.DictLoader(_templates(source)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=lambda value: "" if value is None else value,
    )
    return env.get_template("replies/t.sms.j2").render({**CONTEXT, **context}).strip()


def refused(source: str, **context: Any) -> str:
    """The RenderError's message; `source` must be refused within seconds of CPU time (the
    renderer's backstop is MAX_SECONDS of it) and 8 MB."""
    began = time.thread_time()
    tracemalloc.start()
    try:
        with pytest.raises(RenderError) as raised:
            render(source, **context)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    took = time.thread_time() - began
    assert peak < 8_000_000, f"{peak / 1e6:.0f} MB to refuse {source!r}"
    assert took < 4, f"{took:.1f} s to refuse {source!r}"  # of CPU: the machine may be busy
    message = str(raised.value)
    assert message.strip(), source
    assert "\n" not in message, message
    assert len(message) <= 300, message
    return message


# --- each bypass is refused at once ---------------------------------------------------------

BIG = 10**9  # a size each of these would make, were it not refused: "BIG" below
# a text of a million characters, as a block may write (a digest of 15,000 participants)
LONG = "{% set s %}{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}{% endset %}"
BYPASSES = {
    # padding and widths, as methods, filters and formats
    "ljust": ("{{ 'x'.ljust(BIG, 'y') }}", "ljust() making more than"),
    "rjust": ("{{ 'x'.rjust(BIG) }}", "rjust() making more than"),
    "center-method": ("{{ 'x'.center(BIG) }}", "center() making more than"),
    "zfill": ("{{ '1'.zfill(BIG) }}", "zfill() making more than"),
    "center-filter": ("{{ 'x' | center(BIG) }}", "|center making more than"),
    "indent-filter": ("{{ 'a\\nb' | indent(BIG) }}", "|indent making more than"),
    "indent-by-text": ("{{ ('a\\n' * 5000) | indent('y' * 100) }}", "|indent making more than"),
    "format-width": ("{{ '{:>BIG}'.format('x') }}", "formatted text longer than"),
    "format-nested-width": ("{{ '{:>{w}}'.format('x', w=BIG) }}", "formatted text"),
    "format-precision": ("{{ '{:.BIGf}'.format(1) }}", "formatted text longer than"),
    "format-map": ("{{ '{x:>BIG}'.format_map({'x': 1}) }}", "formatted text longer than"),
    "percent-width": ("{{ '%-BIGs|' % 'x' }}", "formatted text longer than"),
    "percent-star": ("{{ '%*s' % (BIG, 'x') }}", "formatted text longer than"),
    "percent-minus-star": ("{{ '%*s' % (-BIG, 'x') }}", "formatted text longer than"),
    "percent-precision": ("{{ '%.BIGf' % 1 }}", "formatted text longer than"),
    "format-filter": ("{{ '%-BIGs' | format('x') }}", "formatted text longer than"),
    "expandtabs": ("{{ 'x\\t'.expandtabs(BIG) }}", "expandtabs() making more than"),
    "to-bytes": ("{{ (1).to_bytes(BIG, 'big') | length }}", "to_bytes() making more than"),
    # text that multiplies
    "replace-chain": (
        "{{ ('x' * 1000).replace('x', 'x' * 10000) | length }}",
        "replace() making more than",
    ),
    "replace-empty": ("{{ ('x' * 10000).replace('', 'y' * 100) }}", "replace() making more"),
    "replace-filter": ("{{ ('x' * 1000) | replace('x', 'x' * 10000) }}", "|replace making"),
    "replace-in-a-list": ("{{ ([1] * 9000) | replace(',', 'y' * 100) }}", "|replace making"),
    "join-separator": ("{{ ('y' * 10000).join('x' * 10000) }}", "join() making more than"),
    "join-filter": ("{{ ('x' * 10000) | join('y' * 10000) }}", "|join making more than"),
    "translate": ("{{ ('a' * 1000).translate({97: 'x' * 1000}) }}", "translate() making"),
    "wordwrap": (
        "{{ ('x ' * 5000) | wordwrap(1, wrapstring='y' * 1000) }}",
        "|wordwrap making more than",
    ),
    "urlize": ("{{ ('a.io ' * 2000) | urlize(target='y' * 10000) }}", "|urlize making more"),
    "tojson-indent": (
        "{{ [[['x' * 1000] * 9] * 9] | tojson(indent=1000) }}",
        "|tojson making more than",
    ),
    "concat-doubling": (
        "{% set s = namespace(t='x' * 1000) %}{% for i in range(30) %}"
        "{% set s.t = s.t ~ s.t %}{% endfor %}{{ s.t | length }}",
        "text joined with ~ longer than",
    ),
    "plus-doubling": (
        "{% set s = namespace(t='x' * 1000) %}{% for i in range(30) %}"
        "{% set s.t = s.t + s.t %}{% endfor %}{{ s.t | length }}",
        "text longer than",
    ),
    "list-plus-doubling": (
        "{% set s = namespace(t=[1] * 1000) %}{% for i in range(30) %}"
        "{% set s.t = s.t + s.t %}{% endfor %}{{ s.t | length }}",
        "a list longer than",
    ),
    "list-of-long-text": ("{% set s = 'x' * 10000 %}{{ ([s] * 10000) | join }}", "as text"),
    "list-literal-of-long-text": (
        "{% set s = 'x' * 10000 %}{% set l = [s, s, s, s, s, s, s, s, s, s] %}"
        "{% set l = [l, l, l, l, l, l, l, l, l, l] %}{{ l }}",
        "longer than 1,000,000 characters",
    ),
    "map-into-a-list": (
        "{{ range(10000) | map('string') | map('center', 99999) | list | length }}",
        "characters made in all",
    ),
    "list-of-a-long-text": (LONG + "{{ s | list | length }}", "|list of more than 100,000"),
    "list-of-a-generator": (LONG + "{{ s | select | list | length }}", "a list of more than"),
    "star-args-of-a-generator": (
        LONG + "{{ cycler(*(s | select)).next() }}",
        "a list of more than 100,000 items",
    ),
    "batch-fill": ("{{ [1] | batch(BIG, 'x') | list | length }}", "|batch into more than"),
    "slice": ("{{ [1] | slice(BIG) | list | length }}", "|slice into more than"),
    "round": ("{{ 1.5 | round(BIG, 'ceil') }}", "|round to more than"),
    "lipsum": ("{{ lipsum(BIG) }}", "lipsum() of more than"),
    "range": ("{{ range(BIG) | list | length }}", "Range too big"),
    # numbers
    "power-tower": ("{{ 9 ** 64 ** 64 ** 64 ** 64 }}", "power above"),
    "power-of-a-power": ("{{ (9 ** 64 ** 64 ** 64).bit_length() }}", "power above"),
    "huge-power": ("{{ 9 ** 999999999 }}", "power above"),
    "number-from-hex": ("{{ ('f' * 10000) | int(base=16) }}", "a number above"),
    "number-from-bytes": ("{{ (0).from_bytes(('x' * 9000).encode(), 'big') }}", "a number above"),
    "encode-by-name": (
        "{{ ('à' * 9000).encode('ascii', 'namereplace') | length }}",
        "encode() making more than",
    ),
    "products": ("{% set n = 10 ** 3000 %}{{ n * n * n * n }}", "a number above"),
    # work
    "nested-loops": (
        "{% for a in range(9999) %}{% for b in range(9999) %}{% endfor %}{% endfor %}",
        "loop turns, calls and filters",
    ),
    "nested-loops-over-text": (
        "{% set s = 'x' * 10000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
        "loop turns, calls and filters",
    ),
    "macro-tree": (
        "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
        "{{ m(40) }}",
        "loop turns, calls and filters | seconds of work",  # the first when not traced
    ),
    "recursion": ("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}", "nested more than"),
    "recursive-loop": (
        "{% for x in range(3) recursive %}{{ loop(range(3)) }}{% endfor %}",
        "nested more than",
    ),
    "output-of-a-loop": (
        "{% set s = 'x' * 10000 %}{% for i in range(200) %}{{ s }}{% endfor %}",
        "text longer than 1,000,000 characters",
    ),
    "output-of-a-block": (
        "{% set x %}{% for i in range(10000) %}{{ 'x' * 10000 }}{% endfor %}{% endset %}",
        "characters made in all",
    ),
    "static-text-in-a-macro": (
        "{% macro m() %}{% for i in range(10000) %}" + "static text " * 50 + "{% endfor %}"
        "{% endmacro %}{% for i in range(10) %}{{ m() | length }}{% endfor %}",
        "characters made in all",
    ),
    "includes-in-a-macro": (
        "{% macro m() %}{% for i in range(10000) %}{% include 'part.sms.j2' %}"
        "{% endfor %}{% endmacro %}{% for i in range(100) %}{{ m() | length }}{% endfor %}",
        "loop turns, calls and filters | seconds of work",
    ),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", sorted(BYPASSES))
def test_a_bypass_is_refused_at_once(name: str) -> None:
    source, expected = BYPASSES[name]
    message = refused(source.replace("BIG", str(BIG)))
    assert message.startswith("not allowed in a message: "), message
    assert any(text in message for text in expected.split(" | ")), message


@pytest.mark.timeout(20)
def test_lists_of_lists_of_one_list_are_measured_once() -> None:
    """[a, a] prints `a` twice: 25 doublings of a 2-item list would print 2**26 items; each
    list is measured once, so the refusal is as quick as the first doublings."""
    doublings = "{% set a = [a, a] %}" * 25
    began = time.thread_time()
    message = refused("{% set a = [0, 0] %}" + doublings + "{{ a | length }}")
    assert time.thread_time() - began < 1
    assert "longer than 1,000,000 characters" in message


@pytest.mark.timeout(20)
def test_a_long_value_in_an_error_is_cut_short() -> None:
    message = refused("{{ participant[('x' * 5000,) * 10] }}")
    assert message == "unknown name in the text: dict object has no attribute 'a long tuple'"


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "name", ["ljust", "percent-precision", "replace-chain", "concat-doubling", "power-tower"]
)
def test_the_loader_reports_a_bypass_at_the_message(name: str) -> None:
    source, expected = BYPASSES[name]
    began = time.thread_time()
    message = json.dumps(source.replace("BIG", str(BIG)))
    result = load(practice("at: '07:00'", f"message: {message}"))
    assert time.thread_time() - began < 10
    found = assert_only(result, 12, 14, "error", "not allowed in a message")
    assert expected in found.message


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ " + "[" * 3000 + "]" * 3000 + " }}", "nested too deeply"),
        ("{{ 1" + " + 1" * 20000 + " }}", "nested too deeply"),
        ("{{ 1" + "0" * 5000 + " }}", "cannot be read: Exceeds the limit (4300 digits)"),
    ],
    ids=["nested-lists", "long-sum", "long-number"],
)
def test_what_jinja_cannot_compile_is_a_syntax_error_at_the_message(
    source: str, expected: str
) -> None:
    result = load(practice("at: '07:00'", f"message: {json.dumps(source)}"))
    found = assert_only(result, 12, 14, "error", "template syntax: ")
    assert expected in found.message


@pytest.mark.timeout(20)
def test_a_bypass_in_an_email_template_is_refused_too() -> None:
    source = "{{ 'x'.ljust(BIG) }}{{ '<b>' ~ participant.name }}".replace("BIG", str(BIG))
    email = (
        "{% block subject %}S{% endblock %}{% block text %}T{% endblock %}"
        "{% block html %}" + source + "{% endblock %}"
    )
    renderer = Renderer(jinja2.DictLoader({"digest/coach.email.j2": email}))
    with pytest.raises(RenderError, match="ljust\\(\\) making more than"):
        renderer.digest_email(CONTEXT)


# --- what templates really do still works ------------------------------------------------

LEGITIMATE = [
    "Hi {{ participant.first_name }}, {{ 'time to rest' | capitalize }}.",
    "{{ '-' * 20 }} {{ 'ab' * 3 }} {{ [1, 2] * 2 }} {{ 6 * 7 }} {{ 2 ** 10 }} {{ 2 ** 100 }}",
    "{{ 10 ** 300 }} {{ 2 ** -2 }} {{ 2.5 ** 2 }} {{ (-3) ** 3 }} {{ 0 ** 99999999 }}",
    "{{ 'a' + 'b' }} {{ [1] + [2, 3] }} {{ (1, 2) + (3,) }} {{ 7 % 3 }} {{ 1 + 2.5 }}",
    "{{ 'x' ~ 1 ~ none ~ [1] }} {{ participant.name ~ '!' }}",
    "{{ '%s has %d of %d (%.1f%%)' % ('Sam', 3, 5, 60.0) }} {{ '%(a)s-%(b)05.1f' % {'a': 1, 'b': 2} }}",
    "{{ '%-8s|%8s|' % ('ab', 'cd') }} {{ '%*d' % (6, 42) }} {{ '%c%r' % (65, 'q') }}",
    "{{ '{:>8}|{:<6}|{:^7}|{:08.3f}|{:,}'.format('a', 'b', 'c', 3.14159, 1234567) }}",
    "{{ '{0} {name} {0!r} {1[0]}'.format('x', [9], name='n') }} {{ '{a}'.format_map({'a': 1}) }}",
    "{{ '{:%A %-d %B}'.format(when) }} {{ when.strftime('%H:%M on %A') }}",
    "{{ '%.0f' | format(rate * 100) }}% {{ '%s and %s' | format('a', 'b') }}",
    "{{ 'x'.center(9, '*') }} {{ 'x'.ljust(4, '.') }}| {{ '7'.zfill(3) }} {{ 'a\\tb'.expandtabs(4) }}",
    "{{ 'a-b-c'.replace('-', ', ') }} {{ ', '.join(titles) }} {{ 'abc'.translate({97: 'A'}) }}",
    "{{ ' Hi '.strip().upper() }} {{ 'a b c'.split() }} {{ 'a\\nb'.splitlines() }}",
    "{{ titles | join(', ') }} / {{ people | join(', ', attribute='name') }}",
    "{{ 'hello world' | title | center(21) }}|{{ 'x\\ny' | indent(2, first=True) }}",
    "{{ ('word ' * 20) | wordwrap(24) }}",
    "{{ 'a,b' | replace(',', ', ') }} {{ 'aaa' | replace('a', 'b', 2) }}",
    "{{ 'see https://example.com now' | urlize }} {{ 'x y' | urlize(target='_blank') }}",
    "{{ people | tojson }} {{ [1, [2, 3]] | tojson(indent=2) }} {{ {'a': [1, 2]} | pprint }}",
    "{{ [1, 2, 3, 4, 5] | batch(2, 0) | list }} {{ [1, 2, 3, 4, 5] | slice(2) | list }}",
    "{{ 3.14159 | round(2) }} {{ 3.14159 | round(1, 'ceil') }} {{ [1, 2, 3] | sum }}",
    "{{ [[1], [2]] | sum(start=[]) }} {{ people | sum(attribute='done') }}",
    "{{ people | map(attribute='name') | join('/') }} {{ people | selectattr('done') | list | length }}",
    "{{ people | sort(attribute='name') | map(attribute='name') | list }} {{ titles | reverse | first }}",
    "{{ people | groupby('plan') | map(attribute='grouper') | list }} {{ titles | unique | list }}",
    "{{ {'b': 1, 'a': 2} | dictsort }} {{ {'a': 1} | items | list }} {{ titles | max }}",
    "{{ range(5) | list }} {{ range(9999) | list | length }} {{ dict(a=1) }} {{ lipsum(1, False, 3, 9) | length > 0 }}",
    "{% for t in titles %}{{ loop.index }}/{{ loop.length }} {{ t }}{{ ', ' if not loop.last }}{% endfor %}",
    "{% for t in titles | map('upper') %}{{ t }}{{ loop.length }}{{ loop.cycle('a', 'b') }} {% endfor %}",
    "{% for k, v in {'a': 1, 'b': 2} | dictsort %}{{ k }}={{ v }};{% endfor %}",
    "{% for c in 'abc' if c != 'b' %}{{ c }}{% else %}none{% endfor %}{% for x in [] %}x{% else %}empty{% endfor %}",
    "{% for node in tree recursive %}{{ node.name }}({{ loop(node.children) }}){% endfor %}",
    "{% set ns = namespace(n=0, seen=[]) %}{% for p in people %}{% set ns.n = ns.n + p.done %}"
    "{% set ns.seen = ns.seen + [p.name] %}{% endfor %}{{ ns.n }} {{ ns.seen }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }} {{ (1, 2)[0] }} {{ [3, 4][1] }} {{ {'k': 'v'}['k'] }}",
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Sam') }} {{ greet('Jo', '.') }}",
    "{% from 'macros.sms.j2' import box %}{% call box(1) %}inside{% endcall %}",
    "{% include 'part.sms.j2' %} {% set x %}block {{ 1 + 1 }}{% endset %}{{ x | upper }}",
    "{% filter upper %}shout {{ participant.first_name }}{% endfilter %}",
    "{% for i in range(10) %}{% for j in range(10) %}{{ i * j }},{% endfor %}{% endfor %}",
    "{{ 'yes' if rate > 0.4 else 'no' }} {{ 10 is divisibleby 5 }} {{ 'Sam' in people | map(attribute='name') }}",
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("source", LEGITIMATE)
def test_what_templates_do_renders_as_plain_jinja_renders_it(source: str) -> None:
    assert render(source) == plain_jinja(source)


@pytest.mark.timeout(20)
def test_a_digest_of_thousands_renders() -> None:
    """The longest text Tend writes grows with the coach's participants: 5,000 of them, in a
    macro's body (which is collected before it is written) and in a loop, fit."""
    people = [
        {"name": f"Person {i}", "plan": "sleep", "done": i % 7, "decided": 7, "streak": i % 3}
        for i in range(5000)
    ]
    source = (
        "{% macro page() %}<{{ caller() }}>{% endmacro %}{% call page() %}"
        "{% for p in people %}- {{ p.name }} ({{ p.plan }}): {{ p.done }} of {{ p.decided }}"
        "{% if p.streak > 1 %}, {{ p.streak }} in a row{% endif %}\n{% endfor %}{% endcall %}"
    )
    text = render(source, people=people)
    assert text == plain_jinja(source, people=people)
    assert MAX_TEXT < len(text) < MAX_OUTPUT


def test_the_limits_leave_room_for_what_messages_are() -> None:
    assert render("{{ 'x' * N }}".replace("N", str(MAX_SIZE))) == "x" * MAX_SIZE
    assert len(render("{{ 'x'.ljust(N) ~ '|' }}".replace("N", str(MAX_TEXT - 1)))) == MAX_TEXT
    turns = "{% for i in range(N) %}{% for j in range(N) %}{% endfor %}{% endfor %}done"
    assert render(turns.replace("N", str(int((MAX_STEPS / 2) ** 0.5)))) == "done"
    assert render("{{ range(N) | list | length }}".replace("N", str(MAX_RANGE))) == str(MAX_RANGE)
