"""The audit log: appended to, read, never changed.

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select

from service.storage.db import record
from service.storage.tables import audit_log


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    actor_name: str
    address: str | None
    action: str
    target_kind: str | None
    target_id: str | None
    detail: str | None


def append(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    actor_name: str,
    address: str | None,
    action: str,
    target_kind: str | None = None,
    target_id: str | None = None,
    detail: str | None = None,
) -> None:
    conn.execute(
        insert(audit_log).values(
            at=at,
            actor=actor,
            actor_name=actor_name,
            address=address,
            action=action,
            target_kind=target_kind,
            target_id=target_id,
            detail=detail,
        )
    )


def entries(
    conn: Connection,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """Newest first."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if actor is not None:
        query = query.where(audit_log.c.actor == actor)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    return [record(AuditEntry, r) for r in conn.execute(query).mappings()]
