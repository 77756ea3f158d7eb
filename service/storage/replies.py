"""The reply log: every inbound text or check-in link, stored as it came, before anything
is done with it (`store_reply`), then claimed and acted on in one transaction
(`claim_reply` ... `finish_reply`), so that a webhook Twilio retries is acted on once and
answered the same way each time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, text, update

from service.core.states import Channel
from service.storage.db import fetch_page
from service.storage.participants import coach_participant_ids
from service.storage.tables import occurrences, replies
from service.storage.types import UTCDateTime


@dataclass(frozen=True, slots=True)
class StoredReply:
    id: int
    new: bool  # False when the provider sent this message before (a retried webhook)
    handled: bool
    answer: str | None
    participant_id: str | None


# The statements every inbound reply runs: written once, as plain SQL both databases
# take, so that a webhook pays for neither building nor compiling them.
_STORE = (
    text(
        "INSERT INTO replies (provider_id, channel, participant_id, sender, body, received_at) "
        "VALUES (:provider_id, :channel, :participant_id, :sender, :body, :received_at) "
        "ON CONFLICT (provider_id) DO NOTHING RETURNING id"
    )
    .bindparams(bindparam("received_at", type_=UTCDateTime()))
    .columns(replies.c.id)
)
_FINISH = text(
    "UPDATE replies SET understood = :understood, detail = :detail, answer = :answer, "
    "occurrence_id = :occurrence_id, context = :context, "
    "handled_at = COALESCE(:handled_at, handled_at) WHERE id = :reply_id"
).bindparams(
    bindparam("context", type_=replies.c.context.type),
    bindparam("handled_at", type_=UTCDateTime()),
)


def store_reply(
    conn: Connection,
    *,
    channel: str,
    body: str,
    now: datetime,
    provider_id: str | None = None,
    sender: str | None = None,
    participant_id: str | None = None,
) -> StoredReply:
    """Store an inbound message as it came, once per provider id."""
    inserted = conn.execute(
        _STORE,
        {
            "provider_id": provider_id,
            "channel": channel,
            "participant_id": participant_id,
            "sender": sender,
            "body": body,
            "received_at": now,
        },
    ).scalar()
    if inserted is not None:
        return StoredReply(int(inserted), True, False, None, participant_id)
    row = conn.execute(
        select(
            replies.c.id, replies.c.handled_at, replies.c.answer, replies.c.participant_id
        ).where(replies.c.provider_id == provider_id)
    ).one()
    return StoredReply(row.id, False, row.handled_at is not None, row.answer, row.participant_id)


def claim_reply(conn: Connection, reply_id: int, *, now: datetime) -> bool:
    """Take a stored reply to act on; False when it was acted on already. Within the
    caller's transaction, so that a failure leaves it to be acted on again."""
    result = conn.execute(
        update(replies)
        .where(replies.c.id == reply_id)
        .where(replies.c.handled_at.is_(None))
        .values(handled_at=now)
    )
    return bool(result.rowcount)


def finish_reply(
    conn: Connection,
    reply_id: int,
    *,
    understood: str,
    detail: str,
    answer: str | None,
    occurrence_id: int | None = None,
    context: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Record what a reply was taken to mean, and (with `now`) that it was handled."""
    conn.execute(
        _FINISH,
        {
            "reply_id": reply_id,
            "understood": understood,
            "detail": detail,
            "answer": answer,
            "occurrence_id": occurrence_id,
            "context": context,
            "handled_at": now,
        },
    )


def set_participant(conn: Connection, reply_id: int, participant_id: str) -> None:
    """The reply came from a person who became a participant by it (YES to a sign-up)."""
    conn.execute(
        update(replies).where(replies.c.id == reply_id).values(participant_id=participant_id)
    )


def stranger_answered(conn: Connection, sender: str, *, since: datetime) -> bool:
    """Whether a number Tend does not know was answered already (since `since`): it is
    answered once, so that an auto-responder cannot keep a conversation going."""
    found = conn.execute(
        select(replies.c.id)
        .where(replies.c.sender == sender)
        .where(replies.c.participant_id.is_(None))
        .where(replies.c.understood == "unknown_sender")
        .where(replies.c.answer.is_not(None))
        .where(replies.c.received_at >= since)
        .limit(1)
    ).first()
    return found is not None


def unhandled_replies(conn: Connection, *, before: datetime, limit: int = 100) -> list[int]:
    """SMS stored but never acted on (handling failed), received before `before`."""
    return list(
        conn.execute(
            select(replies.c.id)
            .where(replies.c.handled_at.is_(None))
            .where(replies.c.channel == Channel.SMS)
            .where(replies.c.received_at < before)
            .order_by(replies.c.received_at, replies.c.id)
            .limit(limit)
        ).scalars()
    )


def get_reply(conn: Connection, reply_id: int) -> dict[str, Any]:
    row = conn.execute(select(replies).where(replies.c.id == reply_id)).mappings().one()
    return dict(row)


def reply_answer(conn: Connection, reply_id: int) -> str | None:
    return conn.execute(select(replies.c.answer).where(replies.c.id == reply_id)).scalar()


def last_question(
    conn: Connection, participant_id: str, *, since: datetime
) -> dict[str, Any] | None:
    """The context of the question Tend asked back, when the participant's latest handled
    reply (since `since`) was answered with one; None otherwise."""
    row = conn.execute(
        select(replies.c.understood, replies.c.context)
        .where(replies.c.participant_id == participant_id)
        .where(replies.c.understood.is_not(None))  # decided; not the one in hand
        .where(replies.c.received_at >= since)
        .order_by(replies.c.received_at.desc(), replies.c.id.desc())
        .limit(1)
    ).first()
    if row is None or row.understood != "ask" or not row.context:
        return None
    return dict(row.context)


def _of_coach(query: Any, coach_id: str | None) -> Any:
    """`query` over replies narrowed to those from `coach_id`'s participants (None: all,
    those from unknown numbers included)."""
    if coach_id is None:
        return query
    return query.where(replies.c.participant_id.in_(coach_participant_ids(coach_id)))


def list_replies(
    conn: Connection,
    *,
    participant_id: str | None = None,
    limit: int = 100,
    coach_id: str | None = None,
) -> list[dict[str, Any]]:
    """Replies, newest first, with the practice each one counted for (only from
    `coach_id`'s participants, when given)."""
    query = (
        select(
            replies,
            occurrences.c.key.label("occurrence_key"),
            occurrences.c.practice_id,
        )
        .select_from(replies.outerjoin(occurrences, occurrences.c.id == replies.c.occurrence_id))
        .order_by(replies.c.received_at.desc(), replies.c.id.desc())
        .limit(limit)
    )
    if participant_id is not None:
        query = query.where(replies.c.participant_id == participant_id)
    return [dict(r) for r in conn.execute(_of_coach(query, coach_id)).mappings()]


def reply_page(
    conn: Connection,
    *,
    limit: int,
    offset: int,
    participant_id: str | None = None,
    since: datetime | None = None,
    coach_id: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of replies (of a participant, received at or after `since`), newest first,
    with the key and practice of the occurrence each one counted for
    (`occurrence_key`, `occurrence_practice`), and how many match in all. With
    `coach_id`, only replies from that coach's participants."""
    query = (
        select(
            replies,
            occurrences.c.key.label("occurrence_key"),
            occurrences.c.practice_id.label("occurrence_practice"),
        )
        .select_from(replies.outerjoin(occurrences, occurrences.c.id == replies.c.occurrence_id))
        .order_by(replies.c.received_at.desc(), replies.c.id.desc())
    )
    if participant_id is not None:
        query = query.where(replies.c.participant_id == participant_id)
    if since is not None:
        query = query.where(replies.c.received_at >= since)
    rows, total = fetch_page(conn, _of_coach(query, coach_id), limit, offset)
    return [dict(r) for r in rows], total


def reply_counts(conn: Connection) -> list[tuple[str, str | None, int]]:
    """How many replies are stored of each (channel, what they were understood as); the
    second is None for those not handled yet."""
    rows = conn.execute(
        select(replies.c.channel, replies.c.understood, func.count())
        .group_by(replies.c.channel, replies.c.understood)
    ).all()  # fmt: skip
    return [(channel, understood, int(count)) for channel, understood, count in rows]
