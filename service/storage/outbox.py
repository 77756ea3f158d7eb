"""The development outbox: messages kept in the database instead of sent.

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select

from service.storage.tables import deliveries, enrollments, occurrences, outbox, participants


def outbox_put(
    conn: Connection,
    *,
    delivery_id: int | None,
    channel: str,
    recipient: str,
    body: str,
    now: datetime,
    subject: str | None = None,
    html: str | None = None,
    calendar: str | None = None,
) -> int:
    """Store a message; idempotent on the delivery: the same delivery is stored once."""
    if delivery_id is not None:
        existing = conn.execute(
            select(outbox.c.id).where(outbox.c.delivery_id == delivery_id)
        ).scalar()
        if existing is not None:
            return int(existing)
    return int(
        conn.execute(
            insert(outbox)
            .values(
                delivery_id=delivery_id,
                channel=channel,
                recipient=recipient,
                subject=subject,
                body=body,
                html=html,
                calendar=calendar,
                created_at=now,
            )
            .returning(outbox.c.id)
        ).scalar_one()
    )


def outbox_has(conn: Connection, delivery_id: int) -> bool:
    return (
        conn.execute(select(outbox.c.id).where(outbox.c.delivery_id == delivery_id)).scalar()
        is not None
    )


def _of_coach(query: Any, coach_id: str | None) -> Any:
    """`query` over the outbox narrowed to messages for `coach_id`'s participants (None:
    all): a reminder of one of their enrollments, or a message to one of their numbers
    or addresses (a test message has no delivery)."""
    if coach_id is None:
        return query
    theirs = select(participants.c.id).where(participants.c.coach_id == coach_id)
    reminders = (
        select(deliveries.c.id)
        .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
        .join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
        .where(enrollments.c.participant_id.in_(theirs))
    )
    phones = select(participants.c.phone).where(participants.c.coach_id == coach_id)
    emails = select(participants.c.email).where(participants.c.coach_id == coach_id)
    return query.where(
        or_(
            outbox.c.delivery_id.in_(reminders),
            and_(
                outbox.c.delivery_id.is_(None),
                or_(outbox.c.recipient.in_(phones), outbox.c.recipient.in_(emails)),
            ),
        )
    )


def outbox_list(
    conn: Connection, limit: int = 50, *, coach_id: str | None = None
) -> list[dict[str, Any]]:
    """The newest messages first (only those for `coach_id`'s participants, when given)."""
    query = _of_coach(select(outbox).order_by(outbox.c.id.desc()).limit(limit), coach_id)
    rows = conn.execute(query)
    return [dict(r) for r in rows.mappings()]


def outbox_count(conn: Connection, *, coach_id: str | None = None) -> int:
    """How many messages the outbox holds (for `coach_id`'s participants, when given)."""
    query = _of_coach(select(func.count()).select_from(outbox), coach_id)
    return int(conn.execute(query).scalar_one())


def outbox_clear(conn: Connection) -> int:
    return int(conn.execute(delete(outbox)).rowcount or 0)
