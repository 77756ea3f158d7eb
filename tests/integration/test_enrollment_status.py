"""An enrollment's status and its participant's SMS consent changed in any order: the
reminders come back when both allow them, never while one forbids them; a cancelled
enrollment stays cancelled; one enrollment per person and plan at a time."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest

from service.actions import enrollments as enrolling
from service.actions.errors import ActionError
from service.clock import ManualClock
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import transaction
from tests.support.engine import (
    NY_9AM,
    Folders,
    Harness,
    RecordingChannel,
    build_runtime,
    plan_text,
    publish,
)


def test_stop_pause_start_resume_brings_the_reminders_back(
    harness: Harness, folders: Folders
) -> None:
    folders.write_plan("m", plan_text("m"))
    publish(harness.runtime)
    person = harness.participant()
    enrollment_id = harness.enroll(person, "m", date(2026, 3, 2))
    now = harness.clock.now()
    with transaction(harness.runtime.engine) as conn:
        participant_rows.opt_out_sms(conn, person, source="sms:STOP", now=now)
        enrollment_rows.set_enrollment_status(conn, enrollment_id, "paused", now=now)
        participant_rows.opt_in_sms(conn, person, source="sms:START", now=now)
        enrollment_rows.set_enrollment_status(conn, enrollment_id, "active", now=now)
    for day in range(2, 6):
        harness.at(datetime(2026, 3, day, 14, 0, tzinfo=UTC))
    assert len(harness.sms.sent) == 4


def test_pause_then_stop_then_resume_sends_no_sms(harness: Harness, folders: Folders) -> None:
    folders.write_plan("m", plan_text("m", channels="[sms, email]"))
    publish(harness.runtime)
    person = harness.participant()
    enrollment_id = harness.enroll(person, "m", date(2026, 3, 2))
    now = harness.clock.now()
    with transaction(harness.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, enrollment_id, "paused", now=now)
        participant_rows.opt_out_sms(conn, person, source="sms:STOP", now=now)
        enrollment_rows.set_enrollment_status(conn, enrollment_id, "active", now=now)
    harness.at(NY_9AM)
    assert harness.sms.sent == []
    assert len(harness.email.sent) == 1


def test_a_cancelled_enrollment_cannot_be_paused_by_a_racing_change(
    pg_url: str, folders: Folders, clock: ManualClock
) -> None:
    folders.write_plan("m", plan_text("m"))
    channels = {"sms": RecordingChannel("sms"), "email": RecordingChannel("email")}
    runtime = build_runtime(pg_url, folders, clock, channels)
    try:
        with transaction(runtime.engine) as conn:
            person = participant_rows.add_participant(conn, name="R", timezone="America/New_York",
                                          phone="+14155550123", now=clock.now(),
                                          welcomed_at=clock.now()).id  # fmt: skip
        plan = runtime.plans.get("m")
        assert plan is not None
        enrollment_id = enrolling.enroll(runtime, person, plan, date(2026, 3, 2), {}).id
        now = clock.now()
        errors: list[Exception] = []
        with runtime.engine.connect() as first:
            outer = first.begin()
            enrollment_rows.set_enrollment_status(first, enrollment_id, "cancelled", now=now)

            def pause() -> None:
                try:
                    with transaction(runtime.engine) as conn:
                        enrollment_rows.set_enrollment_status(
                            conn, enrollment_id, "paused", now=now
                        )
                except ValueError as exc:
                    errors.append(exc)

            racer = threading.Thread(target=pause)
            racer.start()
            racer.join(timeout=0.5)  # it waits on the row lock the cancel holds
            outer.commit()
        racer.join(timeout=30)
        with transaction(runtime.engine) as conn:
            status = enrollment_rows.get_enrollment(conn, enrollment_id).status
    finally:
        runtime.close()
    assert status == "cancelled"
    assert len(errors) == 1


def test_enrolling_twice_in_the_same_plan_is_refused(harness: Harness, folders: Folders) -> None:
    folders.write_plan("m", plan_text("m"))
    publish(harness.runtime)
    person = harness.participant()
    first = harness.enroll(person, "m", date(2026, 3, 2))
    with pytest.raises(ActionError, match="already enrolled"):
        harness.enroll(person, "m", date(2026, 3, 2))
    with transaction(harness.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, first, "cancelled", now=harness.clock.now())
    harness.enroll(person, "m", date(2026, 3, 9))  # after a cancel, a new start is fine
