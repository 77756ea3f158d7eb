"""Getting people in with confirmed consent (contract section 5.3): the confirmation SMS
that every number gets first, the sign-up page of a cohort, JOIN by text, and the YES
that makes a person who signed up a participant (double opt-in).

Everything runs on the real app with signed Twilio webhooks, the scheduler and an
in-process worker on a manual clock, on SQLite and PostgreSQL (the fixtures of
tests/integration/test_inbound_sms.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from service.actions import cohorts, messages, signups
from service.actions import participants as people
from service.actions.errors import Conflict
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.storage.tables import participants
from service.storage.tables import signups as signup_table
from tests.integration.test_inbound_sms import (  # noqa: F401 (make_tend: a fixture)
    STRANGER,
    STRANGER_ANSWER,
    Tend,
    make_tend,
)

NY = ZoneInfo("America/New_York")
# The rules of timing and the page's words do not depend on the database: those tests
# run on SQLite only; the flows that write (joining, the confirmation, STOP) on both.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def site(make_tend: Callable[..., Tend]) -> Tend:  # noqa: F811 (the fixture, imported)
    return make_tend()


START_DAY = date(2026, 3, 2)
PLAN = """
plan: evening
title: Evening Calm
days: 14
variables: {bedtime: "22:30"}
practices:
  - id: wind-down
    category: sleep
    title: Wind down
    at: bedtime - 30m
    message: "Screens off, {{ participant.first_name }}."
  - id: walk
    category: movement
    title: Walk
    at: "09:30"
    message: "A short walk?"
    nudge: {after: 1h, message: "Still time for a walk."}
"""
ANA = "+14155550177"
REQUIRED = ("Msg & data rates may apply", "Reply HELP for help, STOP to opt out")


def ny(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=NY).astimezone(UTC)


def _plan(site: Tend) -> None:
    site.folders.write_plan("evening", PLAN)
    from tests.support.engine import publish

    publish(site.harness.runtime)


def _texts_to(site: Tend, phone: str) -> list[str]:
    return [m.body for m in site.harness.sms.sent if m.to == phone]


def _cohort(site: Tend, **options: object) -> cohorts.Cohort:
    _plan(site)
    return cohorts.create(
        site.harness.runtime, name="Sleep group", plan="evening", signup=True, **options
    )


# --- the confirmation every number gets first ----------------------------------------------


def test_the_first_text_is_the_confirmation_and_reminders_wait_for_it(site: Tend) -> None:
    h = site.harness
    _plan(site)
    h.clock.set(ny(2, 9, 20))  # ten minutes before the walk
    rae = people.create(h.runtime, name="Rae Example", timezone="America/New_York",
                        phone="+14155550123", source="api")  # fmt: skip
    h.enroll(rae.id, "evening", START_DAY)
    # The walk falls due before the scheduler's upkeep has sent the confirmation: it waits.
    h.at(ny(2, 9, 30))
    assert _texts_to(site, rae.phone or "") == []
    h.maintain()  # the upkeep makes the confirmation, and it goes
    [first] = _texts_to(site, rae.phone or "")
    assert first.startswith("Evening Calm: your reminders start now. Up to 3 msgs/day.")
    for words in REQUIRED:
        assert words in first
    h.at(ny(2, 9, 31))  # the walk's retry: after the confirmation, within its grace
    assert _texts_to(site, rae.phone or "") == [first, "A short walk?"]
    # Once: more upkeep passes send no second confirmation.
    h.maintain()
    h.at(ny(2, 22, 0))
    texts = _texts_to(site, rae.phone or "")
    assert texts.count(first) == 1
    assert texts[-1] == "Screens off, Rae."
    actions = [e["action"] for e in site.consent(rae.id)]
    assert actions == ["consent", "welcome"]
    assert site.consent(rae.id)[0]["source"] == "api"


@SQLITE_ONLY
def test_a_reminder_whose_grace_runs_out_waiting_is_expired_not_sent_late(site: Tend) -> None:
    h = site.harness
    _plan(site)
    h.clock.set(ny(2, 9, 0))
    rae = people.create(h.runtime, name="Rae Example", timezone="America/New_York",
                        phone="+14155550123")  # fmt: skip
    h.enroll(rae.id, "evening", START_DAY)
    for minute in range(30, 47):  # no upkeep runs: the confirmation never goes
        h.at(ny(2, 9, minute))
    assert _texts_to(site, rae.phone or "") == []
    walk = next(d for d in h.deliveries() if d["key"].startswith("walk:2026-03-02"))
    assert walk["state"] == "expired"
    assert "confirmation SMS had not gone" in walk["last_error"]


@SQLITE_ONLY
def test_a_confirmation_due_at_night_waits_for_the_morning(site: Tend) -> None:
    h = site.harness
    _plan(site)
    h.clock.set(ny(2, 23, 40))  # a coach enrolls her late in the evening, her time
    rae = people.create(h.runtime, name="Rae Example", timezone="America/New_York",
                        phone="+14155550123")  # fmt: skip
    h.enroll(rae.id, "evening", START_DAY)
    h.maintain()
    h.clock.set(ny(3, 7, 59))
    h.maintain()
    assert _texts_to(site, rae.phone or "") == []
    h.clock.set(ny(3, 8, 0))
    h.maintain()
    [first] = _texts_to(site, rae.phone or "")
    assert first.startswith("Evening Calm: your reminders start now.")


@SQLITE_ONLY
def test_at_night_the_confirmation_comes_just_before_a_first_text_the_plan_sends_then(
    site: Tend,
) -> None:
    h = site.harness
    _plan(site)
    h.clock.set(ny(2, 21, 30))  # enrolled at half past nine; her wind-down is at 22:00
    rae = people.create(h.runtime, name="Rae Example", timezone="America/New_York",
                        phone="+14155550123")  # fmt: skip
    h.enroll(rae.id, "evening", START_DAY)
    h.maintain()
    assert _texts_to(site, rae.phone or "") == []  # not now: it is night there
    h.clock.set(ny(2, 21, 58))
    h.maintain()
    h.at(ny(2, 22, 0))
    texts = _texts_to(site, rae.phone or "")
    assert len(texts) == 2
    assert texts[0].startswith("Evening Calm: your reminders start now.")
    assert texts[1] == "Screens off, Rae."


def test_an_opted_out_number_gets_no_confirmation_and_a_new_number_gets_its_own(
    site: Tend,
) -> None:
    h = site.harness
    _plan(site)
    h.clock.set(ny(2, 8, 0))
    rae = people.create(h.runtime, name="Rae Example", timezone="America/New_York",
                        phone="+14155550123")  # fmt: skip
    h.enroll(rae.id, "evening", START_DAY)
    site.text("STOP")  # before anything was sent
    h.maintain()
    assert _texts_to(site, "+14155550123") == []
    # A coach's test message would be the first text to Sam: refused, saying why.
    sam = people.create(h.runtime, name="Sam Other", timezone="America/New_York",
                        phone="+14155550188")  # fmt: skip
    h.enroll(sam.id, "evening", START_DAY)
    with pytest.raises(Conflict, match="has not had the confirmation SMS yet"):
        messages.send_test(h.runtime, sam.id, "sms")
    h.maintain()
    assert len(_texts_to(site, "+14155550188")) == 1
    # A new number is a new confirmation, before anything else reaches it.
    people.update(h.runtime, sam.id, {"phone": "+14155550199"})
    assert site.participant(sam.id).welcomed_at is None
    h.maintain()
    [again] = _texts_to(site, "+14155550199")
    assert again.startswith("Evening Calm: your reminders start now.")


# --- the sign-up page -----------------------------------------------------------------------


def _form(**given: str) -> dict[str, str]:
    form = {"name": "Ana Lucía Pérez", "phone": "(415) 555-0177", "email": "",
            "timezone": "America/New_York", "var_bedtime": "23:00", "language": "es"}  # fmt: skip
    form.update(given)
    return form


def _page(site: Tend, token: str | None) -> str:
    answer = site.client.get(f"/join/{token}")
    assert answer.status_code == 200, answer.text
    return answer.text


def test_a_person_signs_up_answers_yes_and_gets_the_first_reminder_on_time(site: Tend) -> None:
    h = site.harness
    h.clock.set(ny(2, 9, 0))
    group = _cohort(site)
    page = _page(site, group.signup_token)
    assert "Evening Calm" in page
    assert "What time do you usually go to bed?" in page
    assert 'value="22:30"' in page  # the plan's own time, to change
    assert "Up to 3 msgs/day" in page
    # A mistake is shown, and what was typed stays.
    bad = site.client.post(f"/join/{group.signup_token}", data=_form(phone="555"))
    assert bad.status_code == 400
    assert "not a valid phone number" in bad.text
    assert "Ana Lucía Pérez" in bad.text  # what she typed stays
    done = site.client.post(f"/join/{group.signup_token}", data=_form())
    assert done.status_code == 200
    assert signups.SENT in done.text
    h.maintain()  # the text asking YES goes
    [ask] = _texts_to(site, ANA)
    # She chose Spanish on the page: the question is in Spanish, with YES, HELP, STOP.
    assert ask.startswith("Evening Calm: responde SÍ (YES) para confirmar tus recordatorios.")
    for words in ("YES", "HELP", "STOP", "Pueden aplicarse tarifas de mensajes y datos"):
        assert words in ask
    with transaction(site.engine) as conn:
        assert conn.execute(select(func.count()).select_from(participants)).scalar_one() == 0
    # Nothing but the question before YES, however long the upkeep runs.
    h.clock.set(ny(2, 22, 0))
    h.maintain()
    h.tick()
    assert _texts_to(site, ANA) == [ask]
    # YES (in lower case, with a flourish) makes her a participant, enrolled today.
    h.clock.set(ny(2, 22, 5))
    answer = site.text("yes!", sender=ANA)
    assert answer is not None
    assert answer.startswith("¡Ya estás dentro, Ana! Hoy empieza Evening Calm.")
    # Her own bedtime (23:00) less half an hour, tonight in New York, in Spanish.
    assert "Primer aviso: lun, 2 de marzo, 22:30." in answer
    with transaction(site.engine) as conn:
        person = participant_rows.find_participant_by_phone(conn, ANA)
    assert person is not None
    assert (person.name, person.cohort_id, person.language) == ("Ana Lucía Pérez", group.id, "es")
    assert person.variables == {"bedtime": "23:00"}
    assert [(e["action"], e["source"]) for e in site.consent(person.id)] == [
        ("consent", "signup:page"),
        ("confirm", "sms:YES"),
    ]
    # Her reminders come at her own times, with no second confirmation (the question
    # was it).
    h.maintain()
    h.at(ny(2, 22, 30))
    assert _texts_to(site, ANA) == [ask, "Screens off, Ana."]
    h.at(ny(3, 9, 30))
    assert _texts_to(site, ANA)[-1] == "A short walk?"
    with transaction(site.engine) as conn:
        assert conn.execute(select(func.count()).select_from(signup_table)).scalar_one() == 0


def test_one_who_never_answers_is_never_texted_again_and_forgotten(site: Tend) -> None:
    h = site.harness
    h.clock.set(ny(2, 9, 0))
    group = _cohort(site)
    site.client.post(f"/join/{group.signup_token}", data=_form())
    h.maintain()
    assert len(_texts_to(site, ANA)) == 1
    # Signing up again meanwhile texts nothing more, and says the same.
    again = site.client.post(f"/join/{group.signup_token}", data=_form())
    assert signups.SENT in again.text
    h.clock.set(ny(4, 9, 1))  # 48 hours and a minute on
    h.maintain()
    with transaction(site.engine) as conn:
        assert conn.execute(select(func.count()).select_from(signup_table)).scalar_one() == 0
    assert len(_texts_to(site, ANA)) == 1
    # A late YES is a stranger's text now: nothing joins, nothing is kept of her.
    assert site.text("YES", sender=ANA) == STRANGER_ANSWER
    with transaction(site.engine) as conn:
        assert participant_rows.find_participant_by_phone(conn, ANA) is None


@SQLITE_ONLY
def test_the_page_says_the_same_whatever_tend_knows_of_the_number(site: Tend) -> None:
    h = site.harness
    h.clock.set(ny(2, 9, 0))
    group = _cohort(site)
    known = people.create(h.runtime, name="Rae Example", timezone="America/New_York",
                          phone="+14155550123")  # fmt: skip
    h.enroll(known.id, "evening", START_DAY)
    h.maintain()
    before = list(h.sms.sent)
    pages = []
    for phone in ("+14155550123", "+14155550177", "+14155550177"):
        answer = site.client.post(f"/join/{group.signup_token}", data=_form(phone=phone))
        assert answer.status_code == 200
        pages.append(re.sub(r'nonce-[^"\']+|nonce="[^"]+"', "", answer.text))
    assert pages[0] == pages[1] == pages[2]
    h.maintain()
    # Only the new number was asked, once; the participant's number got nothing new.
    assert [m.to for m in h.sms.sent[len(before) :]] == [ANA]


def test_stop_before_yes_forgets_the_sign_up_and_the_number_stays_out(site: Tend) -> None:
    h = site.harness
    h.clock.set(ny(2, 9, 0))
    group = _cohort(site)
    site.client.post(f"/join/{group.signup_token}", data=_form())
    h.maintain()
    assert site.text("STOP", sender=ANA) is None
    with transaction(site.engine) as conn:
        assert conn.execute(select(func.count()).select_from(signup_table)).scalar_one() == 0
    site.client.post(f"/join/{group.signup_token}", data=_form())
    h.maintain()
    assert len(_texts_to(site, ANA)) == 1  # the first question only
    # Added later by a coach, the number starts opted out.
    ana = people.create(h.runtime, name="Ana", timezone="America/New_York", phone=ANA)
    assert ana.sms_state == "opted_out"


@SQLITE_ONLY
def test_sign_ups_are_limited_per_address_and_unknown_pages_are_404(site: Tend) -> None:
    h = site.harness
    h.clock.set(ny(2, 9, 0))
    group = _cohort(site)
    for i in range(signups.MAX_PER_ADDRESS):
        answer = site.client.post(f"/join/{group.signup_token}",
                                  data=_form(phone=f"+1415555{1000 + i}"))  # fmt: skip
        assert answer.status_code == 200
    refused = site.client.post(f"/join/{group.signup_token}", data=_form(phone="+14155552000"))
    assert refused.status_code == 429
    assert "Too many sign-ups from here" in refused.text
    h.clock.set(ny(2, 10, 1))
    ok = site.client.post(f"/join/{group.signup_token}", data=_form(phone="+14155552000"))
    assert ok.status_code == 200
    assert site.client.get("/join/not-a-token").status_code == 404
    closed = cohorts.change(h.runtime, group.id, signup=False)
    assert closed.signup_token is None
    assert site.client.get(f"/join/{group.signup_token}").status_code == 404
    other_site = site.client.post(f"/join/{group.signup_token}", data=_form(),
                                  headers={"Origin": "https://evil.example"})  # fmt: skip
    assert other_site.status_code in (403, 404)


# --- JOIN by text ---------------------------------------------------------------------------


def test_join_by_text_asks_yes_and_yes_enrolls(site: Tend) -> None:
    h = site.harness
    h.clock.set(ny(2, 9, 0))
    group = _cohort(site, keyword="calm")
    assert group.keyword == "CALM"
    assert site.text("join calm", sender=STRANGER) is None  # the question comes by itself
    h.maintain()
    [ask] = _texts_to(site, STRANGER)
    assert ask.startswith("Evening Calm: reply YES")
    answer = site.text("Yes", sender=STRANGER)
    assert answer is not None
    assert answer.startswith("You're in, Texter!")
    with transaction(site.engine) as conn:
        person = participant_rows.find_participant_by_phone(conn, STRANGER)
    assert person is not None
    assert person.cohort_id == group.id
    assert [(e["action"], e["source"]) for e in site.consent(person.id)] == [
        ("consent", "sms:JOIN CALM"),
        ("confirm", "sms:YES"),
    ]
    # JOIN again from a participant's number changes nothing, and says so.
    again = site.text("JOIN CALM", sender=STRANGER)
    assert again is not None
    assert "already get Tend reminders" in again
    # An unknown keyword is a stranger's text.
    assert site.text("JOIN NOPE", sender="+15550002222") == STRANGER_ANSWER


@SQLITE_ONLY
def test_a_yes_counts_only_for_the_number_that_signed_up(site: Tend) -> None:
    h = site.harness
    h.clock.set(ny(2, 9, 0))
    group = _cohort(site)
    site.client.post(f"/join/{group.signup_token}", data=_form())
    h.maintain()
    assert site.text("YES", sender=STRANGER) == STRANGER_ANSWER
    with transaction(site.engine) as conn:
        assert participant_rows.find_participant_by_phone(conn, STRANGER) is None
        assert conn.execute(select(func.count()).select_from(signup_table)).scalar_one() == 1
    assert timedelta(hours=48) == signups.LIFETIME
