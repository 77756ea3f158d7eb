"""Participants: adding one, changing their details (which moves the reminders still
ahead when their time zone or variables change) and their own settings (the language of
their texts, discreet texts, quiet hours: none of which needs a re-plan), and their
calendar feed's URL."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from service.actions import cohorts, consent, links
from service.actions.access import visible_participant
from service.actions.coaches import Actor
from service.actions.enrollments import replan_participant
from service.actions.errors import Conflict, Forbidden, Invalid, action
from service.core import language as languages
from service.core import quiet, validate
from service.core.records import Participant
from service.runtime import Runtime
from service.storage import coaches as coach_rows
from service.storage import participants as participant_rows
from service.storage import summaries as summary_rows
from service.storage.db import Connection, reading, transaction
from service.storage.db import NotFound as MissingRow

log = structlog.get_logger("tend.participants")

FIELDS = ("name", "phone", "email", "timezone", "variables", "language", "discreet",
          "quiet_hours")  # fmt: skip
# The participant's own settings: changing them moves no reminder.
SETTINGS = ("language", "discreet", "quiet_hours")
# The fields None clears: phone, email; language and quiet hours then follow the
# deployment's (TEND_DEFAULT_LANGUAGE, TEND_QUIET_HOURS).
CLEARABLE = ("phone", "email", "language", "quiet_hours")


def _checked(values: Mapping[str, Any]) -> dict[str, Any]:
    """The given fields, each checked and put in its stored form (a phone in E.164, a
    zone by its IANA name, a language tag in its usual case, quiet hours as HH:MM-HH:MM
    or "off"); None clears an optional one."""
    checks: dict[str, Callable[[Any], Any]] = {
        "name": validate.name,
        "phone": validate.phone,
        "email": validate.email,
        "timezone": validate.zone,
        "variables": validate.variables,
        "language": _language,
        "discreet": _discreet,
        "quiet_hours": _quiet_hours,
    }
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in checks:
            raise Invalid(f"a participant has no field '{key}'")
        if value is None and key in CLEARABLE:
            out[key] = None
            continue
        if value is None:
            raise Invalid(f"{key} cannot be empty")
        try:
            out[key] = checks[key](value)
        except validate.Invalid as exc:
            raise Invalid(str(exc)) from None
    return out


def _language(text: Any) -> str | None:
    """A language tag in its usual case (es-MX), or None (blank: the deployment's)."""
    if not isinstance(text, str):
        raise Invalid("language: write a language tag such as en, es or es-MX")
    if not text.strip():
        return None
    try:
        return languages.tag(text)
    except languages.NotATag as exc:
        raise Invalid(f"language: {exc}") from None


def _discreet(value: Any) -> bool:
    """Whether their texts never name the practice: true or false, nothing else."""
    if not isinstance(value, bool):
        raise Invalid("discreet: write true or false")
    return value


def _quiet_hours(text: Any) -> str | None:
    """Quiet hours as stored: "HH:MM-HH:MM", "off" for none at all, or None (blank) to
    follow the deployment's."""
    if not isinstance(text, str):
        raise Invalid(f"quiet hours: write them like {quiet.QUIET_EXAMPLE}, or off for none")
    if not text.strip():
        return None
    try:
        return quiet.stored_form(text)
    except quiet.Unreadable as exc:
        raise Invalid(f"quiet hours: {exc}") from None


def _owner(conn: Connection, actor: Actor | None, coach: str | None) -> str | None:
    """The coach a new participant belongs to: a coach's own; for an admin or the
    operator, `coach` when it names an account that is not disabled (else Invalid)."""
    if actor is not None and not actor.sees_all:
        if coach is not None and coach != actor.id:
            raise Forbidden("only an admin can give a participant to a coach")
        return actor.id
    if coach is None:
        return None
    try:
        account = coach_rows.get_coach(conn, coach)
    except MissingRow:
        raise Invalid(f"no coach '{coach}'") from None
    if account.disabled:
        raise Invalid(f"the account of coach '{coach}' is disabled")
    return account.id


def _phone_taken(phone: str, other: str | None = None) -> Conflict:
    return Conflict(
        f"a participant with phone {phone} exists already" + (f" ({other})" if other else "")
    )


@action
def create(
    runtime: Runtime,
    *,
    name: str,
    timezone: str,
    phone: str | None = None,
    email: str | None = None,
    variables: Mapping[str, str] | None = None,
    actor: Actor | None = None,
    coach: str | None = None,
    source: str = "cli",
    cohort: str | None = None,
    language: str | None = None,
    discreet: bool = False,
    quiet_hours: str | None = None,
) -> Participant:
    """Add a participant. Conflict when another has the phone number. Added by a
    coach (`actor`), they are that coach's; an admin or the operator may name their
    `coach` (a coach id), or leave them with none. The consent log records that they
    were added on the word of whoever added them (`source`: cli, api, dashboard), and
    who that was. `language` is a language tag (en, es, es-MX; None or empty: the
    deployment's default); `discreet`: their texts never name the practice;
    `quiet_hours`: "22:00-07:00" (or as `core.quiet.parse_quiet` reads it), "off" for
    none, None (or empty) for the deployment's."""
    given = {
        "name": name,
        "timezone": timezone,
        "variables": dict(variables or {}),
        "language": language,
        "discreet": discreet,
        "quiet_hours": quiet_hours,
    }
    given.update({k: v for k, v in (("phone", phone), ("email", email)) if v})
    checked = _checked(given)
    now = runtime.clock.now()
    secret = runtime.secret  # read before the transaction (in development it may write)
    with transaction(runtime.engine) as conn:
        owner = _owner(conn, actor, coach)
        # The actor's cohort of that name (made when there is none).
        group = cohorts.named(conn, runtime, actor, cohort) if cohort else None
        number = checked.get("phone")
        if number and participant_rows.find_participant_by_phone(conn, number):
            raise _phone_taken(number)
        try:
            person = participant_rows.add_participant(
                conn,
                name=checked["name"],
                phone=number,
                email=checked.get("email"),
                timezone=checked["timezone"],
                variables=checked["variables"],
                now=now,
                coach_id=owner,
                cohort_id=group.id if group else None,
                language=checked["language"],
                discreet=checked["discreet"],
                quiet_hours=checked["quiet_hours"],
            )
        except participant_rows.PhoneTaken:  # added meanwhile by another request
            raise _phone_taken(number or "") from None
        consent.added_by_coach(conn, person, actor, source=source, now=now)
        if consent.keep_opted_out(conn, secret, person, now=now):
            person = participant_rows.get_participant(conn, person.id)
    log.info("participant added", participant=person.id)
    return person


@action
def update(
    runtime: Runtime,
    participant_id: str,
    changes: Mapping[str, Any],
    *,
    actor: Actor | None = None,
) -> Participant:
    """Change only the fields given (of FIELDS). A new time zone or new variables re-plan
    the reminders still ahead of the participant's active and paused enrollments in the
    same transaction: when one cannot follow, nothing changes and the error says why.
    Their settings (`language`, `discreet`, `quiet_hours`: None for the deployment's)
    re-plan nothing: the worker reads them when it sends.
    `changes` may hold `coach` (a coach id, or None for none): admins only. A coach
    (`actor`) changes only their own participants (another's is NotFound)."""
    given = dict(changes)
    reassign = "coach" in given
    coach = given.pop("coach", None)
    values = _checked(given)
    now = runtime.clock.now()
    secret = runtime.secret  # read before the transaction (in development it may write)
    with transaction(runtime.engine) as conn:
        before = visible_participant(conn, actor, participant_id, lock=True)
        if reassign:
            if actor is not None and not actor.sees_all:
                raise Forbidden("only an admin can give a participant to another coach")
            values["coach_id"] = _owner(conn, actor, coach)
        phone = values.get("phone")
        if phone is not None and phone != before.phone:
            other = participant_rows.find_participant_by_phone(conn, phone)
            if other is not None:
                # Another coach's participant is not named (numbers are unique to all).
                mine = actor is None or actor.coach_id in (None, other.coach_id)
                raise _phone_taken(phone, other.id if mine else None)
        if "phone" in values and values["phone"] != before.phone:
            values["welcomed_at"] = None  # a new number gets its own confirmation first
            summary_rows.forget_welcome(conn, participant_id)
        if values:
            try:
                participant_rows.update_participant(conn, participant_id, **values)
            except participant_rows.PhoneTaken:
                raise _phone_taken(phone or "") from None
        after = participant_rows.get_participant(conn, participant_id)
        if after.phone != before.phone and consent.keep_opted_out(conn, secret, after, now=now):
            after = participant_rows.get_participant(conn, participant_id)
        if (after.timezone, after.variables) != (before.timezone, before.variables):
            replan_participant(runtime, conn, after, now)
    log.info("participant changed", participant=participant_id, fields=sorted(values))
    return after


@dataclass(frozen=True, slots=True)
class Feed:
    participant_id: str
    version: int
    url: str

    @property
    def webcal(self) -> str:
        return links.webcal_link(self.url)


@action
def feed(runtime: Runtime, participant_id: str, *, actor: Actor | None = None) -> Feed:
    """The participant's calendar subscription URL, as it stands."""
    with reading(runtime.engine) as conn:
        person = visible_participant(conn, actor, participant_id)
    return Feed(
        person.id, person.feed_version, links.feed_link(runtime, person.id, person.feed_version)
    )


@action
def rotate_feed(runtime: Runtime, participant_id: str, *, actor: Actor | None = None) -> Feed:
    """A new calendar subscription URL; the old one stops working at once."""
    with transaction(runtime.engine) as conn:
        visible_participant(conn, actor, participant_id, lock=True)
        version = participant_rows.rotate_feed(conn, participant_id)
    log.info("feed rotated", participant=participant_id, version=version)
    return Feed(participant_id, version, links.feed_link(runtime, participant_id, version))
