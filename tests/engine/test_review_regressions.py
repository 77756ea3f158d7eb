"""Regressions from a review of the engine: each test failed before its fix."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from service.channels.base import OutgoingMessage
from service.clock import ManualClock
from service.engine import enrollment as enrollment_service
from service.engine.delivery import Outcome, deliver, deliver_many
from service.storage import repo
from service.storage.db import transaction
from tests.engine.conftest import Folders, Harness, RecordingChannel, build_runtime

NY_9AM = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def plan_text(
    plan_id: str, at: str = '"09:00"', channels: str = "[sms]", variables: str = "", extra: str = ""
) -> str:
    return f"""
plan: {plan_id}
title: T {plan_id}
weeks: 8
{variables}
practices:
  - id: rise
    category: sleep
    title: Rise
    at: {at}
    channels: {channels}
{extra}
"""


def horizon(h: Harness, enrollment_id: str) -> date:
    with transaction(h.runtime.engine) as conn:
        return repo.get_enrollment(conn, enrollment_id).horizon


def test_one_enrollment_that_cannot_follow_its_plan_holds_up_no_one(
    harness: Harness, folders: Folders
) -> None:
    folders.write_plan("a", plan_text("a", at="wake", variables='variables:\n  wake: "07:00"'))
    folders.write_plan("b", plan_text("b"))
    harness.runtime.plans.refresh()
    first = harness.participant()
    second = harness.participant(name="Bo", phone="+14155550124")
    stuck = harness.enroll(first, "a", date(2026, 3, 2), wake="06:30")
    fine = harness.enroll(second, "b", date(2026, 3, 2))
    folders.write_plan("a", plan_text("a", at='"07:15"'))  # `wake` is gone
    harness.clock.set(datetime(2026, 3, 10, 12, tzinfo=UTC))
    harness.scheduler.maintain(force=True)
    assert horizon(harness, fine) == date(2026, 3, 24)
    lines = enrollment_service.sync_plans(harness.runtime, dry_run=True)
    assert [(line.enrollment_id, "no variable 'wake'" in (line.error or "")) for line in lines] == [
        (stuck, True)
    ]
    # Its own reminders fail with the reason instead of sticking in `sending`.
    moment = datetime(2026, 3, 10, 10, 30, tzinfo=UTC)  # 06:30 EDT
    harness.at(moment)
    row = next(d for d in harness.deliveries() if d["key"] == "rise:2026-03-10")
    assert row["state"] == "failed"
    assert "no variable 'wake'" in row["last_error"]


def test_enrollments_whose_plan_is_gone_do_not_starve_the_others(
    harness: Harness, folders: Folders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enrollment_service.extend_horizons, "__defaults__", (2,))
    retired = folders.write_plan("old", plan_text("old"))
    folders.write_plan("b", plan_text("b"))
    harness.runtime.plans.refresh()
    for i in range(3):
        harness.enroll(harness.participant(name=f"O{i}", phone=f"+1415555099{i}"), "old",
                       date(2026, 3, 2))  # fmt: skip
    harness.clock.set(datetime(2026, 3, 5, 12, tzinfo=UTC))
    kept = harness.enroll(harness.participant(), "b", date(2026, 3, 5))
    retired.unlink()
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
    harness.runtime.plans.refresh()
    person = harness.participant()
    enrollment_id = harness.enroll(person, "m", date(2026, 3, 2))
    now = harness.clock.now()
    with transaction(harness.runtime.engine) as conn:
        if via == "pause":
            repo.set_enrollment_status(conn, enrollment_id, "paused", now=now)
        else:
            repo.opt_out_sms(conn, person, source="sms:STOP", now=now)
    folders.write_plan("m", plan_text("m", channels="[email]"))
    harness.scheduler.maintain(force=True)
    with transaction(harness.runtime.engine) as conn:
        if via == "pause":
            repo.set_enrollment_status(conn, enrollment_id, "active", now=now)
        else:
            repo.opt_in_sms(conn, person, source="sms:START", now=now)
    harness.at(NY_9AM)
    assert harness.sms.sent == []
    assert len(harness.email.sent) == 1


def test_stop_pause_start_resume_brings_the_reminders_back(
    harness: Harness, folders: Folders
) -> None:
    folders.write_plan("m", plan_text("m"))
    harness.runtime.plans.refresh()
    person = harness.participant()
    enrollment_id = harness.enroll(person, "m", date(2026, 3, 2))
    now = harness.clock.now()
    with transaction(harness.runtime.engine) as conn:
        repo.opt_out_sms(conn, person, source="sms:STOP", now=now)
        repo.set_enrollment_status(conn, enrollment_id, "paused", now=now)
        repo.opt_in_sms(conn, person, source="sms:START", now=now)
        repo.set_enrollment_status(conn, enrollment_id, "active", now=now)
    for day in range(2, 6):
        harness.at(datetime(2026, 3, day, 14, 0, tzinfo=UTC))
    assert len(harness.sms.sent) == 4


def test_pause_then_stop_then_resume_sends_no_sms(harness: Harness, folders: Folders) -> None:
    folders.write_plan("m", plan_text("m", channels="[sms, email]"))
    harness.runtime.plans.refresh()
    person = harness.participant()
    enrollment_id = harness.enroll(person, "m", date(2026, 3, 2))
    now = harness.clock.now()
    with transaction(harness.runtime.engine) as conn:
        repo.set_enrollment_status(conn, enrollment_id, "paused", now=now)
        repo.opt_out_sms(conn, person, source="sms:STOP", now=now)
        repo.set_enrollment_status(conn, enrollment_id, "active", now=now)
    harness.at(NY_9AM)
    assert harness.sms.sent == []
    assert len(harness.email.sent) == 1


def test_a_worker_in_another_process_follows_plan_edits(
    harness: Harness, folders: Folders, db_url: str
) -> None:
    folders.write_plan("m", plan_text("m"))
    harness.runtime.plans.refresh()
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
        harness.scheduler.maintain(force=True)  # the scheduler's process follows the edit
        outcomes = []
        for moment in (NY_9AM, NY_9AM + timedelta(hours=1)):
            harness.clock.set(moment)
            with transaction(harness.runtime.engine) as conn:
                ids = repo.claim_due(conn, now=moment, limit=10, lease=timedelta(minutes=2))
            outcomes += [deliver(worker, i).outcome for i in ids]
    finally:
        worker.close()
    assert outcomes == [Outcome.SENT, Outcome.SENT]
    assert [m.body for m in worker_sms.sent] == ["New text", "Breathe now."]


def test_an_unexpected_error_in_one_delivery_spares_the_rest_of_the_batch(
    harness: Harness, folders: Folders
) -> None:
    folders.write_plan("m", plan_text("m"))
    harness.runtime.plans.refresh()
    for i in range(3):
        harness.enroll(harness.participant(name=f"P{i}", phone=f"+1415555098{i}"), "m",
                       date(2026, 3, 2))  # fmt: skip
    harness.clock.set(NY_9AM)
    with transaction(harness.runtime.engine) as conn:
        ids = repo.claim_due(conn, now=NY_9AM, limit=10, lease=timedelta(minutes=2))
    calls: list[int | None] = []

    def boom(message: OutgoingMessage) -> None:
        calls.append(message.delivery_id)
        if len(calls) == 2:
            raise TimeoutError("read timed out")  # not a ChannelError: a channel's bug

    harness.sms.before_send = boom
    retried: list[int] = []
    results = deliver_many(harness.runtime, ids, on_retry=lambda i, _delay: retried.append(i))
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.RETRY, Outcome.SENT]
    assert retried == [ids[1]]
    with transaction(harness.runtime.engine) as conn:
        middle = repo.get_delivery(conn, ids[1])
    assert (middle["state"], middle["uncertain"]) == ("claimed", True)


def test_a_worker_whose_lease_ran_out_cannot_overwrite_the_next_attempt(
    harness: Harness, folders: Folders
) -> None:
    folders.write_plan("m", plan_text("m"))
    harness.runtime.plans.refresh()
    harness.enroll(harness.participant(), "m", date(2026, 3, 2))
    harness.clock.set(NY_9AM)
    with transaction(harness.runtime.engine) as conn:
        (delivery,) = repo.claim_due(conn, now=NY_9AM, limit=10, lease=timedelta(minutes=2))
        first = repo.start_sending(conn, delivery, now=NY_9AM, lease=timedelta(minutes=3))
        assert first is not None
        later = NY_9AM + timedelta(minutes=4)
        repo.claim_due(conn, now=later, limit=10, lease=timedelta(minutes=2))
        second = repo.start_sending(conn, delivery, now=later, lease=timedelta(minutes=3))
        assert second is not None
        assert not repo.finish(conn, delivery, "failed", now=later, attempt=first.attempts,
                               error="late")  # fmt: skip
        assert repo.finish(conn, delivery, "sent", now=later, attempt=second.attempts)
        assert repo.get_delivery(conn, delivery)["state"] == "sent"


def test_a_cancelled_enrollment_cannot_be_paused_by_a_racing_change(
    pg_url: str, folders: Folders, clock: ManualClock
) -> None:
    folders.write_plan("m", plan_text("m"))
    channels = {"sms": RecordingChannel("sms"), "email": RecordingChannel("email")}
    runtime = build_runtime(pg_url, folders, clock, channels)
    try:
        with transaction(runtime.engine) as conn:
            person = repo.add_participant(conn, name="R", timezone="America/New_York",
                                          phone="+14155550123", now=clock.now()).id  # fmt: skip
        plan = runtime.plans.get("m")
        assert plan is not None
        enrollment_id = enrollment_service.enroll(runtime, person, plan, date(2026, 3, 2), {}).id
        now = clock.now()
        errors: list[Exception] = []
        with runtime.engine.connect() as first:
            outer = first.begin()
            repo.set_enrollment_status(first, enrollment_id, "cancelled", now=now)

            def pause() -> None:
                try:
                    with transaction(runtime.engine) as conn:
                        repo.set_enrollment_status(conn, enrollment_id, "paused", now=now)
                except ValueError as exc:
                    errors.append(exc)

            racer = threading.Thread(target=pause)
            racer.start()
            racer.join(timeout=0.5)  # it waits on the row lock the cancel holds
            outer.commit()
        racer.join(timeout=30)
        with transaction(runtime.engine) as conn:
            status = repo.get_enrollment(conn, enrollment_id).status
    finally:
        runtime.close()
    assert status == "cancelled"
    assert len(errors) == 1


def test_enrolling_twice_in_the_same_plan_is_refused(harness: Harness, folders: Folders) -> None:
    folders.write_plan("m", plan_text("m"))
    harness.runtime.plans.refresh()
    person = harness.participant()
    first = harness.enroll(person, "m", date(2026, 3, 2))
    with pytest.raises(enrollment_service.EnrollmentError, match="already enrolled"):
        harness.enroll(person, "m", date(2026, 3, 2))
    with transaction(harness.runtime.engine) as conn:
        repo.set_enrollment_status(conn, first, "cancelled", now=harness.clock.now())
    harness.enroll(person, "m", date(2026, 3, 9))  # after a cancel, a new start is fine


def test_an_uncertain_send_is_failed_when_the_channel_cannot_tell(
    harness: Harness, folders: Folders
) -> None:
    from service.channels.base import ChannelError

    folders.write_plan("m", plan_text("m"))
    harness.runtime.plans.refresh()
    harness.enroll(harness.participant(), "m", date(2026, 3, 2))
    harness.sms.failures.append(ChannelError("answer lost", permanent=False, uncertain=True))
    harness.sms.already_sent = lambda _id: None  # type: ignore[method-assign]
    harness.at(NY_9AM)
    row = harness.deliveries()[0]
    assert row["state"] == "failed"
    assert "not sent again" in row["last_error"]
    assert harness.sms.sent == []


def test_an_uncertain_send_that_surely_did_not_go_is_retried(
    harness: Harness, folders: Folders
) -> None:
    from service.channels.base import ChannelError

    folders.write_plan("m", plan_text("m"))
    harness.runtime.plans.refresh()
    harness.enroll(harness.participant(), "m", date(2026, 3, 2))
    harness.sms.failures.append(ChannelError("answer lost", permanent=False, uncertain=True))
    harness.clock.set(NY_9AM)
    with transaction(harness.runtime.engine) as conn:
        (delivery,) = repo.claim_due(conn, now=NY_9AM, limit=5, lease=timedelta(minutes=2))
    assert deliver(harness.runtime, delivery).outcome is Outcome.RETRY  # it knows: not sent
    assert deliver(harness.runtime, delivery).outcome is Outcome.SENT
    assert len(harness.sms.sent) == 1
