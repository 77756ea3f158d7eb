"""People joining on their own: the sign-up page of a cohort, and `JOIN <keyword>` by
text. Both are double opt-in: Tend texts the confirmation asking YES (core.confirmation)
and makes the person a participant, enrolled in the cohort's plan, only when YES comes
back from that number. A sign-up nobody confirms is forgotten 48 hours on, and its
number is never texted again by it.

What a stranger learns is nothing: the page answers every well-formed sign-up with the
same words, whether the number is new, in Tend already, waiting for its YES, or opted
out; only a number that may be asked (new, not waiting, not opted out) is texted, and
at most once per 48 hours. Sign-ups are limited per address.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import structlog
from sqlalchemy import Connection

from service.actions import consent, wording
from service.actions.enrollments import enroll_in
from service.actions.errors import Invalid, NotFound
from service.core import confirmation, validate
from service.core.expand import resolve_plan_variables
from service.core.language import local as local_text
from service.core.plan import Plan
from service.core.records import Participant
from service.core.render import LANGUAGE, Person
from service.core.replies import parse_reply
from service.core.states import Channel, ConsentAction, SummaryKind
from service.core.timeexpr import format_clock
from service.runtime import Runtime
from service.storage import coaches as coach_rows
from service.storage import cohorts as cohort_rows
from service.storage import occurrences as occurrence_rows
from service.storage import participants as participant_rows
from service.storage import signups as signup_rows
from service.storage import summaries as summary_rows
from service.storage.cohorts import Cohort
from service.storage.db import reading, transaction
from service.storage.signups import Signup

log = structlog.get_logger("tend.signups")

LIFETIME = timedelta(hours=48)  # an unconfirmed sign-up is forgotten after this
THROTTLE_WINDOW = timedelta(hours=1)
MAX_PER_ADDRESS = 10  # sign-ups from one address in the window
LANGUAGES = {"en": "English", "es": "Español"}
CLOCK_TIME = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d$")
JOIN = re.compile(r"^\s*join\s+([a-z0-9]{2,20})\s*[.!]*\s*$", re.IGNORECASE)
YES = frozenset({"yes", "y", "si", "sí", "ok", "yes!"})
PAGE_SOURCE = "signup:page"

# The words a well-formed sign-up always gets: they say nothing about the number.
SENT = (
    "Thank you. If this number can get our texts, a message asking you to reply YES is "
    "on its way. Your reminders start once you answer it; if nothing comes within a few "
    "minutes, ask the person who shared this page."
)


class Throttled(Invalid):
    """Too many sign-ups from one address lately."""


@dataclass(frozen=True, slots=True)
class Question:
    """A plan variable the page asks about: "What time do you usually wake up?"."""

    name: str
    label: str
    default: str  # HH:MM


@dataclass(frozen=True, slots=True)
class JoinPage:
    cohort: Cohort
    plan: Plan
    coach: str | None
    questions: list[Question] = field(default_factory=list)
    frequency: str = ""


LABELS = {
    "wake": "What time do you usually wake up?",
    "bedtime": "What time do you usually go to bed?",
    "bed": "What time do you usually go to bed?",
    "walk": "What time suits you for a walk?",
    "lunch": "What time do you usually have lunch?",
}


def _label(name: str) -> str:
    return LABELS.get(name, f"Your usual time for {name.replace('_', ' ')}")


TOKEN = re.compile(r"[A-Za-z0-9_-]{8,64}")  # what secrets.token_urlsafe makes


def _joinable(conn: Connection, runtime: Runtime, token: str) -> tuple[Cohort, Plan]:
    cohort = cohort_rows.cohort_by(conn, token=token) if TOKEN.fullmatch(token) else None
    plan = runtime.plans.get(cohort.plan_id) if cohort and cohort.plan_id else None
    if cohort is None or plan is None:
        raise NotFound("no such sign-up page")
    return cohort, plan


def page(runtime: Runtime, token: str) -> JoinPage:
    """What the sign-up page shows: the plan, the coach, the times it asks about."""
    with reading(runtime.engine) as conn:
        cohort, plan = _joinable(conn, runtime, token)
        coach = coach_rows.get_coach(conn, cohort.coach_id) if cohort.coach_id else None
    defaults = resolve_plan_variables(plan, {})
    questions = [
        Question(name, _label(name), format_clock(defaults[name]))
        for name in sorted(plan.variables)
    ]
    per_day = confirmation.most_per_day([plan])
    return JoinPage(cohort, plan, coach.name if coach else None, questions,
                    confirmation.frequency(per_day))  # fmt: skip


def _printable(text: str) -> str:
    """What was typed, as it can be shown back: no control characters, not too long."""
    return re.sub(r"[\x00-\x1f\x7f]", "", text).strip()[:40]


@cache
def _countries() -> dict[str, str]:
    """Time zone -> the country it is in (tzdata's zone.tab), for reading a number
    written without its country code on the sign-up page."""
    try:
        text = resources.files("tzdata").joinpath("zoneinfo/zone.tab").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return {}
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            parts = line.split("\t")
            if len(parts) >= 3:
                found[parts[2]] = parts[0]
    return found


def country_of(zone: str) -> str | None:
    return _countries().get(zone)


def _checked(
    plan: Plan,
    *,
    name: str,
    phone: str,
    email: str,
    timezone: str,
    variables: Mapping[str, str],
    language: str,
) -> dict[str, Any]:
    try:
        number = validate.phone(phone, country_of(timezone.strip()))
    except validate.Invalid:
        raise Invalid(
            f"'{_printable(phone)}' is not a valid phone number; write your mobile number "
            "with its area code, like (312) 555-0190, or with your country's code, like "
            "+44 7700 900123"
        ) from None
    try:
        out: dict[str, Any] = {
            "name": validate.name(name),
            "phone": number,
            "email": validate.email(email) if email.strip() else None,
            "timezone": validate.zone(timezone),
        }
    except validate.Invalid as exc:
        raise Invalid(str(exc)) from None
    times: dict[str, str] = {}
    for key, value in variables.items():
        if key not in plan.variables or not value.strip():
            continue
        if not CLOCK_TIME.match(value.strip()):
            raise Invalid(f"write a time like 06:30 for \u201c{_label(key)}\u201d")
        times[key] = value.strip()
    out["variables"] = times
    out["language"] = language if language in LANGUAGES else None
    return out


def sign_up(
    runtime: Runtime,
    token: str,
    *,
    name: str,
    phone: str,
    email: str = "",
    timezone: str,
    variables: Mapping[str, str] | None = None,
    language: str = "",
    address: str | None = None,
) -> str:
    """A sign-up from the page: checked (Invalid says what to write instead), limited
    per address (Throttled), and then answered with the same words whatever Tend knows
    of the number; only a number that may be asked gets the text asking YES."""
    now = runtime.clock.now()
    with reading(runtime.engine) as conn:
        cohort, plan = _joinable(conn, runtime, token)
        subject = f"signup:{address or 'unknown'}"
        if coach_rows.failures_since(conn, subject, now - THROTTLE_WINDOW) >= MAX_PER_ADDRESS:
            raise Throttled("too many sign-ups from here; try again in an hour")
    given = _checked(plan, name=name, phone=phone, email=email, timezone=timezone,
                     variables=variables or {}, language=language)  # fmt: skip
    secret = runtime.secret  # before the transaction (in development it may write)
    with transaction(runtime.engine) as conn:
        coach_rows.add_failure(conn, [subject], now)  # counts toward the limit
        _ask(conn, secret, cohort, given, PAGE_SOURCE, now)
    return SENT


def _ask(
    conn: Connection,
    secret: bytes,
    cohort: Cohort,
    given: Mapping[str, Any],
    source: str,
    now: datetime,
) -> Signup | None:
    """Keep the sign-up and have the confirmation asking YES sent, when the number may
    be asked; None (and nothing done) when it may not."""
    phone = str(given["phone"])
    if participant_rows.find_participant_by_phone(conn, phone) is not None:
        log.info("sign-up for a number in Tend already; nothing sent", cohort=cohort.id)
        return None
    if consent.number_suppressed(conn, secret, phone):
        log.info("sign-up for a number that opted out; nothing sent", cohort=cohort.id)
        return None
    waiting = signup_rows.pending_for(conn, phone, now)
    if waiting is not None:
        log.info("sign-up for a number already asked; nothing sent", cohort=cohort.id)
        return None
    signup_rows.remove_for_phone(conn, phone)  # an expired one not yet forgotten
    signup = signup_rows.add_signup(
        conn, cohort_id=cohort.id, name=given["name"], phone=phone, email=given.get("email"),
        timezone=given["timezone"], variables=given.get("variables") or {},
        language=given.get("language"), source=source, now=now, expires_at=now + LIFETIME,
    )  # fmt: skip
    summary_rows.add(
        conn, [summary_rows.Wanted(SummaryKind.JOIN, signup.id, now.date(), Channel.SMS, now)],
        now=now,
    )  # fmt: skip
    log.info("sign-up kept; asking YES", signup=signup.id, cohort=cohort.id)
    return signup


def forget_expired(runtime: Runtime) -> int:
    """Forget the sign-ups whose 48 hours passed with no YES (the scheduler's upkeep)."""
    with transaction(runtime.engine) as conn:
        gone = signup_rows.remove_expired(conn, runtime.clock.now())
    if gone:
        log.info("unconfirmed sign-ups forgotten", count=gone)
    return gone


# --- by text -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Texted:
    """What a text from someone joining led to: the answer to send, what it was taken
    to mean, and the participant it made (on YES)."""

    answer: str | None
    understood: str
    detail: str
    participant: Participant | None = None


def handle_text(
    runtime: Runtime,
    conn: Connection,
    secret: bytes,
    sender: str,
    body: str,
    known: Participant | None,
    now: datetime,
) -> Texted | None:
    """A text that is about joining: `JOIN <keyword>`, or YES (or STOP) from a number
    waiting to confirm. None for any other text (the usual handling goes on)."""
    joining = JOIN.match(body)
    if joining and known is None:
        return _join_by_text(runtime, conn, secret, sender, joining.group(1).upper(), now)
    if joining and known is not None:
        cohort = cohort_rows.cohort_by(conn, keyword=joining.group(1).upper())
        if cohort is not None:
            answer = runtime.catalog.renderer.answer(
                "join_known",
                {
                    "participant": {"first_name": Person(known.name).first_name},
                    LANGUAGE: wording.language_of(runtime, known),
                },
            )
            return Texted(answer, "join", "JOIN from a participant; nothing changed")
        return None
    if known is not None:
        return None
    waiting = signup_rows.pending_for(conn, sender, now, lock=True)
    if waiting is None:
        return None
    word = body.strip().strip(".!").lower()
    if word in YES:
        return _confirm(runtime, conn, secret, waiting, now)
    if parse_reply(body).kind == "opt_out":  # STOP and its synonyms, as everywhere
        consent.suppress_number(conn, secret, sender, now)
        signup_rows.remove(conn, waiting.id)
        log.info("sign-up stopped before it was confirmed", signup=waiting.id)
        return Texted(None, "opt_out", "STOP before confirming a sign-up: forgotten")
    return None


def _zone_for(conn: Connection, runtime: Runtime, cohort: Cohort) -> str:
    """A time zone for someone who joined by text (they can change it later): the one
    most of the cohort's people have, else the coach's, else the deployment's."""
    ids = cohort_rows.member_ids(conn, cohort.id)
    people = participant_rows.participant_zones(conn, ids) if ids else {}
    if not people and cohort.coach_id:
        theirs = participant_rows.list_participants(conn, coach_id=cohort.coach_id)
        people = {p.id: p.timezone for p in theirs}
    common = Counter(people.values()).most_common(1)
    return common[0][0] if common else runtime.settings.digest_timezone


def _join_by_text(
    runtime: Runtime, conn: Connection, secret: bytes, sender: str, keyword: str, now: datetime
) -> Texted | None:
    cohort = cohort_rows.cohort_by(conn, keyword=keyword)
    plan = runtime.plans.get(cohort.plan_id) if cohort and cohort.plan_id else None
    if cohort is None or plan is None:
        return None
    name = f"Texter {sender[-4:]}"
    given = {"name": name, "phone": sender, "timezone": _zone_for(conn, runtime, cohort)}
    signup = _ask(conn, secret, cohort, given, f"sms:JOIN {keyword}", now)
    if signup is None:
        return Texted(None, "join", f"JOIN {keyword}: asked already or may not be asked")
    return Texted(None, "join", f"JOIN {keyword}: kept the sign-up, asking YES")


def _confirm(
    runtime: Runtime, conn: Connection, secret: bytes, signup: Signup, now: datetime
) -> Texted:
    """YES from a number that signed up: the person becomes a participant of the
    cohort's coach, in the cohort, enrolled in its plan from today; the consent log
    keeps how they signed up and when they confirmed."""
    cohort = cohort_rows.get_cohort(conn, signup.cohort_id)
    plan = runtime.plans.get(cohort.plan_id) if cohort.plan_id else None
    if plan is None:
        signup_rows.remove(conn, signup.id)
        return Texted(None, "join", "YES to a sign-up whose cohort has no plan any more")
    person = participant_rows.add_participant(
        conn, name=signup.name, timezone=signup.timezone, now=now, phone=signup.phone,
        email=signup.email, variables=signup.variables, coach_id=cohort.coach_id,
        cohort_id=cohort.id, language=signup.language, welcomed_at=signup.asked_at or now,
    )  # fmt: skip
    participant_rows.log_consent(
        conn, person.id, channel=Channel.SMS, action=ConsentAction.CONSENT,
        source=signup.source[:64], now=signup.created_at,
        detail=f"signed up {signup.created_at.isoformat()}",
    )  # fmt: skip
    participant_rows.log_consent(
        conn,
        person.id,
        channel=Channel.SMS,
        action=ConsentAction.CONFIRM,
        source="sms:YES",
        now=now,
    )
    signup_rows.remove(conn, signup.id)
    enrollment = enroll_in(conn, runtime, person, plan, "today", {}, now)
    first = occurrence_rows.upcoming(conn, enrollment.id, limit=1)
    when = None
    language = wording.language_of(runtime, person)
    if first:
        when = wording.moment_text(runtime, person, first[0]["instant"])
    answer = runtime.catalog.renderer.answer(
        "joined",
        {"participant": {"name": person.name, "first_name": Person(person.name).first_name},
         "program": local_text(plan.title, language) or plan.title, "first": when,
         LANGUAGE: language},
    )  # fmt: skip
    log.info("sign-up confirmed", participant=person.id, cohort=cohort.id, plan=plan.id)
    return Texted(answer, "joined", f"YES: joined {cohort.id}, enrolled in {plan.id}", person)
