"""Weekly messages: a participant's summary when the plan asks for one, and the coach's
digest naming who has slipped. Each goes once, on time or not at all, and honours
opt-outs like a reminder."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from service.actions import coaches as accounts
from service.clock import ManualClock
from service.engine import summaries as weekly
from service.storage import checkins
from service.storage import participants as participant_rows
from service.storage import summaries as store
from service.storage.db import transaction
from service.storage.tables import occurrences
from tests.support.engine import (
    Folders,
    Harness,
    RecordingChannel,
    build_runtime,
    settings_for,
)

PLAN = """
    plan: evenings
    title: Evenings
    weeks: 4
    weekly_summary:
      day: sun
      at: "18:00"
      channels: [sms, email]
    practices:
      - id: screens-off
        category: sleep
        title: Screens off
        at: "21:00"
        channels: [sms]
"""
MONDAY = date(2026, 3, 2)  # New York changes to daylight time on Sunday 8 March
# Sunday 8 March, 18:00 EDT (UTC-4): the first summary's moment.
SUMMARY_AT = datetime(2026, 3, 8, 22, 0, tzinfo=UTC)


def evening(day: int) -> datetime:
    """21:30 New York time on day `day` of the plan (0 = Monday 2 March), in the window."""
    local = datetime(2026, 3, 2 + day, 21, 30)
    offset = 5 if local.date() < date(2026, 3, 8) else 4
    return (local + timedelta(hours=offset)).replace(tzinfo=UTC)


def check_in_days(h: Harness, participant: str, days: list[int], result: str = "done") -> None:
    """Send each evening's reminder, and check in on the given days."""
    from sqlalchemy import select

    for day in range(7):
        h.at(evening(day) - timedelta(minutes=30))
        if day in days:
            moment = evening(day)
            h.clock.set(moment)
            with transaction(h.runtime.engine) as conn:
                (target,) = checkins.open_check_ins(
                    conn, participant_rows.get_participant(conn, participant), now=moment
                )
                assert checkins.record_check_in(
                    conn, target.occurrence_id, result, now=moment, source="sms"
                )
    with transaction(h.runtime.engine) as conn:
        assert conn.execute(select(occurrences.c.id)).first() is not None


def rows(h: Harness, kind: str | None = None) -> list[dict[str, object]]:
    with transaction(h.runtime.engine) as conn:
        return store.list_summaries(conn, kind=kind)


@pytest.fixture
def evenings(folders: Folders) -> Folders:
    folders.write_plan("evenings", PLAN)
    return folders


# --- the participant's summary ----------------------------------------------------------


def test_summary_goes_once_at_its_local_time_by_each_channel(
    evenings: Folders, harness: Harness
) -> None:
    rae = harness.participant()
    harness.enroll(rae, "evenings", MONDAY)
    check_in_days(harness, rae, [0, 1, 2, 4, 5])
    before = len(harness.sms.sent)

    harness.clock.set(SUMMARY_AT - timedelta(minutes=1))
    harness.maintain()
    assert rows(harness) == []

    harness.clock.set(SUMMARY_AT)
    harness.maintain()
    harness.clock.set(SUMMARY_AT + timedelta(minutes=5))
    harness.maintain()  # a second pass makes and sends nothing more

    texts = [m.body for m in harness.sms.sent[before:] if m.delivery_id is None]
    assert len(texts) == 1
    # Sunday's reminder (21:00) is still ahead at 18:00: 6 due, 5 done.
    assert "5 of 6" in texts[0], texts[0]
    (email,) = [m for m in harness.email.sent if m.delivery_id is None]
    assert email.subject == "Your week 1 with Evenings"
    assert email.to == "rae@example.com"
    assert email.unsubscribe_url is not None
    assert "Screens off" in email.body
    assert sorted((r["channel"], r["state"]) for r in rows(harness)) == [
        ("email", "sent"),
        ("sms", "sent"),
    ]
    assert {r["period_end"] for r in rows(harness)} == {date(2026, 3, 8)}


def test_no_summary_when_the_moment_passed_long_ago(evenings: Folders, harness: Harness) -> None:
    """Tend was down through Sunday evening: Monday brings no stale summary."""
    rae = harness.participant()
    harness.enroll(rae, "evenings", MONDAY)
    harness.clock.set(SUMMARY_AT + weekly.SEND_WITHIN + timedelta(minutes=1))
    harness.maintain()
    assert rows(harness) == []


def test_an_opted_out_participant_gets_the_email_but_no_text(
    evenings: Folders, harness: Harness
) -> None:
    rae = harness.participant()
    harness.enroll(rae, "evenings", MONDAY)
    with transaction(harness.runtime.engine) as conn:
        participant_rows.opt_out_sms(conn, rae, source="test", now=harness.clock.now())
    harness.clock.set(SUMMARY_AT)
    harness.maintain()
    states = {r["channel"]: (r["state"], r["last_error"]) for r in rows(harness)}
    assert states["sms"] == ("cancelled", participant_rows.OPTED_OUT_NOTE)
    assert states["email"] == ("sent", None)
    assert not [m for m in harness.sms.sent if m.delivery_id is None]


def test_first_summary_waits_for_enough_days(folders: Folders, harness: Harness) -> None:
    """Enrolled on Friday: Sunday's summary would cover three days; the next one goes."""
    folders.write_plan("evenings", PLAN)
    rae = harness.participant()
    harness.enroll(rae, "evenings", date(2026, 3, 6))
    harness.clock.set(SUMMARY_AT)
    harness.maintain()
    assert rows(harness) == []
    harness.clock.set(SUMMARY_AT + timedelta(days=7))
    harness.maintain()
    assert {(r["channel"], r["period_end"]) for r in rows(harness)} == {
        ("sms", date(2026, 3, 15)),
        ("email", date(2026, 3, 15)),
    }


def test_a_worker_that_died_while_sending_is_not_sent_again(
    evenings: Folders, harness: Harness
) -> None:
    rae = harness.participant()
    harness.enroll(rae, "evenings", MONDAY)
    harness.clock.set(SUMMARY_AT)
    weekly.plan_weekly(harness.runtime)
    ids = weekly.claim(harness.runtime)
    assert len(ids) == 2
    with transaction(harness.runtime.engine) as conn:
        job = store.start_sending(conn, ids[0], now=SUMMARY_AT, lease=weekly.SEND_LEASE)
    assert job is not None  # ... and the worker dies here
    harness.clock.set(SUMMARY_AT + weekly.SEND_LEASE + timedelta(seconds=1))
    harness.maintain()
    by_id = {r["id"]: r for r in rows(harness)}
    assert by_id[ids[0]]["state"] == "failed"
    assert by_id[ids[0]]["last_error"] == store.MAY_HAVE_GONE
    assert by_id[ids[1]]["state"] == "sent"
    assert len([m for m in [*harness.sms.sent, *harness.email.sent] if m.delivery_id is None]) == 1


def test_a_transient_error_is_retried_after_a_backoff(evenings: Folders, harness: Harness) -> None:
    from service.channels.base import ChannelError

    rae = harness.participant()
    harness.enroll(rae, "evenings", MONDAY)
    harness.email.failures.append(ChannelError("451 try later", permanent=False))
    harness.clock.set(SUMMARY_AT)
    harness.maintain()
    email_row = next(r for r in rows(harness) if r["channel"] == "email")
    assert (email_row["state"], email_row["attempts"]) == ("claimed", 1)
    harness.clock.set(SUMMARY_AT + timedelta(seconds=29))
    harness.maintain()
    assert next(r for r in rows(harness) if r["channel"] == "email")["state"] == "claimed"
    harness.clock.set(SUMMARY_AT + timedelta(seconds=31))
    harness.maintain()
    email_row = next(r for r in rows(harness) if r["channel"] == "email")
    assert (email_row["state"], email_row["attempts"]) == ("sent", 2)
    assert len([m for m in harness.email.sent if m.delivery_id is None]) == 1


# --- the coach's digest -----------------------------------------------------------------


@pytest.fixture
def coached(db_url: str, evenings: Folders, clock: ManualClock) -> Iterator[Harness]:
    sms, email = RecordingChannel("sms"), RecordingChannel("email")
    runtime = build_runtime(db_url, evenings, clock, {"sms": sms, "email": email})
    runtime.settings = settings_for(
        db_url,
        evenings,
        coach_email="coach@example.org",
        digest_day="mon",
        digest_at="08:00",
        digest_timezone="America/New_York",
    )
    h = Harness(runtime, clock, sms, email)
    try:
        yield h
    finally:
        h.close()


def test_the_digest_names_who_slipped(coached: Harness) -> None:
    h = coached
    rae = h.participant("Rae Example", phone="+14155550123")
    sam = h.participant("Sam Slow", phone="+14155550124", email="sam@example.com")
    h.enroll(rae, "evenings", MONDAY)
    h.enroll(sam, "evenings", MONDAY)
    for day in range(7):
        h.at(evening(day) - timedelta(minutes=30))
        h.clock.set(evening(day))
        with transaction(h.runtime.engine) as conn:
            (target,) = checkins.open_check_ins(
                conn, participant_rows.get_participant(conn, rae), now=h.clock.now()
            )
            checkins.record_check_in(
                conn, target.occurrence_id, "done", now=h.clock.now(), source="sms"
            )
    monday_8am = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)  # 08:00 EDT
    h.clock.set(monday_8am)
    h.maintain()
    h.clock.set(monday_8am + timedelta(minutes=1))
    h.maintain()
    digests = [m for m in h.email.sent if m.to == "coach@example.org"]
    assert len(digests) == 1
    digest = digests[0]
    assert digest.subject == "Tend: 1 person needs a word this week"
    # Sunday's 21:00 window is open until 09:00 on Monday: 6 decided so far, none done.
    assert "Sam Slow (evenings): nothing done this week (0 of 6)" in digest.body
    assert "Rae Example (evenings): 7 of 7, 7 in a row" in digest.body
    assert "Week of 2 March to 8 March 2026" in digest.body
    (row,) = rows(h, "coach")
    assert (row["subject"], row["period_end"], row["state"]) == (
        "coach@example.org",
        date(2026, 3, 8),
        "sent",
    )


def _run_digest(h: Harness) -> None:
    monday_8am = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)  # 08:00 EDT
    for day in range(7):
        h.at(evening(day) - timedelta(minutes=30))
    h.clock.set(monday_8am)
    h.maintain()
    h.clock.set(monday_8am + timedelta(minutes=1))
    h.maintain()


def test_each_coach_gets_a_digest_of_their_own_people(coached: Harness) -> None:
    """Issue 16: a coach account's digest goes to them, about their own participants;
    TEND_COACH_EMAIL's is about the participants with no coach (or a disabled one)."""
    h = coached
    by = accounts.operator()
    ana = accounts.add(h.runtime, by, email="ana@example.org", name="Ana").coach
    ben = accounts.add(h.runtime, by, email="ben@example.org", name="Ben").coach
    gone = accounts.add(h.runtime, by, email="gone@example.org", name="Gone").coach
    people = {
        "Rae Ana": ("+14155550123", ana.id),
        "Sam Ben": ("+14155550124", ben.id),
        "Kim Nobody": ("+14155550125", None),
        "Lou Gone": ("+14155550126", gone.id),
    }
    for name, (phone, coach_id) in people.items():
        pid = h.participant(name, phone=phone, email=None)
        with transaction(h.runtime.engine) as conn:
            participant_rows.update_participant(conn, pid, coach_id=coach_id)
        h.enroll(pid, "evenings", MONDAY)
    accounts.disable(h.runtime, by, "gone@example.org")
    _run_digest(h)
    got = {m.to: m.body for m in h.email.sent if m.delivery_id is None}
    assert sorted(got) == ["ana@example.org", "ben@example.org", "coach@example.org"]
    named = {
        to: sorted(name for name in people if f"{name} (evenings)" in body)
        for to, body in got.items()
    }
    assert named == {
        "ana@example.org": ["Rae Ana"],
        "ben@example.org": ["Sam Ben"],
        "coach@example.org": ["Kim Nobody", "Lou Gone"],
    }
    subjects = sorted(str(r["subject"]) for r in rows(h, "coach"))
    assert subjects == sorted([f"coach:{ana.id}", f"coach:{ben.id}", "coach@example.org"])
    assert {r["state"] for r in rows(h, "coach")} == {"sent"}


def test_no_fallback_digest_when_everyone_has_a_coach(coached: Harness) -> None:
    h = coached
    ana = accounts.add(h.runtime, accounts.operator(), email="ana@example.org", name="Ana").coach
    pid = h.participant("Rae Ana", phone="+14155550123", email=None)
    with transaction(h.runtime.engine) as conn:
        participant_rows.update_participant(conn, pid, coach_id=ana.id)
    h.enroll(pid, "evenings", MONDAY)
    _run_digest(h)
    assert [m.to for m in h.email.sent if m.delivery_id is None] == ["ana@example.org"]


def test_no_digest_without_a_coach_address(evenings: Folders, harness: Harness) -> None:
    harness.clock.set(datetime(2026, 3, 9, 12, 0, tzinfo=UTC))
    harness.maintain()
    assert rows(harness, "coach") == []


def test_a_coachs_digest_goes_by_cohort(coached: Harness) -> None:
    """Issue 17: the coach's people under a heading per cohort, by name, and those in
    no cohort last."""
    from service.actions import cohorts as groups

    h = coached
    ana = accounts.add(h.runtime, accounts.operator(), email="ana@example.org", name="Ana").coach
    actor = accounts.Actor.of(ana)
    early = groups.create(h.runtime, name="Early birds", actor=actor)
    night = groups.create(h.runtime, name="Night owls", actor=actor)
    people = {
        "Rae Owl": ("+14155550123", night.id),
        "Sam Bird": ("+14155550124", early.id),
        "Kim Alone": ("+14155550125", None),
    }
    for name, (phone, cohort_id) in people.items():
        pid = h.participant(name, phone=phone, email=None)
        with transaction(h.runtime.engine) as conn:
            participant_rows.update_participant(conn, pid, coach_id=ana.id, cohort_id=cohort_id)
        h.enroll(pid, "evenings", MONDAY)
    _run_digest(h)
    (digest,) = [m for m in h.email.sent if m.to == "ana@example.org"]
    body = digest.body
    # Nobody checked in: all three slipped, under their cohorts' headings.
    said = "nothing done this week (0 of 6)"
    assert (
        f"Who has slipped:\n\nEarly birds\n- Sam Bird (evenings): {said}\n\n"
        f"Night owls\n- Rae Owl (evenings): {said}\n\n"
        f"Not in a cohort\n- Kim Alone (evenings): {said}\n"
    ) in body
    assert digest.html is not None
    headings = [digest.html.index(f">{name}</h3>") for name in
                ("Early birds", "Night owls", "Not in a cohort")]  # fmt: skip
    assert headings == sorted(headings)
