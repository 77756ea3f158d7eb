"""A plan edited under live enrollments: what has not gone out follows the new plan;
what has gone out is history and never changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import select

from service.engine import enrollment as enrollment_service
from service.storage.db import transaction
from service.storage.tables import occurrences
from tests.engine.conftest import Folders, Harness

BEFORE = """
    plan: evening
    title: Evening
    weeks: 4
    practices:
      - id: walk
        category: movement
        title: Walk
        at: "18:00"
      - id: stretch
        category: movement
        title: Stretch
        at: "19:00"
"""

AFTER = """
    plan: evening
    title: Evening
    weeks: 4
    practices:
      - id: walk
        category: movement
        title: Walk
        at: "18:30"
      - id: breathe
        category: mindfulness
        title: Breathe
        at: "21:00"
"""

# 18:00 in New York on 2026-03-02 (EST)
FIRST_WALK = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)


def occurrence_rows(harness: Harness) -> dict[str, dict[str, object]]:
    with transaction(harness.runtime.engine) as conn:
        rows = conn.execute(select(occurrences)).mappings()
        return {r["key"]: dict(r) for r in rows}


def test_a_plan_edit_moves_adds_and_cancels_only_what_has_not_been_sent(
    harness: Harness, folders: Folders
) -> None:
    folders.write_plan("evening", BEFORE)
    harness.runtime.plans.refresh()
    person = harness.participant()
    harness.enroll(person, "evening", date(2026, 3, 2))
    harness.at(FIRST_WALK)  # walk on Mar 2 goes out at 18:00
    assert [m.body for m in harness.sms.sent] == ["Move: Walk."]

    folders.write_plan("evening", AFTER)
    now = FIRST_WALK + timedelta(minutes=5)
    harness.clock.set(now)

    preview = enrollment_service.sync_plans(harness.runtime, dry_run=True)
    assert len(preview) == 1
    assert preview[0].changes.summary() == "+14 added, ~13 changed, -14 cancelled"
    assert occurrence_rows(harness)["walk:2026-03-03"]["sequence"] == 0  # dry run: untouched

    applied = enrollment_service.sync_plans(harness.runtime)
    assert applied[0].changes.summary() == preview[0].changes.summary()
    rows = occurrence_rows(harness)
    sent = rows["walk:2026-03-02"]
    assert (sent["instant"], sent["sequence"]) == (FIRST_WALK, 0)  # history stays
    moved = rows["walk:2026-03-03"]
    assert moved["instant"] == datetime(2026, 3, 3, 23, 30, tzinfo=UTC)
    assert moved["sequence"] == 1
    assert rows["stretch:2026-03-03"]["state"] == "cancelled"
    assert rows["breathe:2026-03-03"]["state"] == "scheduled"

    # A second sync finds nothing to do.
    assert enrollment_service.sync_plans(harness.runtime) == []

    # What goes out now is the new plan.
    harness.at(datetime(2026, 3, 3, 2, 0, tzinfo=UTC))  # Mar 2, 21:00 EST: breathe
    harness.at(datetime(2026, 3, 4, 0, 0, tzinfo=UTC))  # Mar 3, 19:00 EST: stretch is gone
    assert [m.body for m in harness.sms.sent] == ["Move: Walk.", "Breathe now, Rae."]
    assert harness.states()["expired"] == 1  # walk at 18:30 on Mar 3 was not ticked in time
    harness.at(datetime(2026, 3, 4, 23, 30, tzinfo=UTC))  # Mar 4, 18:30 EST: walk
    assert [m.body for m in harness.sms.sent][-1] == "Move: Walk."


def test_plans_sync_dry_run_prints_each_change(
    harness: Harness, folders: Folders, monkeypatch: object
) -> None:
    from service import cli

    # The command reads the system clock: enroll a week from now.
    harness.clock.set(datetime.now(UTC))
    start = datetime.now(UTC).date() + timedelta(days=7)
    folders.write_plan("evening", BEFORE)
    harness.runtime.plans.refresh()
    person = harness.participant(tz="UTC")
    harness.enroll(person, "evening", start)
    folders.write_plan("evening", AFTER)
    day = start.isoformat()
    settings = harness.runtime.settings
    env = {
        "TEND_DATABASE_URL": settings.database_url,
        "TEND_SCHEDULES_DIR": str(folders.schedules),
        "TEND_TEMPLATES_DIR": str(folders.templates),
    }
    result = CliRunner().invoke(cli.main, ["plans", "sync", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("evening  e_")
    assert "cancelled" in lines[0]
    moved = f"    ~ walk:{day} {day}T18:00:00Z -> {day}T18:30:00Z"
    assert moved in lines
    assert any(line.startswith("    - stretch:") for line in lines)
    assert any(line.startswith("    + breathe:") for line in lines)
    assert "dry run: nothing was changed" in result.stderr
    assert occurrence_rows(harness)[f"walk:{day}"]["sequence"] == 0
