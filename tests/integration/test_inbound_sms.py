"""`POST /twilio/sms` end to end: a participant's text, signed as Twilio signs it, posted
to the real app, answered with TwiML, and what it did to the database.

Reminders are really sent first (the scheduler and an in-process worker on a manual
clock), so that a reply lands in a check-in window that a reminder opened. Every test
runs on SQLite and on PostgreSQL. Sections:

- the signature and the form (403 / 400 / 200);
- replays of one MessageSid;
- the compliance and pause keywords (contract section 4, "Replies by SMS");
- senders Tend does not know;
- check-ins: which open window a reply counts for, and what is stored;
- the done-when: replies by SMS show up in `tend report --format json`.
"""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service import cli
from service.clock import ManualClock
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.storage.tables import consent_log, occurrences, replies
from service.web.app import create_app
from tests.support.engine import (
    Folders,
    Harness,
    RecordingChannel,
    publish,
    published_runtime,
    settings_for,
)
from tests.support.twilio_signing import twilio_signature

# --- the people, the times and the words -------------------------------------------------

TOKEN = "twilio-auth-token"
BASE = "https://tend.test"
RAE = "+14155550123"  # the harness's default participant phone
STRANGER = "+15550001111"
TEND_NUMBER = "+15005550006"
NY = ZoneInfo("America/New_York")
START_DAY = date(2026, 3, 2)  # a Monday; New York is on EST until March 8
PAUSED_NOTE = "participant paused SMS reminders"  # service.engine.delivery._blocked

# The shipped answer templates are deterministic: these are their exact words for Rae.
OPTED_OUT = "You're unsubscribed from Tend and will get no more texts. Reply START to come back."
OPTED_IN = (
    "Welcome back to Tend, Rae. Your reminders by text are on again. "
    "Reply HELP for help, STOP to unsubscribe."
)
ALREADY_IN = (
    "You're already subscribed to Tend texts, Rae. Reply HELP for help, STOP to unsubscribe."
)
HELP = (
    "Tend reminders: reply DONE or SKIP to check in, LATER for a repeat, PAUSE 3 to pause "
    "3 days, STOP to end texts. More: ask your coach."
)
STRANGER_ANSWER = (
    "This is Tend, which texts practice reminders. We don't know this number, so nothing "
    "was logged. If you expected reminders, ask your coach."
)
NO_WINDOW = (
    "Thanks, Rae. Nothing is waiting for a reply right now, so that wasn't logged. "
    "Reply HELP for options."
)
PAUSE_USAGE = "PAUSE takes a whole number of days from 1 to 365, e.g. PAUSE 3"


def ny(day: int, hour: int, minute: int = 0) -> datetime:
    """A New York wall-clock moment in March 2026, as UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=NY).astimezone(UTC)


# --- plans -------------------------------------------------------------------------------

# One practice per check-in kind, at distinct times of the morning, so that "the most
# recent open window" is always a known one. Each test enrolls Rae in the few it needs.
PRACTICES = {
    "walk": """
      - id: walk
        category: movement
        title: Morning walk
        at: "07:00"
        message: "Time for your walk, {{ participant.first_name }}. How many minutes?"
        check_in: {kind: number, unit: minutes}
    """,
    "mood": """
      - id: mood
        category: other
        title: Mood check
        at: "08:00"
        message: "How is your mood, 1 to 5?"
        check_in: {kind: rating, scale: [1, 5]}
    """,
    "stretch": """
      - id: stretch
        category: movement
        title: Stretch
        at: "09:00"
        message: "Stretch for five minutes, {{ participant.first_name }}."
    """,
    "body-scan": """
      - id: body-scan
        category: mindfulness
        title: Body scan
        at: "09:30"
        message: "Body scan now."
        check_in: done
    """,
    "journal": """
      - id: journal
        category: journaling
        title: Journal
        at: "10:00"
        message: "One line about your day?"
        check_in: text
    """,
}


def plan_yaml(plan_id: str, practices: tuple[str, ...], length: str) -> str:
    body = "".join(_indent(PRACTICES[p]) for p in practices)
    return f"plan: {plan_id}\ntitle: Replies\n{length}\npractices:\n{body}"


def _indent(snippet: str) -> str:
    lines = [line for line in snippet.splitlines() if line.strip()]
    margin = min(len(line) - len(line.lstrip()) for line in lines)
    return "".join(f"  {line[margin:]}\n" for line in lines)


# --- the app, signed requests, and what they left in the database ----------------------


def signature(params: list[tuple[str, str]], url: str) -> str:
    return twilio_signature(TOKEN, url, params)


FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Answer:
    """A TwiML answer: the <Message> text, or None for an empty <Response/>."""

    status: int
    content_type: str
    message: str | None


class Tend:
    """The app on a harness: Rae texts it, the test reads the database."""

    def __init__(self, harness: Harness, folders: Folders, base: str) -> None:
        self.harness = harness
        self.folders = folders
        self.url = f"{base}/twilio/sms"
        self.client = TestClient(create_app(harness.runtime))
        self._sids = itertools.count(1)

    @property
    def engine(self) -> Any:
        return self.harness.runtime.engine

    # set-up

    def enroll(self, *practices: str, length: str = "days: 1") -> str:
        """Rae (phone RAE), enrolled from START_DAY in a plan of these practices."""
        self.folders.write_plan("replies", plan_yaml("replies", practices, length))
        publish(self.harness.runtime)
        person = self.harness.participant()
        self.harness.enroll(person, "replies", START_DAY)
        return person

    # requests

    def new_sid(self) -> str:
        return f"SM{next(self._sids):032x}"

    def post(
        self,
        params: list[tuple[str, str]],
        *,
        signed: list[tuple[str, str]] | None = None,
        url: str | None = None,
        content_type: str = FORM,
        sign: bool = True,
    ) -> Any:
        """Post `params`, signed over `signed` (default: the same) and `url`."""
        headers = {"Content-Type": content_type}
        if sign:
            headers["X-Twilio-Signature"] = signature(
                params if signed is None else signed, url or self.url
            )
        return self.client.post("/twilio/sms", content=urlencode(params), headers=headers)

    def sms_params(
        self, body: str, sender: str = RAE, sid: str | None = None
    ) -> list[tuple[str, str]]:
        """The form Twilio posts for a text from `sender`, with a fresh MessageSid."""
        return [
            ("MessageSid", sid or self.new_sid()),
            ("AccountSid", "AC" + "0" * 32),
            ("From", sender),
            ("To", TEND_NUMBER),
            ("Body", body),
            ("NumMedia", "0"),
        ]

    def text(self, body: str, *, sender: str = RAE, sid: str | None = None) -> str | None:
        """Text `body` from `sender`; the answer's words (None when empty), checked as TwiML."""
        answer = read_twiml(self.post(self.sms_params(body, sender, sid)))
        assert answer.status == 200
        return answer.message

    # the database

    def participant(self, person: str) -> Any:
        with transaction(self.engine) as conn:
            return participant_rows.get_participant(conn, person)

    def consent(self, person: str) -> list[dict[str, Any]]:
        with transaction(self.engine) as conn:
            return participant_rows.consent_history(conn, person)

    def consent_rows(self) -> int:
        with transaction(self.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(consent_log)).scalar_one())

    def occurrence(self, key: str) -> dict[str, Any]:
        with transaction(self.engine) as conn:
            row = conn.execute(select(occurrences).where(occurrences.c.key == key)).mappings()
            return dict(row.one())

    def checked_in(self) -> dict[str, tuple[Any, ...]]:
        """Every occurrence with a check-in: key -> (result, value, unit, text)."""
        with transaction(self.engine) as conn:
            rows = conn.execute(
                select(occurrences).where(occurrences.c.check_in.is_not(None))
            ).mappings()
            return {
                r["key"]: (r["check_in"], r["check_in_value"], r["check_in_unit"], r["check_in_text"])
                for r in rows
            }  # fmt: skip

    def replies(self) -> list[dict[str, Any]]:
        with transaction(self.engine) as conn:
            rows = conn.execute(select(replies).order_by(replies.c.id)).mappings()
            return [dict(r) for r in rows]

    def sms_deliveries(self) -> list[dict[str, Any]]:
        return [d for d in self.harness.deliveries() if d["channel"] == "sms"]


def read_twiml(response: Any) -> Answer:
    """The answer's status, content type and <Message> text; asserts it is well-formed."""
    content_type = response.headers.get("content-type", "")
    if response.status_code != 200:
        return Answer(response.status_code, content_type, None)
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) <= 1
    assert len(root) == len(messages)  # nothing but the one <Message>
    return Answer(200, content_type, messages[0].text if messages else None)


@pytest.fixture
def make_tend(db_url: str, folders: Folders) -> Iterator[Callable[..., Tend]]:
    """Tend with Twilio configured (sends recorded), on a manual clock at New York midnight
    of START_DAY."""
    made: list[Harness] = []

    def make(public_url: str = BASE) -> Tend:
        settings = settings_for(
            db_url,
            folders,
            public_url=public_url,
            twilio_account_sid="AC" + "0" * 32,
            twilio_auth_token=TOKEN,
            twilio_from=TEND_NUMBER,
        )
        clock = ManualClock(datetime(2026, 3, 2, 5, 0, tzinfo=UTC))  # midnight in New York
        sms, email = RecordingChannel("sms"), RecordingChannel("email")
        runtime = published_runtime(settings, clock=clock, channels={"sms": sms, "email": email})
        harness = Harness(runtime, clock, sms, email)
        made.append(harness)
        return Tend(harness, folders, public_url.rstrip("/"))

    yield make
    for harness in made:
        harness.close()


@pytest.fixture
def tend(make_tend: Callable[..., Tend]) -> Tend:
    return make_tend()


# --- the signature and the form ----------------------------------------------------------


def test_a_signed_text_is_answered_with_twiml(tend: Tend) -> None:
    tend.enroll("stretch")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 20))
    answer = read_twiml(tend.post(tend.sms_params("HELP")))
    assert answer.status == 200
    assert answer.content_type.split(";")[0] == "application/xml"
    assert answer.message == HELP


def test_unsigned_tampered_and_unsigned_extras_are_refused_and_nothing_is_stored(
    tend: Tend,
) -> None:
    person = tend.enroll("stretch")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 20))
    params = tend.sms_params("DONE")
    assert tend.post(params, sign=False).status_code == 403
    tampered = [(k, "STOP" if k == "Body" else v) for k, v in params]
    assert tend.post(tampered, signed=params).status_code == 403
    unsigned_extra = [*params, ("FromCity", "SAN FRANCISCO")]
    assert tend.post(unsigned_extra, signed=params).status_code == 403
    elsewhere = "https://attacker.test/twilio/sms"
    assert tend.post(params, url=elsewhere).status_code == 403
    assert tend.replies() == []
    assert tend.checked_in() == {}
    assert tend.participant(person).sms_state == "subscribed"


def test_every_signed_parameter_counts_repeated_keys_included(tend: Tend) -> None:
    tend.enroll("stretch")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 20))
    extras = [
        ("FromCity", "SAN FRANCISCO"),
        ("FromState", "CA"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ]
    with_extras = [*tend.sms_params("HELP"), *extras]
    assert read_twiml(tend.post(with_extras)).message == HELP
    media = [
        *tend.sms_params("HELP"),
        ("MediaUrl", "https://api.twilio.com/media/1"),
        ("MediaUrl", "https://api.twilio.com/media/2"),
    ]
    assert read_twiml(tend.post(media)).message == HELP
    # Dropping one of the repeated values after signing breaks the signature.
    assert tend.post(media[:-1], signed=media).status_code == 403
    assert len(tend.replies()) == 2


def test_a_public_url_with_a_port_is_what_the_signature_covers(
    make_tend: Callable[..., Tend],
) -> None:
    tend = make_tend("https://tend.test:8443")
    tend.enroll("stretch")
    params = tend.sms_params("HELP")
    assert read_twiml(tend.post(params, url="https://tend.test:8443/twilio/sms")).message == HELP
    other_port = tend.sms_params("HELP")
    assert tend.post(other_port, url="https://tend.test:9443/twilio/sms").status_code == 403
    plain = tend.sms_params("HELP")
    assert tend.post(plain, url="http://tend.test:8443/twilio/sms").status_code == 403
    assert len(tend.replies()) == 1


def test_a_signature_without_the_public_urls_port_is_refused(
    make_tend: Callable[..., Tend],
) -> None:
    tend = make_tend("https://tend.test:8443")
    tend.enroll("stretch")
    params = tend.sms_params("HELP")
    assert tend.post(params, url="https://tend.test/twilio/sms").status_code == 403
    assert tend.replies() == []


def test_a_signed_body_of_another_content_type_is_refused(tend: Tend) -> None:
    params = tend.sms_params("HELP")
    assert tend.post(params, content_type="text/plain").status_code == 403
    assert tend.post(params, content_type="application/json").status_code == 403
    assert tend.replies() == []


@pytest.mark.parametrize("missing", ["MessageSid", "From"])
def test_a_signed_text_without_its_sid_or_sender_is_a_bad_request(tend: Tend, missing: str) -> None:
    params = [(k, v) for k, v in tend.sms_params("HELP") if k != missing]
    response = tend.post(params)
    assert response.status_code == 400
    assert response.text == "MessageSid and From are required\n"
    assert tend.replies() == []


# --- replays -----------------------------------------------------------------------------


def test_a_retried_check_in_is_answered_the_same_and_recorded_once(tend: Tend) -> None:
    tend.enroll("stretch")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 20))
    sid = tend.new_sid()
    first = tend.text("DONE", sid=sid)
    assert first == "Logged: Stretch. Nice start."
    tend.harness.clock.set(ny(2, 9, 25))  # Twilio retries a few minutes later
    assert tend.text("DONE", sid=sid) == first
    occurrence = tend.occurrence("stretch:2026-03-02")
    assert (occurrence["check_in"], occurrence["check_in_at"]) == ("done", ny(2, 9, 20))
    (reply,) = tend.replies()
    assert (reply["provider_id"], reply["understood"], reply["answer"]) == (sid, "done", first)
    assert reply["occurrence_id"] == occurrence["id"]


def test_a_retried_stop_is_confirmed_both_times_and_logged_once(tend: Tend) -> None:
    person = tend.enroll("stretch", length="weeks: 1")
    sid = tend.new_sid()
    assert tend.text("STOP", sid=sid) == OPTED_OUT
    assert tend.text("STOP", sid=sid) == OPTED_OUT  # not the silence a second STOP gets
    (entry,) = tend.consent(person)
    assert (entry["action"], entry["source"]) == ("opt_out", "sms:opt_out")
    assert len(tend.replies()) == 1


# --- keywords ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["STOP", "stop!", "Stop.", " STOPALL ", "unsubscribe"])
def test_stop_opts_out_cancels_every_pending_sms_and_is_logged(tend: Tend, body: str) -> None:
    person = tend.enroll("stretch", length="weeks: 1")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 20))
    pending = {d["id"] for d in tend.sms_deliveries() if d["state"] == "pending"}
    assert len(pending) == 6  # the rest of the week's reminders

    assert tend.text(body) == OPTED_OUT

    assert tend.participant(person).sms_state == "opted_out"
    after = {d["id"]: d for d in tend.sms_deliveries()}
    assert [d for d in after.values() if d["state"] == "pending"] == []
    assert {(after[i]["state"], after[i]["last_error"]) for i in pending} == {
        ("cancelled", participant_rows.OPTED_OUT_NOTE)
    }
    (entry,) = tend.consent(person)
    assert (entry["channel"], entry["action"]) == ("sms", "opt_out")
    assert entry["source"].startswith("sms:")
    assert entry["at"] == ny(2, 9, 20)
    # The next day's reminder is not sent.
    tend.harness.at(ny(3, 9))
    assert len(tend.harness.sms.sent) == 1


def test_a_second_stop_is_not_answered_and_not_logged_again(tend: Tend) -> None:
    person = tend.enroll("stretch", length="weeks: 1")
    assert tend.text("STOP") == OPTED_OUT
    assert tend.text("STOP") is None
    assert tend.text("cancel") is None
    assert [e["action"] for e in tend.consent(person)] == ["opt_out"]
    assert [r["answer"] for r in tend.replies()] == [OPTED_OUT, None, None]


def test_stop_inside_a_sentence_is_not_an_opt_out(tend: Tend) -> None:
    person = tend.enroll("stretch", length="weeks: 1")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 20))
    pending = len([d for d in tend.sms_deliveries() if d["state"] == "pending"])
    answer = tend.text("STOP PLEASE")
    assert answer == (
        "Sorry, that wasn't logged for Stretch: expected DONE or SKIP. Reply HELP for options."
    )
    assert tend.participant(person).sms_state == "subscribed"
    assert tend.consent(person) == []
    assert len([d for d in tend.sms_deliveries() if d["state"] == "pending"]) == pending
    assert tend.checked_in() == {}


@pytest.mark.parametrize("body", ["START", "unstop", "Yes"])
def test_start_unstop_or_yes_opts_back_in_and_restores_future_sms(tend: Tend, body: str) -> None:
    person = tend.enroll("stretch", length="weeks: 1")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 20))
    assert tend.text("STOP") == OPTED_OUT
    tend.harness.at(ny(3, 9))  # the next day's reminder: not sent
    tend.harness.clock.set(ny(3, 12))

    assert tend.text(body) == OPTED_IN

    assert tend.participant(person).sms_state == "subscribed"
    assert [(e["action"], e["source"]) for e in tend.consent(person)] == [
        ("opt_out", "sms:opt_out"),
        ("opt_in", "sms:opt_in"),
    ]
    states = {d["key"]: d["state"] for d in tend.sms_deliveries()}
    assert states["stretch:2026-03-02"] == "sent"
    assert states["stretch:2026-03-03"] == "cancelled"  # its moment passed while opted out
    assert states["stretch:2026-03-04"] == "pending"
    assert {s for k, s in states.items() if k >= "stretch:2026-03-04"} == {"pending"}
    tend.harness.at(ny(4, 9))
    assert [m.to for m in tend.harness.sms.sent] == [RAE, RAE]


def test_start_when_subscribed_says_so_and_logs_nothing(tend: Tend) -> None:
    person = tend.enroll("stretch", length="weeks: 1")
    assert tend.text("START") == ALREADY_IN
    assert tend.consent(person) == []


@pytest.mark.parametrize("body", ["HELP", "info", "Help?"])
def test_help_and_info_are_answered_even_after_stop(tend: Tend, body: str) -> None:
    person = tend.enroll("stretch", length="weeks: 1")
    assert tend.text(body) == HELP
    assert tend.text("STOP") == OPTED_OUT
    assert tend.text(body) == HELP
    assert tend.participant(person).sms_state == "opted_out"


def test_anything_else_after_stop_gets_no_answer_but_a_check_in_still_counts(
    tend: Tend,
) -> None:
    person = tend.enroll("stretch", length="weeks: 1")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 10))
    assert tend.text("STOP") == OPTED_OUT
    tend.harness.clock.set(ny(2, 9, 20))
    assert tend.text("why did I get these?") is None
    assert tend.text("PAUSE 3") is None
    assert tend.text("RESUME") is None
    assert tend.participant(person).paused_until is None
    assert tend.checked_in() == {}
    assert tend.text("DONE") is None  # silent, but the practice was done
    assert tend.checked_in() == {"stretch:2026-03-02": ("done", None, None, None)}
    assert [e["action"] for e in tend.consent(person)] == ["opt_out"]


def test_pause_skips_reminders_for_n_days_then_they_resume(tend: Tend) -> None:
    person = tend.enroll("stretch", length="weeks: 1")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 30))

    assert tend.text("PAUSE 3") == "Reminders paused for 3 days. Reply RESUME to start again."

    until = ny(2, 9, 30) + timedelta(days=3)
    assert tend.participant(person).paused_until == until
    (entry,) = tend.consent(person)
    assert (entry["action"], entry["source"], entry["detail"]) == (
        "pause",
        "sms:pause",
        until.isoformat(),
    )
    for day in (3, 4, 5):  # 09:00 on the 5th is still before 09:30
        tend.harness.at(ny(day, 9))
    tend.harness.at(ny(6, 9))
    states = {d["key"]: (d["state"], d["last_error"]) for d in tend.sms_deliveries()}
    assert [states[f"stretch:2026-03-0{day}"] for day in (3, 4, 5)] == [
        ("cancelled", PAUSED_NOTE)
    ] * 3
    assert states["stretch:2026-03-06"] == ("sent", None)
    assert len(tend.harness.sms.sent) == 2


def test_resume_ends_a_pause(tend: Tend) -> None:
    person = tend.enroll("stretch", length="weeks: 1")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 30))
    assert tend.text("pause") == "Reminders paused for 1 day. Reply RESUME to start again."
    tend.harness.at(ny(3, 9))
    tend.harness.clock.set(ny(3, 9, 5))

    assert tend.text("Resume") == "Welcome back, Rae. Your reminders are on again."

    assert tend.participant(person).paused_until is None
    assert [(e["action"], e["source"]) for e in tend.consent(person)] == [
        ("pause", "sms:pause"),
        ("resume", "sms:resume"),
    ]
    tend.harness.at(ny(4, 9))
    states = {d["key"]: d["state"] for d in tend.sms_deliveries()}
    assert (states["stretch:2026-03-03"], states["stretch:2026-03-04"]) == ("cancelled", "sent")
    # Resuming again, not paused: said so, nothing logged.
    assert tend.text("RESUME") == (
        "Your reminders are already on, Rae. Reply PAUSE 3 to pause them for 3 days."
    )
    assert len(tend.consent(person)) == 2


@pytest.mark.parametrize("body", ["PAUSE 0", "pause -2", "PAUSE 1.5", "pause 400"])
def test_a_pause_that_cannot_be_read_says_how_to_write_it(tend: Tend, body: str) -> None:
    person = tend.enroll("stretch", length="weeks: 1")
    assert tend.text(body) == (
        f"Sorry, I couldn't read that: {PAUSE_USAGE}. Reply HELP for options."
    )
    assert tend.participant(person).paused_until is None
    assert tend.consent(person) == []


# --- senders Tend does not know ----------------------------------------------------------


def test_a_stranger_learns_who_we_are_and_nothing_else_happens(tend: Tend) -> None:
    tend.enroll("stretch")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 20))
    assert tend.text("DONE", sender=STRANGER) == STRANGER_ANSWER
    # Answered once: an auto-responder at the other end gets no conversation going.
    assert tend.text("Who is this?", sender=STRANGER) is None
    assert tend.text("STOP", sender=STRANGER) is None
    assert tend.consent_rows() == 0
    assert tend.checked_in() == {}
    stored = tend.replies()
    assert [(r["sender"], r["participant_id"], r["understood"]) for r in stored] == [
        (STRANGER, None, "unknown_sender")
    ] * 3
    assert [r["occurrence_id"] for r in stored] == [None] * 3


# --- check-ins ---------------------------------------------------------------------------


def test_done_in_the_window_is_logged(tend: Tend) -> None:
    tend.enroll("stretch")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 40))
    answer = tend.text("DONE")
    assert answer == "Logged: Stretch. Nice start."
    occurrence = tend.occurrence("stretch:2026-03-02")
    assert (occurrence["check_in"], occurrence["check_in_source"]) == ("done", "sms")


def test_a_rating_is_recorded_and_one_off_the_scale_is_not(tend: Tend) -> None:
    tend.enroll("mood")
    tend.harness.at(ny(2, 8))
    tend.harness.clock.set(ny(2, 8, 15))
    assert tend.text("7") == (
        "Sorry, that wasn't logged for Mood check: 7 is not on the 1-5 scale. "
        "Reply HELP for options."
    )
    assert tend.checked_in() == {}
    assert tend.text("4") == "Logged: Mood check, 4 of 5. Nice start."
    assert tend.checked_in() == {"mood:2026-03-02": ("done", 4.0, None, None)}


@pytest.mark.parametrize(
    ("body", "minutes"),
    [("walked 25 minutes", 25.0), ("25 min", 25.0), ("0.5 hours", 30.0)],
)
def test_a_number_is_recorded_in_the_practices_unit(tend: Tend, body: str, minutes: float) -> None:
    tend.enroll("walk")
    tend.harness.at(ny(2, 7))
    tend.harness.clock.set(ny(2, 7, 45))
    assert tend.text(body) == f"Logged: Morning walk, {minutes:g} minutes. Nice start."
    assert tend.checked_in() == {"walk:2026-03-02": ("done", minutes, "minutes", None)}


def test_a_later_number_replaces_an_earlier_one_while_the_window_is_open(tend: Tend) -> None:
    tend.enroll("walk")
    tend.harness.at(ny(2, 7))
    tend.harness.clock.set(ny(2, 7, 45))
    values = []
    answers = []
    for body in ("walked 25 minutes", "25 min", "0.5 hours"):
        answers.append(tend.text(body))
        values.append(tend.occurrence("walk:2026-03-02")["check_in_value"])
    assert values == [25.0, 25.0, 30.0]
    assert answers[1:] == [
        "Updated: Morning walk, 25 minutes. Nice start.",
        "Updated: Morning walk, 30 minutes. Nice start.",
    ]


def test_a_text_check_in_keeps_the_words(tend: Tend) -> None:
    tend.enroll("journal")
    tend.harness.at(ny(2, 10))
    tend.harness.clock.set(ny(2, 11))
    words = "Felt calm after lunch, slept better"
    assert tend.text(words) == "Logged: Journal, thanks for writing. Nice start."
    assert tend.checked_in() == {"journal:2026-03-02": ("done", None, None, words)}


def test_a_thumbs_up_is_done(tend: Tend) -> None:
    tend.enroll("stretch")
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 10))
    assert tend.text("👍") == "Logged: Stretch. Nice start."
    assert tend.checked_in() == {"stretch:2026-03-02": ("done", None, None, None)}


def test_done_counts_for_the_most_recent_open_window(tend: Tend) -> None:
    tend.enroll("stretch", "body-scan")
    tend.harness.at(ny(2, 9))
    tend.harness.at(ny(2, 9, 30))
    tend.harness.clock.set(ny(2, 9, 45))
    assert tend.text("done") == "Logged: Body scan. Nice start."
    assert tend.checked_in() == {"body-scan:2026-03-02": ("done", None, None, None)}


def test_done_naming_a_practice_counts_for_that_one(tend: Tend) -> None:
    tend.enroll("walk", "body-scan")
    tend.harness.at(ny(2, 7))
    tend.harness.at(ny(2, 9, 30))
    tend.harness.clock.set(ny(2, 9, 45))
    assert tend.text("done walk") == "Logged: Morning walk. Nice start."
    assert tend.checked_in() == {"walk:2026-03-02": ("done", None, None, None)}


def test_a_number_that_fits_two_older_windows_is_asked_about_then_applied(tend: Tend) -> None:
    tend.enroll("walk", "mood", "stretch")
    for hour in (7, 8, 9):
        tend.harness.at(ny(2, hour))
    tend.harness.clock.set(ny(2, 9, 30))

    assert (
        tend.text("4")
        == 'Which one: Mood check or Morning walk? Reply with its name, e.g. "check".'
    )
    assert tend.checked_in() == {}
    asked = tend.replies()[-1]
    assert asked["understood"] == "ask"
    assert asked["context"]["body"] == "4"

    tend.harness.clock.set(ny(2, 9, 32))
    assert tend.text("walk") == "Logged: Morning walk, 4 minutes. Nice start."
    assert tend.checked_in() == {"walk:2026-03-02": ("done", 4.0, "minutes", None)}


def test_a_reply_with_no_open_window_is_not_recorded(tend: Tend) -> None:
    tend.enroll("stretch")
    tend.harness.at(ny(2, 8, 30))  # before the 09:00 reminder
    assert tend.text("DONE") == NO_WINDOW
    assert tend.checked_in() == {}
    (reply,) = tend.replies()
    assert (reply["understood"], reply["occurrence_id"]) == ("no_window", None)


def test_a_reply_after_the_window_closed_is_not_counted(tend: Tend) -> None:
    tend.enroll("stretch")
    tend.harness.at(ny(2, 9))
    window_end = tend.occurrence("stretch:2026-03-02")["window_end"]
    assert window_end == ny(2, 21)  # the default 12 hours
    tend.harness.clock.set(window_end)
    assert tend.text("DONE") == NO_WINDOW
    assert tend.text("done stretch") == (
        "The window to check in for Stretch has closed, so that wasn't logged. "
        "You can reply after its next reminder."
    )
    assert tend.occurrence("stretch:2026-03-02")["check_in"] is None


def test_four_days_done_in_a_row_is_a_streak_of_four(tend: Tend) -> None:
    tend.enroll("stretch", length="weeks: 1")
    answers = []
    for day in (2, 3, 4, 5):
        tend.harness.at(ny(day, 9))
        tend.harness.clock.set(ny(day, 9, 15))
        answers.append(tend.text("DONE"))
    assert answers == [
        "Logged: Stretch. Nice start.",
        "Logged: Stretch. 2 days in a row.",
        "Logged: Stretch. 3 days in a row.",
        "Logged: Stretch. 4 days in a row.",
    ]


# --- the done-when: replies by SMS in `tend report` -------------------------------------


def test_done_a_rating_and_minutes_by_sms_show_in_the_report(
    tend: Tend, db_url: str, folders: Folders
) -> None:
    person = tend.enroll("walk", "mood", "stretch")
    tend.harness.at(ny(2, 7))
    tend.harness.clock.set(ny(2, 7, 30))
    assert tend.text("walked 25 minutes") == "Logged: Morning walk, 25 minutes. Nice start."
    tend.harness.at(ny(2, 8))
    tend.harness.clock.set(ny(2, 8, 30))
    assert tend.text("4") == "Logged: Mood check, 4 of 5. Nice start."
    tend.harness.at(ny(2, 9))
    tend.harness.clock.set(ny(2, 9, 30))
    assert tend.text("DONE") == "Logged: Stretch. Nice start."

    env = {
        "TEND_DATABASE_URL": db_url,
        "TEND_SCHEDULES_DIR": str(folders.schedules),
        "TEND_TEMPLATES_DIR": str(folders.templates),
        "TEND_SECRET_KEY": "test-secret",
        "TEND_PUBLIC_URL": BASE,
    }
    result = CliRunner().invoke(
        cli.main, ["report", "--format", "json"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["participants"]
    assert set(entry) == {
        "participant", "name", "enrollment", "plan", "status", "sms", "practices",
    }  # fmt: skip
    assert (entry["participant"], entry["name"], entry["plan"], entry["sms"]) == (
        person,
        "Rae Example",
        "replies",
        "subscribed",
    )
    keys = [
        "practice", "scheduled", "done", "skipped", "missed", "pending", "completion_rate",
        "current_streak", "longest_streak", "strength",
    ]  # fmt: skip
    lines = {line["practice"]: line for line in entry["practices"]}
    assert set(lines) == {"walk", "mood", "stretch"}
    for practice, line in lines.items():
        assert list(line) == keys, practice
        got = {k: line[k] for k in ("scheduled", "done", "skipped", "missed", "pending")}
        assert got == {"scheduled": 1, "done": 1, "skipped": 0, "missed": 0, "pending": 0}
        assert line["completion_rate"] == 1.0


# --- regressions from review -------------------------------------------------------------


def test_a_stop_whose_handling_failed_is_acted_on_by_the_upkeep(
    tend: Tend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twilio does not retry an incoming-message webhook: the scheduler's upkeep acts on
    a text left unhandled, a minute on, without answering out of turn."""
    from service.actions import inbound_sms as inbound

    person = tend.enroll("stretch", length="days: 3")
    tend.harness.at(ny(2, 9))

    def broken(*_: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(inbound, "decide", broken)
    with pytest.raises(RuntimeError):
        inbound.handle_sms(tend.harness.runtime, sid=tend.new_sid(), sender=RAE, body="STOP")
    (stored,) = tend.replies()
    assert (stored["body"], stored["handled_at"], stored["participant_id"]) == (
        "STOP",
        None,
        person,
    )
    assert tend.participant(person).sms_state == "subscribed"
    monkeypatch.undo()

    tend.harness.clock.set(ny(2, 9, 0) + timedelta(seconds=30))
    tend.harness.maintain()  # too soon: the webhook may still be at work on it
    assert tend.participant(person).sms_state == "subscribed"
    tend.harness.clock.set(ny(2, 9, 2))
    tend.harness.maintain()
    assert tend.participant(person).sms_state == "opted_out"
    (handled,) = tend.replies()
    assert handled["understood"] == "opt_out"
    assert handled["answer"] is None
    assert handled["detail"].endswith("handled late, not answered")
    assert [d["state"] for d in tend.sms_deliveries() if d["due_at"] > ny(2, 10)] == [
        "cancelled",
        "cancelled",
    ]


def test_a_signature_that_is_not_ascii_is_refused_not_an_error(tend: Tend) -> None:
    params = tend.sms_params("DONE")
    response = tend.client.post(
        "/twilio/sms",
        content=urlencode(params),
        headers={"Content-Type": FORM, "X-Twilio-Signature": "sïgnature".encode("latin-1")},  # type: ignore[dict-item]
    )
    assert response.status_code == 403
    assert tend.replies() == []
