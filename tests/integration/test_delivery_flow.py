"""The engine end to end on a manual clock: enroll, schedule, claim, deliver, record.

Every test runs on SQLite and on a throwaway PostgreSQL (the `db_url` fixture).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from service.actions.errors import ActionError
from service.channels.base import ChannelError
from service.engine.delivery import Outcome, deliver
from service.storage import deliveries as delivery_rows
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.storage.tables import deliveries, enrollments, occurrences
from tests.support.engine import Folders, Harness, publish

ONE_PRACTICE = """
    plan: morning
    title: Morning
    weeks: 8
    practices:
      - id: rise
        category: sleep
        title: Rise
        at: "09:00"
        channels: [sms]
"""

NY_9AM_MAR_2 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 09:00 EST


@pytest.fixture
def morning(folders: Folders) -> None:
    folders.write_plan("morning", ONE_PRACTICE)


@pytest.mark.usefixtures("morning")
def test_a_reminder_is_sent_once_at_its_time(harness: Harness) -> None:
    harness.clock.set(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))

    assert harness.at(NY_9AM_MAR_2 - timedelta(seconds=1)).claimed == 0
    assert harness.sms.sent == []

    tick = harness.at(NY_9AM_MAR_2)
    assert tick.claimed == 1
    assert len(harness.sms.sent) == 1
    message = harness.sms.sent[0]
    assert message.to == "+14155550123"
    assert message.body == "Time for Rise, Rae."

    # Later passes find nothing more to do: once, not twice.
    assert harness.at(NY_9AM_MAR_2 + timedelta(minutes=1)).claimed == 0
    assert len(harness.sms.sent) == 1
    first = harness.deliveries()[0]
    assert first["key"] == "rise:2026-03-02"
    assert first["state"] == "sent"
    assert first["attempts"] == 1
    assert first["provider_id"] == "rec-1"
    assert first["sent_at"] == NY_9AM_MAR_2


@pytest.mark.usefixtures("morning")
def test_only_a_rolling_horizon_is_materialised(harness: Harness) -> None:
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    keys = [d["key"] for d in harness.deliveries()]
    assert keys[0] == "rise:2026-03-02"
    assert keys[-1] == "rise:2026-03-15"  # 14 days from today (Mar 2), not all 8 weeks
    assert len(keys) == 14

    harness.clock.set(datetime(2026, 3, 12, 12, 0, tzinfo=UTC))
    harness.scheduler.maintain(force=True)
    keys = [d["key"] for d in harness.deliveries()]
    assert keys[-1] == "rise:2026-03-25"
    assert len(set(keys)) == len(keys)  # extending adds, never duplicates


@pytest.mark.usefixtures("morning")
def test_a_reminder_past_its_grace_period_expires_and_is_never_sent(harness: Harness) -> None:
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))

    tick = harness.at(NY_9AM_MAR_2 + timedelta(minutes=16))
    assert tick.expired == 1
    assert tick.claimed == 0
    assert harness.sms.sent == []
    first = harness.deliveries()[0]
    assert first["state"] == "expired"
    assert "grace" in first["last_error"]


@pytest.mark.usefixtures("morning")
def test_the_worker_expires_a_claim_that_waited_too_long(harness: Harness) -> None:
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    harness.clock.set(NY_9AM_MAR_2)
    with transaction(harness.runtime.engine) as conn:
        (claimed,) = delivery_rows.claim_due(
            conn, now=NY_9AM_MAR_2, limit=10, lease=timedelta(hours=1)
        )
    harness.clock.set(NY_9AM_MAR_2 + timedelta(minutes=20))  # the queue was slow
    assert deliver(harness.runtime, claimed).outcome is Outcome.EXPIRED
    assert harness.sms.sent == []


@pytest.mark.usefixtures("morning")
def test_an_opt_out_stops_reminders_already_claimed(harness: Harness) -> None:
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    with transaction(harness.runtime.engine) as conn:
        (claimed,) = delivery_rows.claim_due(
            conn, now=NY_9AM_MAR_2, limit=10, lease=timedelta(minutes=2)
        )
        cancelled = participant_rows.opt_out_sms(conn, person, source="sms:STOP", now=NY_9AM_MAR_2)
    assert cancelled == 14  # the claimed one and every pending one
    harness.clock.set(NY_9AM_MAR_2)
    assert deliver(harness.runtime, claimed).outcome is Outcome.SKIPPED
    harness.at(NY_9AM_MAR_2 + timedelta(days=1))
    assert harness.sms.sent == []
    assert harness.states() == {"cancelled": 14}

    # START brings back what is still ahead, not what passed while opted out.
    moment = NY_9AM_MAR_2 + timedelta(days=1, hours=1)
    with transaction(harness.runtime.engine) as conn:
        restored = participant_rows.opt_in_sms(conn, person, source="sms:START", now=moment)
        log = participant_rows.consent_history(conn, person)
    assert restored == 12
    assert [(e["action"], e["source"]) for e in log] == [
        ("opt_out", "sms:STOP"),
        ("opt_in", "sms:START"),
    ]
    harness.at(NY_9AM_MAR_2 + timedelta(days=2))
    assert [m.body for m in harness.sms.sent] == ["Time for Rise, Rae."]


@pytest.mark.usefixtures("morning")
def test_a_participant_who_opted_out_is_never_sent_sms(harness: Harness) -> None:
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    # Opted out between the claim and the worker: the worker checks again.
    with transaction(harness.runtime.engine) as conn:
        (claimed,) = delivery_rows.claim_due(
            conn, now=NY_9AM_MAR_2, limit=10, lease=timedelta(minutes=2)
        )
        conn.execute(update(deliveries).where(deliveries.c.id == claimed).values(state="claimed"))
        from service.storage.tables import participants

        conn.execute(update(participants).values(sms_state="opted_out"))
    harness.clock.set(NY_9AM_MAR_2)
    result = deliver(harness.runtime, claimed)
    assert result.outcome is Outcome.CANCELLED
    assert harness.sms.sent == []


@pytest.mark.usefixtures("morning")
def test_pausing_an_enrollment_stops_reminders_and_resuming_brings_back_the_rest(
    harness: Harness,
) -> None:
    person = harness.participant()
    enrollment_id = harness.enroll(person, "morning", date(2026, 3, 2))
    with transaction(harness.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, enrollment_id, "paused", now=NY_9AM_MAR_2)
    harness.at(NY_9AM_MAR_2 + timedelta(days=3))
    assert harness.sms.sent == []
    resume = NY_9AM_MAR_2 + timedelta(days=3, hours=1)
    with transaction(harness.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, enrollment_id, "active", now=resume)
    harness.at(NY_9AM_MAR_2 + timedelta(days=4))
    assert [m.body for m in harness.sms.sent] == ["Time for Rise, Rae."]
    states = [(d["key"], d["state"]) for d in harness.deliveries()[:5]]
    assert states == [
        ("rise:2026-03-02", "cancelled"),
        ("rise:2026-03-03", "cancelled"),
        ("rise:2026-03-04", "cancelled"),
        ("rise:2026-03-05", "cancelled"),
        ("rise:2026-03-06", "sent"),
    ]


@pytest.mark.usefixtures("morning")
def test_nothing_is_scheduled_for_times_already_past_at_enrollment(harness: Harness) -> None:
    harness.clock.set(NY_9AM_MAR_2 + timedelta(hours=2))
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    assert harness.deliveries()[0]["key"] == "rise:2026-03-03"


def test_reminders_follow_daylight_saving_time(harness: Harness, folders: Folders) -> None:
    folders.write_plan(
        "night",
        """
        plan: night
        title: Night
        days: 4
        practices:
          - id: late
            category: sleep
            title: Late
            at: "02:30"
        """,
    )
    harness.clock.set(datetime(2026, 3, 6, 12, 0, tzinfo=UTC))
    person = harness.participant()
    harness.enroll(person, "night", date(2026, 3, 7))
    due = [(d["key"], d["due_at"]) for d in harness.deliveries()]
    assert due == [
        ("late:2026-03-07", datetime(2026, 3, 7, 7, 30, tzinfo=UTC)),  # 02:30 EST
        ("late:2026-03-08", datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),  # the gap: 03:30 EDT
        ("late:2026-03-09", datetime(2026, 3, 9, 6, 30, tzinfo=UTC)),  # 02:30 EDT
        ("late:2026-03-10", datetime(2026, 3, 10, 6, 30, tzinfo=UTC)),
    ]
    for _, moment in due:
        harness.at(moment)
    assert len(harness.sms.sent) == 4


@pytest.mark.usefixtures("morning")
def test_transient_errors_are_retried_and_permanent_ones_are_not(harness: Harness) -> None:
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    harness.sms.failures.append(ChannelError("busy", permanent=False, code="20429"))
    harness.clock.set(NY_9AM_MAR_2)
    with transaction(harness.runtime.engine) as conn:
        (claimed,) = delivery_rows.claim_due(
            conn, now=NY_9AM_MAR_2, limit=10, lease=timedelta(minutes=2)
        )
    first = deliver(harness.runtime, claimed)
    assert first.outcome is Outcome.RETRY
    assert first.retry_in == timedelta(seconds=10)
    assert deliver(harness.runtime, claimed).outcome is Outcome.SENT
    assert len(harness.sms.sent) == 1
    row = next(d for d in harness.deliveries() if d["id"] == claimed)
    assert row["attempts"] == 2

    harness.sms.failures.append(ChannelError("unreachable", permanent=True, code="21614"))
    harness.clock.set(NY_9AM_MAR_2 + timedelta(days=1))
    with transaction(harness.runtime.engine) as conn:
        (second,) = delivery_rows.claim_due(
            conn, now=harness.clock.now(), limit=10, lease=timedelta(minutes=2)
        )
    assert deliver(harness.runtime, second).outcome is Outcome.FAILED
    assert deliver(harness.runtime, second).outcome is Outcome.SKIPPED
    row = next(d for d in harness.deliveries() if d["id"] == second)
    assert (row["state"], row["last_error"]) == ("failed", "unreachable")


@pytest.mark.usefixtures("morning")
def test_retries_stop_at_the_grace_period(harness: Harness) -> None:
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    harness.clock.set(NY_9AM_MAR_2 + timedelta(minutes=14, seconds=55))
    with transaction(harness.runtime.engine) as conn:
        (claimed,) = delivery_rows.claim_due(
            conn, now=harness.clock.now(), limit=10, lease=timedelta(minutes=2)
        )
    harness.sms.failures.append(ChannelError("busy", permanent=False))
    result = deliver(harness.runtime, claimed)
    assert result.outcome is Outcome.FAILED
    assert "gave up" in (result.detail or "")


@pytest.mark.usefixtures("morning")
def test_a_provider_opt_out_is_recorded_and_stops_every_sms(harness: Harness) -> None:
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    harness.sms.failures.append(
        ChannelError("the number opted out", permanent=True, code="21610", opted_out=True)
    )
    harness.at(NY_9AM_MAR_2)
    with transaction(harness.runtime.engine) as conn:
        assert participant_rows.get_participant(conn, person).sms_state == "opted_out"
        assert participant_rows.consent_history(conn, person)[0]["source"] == "provider:21610"
    assert harness.states() == {"failed": 1, "cancelled": 13}


@pytest.mark.usefixtures("morning")
def test_a_worker_that_died_while_sending_is_not_sent_twice(harness: Harness) -> None:
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    harness.clock.set(NY_9AM_MAR_2)
    engine = harness.runtime.engine
    with transaction(engine) as conn:
        (claimed,) = delivery_rows.claim_due(
            conn, now=NY_9AM_MAR_2, limit=10, lease=timedelta(minutes=2)
        )
        delivery_rows.start_sending(conn, claimed, now=NY_9AM_MAR_2, lease=timedelta(minutes=3))
    # The channel got it; then the worker died before recording it.
    harness.sms.sent.append(
        __import__("service.channels.base", fromlist=["x"]).OutgoingMessage(
            claimed, "sms", "+14155550123", "Time for Rise, Rae."
        )
    )
    moment = NY_9AM_MAR_2 + timedelta(minutes=4)  # the sending lease ran out
    tick = harness.at(moment)
    assert tick.claimed == 1
    assert len(harness.sms.sent) == 1
    row = next(d for d in harness.deliveries() if d["id"] == claimed)
    assert row["state"] == "sent"


@pytest.mark.usefixtures("morning")
def test_an_unknowable_outcome_is_failed_rather_than_risking_a_duplicate(
    harness: Harness,
) -> None:
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    harness.sms.already_sent = lambda _id: None  # type: ignore[method-assign]
    with transaction(harness.runtime.engine) as conn:
        (claimed,) = delivery_rows.claim_due(
            conn, now=NY_9AM_MAR_2, limit=10, lease=timedelta(minutes=2)
        )
        delivery_rows.start_sending(conn, claimed, now=NY_9AM_MAR_2, lease=timedelta(minutes=3))
    harness.at(NY_9AM_MAR_2 + timedelta(minutes=4))
    row = next(d for d in harness.deliveries() if d["id"] == claimed)
    assert row["state"] == "failed"
    assert "cannot tell" in row["last_error"]
    assert harness.sms.sent == []


@pytest.mark.usefixtures("morning")
def test_a_lost_broker_message_is_recovered_by_the_lease(harness: Harness) -> None:
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    harness.clock.set(NY_9AM_MAR_2)
    lost: list[list[int]] = []
    harness.scheduler.enqueue = lost.append  # the message never reaches a worker
    assert harness.scheduler.tick().claimed == 1
    harness.scheduler.enqueue = harness.actor.send
    assert harness.at(NY_9AM_MAR_2 + timedelta(minutes=1)).claimed == 0  # lease still held
    assert harness.at(NY_9AM_MAR_2 + timedelta(minutes=2, seconds=1)).claimed == 1
    assert len(harness.sms.sent) == 1
    assert lost == [[harness.deliveries()[0]["id"]]]


@pytest.mark.usefixtures("morning")
def test_email_reminders_carry_a_check_in_link(harness: Harness, folders: Folders) -> None:
    folders.write_plan(
        "morning",
        ONE_PRACTICE.replace("channels: [sms]", "channels: [sms, email]"),
    )
    publish(harness.runtime)
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    harness.at(NY_9AM_MAR_2)
    assert len(harness.sms.sent) == 1
    (email,) = harness.email.sent
    assert email.to == "rae@example.com"
    assert email.subject == "Rise"
    assert "https://tend.test/check-in/" in email.body
    assert email.html is not None
    assert email.html.startswith("<p>Hi Rae.")


def test_a_participant_without_a_phone_gets_no_sms(harness: Harness, folders: Folders) -> None:
    folders.write_plan("morning", ONE_PRACTICE)
    person = harness.participant(phone=None)
    harness.enroll(person, "morning", date(2026, 3, 2))
    harness.at(NY_9AM_MAR_2)
    assert harness.sms.sent == []
    row = harness.deliveries()[0]
    assert (row["state"], row["last_error"]) == ("cancelled", "participant has no phone number")


@pytest.mark.usefixtures("morning")
def test_a_cancelled_enrollment_sends_nothing_more(harness: Harness) -> None:
    person = harness.participant()
    enrollment_id = harness.enroll(person, "morning", date(2026, 3, 2))
    harness.at(NY_9AM_MAR_2)
    with transaction(harness.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, enrollment_id, "cancelled", now=NY_9AM_MAR_2)
    harness.at(NY_9AM_MAR_2 + timedelta(days=5))
    harness.scheduler.maintain(force=True)
    assert len(harness.sms.sent) == 1
    assert harness.states() == {"sent": 1, "cancelled": 13}


def test_enrollments_finish_after_the_plan_ends(harness: Harness, folders: Folders) -> None:
    folders.write_plan("short", ONE_PRACTICE.replace("plan: morning", "plan: short").replace(
        "weeks: 8", "days: 2"))  # fmt: skip
    person = harness.participant()
    enrollment_id = harness.enroll(person, "short", date(2026, 3, 2))
    harness.clock.set(datetime(2026, 3, 5, 12, 0, tzinfo=UTC))
    harness.scheduler.maintain(force=True)
    with transaction(harness.runtime.engine) as conn:
        assert enrollment_rows.get_enrollment(conn, enrollment_id).status == "finished"


@pytest.mark.usefixtures("morning")
def test_an_unknown_variable_override_is_refused(harness: Harness) -> None:
    person = harness.participant()
    with pytest.raises(ActionError, match="no variable 'wake'"):
        harness.enroll(person, "morning", date(2026, 3, 2), wake="07:00")
    with transaction(harness.runtime.engine) as conn:
        assert conn.execute(select(enrollments)).first() is None
        assert conn.execute(select(occurrences)).first() is None
