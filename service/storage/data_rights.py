"""A person's data as a whole: everything held about one participant (an export), all of
it removed (an erasure), and old message texts cleared (retention).

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    delete,
    exists,
    false,
    func,
    null,
    or_,
    select,
    update,
)

from service.core.states import LIVE_STATUSES, EnrollmentStatus
from service.storage.tables import (
    consent_log,
    deliveries,
    enrollments,
    invitations,
    occurrences,
    outbox,
    participants,
    replies,
    signups,
    summaries,
)

ENDED_STATUSES = (EnrollmentStatus.FINISHED, EnrollmentStatus.CANCELLED)
ERASED = "[erased]"  # in place of an erased person's name in messages to others


def _rows(conn: Connection, query: Select[Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(query).mappings()]


def _enrollment_ids(participant_id: str) -> Select[Any]:
    return select(enrollments.c.id).where(enrollments.c.participant_id == participant_id)


def _occurrence_ids(participant_id: str) -> Select[Any]:
    return select(occurrences.c.id).where(
        occurrences.c.enrollment_id.in_(_enrollment_ids(participant_id))
    )


def _delivery_ids(participant_id: str) -> Select[Any]:
    return select(deliveries.c.id).where(
        deliveries.c.occurrence_id.in_(_occurrence_ids(participant_id))
    )


def _addressed_to(phone: str | None, email: str | None) -> ColumnElement[bool]:
    """Outbox rows sent to this number or address."""
    recipients = [r for r in (phone, email) if r]
    return outbox.c.recipient.in_(recipients) if recipients else false()


def _their_outbox(participant_id: str, phone: str | None, email: str | None) -> Any:
    return or_(
        outbox.c.delivery_id.in_(_delivery_ids(participant_id)),
        _addressed_to(phone, email),
    )


def _their_replies(participant_id: str, phone: str | None) -> Any:
    theirs = replies.c.participant_id == participant_id
    return or_(theirs, replies.c.sender == phone) if phone else theirs


def _their_signups(phone: str | None, email: str | None) -> Any:
    found = [signups.c.phone == phone] if phone else []
    found += [signups.c.email == email] if email else []
    return or_(*found) if found else false()


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _naming(name: str) -> ColumnElement[bool]:
    """Messages whose text names the person in full (a coach's weekly digest, say)."""
    pattern = f"%{_escaped(name)}%"
    texts = (outbox.c.subject, outbox.c.body, outbox.c.html)
    return or_(*(column.like(pattern, escape="\\") for column in texts))


def _name_struck(name: str) -> dict[str, Any]:
    """The values that put ERASED in place of the name in a message's texts."""
    texts = (outbox.c.subject, outbox.c.body, outbox.c.html)
    return {column.name: func.replace(column, name, ERASED) for column in texts}


def participant_data(
    conn: Connection, participant_id: str, phone: str | None, email: str | None
) -> dict[str, Any]:
    """Every row held about the participant, by table, oldest first: their row, consent
    log, enrollments, occurrences (with check-ins), deliveries, invitations, replies
    (theirs, and any from their number), messages to their number or address or of
    their deliveries, weekly summaries of their enrollments, and unconfirmed sign-ups
    with their number or address. Values as the database holds them."""
    person = _rows(conn, select(participants).where(participants.c.id == participant_id))
    enrollment_ids = _enrollment_ids(participant_id)
    return {
        "participant": person[0] if person else None,
        "consent_log": _rows(
            conn,
            select(consent_log)
            .where(consent_log.c.participant_id == participant_id)
            .order_by(consent_log.c.at, consent_log.c.id),
        ),
        "enrollments": _rows(
            conn,
            select(enrollments)
            .where(enrollments.c.participant_id == participant_id)
            .order_by(enrollments.c.created_at, enrollments.c.id),
        ),
        "occurrences": _rows(
            conn,
            select(occurrences)
            .where(occurrences.c.enrollment_id.in_(enrollment_ids))
            .order_by(occurrences.c.instant, occurrences.c.id),
        ),
        "deliveries": _rows(
            conn,
            select(deliveries)
            .where(deliveries.c.id.in_(_delivery_ids(participant_id)))
            .order_by(deliveries.c.due_at, deliveries.c.id),
        ),
        "invitations": _rows(
            conn,
            select(invitations)
            .where(invitations.c.enrollment_id.in_(enrollment_ids))
            .order_by(invitations.c.enrollment_id),
        ),
        "replies": _rows(
            conn,
            select(replies)
            .where(_their_replies(participant_id, phone))
            .order_by(replies.c.received_at, replies.c.id),
        ),
        "outbox": _rows(
            conn,
            select(outbox)
            .where(_their_outbox(participant_id, phone, email))
            .order_by(outbox.c.created_at, outbox.c.id),
        ),
        "summaries": _rows(
            conn,
            select(summaries)
            .where(summaries.c.subject.in_(enrollment_ids))
            .order_by(summaries.c.period_end, summaries.c.id),
        ),
        "signups": _rows(
            conn,
            select(signups)
            .where(_their_signups(phone, email))
            .order_by(signups.c.created_at, signups.c.id),
        ),
    }


def erase_participant(
    conn: Connection, participant_id: str, *, name: str, phone: str | None, email: str | None
) -> dict[str, int]:
    """Delete every row of the participant's and every row that holds their number,
    address or texts, and strike their name out of messages to others (a coach's
    digest); returns how many rows went (or, for `outbox_named`, were changed), by
    table. Children first, so that nothing rests on the foreign keys' cascades (nor on
    SET NULL, which would keep a message's text with its link cut)."""
    enrollment_ids = _enrollment_ids(participant_id)
    occurrence_ids = _occurrence_ids(participant_id)
    steps: list[tuple[str, Any]] = [
        ("outbox", delete(outbox).where(_their_outbox(participant_id, phone, email))),
        ("outbox_named", update(outbox).where(_naming(name)).values(**_name_struck(name))),
        ("replies", delete(replies).where(_their_replies(participant_id, phone))),
        ("summaries", delete(summaries).where(summaries.c.subject.in_(enrollment_ids))),
        ("signups", delete(signups).where(_their_signups(phone, email))),
        ("deliveries", delete(deliveries).where(deliveries.c.occurrence_id.in_(occurrence_ids))),
        ("occurrences", delete(occurrences).where(occurrences.c.enrollment_id.in_(enrollment_ids))),
        ("invitations", delete(invitations).where(invitations.c.enrollment_id.in_(enrollment_ids))),
        ("enrollments", delete(enrollments).where(enrollments.c.participant_id == participant_id)),
        ("consent_log", delete(consent_log).where(consent_log.c.participant_id == participant_id)),
        ("participants", delete(participants).where(participants.c.id == participant_id)),
    ]
    return {table: int(conn.execute(statement).rowcount or 0) for table, statement in steps}


def _ended_before(cutoff: datetime) -> Select[Any]:
    """Enrollments that finished or were cancelled before `cutoff`."""
    return (
        select(enrollments.c.id)
        .where(enrollments.c.status.in_(ENDED_STATUSES))
        .where(enrollments.c.updated_at < cutoff)
    )


def _kept_people(cutoff: datetime) -> Select[Any]:
    """Participants still enrolled somewhere: an enrollment running, or ended since `cutoff`."""
    return select(enrollments.c.participant_id).where(
        or_(enrollments.c.status.in_(LIVE_STATUSES), enrollments.c.updated_at >= cutoff)
    )


def _old_texts(cutoff: datetime) -> dict[str, tuple[Any, ColumnElement[bool], dict[str, Any]]]:
    """For each table: the rows whose texts retention clears at `cutoff` (those not
    cleared yet only) and the values that clear them."""
    ended = _ended_before(cutoff)
    ended_occurrences = select(occurrences.c.id).where(occurrences.c.enrollment_id.in_(ended))
    ended_deliveries = select(deliveries.c.id).where(
        deliveries.c.occurrence_id.in_(ended_occurrences)
    )
    gone = or_(
        replies.c.participant_id.is_(None),
        replies.c.participant_id.not_in(_kept_people(cutoff)),
    )
    return {
        "outbox": (
            outbox,
            and_(
                outbox.c.delivery_id.in_(ended_deliveries),
                or_(
                    outbox.c.body != "",
                    outbox.c.html.is_not(None),
                    outbox.c.subject.is_not(None),
                    outbox.c.calendar.is_not(None),
                ),
            ),
            {"body": "", "html": None, "subject": None, "calendar": None},
        ),
        "occurrences": (
            occurrences,
            and_(
                occurrences.c.enrollment_id.in_(ended),
                occurrences.c.check_in_text.is_not(None),
            ),
            {"check_in_text": None},
        ),
        "replies": (
            replies,
            and_(
                or_(
                    replies.c.occurrence_id.in_(ended_occurrences),
                    and_(replies.c.received_at < cutoff, gone),
                ),
                or_(
                    replies.c.body != "",
                    replies.c.answer.is_not(None),
                    replies.c.detail.is_not(None),
                ),
            ),
            # SQL NULL: a JSON column would store None as the JSON text null.
            {"body": "", "answer": None, "detail": None, "context": null()},
        ),
    }


def texts_to_clear(conn: Connection, cutoff: datetime) -> bool:
    """Whether `clear_old_texts` would change anything: one read (no write lock), so
    that the pass is nearly free when nothing is due."""
    found = [exists(select(table).where(where)) for table, where, _ in _old_texts(cutoff).values()]
    return bool(conn.execute(select(or_(*found))).scalar())


def clear_old_texts(conn: Connection, cutoff: datetime) -> dict[str, int]:
    """Clear the texts of enrollments that ended (finished or were cancelled) before
    `cutoff`: the messages of their deliveries (body, html, subject, calendar), the
    texts of check-ins, and the replies to their occurrences (body, answer, detail,
    context); and those of replies received before `cutoff` from people no longer
    enrolled anywhere (or from numbers Tend does not know). States, results, values
    and counts stay as they are. Rows cleared already are left alone, so a second run
    changes nothing. Returns the rows changed, by table."""
    return {
        name: int(conn.execute(update(table).where(where).values(**values)).rowcount or 0)
        for name, (table, where, values) in _old_texts(cutoff).items()
    }
