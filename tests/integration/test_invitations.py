"""Calendar invitations through the engine: the maintenance pass sends one REQUEST per
enrollment, an update (same UIDs, higher SEQUENCE) after a plan edit, a CANCEL when the
enrollment is cancelled, nothing twice and nothing to those without email; and the
email that carries it has the MIME structure Outlook and Gmail take.

Every test runs on SQLite and on a throwaway PostgreSQL (the `db_url` fixture).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import icalendar
from sqlalchemy import update

from service.channels.base import ChannelError, OutgoingMessage
from service.channels.email import SMTPEmailChannel
from service.engine.invitations import sync_invitations
from service.storage import enrollments as enrollment_rows
from service.storage import invitations as invitation_rows
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.storage.tables import participants
from tests.support.engine import START, Folders, Harness, build_runtime, publish
from tests.support.fake_smtp import smtp_server

PLAN = """
    plan: evening
    title: Evening
    weeks: 4
    practices:
      - id: wind
        category: sleep
        title: Wind down
        at: "21:00"
        duration: 30m
        channels: [sms, calendar]
      - id: move
        category: movement
        title: Stretch
        at: "18:00"
        every: [tue, fri]
        channels: [calendar]
        check_in: none
"""
MONDAY = date(2026, 3, 2)


def events(message: OutgoingMessage) -> list[Any]:
    assert message.calendar is not None
    return list(icalendar.Calendar.from_ical(message.calendar).walk("VEVENT"))


def method(message: OutgoingMessage) -> str:
    assert message.calendar is not None
    return str(icalendar.Calendar.from_ical(message.calendar)["METHOD"])


def uids(message: OutgoingMessage) -> list[str]:
    return [str(e["UID"]) for e in events(message)]


def sequences(message: OutgoingMessage) -> set[int]:
    return {int(e["SEQUENCE"]) for e in events(message)}


def enrolled(harness: Harness, folders: Folders, **participant: Any) -> str:
    folders.write_plan("evening", PLAN)
    publish(harness.runtime)
    who = harness.participant(**participant)
    return harness.enroll(who, "evening", MONDAY)


def test_an_enrollment_gets_one_request(harness: Harness, folders: Folders) -> None:
    enrollment_id = enrolled(harness, folders)
    harness.scheduler.maintain(force=True)
    [message] = harness.email.sent
    assert message.channel == "email"
    assert message.to == "rae@example.com"
    assert message.subject == "Calendar: Evening"
    assert message.calendar_method == "REQUEST"
    assert method(message) == "REQUEST"
    assert "Your practices from Evening are attached as calendar events; accept the invitation" in (
        message.body
    )
    assert message.unsubscribe_url
    assert "/unsubscribe/" in message.unsubscribe_url
    assert uids(message) == [f"{enrollment_id}.move.0@tend", f"{enrollment_id}.wind.0@tend"]
    assert sequences(message) == {0}
    wind = events(message)[1]
    assert str(wind["ORGANIZER"]) == "mailto:tend@localhost"
    assert str(wind["ATTENDEE"]) == "mailto:rae@example.com"
    assert "reply to the reminder text" in str(wind["DESCRIPTION"])
    assert "check-in" not in str(wind["DESCRIPTION"])  # no per-occurrence link in a series
    # Nothing changed: nothing more is sent, however often the pass runs.
    harness.scheduler.maintain(force=True)
    assert sync_invitations(harness.runtime).sent == 0
    assert len(harness.email.sent) == 1
    with transaction(harness.runtime.engine) as conn:
        state = invitation_rows.get_invitation(conn, enrollment_id)
    assert state is not None
    assert (state.state, state.sequence, state.method_sent) == ("idle", 0, "REQUEST")
    assert state.sent_keys == ("move.0", "wind.0")
    # Reminders by SMS are untouched by the invitation; calendar-only has no deliveries.
    assert {d["channel"] for d in harness.deliveries()} == {"sms"}


def test_a_plan_edit_sends_an_update(harness: Harness, folders: Folders) -> None:
    enrollment_id = enrolled(harness, folders)
    harness.scheduler.maintain(force=True)
    [first] = harness.email.sent
    folders.write_plan("evening", PLAN.replace('at: "21:00"', 'at: "20:15"'))
    publish(harness.runtime)
    harness.scheduler.maintain(force=True)
    [_, update_] = harness.email.sent
    assert method(update_) == "REQUEST"
    assert uids(update_) == uids(first)
    assert sequences(update_) == {1}
    starts = {str(e["UID"]): e["DTSTART"].dt for e in events(update_)}
    assert starts[f"{enrollment_id}.wind.0@tend"].strftime("%H:%M") == "20:15"
    harness.scheduler.maintain(force=True)
    assert len(harness.email.sent) == 2


def test_a_series_the_plan_no_longer_has_is_cancelled(harness: Harness, folders: Folders) -> None:
    enrollment_id = enrolled(harness, folders)
    harness.scheduler.maintain(force=True)
    # Weeks 3-4 at another time: the wind-down becomes two series; then the phase goes.
    folders.write_plan(
        "evening",
        PLAN.replace(
            "channels: [sms, calendar]\n",
            'channels: [sms, calendar]\n        phases:\n          - weeks: "3-4"\n'
            '            at: "22:00"\n',
        ),
    )
    publish(harness.runtime)
    harness.scheduler.maintain(force=True)
    assert uids(harness.email.sent[-1])[-1] == f"{enrollment_id}.wind.1@tend"
    folders.write_plan("evening", PLAN.replace('at: "21:00"', 'at: "21:30"'))
    publish(harness.runtime)
    harness.scheduler.maintain(force=True)
    cancel, request = harness.email.sent[-2:]
    assert method(cancel) == "CANCEL"
    assert uids(cancel) == [f"{enrollment_id}.wind.1@tend"]
    assert method(request) == "REQUEST"
    assert uids(request) == [f"{enrollment_id}.move.0@tend", f"{enrollment_id}.wind.0@tend"]
    assert sequences(cancel) == {2}
    assert sequences(request) == {3}
    harness.scheduler.maintain(force=True)
    assert len(harness.email.sent) == 4


def test_cancelling_the_enrollment_sends_a_cancel(harness: Harness, folders: Folders) -> None:
    enrollment_id = enrolled(harness, folders)
    harness.scheduler.maintain(force=True)
    [request] = harness.email.sent
    with transaction(harness.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(
            conn, enrollment_id, "cancelled", now=harness.clock.now()
        )
    harness.scheduler.maintain(force=True)
    [_, cancel] = harness.email.sent
    assert method(cancel) == "CANCEL"
    assert cancel.calendar_method == "CANCEL"
    assert cancel.subject == "Cancelled: Evening"
    assert uids(cancel) == uids(request)
    assert sequences(cancel) == {1}
    assert {str(e["STATUS"]) for e in events(cancel)} == {"CANCELLED"}
    harness.scheduler.maintain(force=True)
    assert len(harness.email.sent) == 2


def test_a_cancelled_enrollment_never_invited_gets_nothing(
    harness: Harness, folders: Folders
) -> None:
    enrollment_id = enrolled(harness, folders)
    with transaction(harness.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(
            conn, enrollment_id, "cancelled", now=harness.clock.now()
        )
    harness.scheduler.maintain(force=True)
    assert harness.email.sent == []


def test_no_email_or_unsubscribed_gets_none(harness: Harness, folders: Folders) -> None:
    folders.write_plan("evening", PLAN)
    publish(harness.runtime)
    nobody = harness.participant(name="No Mail", phone="+14155550100", email=None)
    harness.enroll(nobody, "evening", MONDAY)
    gone = harness.participant(name="Gone", phone="+14155550101", email="gone@example.com")
    with transaction(harness.runtime.engine) as conn:
        conn.execute(
            update(participants).where(participants.c.id == gone).values(email_unsubscribed=True)
        )
    harness.enroll(gone, "evening", MONDAY)
    harness.scheduler.maintain(force=True)
    assert harness.email.sent == []


def test_a_transient_error_is_retried_and_a_permanent_one_is_not(
    harness: Harness, folders: Folders
) -> None:
    enrollment_id = enrolled(harness, folders)
    harness.email.failures.append(ChannelError("451 try later", permanent=False))
    assert sync_invitations(harness.runtime).retrying == 1
    with transaction(harness.runtime.engine) as conn:
        state = invitation_rows.get_invitation(conn, enrollment_id)
    assert state is not None
    assert state.state == "pending"
    assert state.last_error == "451 try later"
    assert sync_invitations(harness.runtime).sent == 0  # its backoff has not run out
    harness.clock.advance(minutes=1)
    assert sync_invitations(harness.runtime).sent == 1
    assert sequences(harness.email.sent[0]) == {0}
    # An update refused for good is marked failed and not tried again ...
    folders.write_plan("evening", PLAN.replace('at: "21:00"', 'at: "20:15"'))
    publish(harness.runtime)
    harness.scheduler.maintain(force=True)
    harness.email.sent.clear()
    folders.write_plan("evening", PLAN.replace('at: "21:00"', 'at: "19:45"'))
    publish(harness.runtime)
    harness.email.failures.append(ChannelError("550 no such user", permanent=True))
    harness.scheduler.maintain(force=True)
    with transaction(harness.runtime.engine) as conn:
        state = invitation_rows.get_invitation(conn, enrollment_id)
    assert state is not None
    assert state.state == "failed"
    assert state.last_error == "550 no such user"
    harness.clock.advance(hours=2)
    harness.scheduler.maintain(force=True)
    assert harness.email.sent == []
    # ... until what is wanted changes.
    folders.write_plan("evening", PLAN.replace('at: "21:00"', 'at: "19:30"'))
    publish(harness.runtime)
    harness.scheduler.maintain(force=True)
    [message] = harness.email.sent
    assert sequences(message) == {2}


def test_two_passes_at_once_send_one_version(harness: Harness, folders: Folders) -> None:
    """A second scheduler that finds the row being sent (its lease not run out) leaves it."""
    enrolled(harness, folders)
    inner: list[int] = []

    def meanwhile(_: OutgoingMessage) -> None:
        if not inner:
            inner.append(sync_invitations(harness.runtime).sent)

    harness.email.before_send = meanwhile
    assert sync_invitations(harness.runtime).sent == 1
    assert inner == [0]
    assert len(harness.email.sent) == 1


def test_a_scheduler_that_read_the_row_before_another_sent_does_not_send_again(
    harness: Harness, folders: Folders
) -> None:
    """The second scheduler read the candidates (nothing sent yet), then the first sent
    the version: the second finds it sent and sends nothing (found by the load test)."""
    from service.engine.invitations import Summary, _sync_one

    enrollment_id = enrolled(harness, folders)
    plan = harness.plan("evening")
    with transaction(harness.runtime.engine) as conn:
        [stale] = invitation_rows.invitation_candidates(
            conn, plan_ids={"evening": plan}, after=None, limit=10
        )
    assert stale.enrollment.id == enrollment_id
    assert stale.invitation is None or stale.invitation.sent_hash is None
    assert sync_invitations(harness.runtime).sent == 1  # the first scheduler
    late = Summary()
    _sync_one(harness.runtime, plan, stale, late)  # the second, on what it read before
    assert late.sent == 0
    assert len(harness.email.sent) == 1


def test_through_smtp_the_mime_structure(db_url: str, folders: Folders, clock: Any) -> None:
    folders.write_plan("evening", PLAN)
    with smtp_server() as server:
        email = SMTPEmailChannel(
            host="127.0.0.1", port=server.port, sender="Tend <tend@tend.test>", now=clock.now,
            starttls=False, timeout=5.0,
        )  # fmt: skip
        from tests.support.engine import RecordingChannel

        runtime = build_runtime(db_url, folders, clock, {"sms": RecordingChannel("sms"),
                                                         "email": email})  # fmt: skip
        try:
            with transaction(runtime.engine) as conn:
                who = participant_rows.add_participant(
                    conn, name="Rae Example", timezone="Europe/London",
                    email="rae@example.com", now=START,
                )  # fmt: skip
            from service.actions.enrollments import enroll

            plan = runtime.plans.get("evening")
            assert plan is not None
            enroll(runtime, who.id, plan, MONDAY, {})
            assert sync_invitations(runtime).sent == 1
        finally:
            runtime.close()
    [received] = server.received
    mail = received.message
    assert mail["Subject"] == "Calendar: Evening"
    assert mail.get_content_type() == "multipart/mixed"
    alternative, attachment = mail.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    parts = list(alternative.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/calendar"]
    calendar_part = parts[1]
    assert calendar_part.get_param("method") == "REQUEST"
    assert calendar_part.get_content_charset() == "utf-8"
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_param("name") == "invite.ics"
    inline = calendar_part.get_content()
    attached = attachment.get_content()
    assert isinstance(attached, bytes)
    assert inline.replace("\r\n", "\n") == attached.decode().replace("\r\n", "\n")
    calendar = icalendar.Calendar.from_ical(attached)
    assert str(calendar["METHOD"]) == "REQUEST"
    assert "accept the invitation to add them to your calendar" in parts[0].get_content()


def test_a_burst_of_enrollments_is_invited_a_few_at_a_time(
    harness: Harness, folders: Folders
) -> None:
    from service.engine.invitations import MAX_ATTEMPTS_PER_PASS

    folders.write_plan("evening", PLAN)
    publish(harness.runtime)
    for i in range(MAX_ATTEMPTS_PER_PASS + 2):
        who = harness.participant(name=f"P{i}", phone=f"+141555509{i:02d}",
                                  email=f"p{i}@example.com")  # fmt: skip
        harness.enroll(who, "evening", MONDAY)
    assert sync_invitations(harness.runtime).sent == MAX_ATTEMPTS_PER_PASS
    assert sync_invitations(harness.runtime).sent == 2
    assert sync_invitations(harness.runtime).sent == 0
    assert len({m.to for m in harness.email.sent}) == MAX_ATTEMPTS_PER_PASS + 2


def test_unsubscribing_from_email_withdraws_the_invitation_once(
    harness: Harness, folders: Folders
) -> None:
    enrolled(harness, folders)
    harness.scheduler.maintain(force=True)
    [request] = harness.email.sent
    with transaction(harness.runtime.engine) as conn:
        (who,) = conn.execute(participants.select().with_only_columns(participants.c.id)).scalars()
        participant_rows.unsubscribe_email(conn, who, source="test", now=harness.clock.now())
    harness.scheduler.maintain(force=True)
    harness.scheduler.maintain(force=True)
    assert [method(m) for m in harness.email.sent] == ["REQUEST", "CANCEL"]
    assert uids(harness.email.sent[1]) == uids(request)  # the events and their alarms go


def test_a_changed_address_withdraws_the_events_from_the_old_one_first(
    harness: Harness, folders: Folders
) -> None:
    enrollment_id = enrolled(harness, folders)
    harness.scheduler.maintain(force=True)
    with transaction(harness.runtime.engine) as conn:
        conn.execute(update(participants).values(email="new@example.com"))
    harness.scheduler.maintain(force=True)
    sent = [(m.to, method(m)) for m in harness.email.sent]
    assert sent == [
        ("rae@example.com", "REQUEST"),
        ("rae@example.com", "CANCEL"),
        ("new@example.com", "REQUEST"),
    ]
    with transaction(harness.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(
            conn, enrollment_id, "cancelled", now=harness.clock.now()
        )
    harness.scheduler.maintain(force=True)
    assert [(m.to, method(m)) for m in harness.email.sent][-1] == ("new@example.com", "CANCEL")
    assert len(harness.email.sent) == 4


def test_pausing_withdraws_the_events_and_resuming_invites_again(
    harness: Harness, folders: Folders
) -> None:
    enrollment_id = enrolled(harness, folders)
    harness.scheduler.maintain(force=True)
    now = harness.clock.now()
    with transaction(harness.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, enrollment_id, "paused", now=now)
    harness.scheduler.maintain(force=True)
    with transaction(harness.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, enrollment_id, "active", now=now)
    harness.scheduler.maintain(force=True)
    assert [method(m) for m in harness.email.sent] == ["REQUEST", "CANCEL", "REQUEST"]
    assert [sequences(m) for m in harness.email.sent] == [{0}, {1}, {2}]
    assert uids(harness.email.sent[0]) == uids(harness.email.sent[2])
