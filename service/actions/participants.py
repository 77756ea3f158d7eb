"""Participants: adding one, changing their details (which moves the reminders still
ahead when their time zone or variables change), and their calendar feed's URL."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from service.actions import links
from service.actions.enrollments import replan_participant
from service.actions.errors import Conflict, Invalid, action
from service.core import validate
from service.core.records import Participant
from service.runtime import Runtime
from service.storage import participants as participant_rows
from service.storage.db import reading, transaction

log = structlog.get_logger("tend.participants")

FIELDS = ("name", "phone", "email", "timezone", "variables")


def _checked(values: Mapping[str, Any]) -> dict[str, Any]:
    """The given fields, each checked and put in its stored form (a phone in E.164, a
    zone by its IANA name); None clears an optional one."""
    checks: dict[str, Callable[[Any], Any]] = {
        "name": validate.name,
        "phone": validate.phone,
        "email": validate.email,
        "timezone": validate.zone,
        "variables": validate.variables,
    }
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in checks:
            raise Invalid(f"a participant has no field '{key}'")
        if value is None and key in ("phone", "email"):
            out[key] = None
            continue
        if value is None:
            raise Invalid(f"{key} cannot be empty")
        try:
            out[key] = checks[key](value)
        except validate.Invalid as exc:
            raise Invalid(str(exc)) from None
    return out


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
) -> Participant:
    """Add a participant. Conflict when another has the phone number."""
    given = {"name": name, "timezone": timezone, "variables": dict(variables or {})}
    given.update({k: v for k, v in (("phone", phone), ("email", email)) if v})
    checked = _checked(given)
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
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
            )
        except participant_rows.PhoneTaken:  # added meanwhile by another request
            raise _phone_taken(number or "") from None
    log.info("participant added", participant=person.id)
    return person


@action
def update(runtime: Runtime, participant_id: str, changes: Mapping[str, Any]) -> Participant:
    """Change only the fields given. A new time zone or new variables re-plan the
    reminders still ahead of the participant's active and paused enrollments in the same
    transaction: when one cannot follow, nothing changes and the error says why."""
    values = _checked(changes)
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        before = participant_rows.get_participant(conn, participant_id, lock=True)
        phone = values.get("phone")
        if phone is not None and phone != before.phone:
            other = participant_rows.find_participant_by_phone(conn, phone)
            if other is not None:
                raise _phone_taken(phone, other.id)
        if values:
            try:
                participant_rows.update_participant(conn, participant_id, **values)
            except participant_rows.PhoneTaken:
                raise _phone_taken(phone or "") from None
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
def feed(runtime: Runtime, participant_id: str) -> Feed:
    """The participant's calendar subscription URL, as it stands."""
    with reading(runtime.engine) as conn:
        person = participant_rows.get_participant(conn, participant_id)
    return Feed(
        person.id, person.feed_version, links.feed_link(runtime, person.id, person.feed_version)
    )


@action
def rotate_feed(runtime: Runtime, participant_id: str) -> Feed:
    """A new calendar subscription URL; the old one stops working at once."""
    with transaction(runtime.engine) as conn:
        version = participant_rows.rotate_feed(conn, participant_id)
    log.info("feed rotated", participant=participant_id, version=version)
    return Feed(participant_id, version, links.feed_link(runtime, participant_id, version))
