"""Participants and their consent: the rows, the consent log, and what an opt-out,
an opt-in, an unsubscribe or a pause does to the deliveries still to go.

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from service.core.consent import Refusal
from service.core.quiet import QUIET_NOTE
from service.core.records import Participant
from service.core.states import (
    WAITING_STATES,
    Channel,
    ConsentAction,
    DeliveryState,
    EnrollmentStatus,
    OccurrenceState,
    SmsState,
    SmsStatus,
)
from service.storage.db import NotFound, fetch_page, new_id, record
from service.storage.tables import (
    coaches,
    consent_log,
    deliveries,
    enrollments,
    occurrences,
    participants,
)

# The notes on deliveries that consent stopped (restored by their note on opting back in).
OPTED_OUT_NOTE = Refusal.OPTED_OUT.value
UNSUBSCRIBED_NOTE = Refusal.UNSUBSCRIBED.value


class PhoneTaken(ValueError):
    """Another participant has that phone number (numbers are unique)."""


def participant_from_row(row: RowMapping) -> Participant:
    """A participant from a row of the participants table (or its columns by name)."""
    return record(
        Participant,
        row,
        variables=dict(row["variables"] or {}),
        sms_state=SmsState(row["sms_state"]),
        created_at=row.get("created_at"),
    )


def add_participant(
    conn: Connection,
    *,
    name: str,
    timezone: str,
    now: datetime,
    phone: str | None = None,
    email: str | None = None,
    variables: Mapping[str, str] | None = None,
    coach_id: str | None = None,
    cohort_id: str | None = None,
    language: str | None = None,
    welcomed_at: datetime | None = None,
    discreet: bool = False,
    quiet_hours: str | None = None,
) -> Participant:
    """Add a participant (`quiet_hours` in its stored form: `core.quiet.stored_form`).
    PhoneTaken when another one has the phone number (added meanwhile: check first with
    `find_participant_by_phone`); the transaction must then be rolled back, or the call
    made in a savepoint."""
    participant_id = new_id("p")
    try:
        conn.execute(
            insert(participants).values(
                id=participant_id,
                name=name,
                phone=phone,
                email=email,
                timezone=timezone,
                variables=dict(variables or {}),
                sms_state=SmsState.SUBSCRIBED,
                email_unsubscribed=False,
                feed_version=1,
                created_at=now,
                coach_id=coach_id,
                cohort_id=cohort_id,
                language=language,
                welcomed_at=welcomed_at,
                discreet=discreet,
                quiet_hours=quiet_hours,
            )
        )
    except IntegrityError as exc:
        if phone is None:
            raise
        raise PhoneTaken(f"a participant with phone {phone} exists already") from exc
    return get_participant(conn, participant_id)


def owned_by(query: Any, coach_id: str | None) -> Any:
    """`query` (over the participants table) narrowed to the participants of `coach_id`;
    unchanged when it is None (an admin or the operator: everyone)."""
    return query if coach_id is None else query.where(participants.c.coach_id == coach_id)


def coach_participant_ids(coach_id: str) -> Any:
    """A subquery: the ids of the coach's participants (for `column.in_(...)`)."""
    return select(participants.c.id).where(participants.c.coach_id == coach_id)


def get_participant(
    conn: Connection, participant_id: str, *, lock: bool = False, coach_id: str | None = None
) -> Participant:
    """The participant; `lock` holds their row to the end of the transaction (PostgreSQL;
    SQLite's writers take turns anyway). With `coach_id`, another coach's participant
    is NotFound with the very words a missing one gets."""
    query = owned_by(select(participants).where(participants.c.id == participant_id), coach_id)
    found = conn.execute(query.with_for_update() if lock else query).mappings().first()
    if found is None:
        raise NotFound(f"no participant '{participant_id}'")
    return participant_from_row(found)


# Every inbound text starts here: one statement, built once.
_BY_PHONE = select(participants).where(participants.c.phone == bindparam("phone"))


_BY_PHONE_LOCKED = _BY_PHONE.with_for_update()


def find_participant_by_phone(
    conn: Connection, phone: str, *, lock: bool = False
) -> Participant | None:
    """The participant with this number. `lock`: hold their row until the transaction
    ends (PostgreSQL; SQLite's writers take turns anyway), so that two texts from one
    person are handled one after the other."""
    statement = _BY_PHONE_LOCKED if lock else _BY_PHONE
    found = conn.execute(statement, {"phone": phone}).mappings().first()
    return participant_from_row(found) if found else None


def list_participants(conn: Connection, *, coach_id: str | None = None) -> list[Participant]:
    """Participants, oldest first (only `coach_id`'s when given)."""
    query = select(participants).order_by(participants.c.created_at, participants.c.id)
    rows = conn.execute(owned_by(query, coach_id))
    return [participant_from_row(r) for r in rows.mappings()]


def welcomed(conn: Connection, participant_id: str, now: datetime) -> None:
    """The confirmation SMS went to the participant's number: they may be texted now."""
    conn.execute(
        update(participants)
        .where(participants.c.id == participant_id)
        .where(participants.c.welcomed_at.is_(None))
        .values(welcomed_at=now)
    )
    log_consent(conn, participant_id, channel=Channel.SMS, action=ConsentAction.WELCOME,
                source="confirmation", now=now)  # fmt: skip


def update_participant(conn: Connection, participant_id: str, **values: Any) -> None:
    """Set these columns of the participant's row (name, phone, email, timezone,
    variables, language, discreet, quiet_hours...), in a savepoint. PhoneTaken when
    another participant has the new phone number; the transaction can go on then."""
    try:
        with conn.begin_nested():
            conn.execute(
                update(participants).where(participants.c.id == participant_id).values(**values)
            )
    except IntegrityError as exc:
        if values.get("phone") is None:
            raise
        raise PhoneTaken(f"a participant with phone {values['phone']} exists already") from exc


def participant_page(
    conn: Connection,
    *,
    now: datetime,
    limit: int,
    offset: int,
    name: str | None = None,
    sms: str | None = None,
    plan_id: str | None = None,
    status: str | None = None,
    coach_id: str | None = None,
    cohort_id: str | None = None,
) -> tuple[list[Participant], int]:
    """A page of participants, oldest first, and how many match in all. Filters: part of
    the name (any case); the SMS state at `now` ("subscribed", "paused", "opted_out");
    an enrollment in `plan_id` and/or in `status`; the participants of `coach_id`; the
    members of `cohort_id`."""
    query = owned_by(
        select(participants).order_by(participants.c.created_at, participants.c.id), coach_id
    )
    if name:
        query = query.where(participants.c.name.icontains(name.strip(), autoescape=True))
    if cohort_id is not None:
        query = query.where(participants.c.cohort_id == cohort_id)
    if sms == SmsStatus.OPTED_OUT:
        query = query.where(participants.c.sms_state == SmsState.OPTED_OUT)
    elif sms is not None:
        paused = and_(participants.c.paused_until.is_not(None), participants.c.paused_until > now)
        query = query.where(participants.c.sms_state == SmsState.SUBSCRIBED)
        query = query.where(paused if sms == SmsStatus.PAUSED else ~paused)
    if plan_id is not None or status is not None:
        member = select(enrollments.c.id).where(enrollments.c.participant_id == participants.c.id)
        if plan_id is not None:
            member = member.where(enrollments.c.plan_id == plan_id)
        if status is not None:
            member = member.where(enrollments.c.status == status)
        query = query.where(exists(member))
    rows, total = fetch_page(conn, query, limit, offset)
    return [participant_from_row(r) for r in rows], total


def owners(conn: Connection) -> tuple[set[str], set[str]]:
    """(the enabled accounts that own participants, the ids of the participants who have
    no enabled coach: none, or one whose account is disabled)."""
    rows = conn.execute(
        select(participants.c.id, participants.c.coach_id, coaches.c.disabled).select_from(
            participants.outerjoin(coaches, coaches.c.id == participants.c.coach_id)
        )
    ).all()
    coached = [r for r in rows if r.coach_id is not None and r.disabled is not None]
    owning = {r.coach_id for r in coached if not r.disabled}
    orphans = {r.id for r in rows} - {r.id for r in coached if not r.disabled}
    return owning, orphans


def participant_zones(conn: Connection, participant_ids: Sequence[str]) -> dict[str, str]:
    """The time zone of each of these participants, by id (those that exist)."""
    if not participant_ids:
        return {}
    rows = conn.execute(
        select(participants.c.id, participants.c.timezone).where(
            participants.c.id.in_(sorted(set(participant_ids)))
        )
    )
    return {row.id: row.timezone for row in rows}


def rotate_feed(conn: Connection, participant_id: str) -> int:
    result = conn.execute(
        update(participants)
        .where(participants.c.id == participant_id)
        .values(feed_version=participants.c.feed_version + 1)
        .returning(participants.c.feed_version)
    ).scalar()
    if result is None:
        raise NotFound(f"no participant '{participant_id}'")
    return int(result)


def log_consent(
    conn: Connection,
    participant_id: str,
    *,
    channel: Channel,
    action: ConsentAction,
    source: str,
    now: datetime,
    detail: str | None = None,
) -> None:
    conn.execute(
        insert(consent_log).values(
            participant_id=participant_id,
            channel=channel,
            action=action,
            source=source,
            detail=detail,
            at=now,
        )
    )


def opted_out_between(
    conn: Connection, since: datetime, until: datetime, *, coach_id: str | None = None
) -> set[str]:
    """Participants (of `coach_id`, when given) who opted out of SMS in [since, until)."""
    query = (
        select(consent_log.c.participant_id)
        .where(consent_log.c.channel == Channel.SMS)
        .where(consent_log.c.action == ConsentAction.OPT_OUT)
        .where(consent_log.c.at >= since)
        .where(consent_log.c.at < until)
        .distinct()
    )
    rows = conn.execute(_consent_of(query, coach_id))
    return {r[0] for r in rows}


def _consent_of(query: Any, coach_id: str | None) -> Any:
    """`query` over the consent log narrowed to `coach_id`'s participants (None: all)."""
    if coach_id is None:
        return query
    return query.where(consent_log.c.participant_id.in_(coach_participant_ids(coach_id)))


def consent_history(
    conn: Connection, participant_id: str, *, coach_id: str | None = None
) -> list[dict[str, Any]]:
    """The participant's consent log, oldest first (empty for another coach's)."""
    query = (
        select(consent_log)
        .where(consent_log.c.participant_id == participant_id)
        .order_by(consent_log.c.at, consent_log.c.id)
    )
    rows = conn.execute(_consent_of(query, coach_id))
    return [dict(r) for r in rows.mappings()]


def consent_page(
    conn: Connection,
    *,
    limit: int,
    offset: int,
    participant_id: str | None = None,
    coach_id: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the consent log (of one participant, or everyone's; only `coach_id`'s
    participants when given), oldest first, and how many entries there are in all."""
    query = _consent_of(select(consent_log).order_by(consent_log.c.at, consent_log.c.id), coach_id)
    if participant_id is not None:
        query = query.where(consent_log.c.participant_id == participant_id)
    rows, total = fetch_page(conn, query, limit, offset)
    return [dict(r) for r in rows], total


def _set_sms_consent(
    conn: Connection,
    participant_id: str,
    state: SmsState,
    action: ConsentAction,
    *,
    source: str,
    now: datetime,
) -> None:
    """Set the participant's SMS state, and log the change in the consent log."""
    conn.execute(
        update(participants).where(participants.c.id == participant_id).values(sms_state=state)
    )
    log_consent(conn, participant_id, channel=Channel.SMS, action=action, source=source, now=now)


def opt_out_sms(conn: Connection, participant_id: str, *, source: str, now: datetime) -> int:
    """Record an SMS opt-out and cancel every unsent SMS; returns how many were cancelled."""
    _set_sms_consent(
        conn, participant_id, SmsState.OPTED_OUT, ConsentAction.OPT_OUT, source=source, now=now
    )
    return _cancel_channel(conn, participant_id, Channel.SMS, now, OPTED_OUT_NOTE)


def opt_in_sms(conn: Connection, participant_id: str, *, source: str, now: datetime) -> int:
    """Record an SMS opt-in; reminders still ahead that the opt-out cancelled come back."""
    _set_sms_consent(
        conn, participant_id, SmsState.SUBSCRIBED, ConsentAction.OPT_IN, source=source, now=now
    )
    return restore_deliveries(
        conn, now, OPTED_OUT_NOTE, participant_id=participant_id, channels=(Channel.SMS,)
    )


def _participant_deliveries(participant_id: str) -> Any:
    return (
        select(deliveries.c.id)
        .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
        .join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
        .where(enrollments.c.participant_id == participant_id)
    )


def _cancel_channel(
    conn: Connection, participant_id: str, channel: Channel, now: datetime, note: str
) -> int:
    """Cancel every unsent delivery of `channel` for the participant, with `note`."""
    ids = _participant_deliveries(participant_id).where(deliveries.c.channel == channel)
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(ids.scalar_subquery()))
        .where(deliveries.c.state.in_(WAITING_STATES))
        .values(state=DeliveryState.CANCELLED, last_error=note, lease_until=None, updated_at=now)
    )
    return int(result.rowcount or 0)


def restore_deliveries(
    conn: Connection,
    now: datetime,
    note: str,
    *,
    participant_id: str | None = None,
    enrollment_id: str | None = None,
    channels: tuple[str, ...] | None = None,
) -> int:
    """Cancelled deliveries still ahead, cancelled for `note`, become pending again."""
    ids = (
        select(deliveries.c.id)
        .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
        .join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
        .where(occurrences.c.state == OccurrenceState.SCHEDULED)
        .where(enrollments.c.status == EnrollmentStatus.ACTIVE)
    )
    if participant_id is not None:
        ids = ids.where(enrollments.c.participant_id == participant_id)
    if enrollment_id is not None:
        ids = ids.where(enrollments.c.id == enrollment_id)
    if channels is not None:
        ids = ids.where(deliveries.c.channel.in_(channels))
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(ids.scalar_subquery()))
        .where(deliveries.c.state == DeliveryState.CANCELLED)
        .where(deliveries.c.last_error == note)
        .where(deliveries.c.due_at > now)
        .values(state=DeliveryState.PENDING, last_error=None, updated_at=now)
    )
    return int(result.rowcount or 0)


def email_unsubscribed(conn: Connection, participant_id: str) -> bool | None:
    """Whether the participant unsubscribed from email; None when there is no such one."""
    row = conn.execute(
        select(participants.c.email_unsubscribed).where(participants.c.id == participant_id)
    ).first()
    return None if row is None else bool(row[0])


def unsubscribe_email(
    conn: Connection, participant_id: str, *, source: str, now: datetime, detail: str | None = None
) -> int:
    """Unsubscribe the participant from email and cancel their unsent reminder emails;
    returns how many were cancelled. The consent log records the change once: asking
    again changes nothing and logs nothing. An email already being sent goes out."""
    changed = conn.execute(
        update(participants)
        .where(participants.c.id == participant_id)
        .where(participants.c.email_unsubscribed.is_(False))
        .values(email_unsubscribed=True)
    ).rowcount
    if changed:
        log_consent(
            conn,
            participant_id,
            channel=Channel.EMAIL,
            action=ConsentAction.OPT_OUT,
            source=source,
            now=now,
            detail=detail,
        )
    return _cancel_channel(conn, participant_id, Channel.EMAIL, now, UNSUBSCRIBED_NOTE)


def set_sms_pause(
    conn: Connection, participant_id: str, until: datetime | None, *, source: str, now: datetime
) -> None:
    conn.execute(
        update(participants).where(participants.c.id == participant_id).values(paused_until=until)
    )
    action = ConsentAction.PAUSE if until is not None else ConsentAction.RESUME
    detail = until.isoformat() if until is not None else None
    log_consent(
        conn,
        participant_id,
        channel=Channel.SMS,
        action=action,
        source=source,
        now=now,
        detail=detail,
    )


def add_participants(
    conn: Connection, rows: Sequence[Mapping[str, Any]], now: datetime
) -> list[Participant]:
    """Add many participants in one statement (an import), in the order given. Each row
    has `name` and `timezone`, and may have `phone`, `email`, `variables`, `coach_id`,
    `cohort_id`, `language`, `discreet` and `quiet_hours`. PhoneTaken when a number is
    another's (added meanwhile: check first with `find_participant_by_phone`); the
    transaction must then be rolled back."""
    values = [
        {
            "id": new_id("p"),
            "name": row["name"],
            "phone": row.get("phone"),
            "email": row.get("email"),
            "timezone": row["timezone"],
            "variables": dict(row.get("variables") or {}),
            "sms_state": SmsState.SUBSCRIBED,
            "paused_until": None,
            "email_unsubscribed": False,
            "feed_version": 1,
            "created_at": now,
            "coach_id": row.get("coach_id"),
            "cohort_id": row.get("cohort_id"),
            "language": row.get("language"),
            "welcomed_at": None,
            "discreet": bool(row.get("discreet", False)),
            "quiet_hours": row.get("quiet_hours"),
        }
        for row in rows
    ]
    if not values:
        return []
    try:
        conn.execute(insert(participants), values)
    except IntegrityError as exc:
        raise PhoneTaken("a phone number in the import is another participant's") from exc
    return [
        record(
            Participant, value, variables=dict(value["variables"]), sms_state=SmsState.SUBSCRIBED
        )
        for value in values
    ]


def participants_by_phone(conn: Connection, phones: Sequence[str]) -> dict[str, Participant]:
    """The participants who have these numbers, by number (those that exist)."""
    wanted = sorted(set(phones))
    found: dict[str, Participant] = {}
    for at in range(0, len(wanted), 500):  # bounded IN lists
        rows = conn.execute(
            select(participants).where(participants.c.phone.in_(wanted[at : at + 500]))
        )
        found.update((r["phone"], participant_from_row(r)) for r in rows.mappings())
    return found


def quiet_hours_deliveries(
    conn: Connection, participant_id: str, *, limit: int = 20
) -> list[dict[str, Any]]:
    """The participant's deliveries that quiet hours touched, newest first (by when they
    were first due): held until quiet hours ended (`held_from` set), or not sent because
    the check-in window closed inside them (cancelled with a note starting QUIET_NOTE).
    Each with its channel, kind, state, due_at, held_from, sent_at, last_error, and its
    occurrence's practice_id and instant, and the enrollment's plan_id."""
    first_due = func.coalesce(deliveries.c.held_from, deliveries.c.due_at)
    query = (
        select(
            deliveries.c.id,
            deliveries.c.channel,
            deliveries.c.kind,
            deliveries.c.state,
            deliveries.c.due_at,
            deliveries.c.held_from,
            deliveries.c.sent_at,
            deliveries.c.last_error,
            occurrences.c.practice_id,
            occurrences.c.instant,
            enrollments.c.plan_id,
        )
        .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
        .join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
        .where(enrollments.c.participant_id == participant_id)
        .where(
            or_(
                deliveries.c.held_from.is_not(None),
                and_(
                    deliveries.c.state == DeliveryState.CANCELLED,
                    deliveries.c.last_error.startswith(QUIET_NOTE, autoescape=True),
                ),
            )
        )
        .order_by(first_due.desc(), deliveries.c.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings()]
