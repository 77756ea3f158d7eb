"""One run of `check` shows every problem: errors in message text are found even when
other practices, or other keys, have errors of their own."""

from __future__ import annotations

import textwrap
from datetime import date
from zoneinfo import ZoneInfo

from service.core.loader import load_plan
from service.core.preview import build_preview
from service.core.render import Renderer
from tests.support.plans import renderer

PLAN = textwrap.dedent(
    """
    plan: one-pass
    title: One pass
    weeks: 2
    practices:
      - id: broken
        category: sleep
        title: Broken
        at: "25:00"
        message: "Hello"
      - id: typo
        category: sleep
        title: Typo
        at: "07:00"
        message: "Hi {{ participant.firstname }}"
      - id: fine
        category: sleep
        title: Fine
        at: "08:00"
        message: "Morning {{ item }}."
    """
).lstrip()


def test_a_message_error_is_reported_with_the_other_errors() -> None:
    result = load_plan(PLAN, "one-pass.yaml", Renderer())
    found = [(d.line, d.column, d.message) for d in result.errors]
    assert result.plan is None
    assert (8, 9) in [(line, column) for line, column, _ in found]  # at: "25:00"
    typo = next(message for line, _, message in found if line == 14)
    assert "'participant' has no 'firstname' (did you mean 'first_name'?)" in typo
    assert len(found) == 2


def test_item_without_rotate_renders_as_nothing() -> None:
    fixed = PLAN.replace('"25:00"', '"06:00"').replace(
        "participant.firstname", "participant.first_name"
    )
    renderer = Renderer()
    result = load_plan(fixed, "one-pass.yaml", renderer)
    assert result.errors == []
    assert result.plan is not None
    preview = build_preview(
        result.plan, date(2026, 3, 2), ZoneInfo("UTC"), {}, renderer, "https://t.example/c"
    )
    texts = {item.occurrence.practice.id: item.text for item in preview.items}
    assert texts["fine"] == "Morning ."
    assert texts["typo"] == "Hi Alex"


def test_messages_cannot_stall_a_worker_or_change_their_context() -> None:
    for text, found in [
        ("{{ 'a' * 10**9 }}", "longer than"),
        ("{{ 9 ** 999999999 }}", "power above"),
        ("{{ participant.clear() }}", "not allowed"),
    ]:
        plan = PLAN.replace('"25:00"', '"06:00"').replace("Hi {{ participant.firstname }}", text)
        result = load_plan(plan, "one-pass.yaml", Renderer())
        (error,) = result.errors
        assert found in error.message, error.message


def test_the_published_schema_matches_the_command() -> None:
    import json
    from pathlib import Path

    from service.cli import plan_schema

    published = Path(__file__).resolve().parents[2] / "docs" / "plan.schema.json"
    assert json.loads(published.read_text()) == plan_schema(), (
        "docs/plan.schema.json is stale: run tend plans schema > docs/plan.schema.json"
    )


# --- a typo in a name gets a did-you-mean, at the message's line ------------------------


def _check(text: str, path: str = "plan.yaml") -> list[str]:
    return [str(d) for d in load_plan(textwrap.dedent(text), path, renderer()).diagnostics]


def test_a_misspelt_top_level_name_gets_a_did_you_mean_at_the_message() -> None:
    found = _check(
        """\
        plan: typo
        title: Typo
        weeks: 2
        practices:
          - id: a
            category: sleep
            title: A
            at: "07:00"
            message: "Hi {{ participnt.name }}"
          - id: b
            category: sleep
            title: B
            at: "08:00"
            message: >-
              Hello {{ participant.frist_name }},
              time for a walk.
          - id: c
            category: sleep
            title: C
            at: "09:00"
            message: "{{ nothing_like_it }}"
        """
    )
    assert found == [
        "plan.yaml:9:14: error: unknown name in the text: "
        "'participnt' is not defined (did you mean 'participant'?)",
        "plan.yaml:14:14: error: unknown name in the text: "
        "'participant' has no 'frist_name' (did you mean 'first_name'?); it has name, first_name",
        "plan.yaml:21:14: error: unknown name in the text: 'nothing_like_it' is not defined; "
        "the text can use participant, vars, practice, occurrence, plan, item, check_in_url, "
        "check_in",
    ]


def test_a_misspelt_name_in_a_nudge_gets_a_did_you_mean() -> None:
    found = _check(
        """\
        plan: typo
        title: Typo
        weeks: 2
        practices:
          - id: a
            category: sleep
            title: A
            at: "07:00"
            message: hi
            nudge: {after: 1h, message: "Still time, {{ partcipant.first_name }}"}
        """
    )
    assert found == [
        "plan.yaml:10:33: error: unknown name in the text: "
        "'partcipant' is not defined (did you mean 'participant'?)"
    ]


# --- structure and text in one run -------------------------------------------------------


def test_text_errors_come_with_structural_errors_of_the_same_practice() -> None:
    # The guide's example: the practice with a typo in its text also has an unknown
    # variable and an unknown key. Its text is readable, so all of it is reported at once.
    found = _check(
        """\
        plan: evening-calm
        title: Evening calm
        weeks: 4
        variables:
          bedtime: "22:30"
        practices:
          - id: screens-off
            category: sleep
            title: Screens off
            at: bedtme - 1h
            every: [mon, wed, fri]
            chanels: [sms]
            message: "Screens off now, {{ participant.firstname }}."
          - id: breathing
            category: sleep
            title: Slow breathing
            at: 2:30
            weeks: "3-6"
            check_in: rating
        """,
        "evening-calm.yaml",
    )
    assert [line.split(": ", 2)[:2] for line in found] == [
        ["evening-calm.yaml:10:9", "error"],  # bedtme
        ["evening-calm.yaml:12:5", "error"],  # chanels
        ["evening-calm.yaml:13:14", "error"],  # participant.firstname
        ["evening-calm.yaml:17:9", "warning"],  # 02:30
        ["evening-calm.yaml:18:12", "error"],  # week 6 of 4
    ]
    assert "(did you mean 'first_name'?)" in found[2]


def test_text_errors_come_with_errors_in_the_plan_itself() -> None:
    # No length (a misspelt key), a bad `every` and a bad `at` in other practices, and
    # in the readable ones a misspelt name: all in one run.
    found = _check(
        """\
        plan: broken
        title: Broken
        weks: 4
        practices:
          - id: one
            category: sleep
            title: One
            at: "25:00"
            every: sundy
            message: "Hi {{ participant.first_name }}"
          - id: two
            category: sleep
            title: Two
            at: "07:00"
            weeks: "3-4"
            message: "Hi {{ participnt.name }}"
          - id: three
            category: sleep
            title: Three
            at: "07:00"
            rrule: FREQ=YEARLY;BYMONTH=12
            message: "Hi {{ vars.bedtme }}"
        """
    )
    assert [line.split(": ", 2)[0] for line in found] == [
        "plan.yaml:1:1",  # the plan needs a length
        "plan.yaml:3:1",  # weks
        "plan.yaml:8:9",  # 25:00
        "plan.yaml:9:12",  # sundy
        "plan.yaml:16:14",  # participnt, in weeks 3-4 of a plan whose length is unknown
        "plan.yaml:22:14",  # vars.bedtme, in a practice that occurs once a year
    ]
    assert "(did you mean 'participant'?)" in found[4]
    assert "'vars' has no 'bedtme'" in found[5]
    assert not any("never occurs" in line for line in found)


def test_a_practice_whose_text_has_errors_is_not_rendered_as_well() -> None:
    # A missing template is said once, where it is named, not again when rendering.
    found = _check(
        """\
        plan: missing
        title: Missing
        weeks: 2
        practices:
          - id: a
            category: sleep
            title: A
            at: "25:00"
            template: sleep/nope
        """
    )
    assert [line.split(": ", 2)[0] for line in found] == ["plan.yaml:8:9", "plan.yaml:9:15"]
    assert "template 'sleep/nope' has no sms file" in found[1]
