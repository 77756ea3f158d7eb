"""The development outbox: messages kept in the database instead of sent.

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from service.storage.tables import outbox


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


def outbox_list(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    rows = conn.execute(select(outbox).order_by(outbox.c.id.desc()).limit(limit))
    return [dict(r) for r in rows.mappings()]


def outbox_count(conn: Connection) -> int:
    """How many messages the outbox holds."""
    return int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())


def outbox_clear(conn: Connection) -> int:
    return int(conn.execute(delete(outbox)).rowcount or 0)
