"""Plans written as text, loaded with the test templates, and checks of their diagnostics;
with the fixtures `write_file` and `templates_dir` (a plugin of tests/conftest.py).

Tests never read the repository's schedules/ or templates/ folders (another part of the
project owns those), except tests/unit/test_shipped_plans.py, which checks exactly them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path

import jinja2
import pytest

from service.core.conversation import ANSWERS
from service.core.diagnostics import Diagnostic
from service.core.loader import LoadResult, load_plan
from service.core.plan import Plan
from service.core.render import Renderer

REPO = Path(__file__).resolve().parents[2]

_EMAIL = (
    "{% block subject %}{{ practice.title }}{% endblock %}"
    "{% block text %}Hi {{ participant.name }}. {{ message or practice.title }}{% endblock %}"
    "{% block html %}<p>Hi {{ participant.name }}. {{ message or practice.title }}</p>"
    "{% endblock %}"
)

# The templates every test plan may use: the category defaults for sleep and movement,
# one named template, and two broken ones.
TEMPLATES: dict[str, str] = {
    "default/sleep.sms.j2": "Time for {{ practice.title }}, {{ participant.first_name }}.",
    "default/sleep.email.j2": _EMAIL,
    "default/sleep.calendar.j2": "{{ message or practice.title }}",
    "default/movement.sms.j2": "Move: {{ practice.title }}.",
    "default/movement.email.j2": _EMAIL,
    "default/movement.calendar.j2": "{{ message or practice.title }}",
    "sleep/wind-down.sms.j2": "Wind down, {{ participant.first_name }}. {{ item or '' }}",
    "sleep/wind-down.email.j2": _EMAIL,
    "sleep/wind-down.calendar.j2": "Wind down ({{ practice.duration_minutes }} min)",
    "broken/syntax.sms.j2": "Hello {{ participant.name ",
    "broken/no-html.email.j2": (
        "{% block subject %}S{% endblock %}{% block text %}T{% endblock %}"
    ),
    # Tend's own texts, which `tend plans check` renders too: plain stand-ins.
    **{f"replies/{name}.sms.j2": f"answer: {name}" for name in ANSWERS},
    "consent/welcome.sms.j2": "{{ program }}: {{ frequency }}. Reply HELP for help, STOP to opt out.",
    "consent/join.sms.j2": "{{ program }}: reply YES. Reply HELP for help, STOP to opt out.",
    "discreet/default.sms.j2": "Time for {{ practice.title }}.",
    "discreet/nudge.sms.j2": "Still time for {{ practice.title }}.",
    "discreet/default.email.j2": _EMAIL,
    "discreet/default.calendar.j2": "{{ message or practice.title }}",
    "digest/coach.email.j2": (
        "{% block subject %}Digest{% endblock %}{% block text %}{{ active }}{% endblock %}"
        "{% block html %}<p>{{ active }}</p>{% endblock %}"
    ),
}

# A plan header whose line numbers the tests rely on: the first practice's keys start on
# line 9 (category) and anything appended by `practice()` starts on line 11, indented 4.
HEADER = """\
plan: sleep
title: Sleep
weeks: 8
variables:
  wake: "07:00"
  bedtime: "22:30"
practices:
  - id: screens-off
    category: sleep
    title: Screens off
"""


def practice(*lines: str) -> str:
    """HEADER plus the given lines as keys of its one practice (line 11 onwards)."""
    return HEADER + "".join(f"    {line}\n" for line in lines)


def renderer(extra: dict[str, str] | None = None) -> Renderer:
    return Renderer(jinja2.DictLoader({**TEMPLATES, **(extra or {})}))


def load(
    text: str, *, templates: dict[str, str] | None = None, path: str = "plan.yaml"
) -> LoadResult:
    """Load plan text (dedented) with the test templates."""
    return load_plan(textwrap.dedent(text), path, renderer(templates))


def load_ok(text: str, *, templates: dict[str, str] | None = None) -> Plan:
    """Load a plan that must have no errors (warnings are fine)."""
    result = load(text, templates=templates)
    assert result.errors == [], "\n".join(str(d) for d in result.diagnostics)
    assert result.plan is not None
    return result.plan


def find(
    diagnostics: Iterable[Diagnostic] | LoadResult,
    line: int,
    column: int,
    severity: str,
    text: str,
) -> Diagnostic:
    """The diagnostic at exactly `line`:`column` with that severity whose message holds `text`."""
    items = diagnostics.diagnostics if isinstance(diagnostics, LoadResult) else list(diagnostics)
    for d in items:
        if (d.line, d.column, d.severity) == (line, column, severity) and text in d.message:
            return d
    shown = "\n".join(f"  {d}" for d in items) or "  (none)"
    pytest.fail(
        f"no {severity} at {line}:{column} containing {text!r}; the diagnostics were:\n{shown}"
    )


def assert_only(result: LoadResult, line: int, column: int, severity: str, text: str) -> Diagnostic:
    """`find`, and that this is the only diagnostic of the file."""
    found = find(result, line, column, severity, text)
    assert result.diagnostics == [found], "\n".join(str(d) for d in result.diagnostics)
    if severity == "error":
        assert result.plan is None
    return found


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write text (dedented) to a file under tmp_path, making folders as needed."""

    def write(relative: str, text: str) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def templates_dir(tmp_path: Path) -> Path:
    """The test templates written out as files, for the Catalog and the CLI."""
    root = tmp_path / "templates"
    for name, source in TEMPLATES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root
