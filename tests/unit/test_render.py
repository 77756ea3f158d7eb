"""Rendering reminders: sandbox, undefined names, email blocks, default templates, context."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import jinja2
import pytest

from service.core.expand import Occurrence, expand, resolve_plan_variables
from service.core.plan import Plan
from service.core.render import (
    SAMPLE_PERSON,
    EmailContent,
    Person,
    Renderer,
    RenderError,
    valid_template_name,
)
from tests.support.plans import load_ok, renderer

START = date(2026, 3, 2)


def plan_with(message: str = "hi", *lines: str, channels: str = "[sms]") -> Plan:
    body = "".join(f"    {line}\n" for line in lines)
    return load_ok(
        "plan: x\ntitle: The plan\nweeks: 1\nvariables:\n  wake: '07:00'\npractices:\n"
        f"  - id: p\n    category: sleep\n    title: Wind & rest\n    at: wake\n"
        f"    channels: {channels}\n    message: {message!r}\n{body}"
    )


def first(plan: Plan, n: int = 0) -> Occurrence:
    return expand(plan, START, UTC)[n]


def context(
    plan: Plan, occurrence: Occurrence, person: Person = SAMPLE_PERSON, r: Renderer | None = None
) -> dict[str, Any]:
    r = r or renderer()
    return r.context(
        plan, occurrence, person, resolve_plan_variables(plan), "https://t.example/c/1"
    )


def sms(source: str, r: Renderer | None = None, person: Person = SAMPLE_PERSON) -> str:
    """Render `source` as a practice's SMS without going through the loader's checks."""
    plan = plan_with("placeholder")
    occurrence = first(plan)
    r = r or renderer()
    variant = replace(occurrence.variant, message=source)
    return r.sms(variant, occurrence.practice, context(plan, occurrence, person, r))


# --- sandbox and undefined names ------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ participant.__class__.__init__.__globals__ }}",
        "{{ occurrence.local.__class__.__subclasses__() }}",
        "{{ (1).__class__.__base__.__subclasses__() }}",
        "{{ lipsum.__globals__['os'] }}",
    ],
)
def test_sandbox_refuses_internals(source: str) -> None:
    with pytest.raises(RenderError) as raised:
        sms(source)
    message = str(raised.value)
    assert message.startswith("not allowed in a message:") or "has no attribute" in message
    assert "<class" not in message


def test_sandbox_refuses_format_string_escapes() -> None:
    with pytest.raises(RenderError, match="not allowed in a message"):
        sms("{{ '{0.__class__.__mro__}'.format(participant) }}")


def test_sandbox_limits_ranges() -> None:
    with pytest.raises(RenderError, match="Range too big"):
        sms("{{ range(10**7)|list|length }}")


def test_undefined_name_is_an_error_not_empty_text() -> None:
    with pytest.raises(RenderError, match="unknown name in the text: 'nobody' is not defined"):
        sms("Hi {{ nobody }}")


def test_undefined_attribute_suggests_and_lists() -> None:
    with pytest.raises(RenderError) as raised:
        sms("{{ participant.nme }}")
    assert str(raised.value) == (
        "unknown name in the text: 'participant' has no 'nme' (did you mean 'name'?); "
        "it has name, first_name"
    )


def test_undefined_in_a_condition_is_still_an_error() -> None:
    with pytest.raises(RenderError, match="'vars' has no 'bedtime'"):
        sms("{% if vars.bedtime %}x{% endif %}")


def test_runtime_failures_become_render_errors() -> None:
    with pytest.raises(RenderError, match="ZeroDivisionError"):
        sms("{{ 1 / 0 }}")
    with pytest.raises(RenderError, match="TypeError"):
        sms("{{ occurrence.local + 1 }}")


# --- the context ------------------------------------------------------------------------


def test_context_names() -> None:
    plan = plan_with(
        "x", "duration: 20m", "check_in: {kind: rating, scale: [0, 10], question: How?}"
    )
    occurrence = first(plan, 1)
    text = sms(
        "{{ participant.name }}|{{ participant.first_name }}|{{ vars.wake }}|{{ practice.id }}|"
        "{{ practice.title }}|{{ practice.category }}|{{ practice.duration_minutes }}|"
        "{{ occurrence.key }}|{{ occurrence.week }}|{{ occurrence.local.strftime('%a %H:%M') }}|"
        "{{ check_in_url }}|{{ plan.id }}|{{ item }}",
        person=Person("Rae  Example"),
    )
    assert text == (
        "Rae  Example|Rae|07:00|p|Wind & rest|sleep|15|p:2026-03-02|1|Mon 07:00|"
        "https://t.example/c/1|x|"  # without rotate, {{ item }} prints nothing
    )
    ctx = context(plan, occurrence)
    assert ctx["practice"]["duration_minutes"] == 20
    assert ctx["occurrence"]["local"] == datetime(2026, 3, 3, 7, tzinfo=UTC)
    assert ctx["check_in"]["scale"] == (0, 10)
    assert ctx["check_in"]["question"] == "How?"


def test_first_name_of_a_single_name_and_an_empty_name() -> None:
    assert Person("Alex").first_name == "Alex"
    assert Person("").first_name == ""
    assert Person("  Sam Lee ").first_name == "Sam"


def test_rotate_item_in_the_context() -> None:
    plan = plan_with("Today: {{ item }}", "rotate: [Breathe, Stretch]")
    r = renderer()
    texts = [
        r.occurrence_text(plan, o, SAMPLE_PERSON, resolve_plan_variables(plan), "u")
        for o in expand(plan, START, UTC)[:3]
    ]
    assert texts == ["Today: Breathe", "Today: Stretch", "Today: Breathe"]


def test_vars_are_shown_as_clock_times_with_overrides() -> None:
    plan = plan_with("Up at {{ vars.wake }}")
    occurrence = expand(plan, START, UTC, {"wake": "6:05"})[0]
    r = renderer()
    text = r.occurrence_text(
        plan, occurrence, SAMPLE_PERSON, resolve_plan_variables(plan, {"wake": "6:05"}), "u"
    )
    assert text == "Up at 06:05"


def test_text_is_stripped_but_inner_lines_kept() -> None:
    assert sms("\n  Line one\nLine two  \n") == "Line one\nLine two"


# --- templates and channels -------------------------------------------------------------

EMAIL_TEMPLATE = (
    "{% block subject %}{{ practice.title }} for {{ participant.name }}{% endblock %}"
    "{% block text %}Hello {{ participant.name }}: {{ message }}{% endblock %}"
    "{% block html %}<p>Hello {{ participant.name }}: {{ message }}</p>{% endblock %}"
)


def _email(plan: Plan, person: Person, templates: dict[str, str] | None = None) -> EmailContent:
    r = renderer({"default/sleep.email.j2": EMAIL_TEMPLATE, **(templates or {})})
    occurrence = first(plan)
    return r.email(occurrence.variant, occurrence.practice, context(plan, occurrence, person, r))


def test_email_html_is_escaped_and_text_is_not() -> None:
    plan = plan_with("Go, {{ participant.first_name }} <now>", channels="[email]")
    content = _email(plan, Person("<b>Rae</b> Example"))
    assert content.subject == "Wind & rest for <b>Rae</b> Example"
    assert content.text == "Hello <b>Rae</b> Example: Go, <b>Rae</b> <now>"
    assert content.html == (
        "<p>Hello &lt;b&gt;Rae&lt;/b&gt; Example: Go, &lt;b&gt;Rae&lt;/b&gt; &lt;now&gt;</p>\n"
    )


def test_email_with_a_named_template_gets_no_message() -> None:
    templates = {
        "mail/own.email.j2": (
            "{% block subject %}S {{ message is none }}{% endblock %}"
            "{% block text %}T{% endblock %}{% block html %}<b>H</b>{% endblock %}"
        )
    }
    plan = load_ok(
        "plan: x\ntitle: t\nweeks: 1\npractices:\n"
        "  - {id: p, category: sleep, title: P, at: '07:00', channels: [email],\n"
        "     template: mail/own}\n",
        templates=templates,
    )
    r = renderer(templates)
    occurrence = first(plan)
    content = r.email(occurrence.variant, occurrence.practice, context(plan, occurrence, r=r))
    assert content == EmailContent("S True", "T", "<b>H</b>\n")


def test_default_templates_wrap_an_inline_message_for_email_and_calendar() -> None:
    plan = plan_with("Lights low, {{ participant.first_name }}.", channels="[sms, email, calendar]")
    r = renderer(
        {
            "default/sleep.email.j2": EMAIL_TEMPLATE,
            "default/sleep.calendar.j2": "[{{ practice.title }}] {{ message }}",
        }
    )
    occurrence = first(plan)
    ctx = context(plan, occurrence, Person("Rae"), r)
    assert r.sms(occurrence.variant, occurrence.practice, ctx) == "Lights low, Rae."
    assert (
        r.calendar(occurrence.variant, occurrence.practice, ctx) == "[Wind & rest] Lights low, Rae."
    )
    assert (
        r.email(occurrence.variant, occurrence.practice, ctx).text == "Hello Rae: Lights low, Rae."
    )


def test_a_practice_without_message_or_template_uses_the_category_defaults() -> None:
    plan = load_ok(
        "plan: x\ntitle: t\nweeks: 1\npractices:\n"
        "  - {id: p, category: sleep, title: Rest, at: '07:00', channels: [sms, calendar]}\n"
    )
    r = renderer()
    occurrence = first(plan)
    ctx = context(plan, occurrence, Person("Rae Example"), r)
    assert r.sms(occurrence.variant, occurrence.practice, ctx) == "Time for Rest, Rae."
    assert r.calendar(occurrence.variant, occurrence.practice, ctx) == "Rest"


def test_text_of_an_email_only_practice_is_the_email_text() -> None:
    plan = load_ok(
        "plan: x\ntitle: t\nweeks: 1\npractices:\n"
        "  - {id: p, category: sleep, title: Rest, at: '07:00', channels: [email],\n"
        "     template: mail/m}\n",
        templates={"mail/m.email.j2": EMAIL_TEMPLATE.replace("{{ message }}", "read this")},
    )
    r = renderer({"mail/m.email.j2": EMAIL_TEMPLATE.replace("{{ message }}", "read this")})
    text = r.occurrence_text(plan, first(plan), Person("Sam"), {}, "u")
    assert text == "Hello Sam: read this"


def test_missing_template_at_render_time() -> None:
    plan = plan_with("hi")
    occurrence = first(plan)
    empty = Renderer(jinja2.DictLoader({}))
    with pytest.raises(RenderError, match=r"template default/sleep\.calendar\.j2 does not exist"):
        empty.calendar(occurrence.variant, occurrence.practice, context(plan, occurrence, r=empty))


def test_email_template_missing_a_block_at_render_time() -> None:
    plan = plan_with("hi", channels="[email]")
    r = renderer({"default/sleep.email.j2": "{% block subject %}S{% endblock %}"})
    occurrence = first(plan)
    with pytest.raises(RenderError, match="has no 'text' block"):
        r.email(occurrence.variant, occurrence.practice, context(plan, occurrence, r=r))


def test_nudge() -> None:
    plan = plan_with(
        "hi", "nudge: {after: 1h, message: 'Still time, {{ participant.first_name }}'}"
    )
    r = renderer()
    occurrence = first(plan)
    assert r.nudge(occurrence.practice, context(plan, occurrence, Person("Kai Lo"), r)) == (
        "Still time, Kai"
    )
    no_nudge = plan_with("hi")
    with pytest.raises(RenderError, match="has no nudge"):
        r.nudge(first(no_nudge).practice, context(no_nudge, first(no_nudge), r=r))


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("sleep/wind-down", True),
        ("default/sleep", True),
        ("a", True),
        ("deep/er/still_here", True),
        ("../x", False),
        ("sleep/../x", False),
        ("/abs", False),
        ("Sleep", False),
        ("sleep/", False),
        ("sleep//x", False),
        ("sleep.sms.j2", False),
        ("_partials/html", False),
        ("", False),
    ],
)
def test_template_names(name: str, valid: bool) -> None:
    assert valid_template_name(name) is valid
