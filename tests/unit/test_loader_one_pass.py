"""One run of `check` shows every problem: errors in message text are found even when
other practices, or other keys, have errors of their own."""

from __future__ import annotations

import textwrap
from datetime import date
from zoneinfo import ZoneInfo

from service.core.loader import load_plan
from service.core.preview import build_preview
from service.core.render import Renderer

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
