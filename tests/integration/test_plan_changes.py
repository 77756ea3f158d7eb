"""A plan edited under live enrollments: what has not gone out follows the new plan (in
every process); what has gone out is history and never changes; an enrollment that
cannot follow its plan, or whose plan is gone, holds up no one."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from service.engine import enrollment as enrollment_service
from service.engine.delivery import Outcome, deliver
from service.storage import deliveries as delivery_rows
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.storage.tables import occurrences
from tests.support.engine import (
    NY_9AM,
    Folders,
    Harness,
    RecordingChannel,
    build_runtime,
    plan_text,
    publish,
    unpublish,
)

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
    publish(harness.runtime)
    person = harness.participant()
    harness.enroll(person, "evening", date(2026, 3, 2))
    harness.at(FIRST_WALK)  # walk on Mar 2 goes out at 18:00
    assert [m.body for m in harness.sms.sent] == ["Move: Walk."]

    folders.write_plan("evening", AFTER)
    now = FIRST_WALK + timedelta(minutes=5)
    harness.clock.set(now)

    preview = publish(harness.runtime, dry_run=True)
    assert len(preview) == 1
    assert preview[0].changes.summary() == "+14 added, ~13 changed, -14 cancelled"
    assert occurrence_rows(harness)["walk:2026-03-03"]["sequence"] == 0  # dry run: untouched

    applied = publish(harness.runtime)
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


def test_plans_push_and_sync_dry_runs_print_each_change(
    harness: Harness, folders: Folders, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import cli
    from service.actions import plans as publishing

    # The command reads the system clock: enroll a week from now.
    harness.clock.set(datetime.now(UTC))
    start = datetime.now(UTC).date() + timedelta(days=7)
    folders.write_plan("evening", BEFORE)
    publish(harness.runtime)
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
    moved = f"    ~ walk:{day} {day}T18:00:00Z -> {day}T18:30:00Z"

    def each_change(lines: list[str]) -> None:
        assert lines[0].startswith("evening  e_")
        assert "cancelled" in lines[0]
        assert moved in lines
        assert any(line.startswith("    - stretch:") for line in lines)
        assert any(line.startswith("    + breathe:") for line in lines)

    # Before publishing: what publishing would change, enrollment by enrollment.
    result = CliRunner().invoke(cli.main, ["plans", "push", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("evening: would be version 2; 1 enrollment change:")
    each_change(lines[1:])
    assert "dry run: nothing was published" in result.stderr
    assert occurrence_rows(harness)[f"walk:{day}"]["sequence"] == 0
    assert [v.version for v in publishing.versions(harness.runtime, "evening")] == [1]

    # A version stored by a process that stopped before moving the enrollment forward:
    # `plans sync --dry-run` lists the enrollment left behind, and what catching up does.
    with monkeypatch.context() as patched:
        patched.setattr(publishing, "follow", lambda runtime, plan, dry_run=False: [])
        assert publish(harness.runtime) == []
    result = CliRunner().invoke(cli.main, ["plans", "sync", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    each_change(result.stdout.splitlines())
    assert "dry run: nothing was changed" in result.stderr
    assert occurrence_rows(harness)[f"walk:{day}"]["sequence"] == 0
    # Without --dry-run it catches up, and then nothing is behind.
    result = CliRunner().invoke(cli.main, ["plans", "sync"], env=env)
    assert result.exit_code == 0, result.output
    each_change(result.stdout.splitlines())
    assert occurrence_rows(harness)[f"walk:{day}"]["sequence"] == 1
    result = CliRunner().invoke(cli.main, ["plans", "sync", "--dry-run"], env=env)
    assert result.stdout.strip() == "every enrollment matches its plan"


def horizon(h: Harness, enrollment_id: str) -> date:
    with transaction(h.runtime.engine) as conn:
        return enrollment_rows.get_enrollment(conn, enrollment_id).horizon


def test_one_enrollment_that_cannot_follow_its_plan_holds_up_no_one(
    harness: Harness, folders: Folders
) -> None:
    folders.write_plan("a", plan_text("a", at="wake", variables='variables:\n  wake: "07:00"'))
    folders.write_plan("b", plan_text("b"))
    publish(harness.runtime)
    first = harness.participant()
    second = harness.participant(name="Bo", phone="+14155550124")
    third = harness.participant(name="Cy", phone="+14155550125")
    stuck = harness.enroll(first, "a", date(2026, 3, 2), wake="06:30")
    fine = harness.enroll(second, "b", date(2026, 3, 2))
    follows = harness.enroll(third, "a", date(2026, 3, 2))
    folders.write_plan("a", plan_text("a", at='"07:15"'))  # `wake` is gone
    # Publishing reports the one that cannot follow, leaves it on its version, and moves
    # the others forward.
    lines = publish(harness.runtime)
    by_id = {line.enrollment_id: line for line in lines}
    assert set(by_id) == {stuck, follows}
    assert "no variable 'wake'" in (by_id[stuck].error or "")
    assert by_id[follows].error is None
    assert by_id[follows].changes
    with transaction(harness.runtime.engine) as conn:
        versions = {
            e: enrollment_rows.get_enrollment(conn, e).plan_version for e in (stuck, follows)
        }
    assert versions == {stuck: 1, follows: 2}
    harness.clock.set(datetime(2026, 3, 10, 12, tzinfo=UTC))
    harness.scheduler.maintain(force=True)
    assert horizon(harness, fine) == date(2026, 3, 24)
    assert horizon(harness, follows) == date(2026, 3, 24)
    lines = enrollment_service.sync_plans(harness.runtime, dry_run=True)
    assert [(line.enrollment_id, "no variable 'wake'" in (line.error or "")) for line in lines] == [
        (stuck, True)
    ]
    # Its own reminders go out as its version says, instead of failing.
    harness.at(datetime(2026, 3, 10, 10, 30, tzinfo=UTC))  # 06:30 EDT: the stuck one's
    assert [m.to for m in harness.sms.sent] == ["+14155550123"]
    harness.at(datetime(2026, 3, 10, 11, 15, tzinfo=UTC))  # 07:15 EDT: the new version's
    assert [m.to for m in harness.sms.sent] == ["+14155550123", "+14155550125"]
    rows = [d for d in harness.deliveries() if d["key"] == "rise:2026-03-10"]
    assert sorted((d["due_at"], d["state"]) for d in rows) == [
        (datetime(2026, 3, 10, 10, 30, tzinfo=UTC), "sent"),
        (datetime(2026, 3, 10, 11, 15, tzinfo=UTC), "sent"),
        (datetime(2026, 3, 10, 13, 0, tzinfo=UTC), "pending"),  # plan b's, at 09:00 EDT
    ]


def test_enrollments_whose_plan_is_gone_do_not_starve_the_others(
    harness: Harness, folders: Folders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enrollment_service.extend_horizons, "__defaults__", (2,))
    folders.write_plan("old", plan_text("old"))
    folders.write_plan("b", plan_text("b"))
    publish(harness.runtime)
    for i in range(3):
        harness.enroll(harness.participant(name=f"O{i}", phone=f"+1415555099{i}"), "old",
                       date(2026, 3, 2))  # fmt: skip
    harness.clock.set(datetime(2026, 3, 5, 12, tzinfo=UTC))
    kept = harness.enroll(harness.participant(), "b", date(2026, 3, 5))
    unpublish(harness.runtime, "old")  # its versions no longer load
    for day in range(6, 25):
        harness.clock.set(datetime(2026, 3, day, 12, tzinfo=UTC))
        harness.scheduler.maintain(force=True)
    assert horizon(harness, kept) >= date(2026, 4, 5)
    harness.at(datetime(2026, 3, 20, 13, 0, tzinfo=UTC))  # 09:00 EDT
    assert len(harness.sms.sent) == 1


@pytest.mark.parametrize("via", ["pause", "opt-out"])
def test_a_channel_removed_from_the_plan_does_not_come_back(
    harness: Harness, folders: Folders, via: str
) -> None:
    folders.write_plan("m", plan_text("m", channels="[sms, email]"))
    publish(harness.runtime)
    person = harness.participant()
    enrollment_id = harness.enroll(person, "m", date(2026, 3, 2))
    now = harness.clock.now()
    with transaction(harness.runtime.engine) as conn:
        if via == "pause":
            enrollment_rows.set_enrollment_status(conn, enrollment_id, "paused", now=now)
        else:
            participant_rows.opt_out_sms(conn, person, source="sms:STOP", now=now)
    folders.write_plan("m", plan_text("m", channels="[email]"))
    publish(harness.runtime)
    harness.scheduler.maintain(force=True)
    with transaction(harness.runtime.engine) as conn:
        if via == "pause":
            enrollment_rows.set_enrollment_status(conn, enrollment_id, "active", now=now)
        else:
            participant_rows.opt_in_sms(conn, person, source="sms:START", now=now)
    harness.at(NY_9AM)
    assert harness.sms.sent == []
    assert len(harness.email.sent) == 1


def test_a_worker_in_another_process_follows_plan_edits(
    harness: Harness, folders: Folders, db_url: str
) -> None:
    folders.write_plan("m", plan_text("m"))
    publish(harness.runtime)
    worker_sms = RecordingChannel("sms")
    worker = build_runtime(db_url, folders, harness.clock,
                           {"sms": worker_sms, "email": RecordingChannel("email")})  # fmt: skip
    try:
        harness.enroll(harness.participant(), "m", date(2026, 3, 2))
        extra = (
            "  - id: breathe\n    category: mindfulness\n    title: Breathe\n"
            '    at: "10:00"\n    message: "Breathe now."\n'
        )
        edited = plan_text("m", extra=extra).replace(
            "channels: [sms]\n", 'channels: [sms]\n    message: "New text"\n', 1
        )
        folders.write_plan("m", edited)
        publish(harness.runtime)  # this process publishes; the worker's has read nothing new
        outcomes = []
        for moment in (NY_9AM, NY_9AM + timedelta(hours=1)):
            harness.clock.set(moment)
            with transaction(harness.runtime.engine) as conn:
                ids = delivery_rows.claim_due(
                    conn, now=moment, limit=10, lease=timedelta(minutes=2)
                )
            outcomes += [deliver(worker, i).outcome for i in ids]
    finally:
        worker.close()
    assert outcomes == [Outcome.SENT, Outcome.SENT]
    assert [m.body for m in worker_sms.sent] == ["New text", "Breathe now."]
