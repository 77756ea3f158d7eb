"""Check-in windows and nudges, driven through the harness on a manual clock.

A nudge is one follow-up SMS `after` the reminder when no check-in came by then; a
check-in cancels it. When a window closes with no check-in the scheduler's maintenance
marks the occurrence missed, or excused when nothing was asked or no reminder reached
the participant. Every test runs on SQLite and on PostgreSQL (`db_url`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service import report
from service.actions.inbound_sms import handle_sms
from service.core.tokens import check_in_token
from service.engine import windows
from service.engine.delivery import Outcome, deliver
from service.storage import deliveries as delivery_rows
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.checkins import CHECKED_IN_NOTE, WINDOW_CLOSED_NOTE
from service.storage.db import transaction
from service.storage.tables import occurrences, replies
from service.web.app import create_app
from tests.support.engine import Folders, Harness, publish

PHONE = "+14155550123"
NUDGE = 'nudge: {after: 90m, message: "Still time for your walk, {{ participant.first_name }}?"}'


def evening(*extra: str, check_in: str = "done", channels: str = "[sms]") -> str:
    lines = "".join(f"        {line}\n" for line in extra)
    return f"""
    plan: evening
    title: Evening
    weeks: 1
    practices:
      - id: walk
        category: movement
        title: Walk
        at: "18:00"
        channels: {channels}
        check_in: {check_in}
{lines}"""


# 18:00 EST on Monday 2026-03-02 is 23:00 UTC. The nudge is due 90 minutes later; the
# default 12-hour window closes at 11:00 UTC on the 3rd (the next walk is at 23:00).
WALK = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
NUDGE_AT = WALK + timedelta(minutes=90)
WINDOW_END = WALK + timedelta(hours=12)
WALK_2 = WALK + timedelta(days=1)
KEY = "walk:2026-03-02"


def setup(h: Harness, folders: Folders, text: str) -> tuple[str, str]:
    """Write the plan, enroll Rae from Monday; (participant, enrollment)."""
    folders.write_plan("evening", text)
    publish(h.runtime)
    person = h.participant()
    return person, h.enroll(person, "evening", date(2026, 3, 2))


def occurrence(h: Harness, key: str = KEY) -> dict[str, Any]:
    with transaction(h.runtime.engine) as conn:
        return dict(
            conn.execute(select(occurrences).where(occurrences.c.key == key)).mappings().one()
        )


def deliveries_of(h: Harness, key: str = KEY) -> dict[str, dict[str, Any]]:
    """The occurrence's deliveries by kind (each test has one SMS practice)."""
    return {d["kind"]: d for d in h.deliveries() if d["key"] == key}


def bodies(h: Harness) -> list[str]:
    return [m.body for m in h.sms.sent]


def close_at(h: Harness, moment: datetime) -> None:
    """The scheduler's maintenance at `moment`, as its loop runs it."""
    h.clock.set(moment)
    h.scheduler.maintain(force=True)


# --- nudges ----------------------------------------------------------------------------


def test_no_check_in_by_then_sends_exactly_one_nudge_at_instant_plus_90m(
    harness: Harness, folders: Folders
) -> None:
    setup(harness, folders, evening(NUDGE))
    harness.at(WALK)
    assert bodies(harness) == ["Move: Walk."]
    harness.at(NUDGE_AT - timedelta(seconds=1))
    assert bodies(harness) == ["Move: Walk."]

    harness.at(NUDGE_AT)
    assert bodies(harness) == ["Move: Walk.", "Still time for your walk, Rae?"]
    assert harness.sms.sent[1].to == PHONE
    for later in (NUDGE_AT + timedelta(minutes=10), NUDGE_AT + timedelta(hours=3), WINDOW_END):
        harness.at(later)
    assert len(harness.sms.sent) == 2  # one nudge, never repeated

    rows = deliveries_of(harness)
    assert set(rows) == {"reminder", "nudge"}
    nudge = rows["nudge"]
    assert (nudge["channel"], nudge["state"], nudge["due_at"], nudge["sent_at"]) == (
        "sms",
        "sent",
        NUDGE_AT,
        NUDGE_AT,
    )
    assert harness.sms.sent[1].delivery_id == nudge["id"]
    # Every occurrence of the week has its nudge waiting, 90 minutes after its reminder.
    waiting = [d for d in harness.deliveries() if d["kind"] == "nudge" and d["key"] != KEY]
    assert len(waiting) == 6
    assert all(d["state"] == "pending" for d in waiting)
    # Sunday the 8th is daylight time: 18:00 EDT is 22:00 UTC, its nudge 23:30 UTC.
    expected = [NUDGE_AT + timedelta(days=n) for n in range(1, 6)]
    assert [d["due_at"] for d in waiting] == [*expected, datetime(2026, 3, 8, 23, 30, tzinfo=UTC)]


@pytest.mark.parametrize("reply", ["DONE", "skip"])
def test_a_check_in_by_sms_before_the_nudge_cancels_it(
    harness: Harness, folders: Folders, reply: str
) -> None:
    setup(harness, folders, evening(NUDGE))
    harness.at(WALK)
    harness.clock.set(WALK + timedelta(minutes=30))
    answer = handle_sms(harness.runtime, sid="SM-walk-1", sender=PHONE, body=reply)
    assert answer is not None
    assert answer.startswith("Logged: Walk." if reply == "DONE" else "Noted: Walk skipped.")
    nudge = deliveries_of(harness)["nudge"]
    assert (nudge["state"], nudge["last_error"]) == ("cancelled", CHECKED_IN_NOTE)
    harness.at(NUDGE_AT)
    harness.at(NUDGE_AT + timedelta(minutes=5))
    assert bodies(harness) == ["Move: Walk."]
    assert deliveries_of(harness)["nudge"]["state"] == "cancelled"
    # Only this occurrence's nudge: tomorrow's still waits.
    assert deliveries_of(harness, "walk:2026-03-03")["nudge"]["state"] == "pending"


def test_a_check_in_by_link_before_the_nudge_cancels_it(harness: Harness, folders: Folders) -> None:
    setup(harness, folders, evening(NUDGE))
    harness.at(WALK)
    row = occurrence(harness)
    token = check_in_token(harness.runtime.secret, row["id"], WINDOW_END + timedelta(days=7))
    harness.clock.set(WALK + timedelta(minutes=89))
    with TestClient(create_app(harness.runtime)) as client:
        response = client.post(
            f"/check-in/{token}",
            content="outcome=done",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200
    assert deliveries_of(harness)["nudge"]["last_error"] == CHECKED_IN_NOTE
    harness.at(NUDGE_AT)
    assert bodies(harness) == ["Move: Walk."]


def test_a_nudge_already_claimed_when_the_check_in_lands_is_not_sent(
    harness: Harness, folders: Folders
) -> None:
    """The worker reads the check-in when it takes the nudge: one recorded after the
    claim (by a path that did not cancel the delivery) still stops it."""
    setup(harness, folders, evening(NUDGE))
    harness.at(WALK)
    harness.clock.set(NUDGE_AT)
    with transaction(harness.runtime.engine) as conn:
        (claimed,) = delivery_rows.claim_due(
            conn, now=NUDGE_AT, limit=10, lease=timedelta(minutes=2)
        )
        conn.execute(update(occurrences).where(occurrences.c.key == KEY).values(check_in="done"))
    result = deliver(harness.runtime, claimed)
    assert (result.outcome, result.detail) == (Outcome.CANCELLED, CHECKED_IN_NOTE)
    assert bodies(harness) == ["Move: Walk."]
    nudge = deliveries_of(harness)["nudge"]
    assert (nudge["id"], nudge["state"], nudge["last_error"]) == (
        claimed,
        "cancelled",
        CHECKED_IN_NOTE,
    )


def test_a_nudge_that_would_go_out_after_the_window_closed_is_cancelled(
    harness: Harness, folders: Folders
) -> None:
    # A 2-hour window and a nudge at 110 minutes: sent late within the 15-minute grace,
    # at 121 minutes, it would ask for a check-in that no longer counts.
    setup(
        harness,
        folders,
        evening('nudge: {after: 110m, message: "Walk?"}', "window: 2h"),
    )
    harness.at(WALK)
    harness.at(WALK + timedelta(minutes=121))
    assert bodies(harness) == ["Move: Walk."]
    nudge = deliveries_of(harness)["nudge"]
    assert (nudge["state"], nudge["last_error"]) == ("cancelled", WINDOW_CLOSED_NOTE)


@pytest.mark.parametrize("channels", ["[email]", "[calendar]"])
def test_a_practice_reminded_by_email_or_calendar_still_gets_its_nudge_by_sms(
    harness: Harness, folders: Folders, channels: str
) -> None:
    setup(harness, folders, evening(NUDGE, channels=channels))
    harness.at(WALK)
    assert deliveries_of(harness)["nudge"]["due_at"] == NUDGE_AT  # it is scheduled ...
    harness.at(NUDGE_AT)
    assert bodies(harness) == ["Still time for your walk, Rae?"]  # ... and should go out


def test_a_nudge_is_not_sent_while_sms_is_paused(harness: Harness, folders: Folders) -> None:
    person, _ = setup(harness, folders, evening(NUDGE))
    harness.at(WALK)
    with transaction(harness.runtime.engine) as conn:
        participant_rows.set_sms_pause(
            conn, person, WALK + timedelta(days=1), source="test", now=WALK
        )
    harness.at(NUDGE_AT)
    assert bodies(harness) == ["Move: Walk."]
    nudge = deliveries_of(harness)["nudge"]
    assert (nudge["state"], nudge["last_error"]) == (
        "cancelled",
        "participant paused SMS reminders",
    )


# --- closing windows -------------------------------------------------------------------


def test_the_window_closing_marks_the_occurrence_missed(harness: Harness, folders: Folders) -> None:
    setup(harness, folders, evening())
    harness.at(WALK)
    assert bodies(harness) == ["Move: Walk."]
    close_at(harness, WINDOW_END - timedelta(seconds=1))
    assert occurrence(harness)["check_in"] is None  # still open
    close_at(harness, WINDOW_END)
    row = occurrence(harness)
    assert (row["check_in"], row["check_in_source"]) == ("missed", "window")
    # Only the closed one: tomorrow's is untouched.
    assert occurrence(harness, "walk:2026-03-03")["check_in"] is None
    # Closing again finds nothing more.
    assert windows.close_windows(harness.runtime) == {"missed": 0, "excused": 0}


def test_close_windows_counts_what_it_closed(harness: Harness, folders: Folders) -> None:
    setup(harness, folders, evening())
    harness.at(WALK)
    harness.at(WALK_2)  # the second reminder goes out too
    harness.clock.set(WALK_2 + timedelta(hours=12))
    # Both windows have closed: two reminders sent, neither answered.
    assert windows.close_windows(harness.runtime) == {"missed": 2, "excused": 0}
    assert windows.close_windows(harness.runtime) == {"missed": 0, "excused": 0}


def test_a_check_in_stands_when_the_window_closes(harness: Harness, folders: Folders) -> None:
    setup(harness, folders, evening())
    harness.at(WALK)
    harness.clock.set(WALK + timedelta(hours=2))
    handle_sms(harness.runtime, sid="SM-1", sender=PHONE, body="done")
    close_at(harness, WINDOW_END)
    row = occurrence(harness)
    assert (row["check_in"], row["check_in_source"]) == ("done", "sms")


def _pause_enrollment(h: Harness, person: str, enrollment: str) -> None:
    with transaction(h.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, enrollment, "paused", now=h.clock.now())


def _resume_enrollment(h: Harness, person: str, enrollment: str) -> None:
    with transaction(h.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, enrollment, "active", now=h.clock.now())


def _opt_out(h: Harness, person: str, enrollment: str) -> None:
    with transaction(h.runtime.engine) as conn:
        participant_rows.opt_out_sms(conn, person, source="test", now=h.clock.now())


def _pause_sms(h: Harness, person: str, enrollment: str) -> None:
    with transaction(h.runtime.engine) as conn:
        until = WALK + timedelta(hours=2)  # over by the time the window closes
        participant_rows.set_sms_pause(conn, person, until, source="test", now=h.clock.now())


@pytest.mark.parametrize(
    ("stop", "back"),
    [
        (_pause_enrollment, None),
        (_pause_enrollment, _resume_enrollment),  # back an hour later, window still open
        (_opt_out, None),
        (_pause_sms, None),
    ],
    ids=["enrollment-paused", "enrollment-paused-then-resumed", "sms-opted-out", "sms-paused"],
)
def test_a_participant_stopped_during_the_reminder_is_excused_not_missed(
    harness: Harness, folders: Folders, stop: Any, back: Any
) -> None:
    person, enrollment = setup(harness, folders, evening())
    harness.clock.set(WALK - timedelta(hours=1))
    stop(harness, person, enrollment)
    harness.at(WALK)
    assert harness.sms.sent == []  # the reminder did not reach them
    assert deliveries_of(harness)["reminder"]["state"] == "cancelled"
    if back is not None:
        harness.clock.set(WALK + timedelta(hours=1))
        back(harness, person, enrollment)
        harness.at(WALK + timedelta(hours=1, minutes=1))
        assert harness.sms.sent == []  # a reminder past its time does not come back
    close_at(harness, WINDOW_END)
    row = occurrence(harness)
    assert (row["check_in"], row["check_in_source"]) == ("excused", "window")
    # And the report leaves it out altogether.
    (entry,) = report.build(harness.runtime).entries
    (walk,) = entry.practices
    a = walk.adherence
    assert (a.scheduled, a.missed, a.completion_rate) == (0, 0, None)


def test_a_reminder_that_reached_them_by_email_counts_despite_an_sms_opt_out(
    harness: Harness, folders: Folders
) -> None:
    person, _ = setup(harness, folders, evening(channels="[sms, email]"))
    _opt_out(harness, person, "")
    harness.at(WALK)
    assert (len(harness.sms.sent), len(harness.email.sent)) == (0, 1)
    close_at(harness, WINDOW_END)
    assert occurrence(harness)["check_in"] == "missed"


def test_a_practice_that_asks_no_check_in_is_excused(harness: Harness, folders: Folders) -> None:
    setup(harness, folders, evening(check_in="none"))
    harness.at(WALK)
    assert bodies(harness) == ["Move: Walk."]
    close_at(harness, WINDOW_END)
    assert occurrence(harness)["check_in"] == "excused"
    # Nor does a reply count for it.
    harness.at(WALK_2)
    harness.clock.set(WALK_2 + timedelta(minutes=5))
    answer = handle_sms(harness.runtime, sid="SM-none", sender=PHONE, body="done")
    assert answer is not None
    assert "wasn't logged" in answer
    assert occurrence(harness, "walk:2026-03-03")["check_in"] is None
    (entry,) = report.build(harness.runtime).entries
    assert entry.practices == ()  # nothing to adhere to


def test_a_calendar_only_practice_with_no_reply_is_missed(
    harness: Harness, folders: Folders
) -> None:
    setup(harness, folders, evening(channels="[calendar]"))
    harness.at(WALK)
    assert harness.sms.sent == []
    assert [d for d in harness.deliveries() if d["key"] == KEY] == []  # the feed reaches them
    close_at(harness, WINDOW_END - timedelta(seconds=1))
    assert occurrence(harness)["check_in"] is None
    close_at(harness, WINDOW_END)
    assert occurrence(harness)["check_in"] == "missed"


def test_a_late_reply_is_not_counted(harness: Harness, folders: Folders) -> None:
    setup(harness, folders, evening())
    harness.at(WALK)
    # The window closed a minute ago and the scheduler has not got to it yet.
    harness.clock.set(WINDOW_END + timedelta(minutes=1))
    answer = handle_sms(harness.runtime, sid="SM-late", sender=PHONE, body="DONE")
    assert answer is not None
    assert "wasn't logged" in answer
    assert occurrence(harness)["check_in"] is None
    with transaction(harness.runtime.engine) as conn:
        (reply,) = conn.execute(select(replies)).mappings()
    assert (reply["understood"], reply["occurrence_id"]) == ("no_window", None)
    # The report already reads it as missed, and the scheduler marks it so.
    (entry,) = report.build(harness.runtime).entries
    assert (entry.practices[0].adherence.done, entry.practices[0].adherence.missed) == (0, 1)
    close_at(harness, WINDOW_END + timedelta(minutes=2))
    assert occurrence(harness)["check_in"] == "missed"
    # A reply after that changes nothing either.
    handle_sms(harness.runtime, sid="SM-later", sender=PHONE, body="DONE")
    assert occurrence(harness)["check_in"] == "missed"


# --- plan edits ------------------------------------------------------------------------


def test_a_plan_edit_adding_a_nudge_gives_future_occurrences_one(
    harness: Harness, folders: Folders
) -> None:
    setup(harness, folders, evening())
    harness.at(WALK)  # Monday's reminder goes out before the edit
    assert [d["kind"] for d in harness.deliveries()] == ["reminder"] * 7

    folders.write_plan("evening", evening(NUDGE))
    harness.clock.set(WALK + timedelta(minutes=5))
    publish(harness.runtime)  # publishing moves the enrollment forward at once

    nudges = {d["key"]: d for d in harness.deliveries() if d["kind"] == "nudge"}
    # Monday's occurrence went out under the old plan: it is history and gets none.
    assert KEY not in nudges
    assert sorted(nudges) == [f"walk:2026-03-0{n}" for n in range(3, 9)]
    assert all(d["state"] == "pending" for d in nudges.values())
    assert nudges["walk:2026-03-03"]["due_at"] == WALK_2 + timedelta(minutes=90)

    harness.at(NUDGE_AT)
    assert bodies(harness) == ["Move: Walk."]
    harness.at(WALK_2)
    harness.at(WALK_2 + timedelta(minutes=90))
    assert bodies(harness) == ["Move: Walk.", "Move: Walk.", "Still time for your walk, Rae?"]


def test_a_plan_edit_removing_the_nudge_cancels_the_waiting_ones(
    harness: Harness, folders: Folders
) -> None:
    setup(harness, folders, evening(NUDGE))
    harness.at(WALK)
    folders.write_plan("evening", evening())
    harness.clock.set(WALK + timedelta(minutes=5))
    publish(harness.runtime)  # publishing moves the enrollment forward at once
    # Monday's is history (its reminder went out) and keeps its nudge; the rest go.
    assert deliveries_of(harness)["nudge"]["state"] == "pending"
    later = [d for d in harness.deliveries() if d["kind"] == "nudge" and d["key"] != KEY]
    assert len(later) == 6
    assert {(d["state"], d["last_error"]) for d in later} == {
        ("cancelled", "channel removed from the plan")
    }
    harness.at(WALK_2 + timedelta(minutes=90))
    assert "Still time for your walk, Rae?" not in bodies(harness)[1:]
