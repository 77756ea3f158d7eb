"""Issue 18's done-when, through the real webhook on a manual clock: LATER, a
participant's own times, quiet hours, Spanish and discreet texts.

Reminders are really sent (the scheduler and an in-process worker), replies are signed
as Twilio signs them and posted to the app; what was sent is read from the recording
SMS channel and what was stored from the database.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from service.core.quiet import QUIET_NOTE
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.storage.tables import deliveries, occurrences, replies
from tests.integration.test_inbound_sms import RAE, START_DAY, Tend, make_tend, ny, tend
from tests.support.engine import publish

__all__ = ["make_tend", "tend"]  # the fixtures, used by name

NY = ZoneInfo("America/New_York")


def enroll(tend: Tend, plan: str, **settings: Any) -> str:
    """Rae in `plan` (YAML) from START_DAY, with participant `settings` set first."""
    tend.folders.write_plan("own", plan)
    publish(tend.harness.runtime)
    person = tend.harness.participant()
    if settings:
        with transaction(tend.engine) as conn:
            participant_rows.update_participant(conn, person, **settings)
    tend.harness.enroll(person, "own", START_DAY)
    return person


def sent_to_rae(tend: Tend) -> list[str]:
    return [m.body for m in tend.harness.sms.sent if m.to == RAE]


def occurrence_rows(tend: Tend) -> list[dict[str, Any]]:
    with transaction(tend.engine) as conn:
        rows = conn.execute(select(occurrences).order_by(occurrences.c.instant)).mappings()
        return [dict(r) for r in rows]


def delivery_rows(tend: Tend) -> list[dict[str, Any]]:
    with transaction(tend.engine) as conn:
        rows = conn.execute(select(deliveries).order_by(deliveries.c.id)).mappings()
        return [dict(r) for r in rows]


BODY_SCAN = """
plan: own
title: Own say
days: 2
practices:
  - id: body-scan
    category: mindfulness
    title: Body scan
    at: "09:30"
    window: 3h
    message: "Body scan now, {{ participant.first_name }}. Reply DONE when you have."
"""


# --- LATER ------------------------------------------------------------------------------


def test_later_brings_the_same_reminder_back_once_and_a_fourth_is_refused(tend: Tend) -> None:
    enroll(tend, BODY_SCAN)
    tend.harness.at(ny(2, 9, 30))
    first = sent_to_rae(tend)
    assert first == ["Body scan now, Rae. Reply DONE when you have."]

    tend.harness.clock.set(ny(2, 9, 35))
    answer = tend.text("LATER 20")
    assert answer is not None
    assert "again at 9:55" in answer, answer
    tend.harness.at(ny(2, 9, 54))
    assert len(sent_to_rae(tend)) == 1  # not before its time
    tend.harness.at(ny(2, 9, 55))
    assert sent_to_rae(tend)[1:] == ["Again: Body scan now, Rae. Reply DONE when you have."]
    tend.harness.at(ny(2, 10, 30))
    assert len(sent_to_rae(tend)) == 2  # once

    tend.harness.clock.set(ny(2, 10, 31))
    assert "again at" in (tend.text("snooze 5") or "")
    assert "again at" in (tend.text("later 10") or "")
    fourth = tend.text("LATER")
    assert fourth is not None
    assert "all three" in fourth, fourth
    repeats = [d for d in delivery_rows(tend) if d["kind"].startswith("repeat")]
    assert sorted(d["kind"] for d in repeats) == ["repeat1", "repeat2", "repeat3"]

    # Neither done nor skipped till they say; then DONE counts once, and the repeats
    # still waiting are not sent.
    assert occurrence_rows(tend)[0]["check_in"] is None
    tend.harness.clock.set(ny(2, 10, 33))
    assert (tend.text("done") or "").startswith("Logged: Body scan")
    tend.harness.at(ny(2, 10, 45))
    assert len(sent_to_rae(tend)) == 2
    assert occurrence_rows(tend)[0]["check_in"] == "done"
    with transaction(tend.engine) as conn:
        understood = [r.understood for r in conn.execute(select(replies).order_by(replies.c.id))]
    assert understood == ["later", "later", "later", "later", "done"]


def test_later_never_goes_past_the_window(tend: Tend) -> None:
    enroll(tend, BODY_SCAN)
    tend.harness.at(ny(2, 9, 30))
    tend.harness.clock.set(ny(2, 12, 10))  # the window closes at 12:30
    answer = tend.text("later 30")
    assert answer is not None
    assert "12:30" in answer, answer
    assert not [d for d in delivery_rows(tend) if d["kind"].startswith("repeat")]


# --- their own times ----------------------------------------------------------------------

WAKE = """
plan: own
title: Own say
days: 3
variables:
  wake: "07:00"
practices:
  - id: rise
    category: sleep
    title: Up and out
    at: wake
    message: "Up at your steady time. Reply DONE when you're up."
  - id: noon
    category: movement
    title: Noon walk
    at: "12:00"
    message: "Walk now."
"""


def test_wake_moves_tomorrows_reminder_not_todays_sent_one(tend: Tend) -> None:
    person = enroll(tend, WAKE)
    tend.harness.at(ny(2, 7))
    assert sent_to_rae(tend) == ["Up at your steady time. Reply DONE when you're up."]
    tend.harness.clock.set(ny(2, 8))
    answer = tend.text("WAKE 6:30")
    assert answer is not None
    assert "WAKE is now 6:30" in answer, answer
    assert "Up and out" in answer  # the next reminder, named
    rises = [o for o in occurrence_rows(tend) if o["practice_id"] == "rise"]
    assert rises[0]["instant"] == ny(2, 7)  # sent: where it was
    assert [o["instant"] for o in rises[1:]] == [ny(3, 6, 30), ny(4, 6, 30)]
    noons = [o["instant"] for o in occurrence_rows(tend) if o["practice_id"] == "noon"]
    assert noons == [ny(2, 12), ny(3, 12), ny(4, 12)]  # not theirs to move
    assert tend.participant(person).variables == {"wake": "06:30"}
    times = tend.text("TIMES")
    assert times is not None
    assert "WAKE 6:30" in times, times
    tend.harness.at(ny(3, 6, 30))
    assert sent_to_rae(tend)[-1].startswith("Up at your steady time")


# --- quiet hours -------------------------------------------------------------------------

LATE = """
plan: own
title: Own say
days: 2
practices:
  - id: wind-down
    category: sleep
    title: Wind down
    at: "22:10"
    window: {window}
    message: "Time to wind down. Reply DONE when you have."
"""


def test_a_reminder_in_quiet_hours_goes_when_they_end_if_its_window_is_open(tend: Tend) -> None:
    enroll(tend, LATE.format(window="10h"))
    tend.harness.clock.set(ny(2, 21))
    assert (tend.text("QUIET 22:00-07:00") or "").startswith("Quiet hours set")
    tend.harness.at(ny(2, 22, 10))
    assert sent_to_rae(tend) == []
    held = [d for d in delivery_rows(tend) if d["held_from"] is not None]
    assert [(d["state"], d["held_from"], d["due_at"]) for d in held] == [
        ("pending", ny(2, 22, 10), ny(3, 7))
    ]
    tend.harness.at(ny(3, 6, 59))
    assert sent_to_rae(tend) == []
    tend.harness.at(ny(3, 7))
    assert sent_to_rae(tend) == ["Time to wind down. Reply DONE when you have."]


def test_a_reminder_whose_window_closes_in_quiet_hours_is_excused(tend: Tend) -> None:
    enroll(tend, LATE.format(window="1h"), quiet_hours="22:00-07:00")
    tend.harness.at(ny(2, 22, 10))
    tend.harness.at(ny(3, 7))
    assert sent_to_rae(tend) == []
    first = delivery_rows(tend)[0]
    assert first["state"] == "cancelled"
    assert first["last_error"].startswith(QUIET_NOTE)
    tend.harness.maintain()  # closes the windows
    assert occurrence_rows(tend)[0]["check_in"] == "excused"


# --- Spanish and discreet -----------------------------------------------------------------

SPANISH = """
plan: own
title: {en: Own say, es: Lo mío}
days: 1
practices:
  - id: body-scan
    category: mindfulness
    title: {en: Body scan, es: Escaneo corporal}
    at: "09:30"
    message:
      en: "Body scan now. Reply DONE when you have."
      es: "Es hora del escaneo corporal. Responde LISTO cuando termines."
"""


def test_a_spanish_participant_gets_spanish_and_listo_counts_as_done(tend: Tend) -> None:
    enroll(tend, SPANISH, language="es")
    tend.harness.at(ny(2, 9, 30))
    assert sent_to_rae(tend) == ["Es hora del escaneo corporal. Responde LISTO cuando termines."]
    tend.harness.clock.set(ny(2, 9, 40))
    answer = tend.text("listo")
    assert answer is not None
    assert "Escaneo corporal" in answer, answer
    assert "Logged" not in answer
    assert occurrence_rows(tend)[0]["check_in"] == "done"
    ayuda = tend.text("AYUDA")
    assert ayuda is not None
    assert "LISTO" in ayuda, ayuda


DISCREET = """
plan: own
title: Healing the younger self
days: 1
practices:
  - id: body-scan
    category: mindfulness
    title: Trauma body scan
    at: "21:30"
    message: "Trauma body scan now: notice where the old fear sits. Reply DONE."
    nudge: {after: 1h, message: "Did the trauma body scan happen? Reply DONE."}
"""


def test_a_discreet_participants_texts_never_name_the_practice(tend: Tend) -> None:
    enroll(tend, DISCREET, discreet=True)
    tend.harness.at(ny(2, 21, 30))
    tend.harness.clock.set(ny(2, 21, 40))
    later = tend.text("later 10")
    tend.harness.at(ny(2, 21, 50))
    tend.harness.at(ny(2, 22, 30))  # the nudge
    tend.harness.clock.set(ny(2, 22, 40))
    logged = tend.text("done")
    texts = [*sent_to_rae(tend), later or "", logged or ""]
    assert len(sent_to_rae(tend)) == 3, texts  # the reminder, the repeat, the nudge
    for text in texts:
        assert text
        for secret in ("Trauma", "body scan", "fear", "younger", "Healing"):
            assert secret.lower() not in text.lower(), text
    assert "evening practice" in sent_to_rae(tend)[0]


def test_quiet_hours_come_from_the_deployment_unless_turned_off(tend: Tend) -> None:
    tend.harness.runtime.settings = tend.harness.runtime.settings.model_copy(
        update={"quiet_hours": "22:00-07:00"}
    )
    enroll(tend, LATE.format(window="1h"))
    tend.harness.clock.set(ny(2, 21))
    assert (tend.text("QUIET OFF") or "").startswith("Quiet hours off")
    tend.harness.at(ny(2, 22, 10))
    assert sent_to_rae(tend) == ["Time to wind down. Reply DONE when you have."]


CALENDAR = """
plan: own
title: {en: Healing the younger self, es: Sanar al niño interior}
days: 2
practices:
  - id: body-scan
    category: mindfulness
    title: {en: Trauma body scan, es: Escaneo del trauma}
    at: "21:30"
    channels: [sms, calendar]
    message:
      en: "Trauma body scan now. Reply DONE."
      es: "Escaneo del trauma ahora. Responde LISTO."
    url: https://example.org/trauma-body-scan
"""


def feed_text(tend: Tend, person: str) -> str:
    from service.actions import participants as people

    url = people.feed(tend.harness.runtime, person).url
    response = tend.client.get("/" + url.split("/", 3)[3])
    assert response.status_code == 200
    return str(response.text)


def test_feeds_and_invitations_follow_discreet_and_language(tend: Tend) -> None:
    person = enroll(tend, CALENDAR, discreet=True)
    tend.harness.maintain()  # the calendar invitation goes by email
    feed = feed_text(tend, person)
    invitations = [m for m in tend.harness.email.sent if m.calendar]
    assert len(invitations) == 1
    invited = invitations[0]
    # What a calendar shows (a UID is an identifier apps never display; it stays as it
    # is so that turning discreet on or off updates events instead of duplicating them).
    shown = [
        _without_uids(feed),
        invited.subject or "",
        invited.body,
        _without_uids(invited.calendar.decode()),
    ]
    for text in shown:
        for secret in ("Trauma", "trauma", "younger", "body-scan", "mindfulness"):
            assert secret not in text, (secret, text[:400])
    assert "SUMMARY:Your evening practice" in feed or "SUMMARY:your evening practice" in feed
    assert invited.subject == "Calendar: Tend"

    # The same person, not discreet, in Spanish: the feed changes (a new ETag), in Spanish.
    with transaction(tend.engine) as conn:
        participant_rows.update_participant(conn, person, discreet=False, language="es")
    feed = feed_text(tend, person)
    assert "SUMMARY:Escaneo del trauma" in feed
    tend.harness.maintain()
    again = [m for m in tend.harness.email.sent if m.calendar][-1]
    assert again.subject == "Calendario: Sanar al niño interior"
    assert "Escaneo del trauma" in again.calendar.decode()


def _without_uids(ics: str) -> str:
    return "\n".join(line for line in ics.splitlines() if not line.startswith("UID:"))
