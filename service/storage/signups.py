"""People who signed themselves up and have not answered YES yet (see `tables.signups`).

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from service.core.states import SummaryKind
from service.storage.db import NotFound, new_id, record
from service.storage.tables import signups, summaries


@dataclass(frozen=True, slots=True)
class Signup:
    id: str
    cohort_id: str
    name: str
    phone: str
    email: str | None
    timezone: str
    language: str | None
    source: str
    created_at: datetime
    expires_at: datetime
    asked_at: datetime | None
    variables: dict[str, str] = field(default_factory=dict)


class PendingAlready(ValueError):
    """That number has a sign-up waiting for its YES already."""


def _signup(row: Any) -> Signup:
    return record(Signup, row, variables=dict(row["variables"] or {}))


def add_signup(
    conn: Connection,
    *,
    cohort_id: str,
    name: str,
    phone: str,
    timezone: str,
    source: str,
    now: datetime,
    expires_at: datetime,
    email: str | None = None,
    variables: Mapping[str, str] | None = None,
    language: str | None = None,
) -> Signup:
    """Keep a sign-up; PendingAlready when the number has one waiting."""
    signup_id = new_id("s")
    try:
        with conn.begin_nested():
            conn.execute(
                insert(signups).values(
                    id=signup_id, cohort_id=cohort_id, name=name, phone=phone, email=email,
                    timezone=timezone, variables=dict(variables or {}), language=language,
                    source=source, created_at=now, expires_at=expires_at,
                )
            )  # fmt: skip
    except IntegrityError as exc:
        raise PendingAlready(phone) from exc
    return get_signup(conn, signup_id)


def get_signup(conn: Connection, signup_id: str) -> Signup:
    row = conn.execute(select(signups).where(signups.c.id == signup_id)).mappings().first()
    if row is None:
        raise NotFound(f"no sign-up '{signup_id}'")
    return _signup(row)


def pending_for(
    conn: Connection, phone: str, now: datetime, *, lock: bool = False
) -> Signup | None:
    """The number's sign-up waiting for its YES, unless it has expired."""
    query = select(signups).where(signups.c.phone == phone).where(signups.c.expires_at > now)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return _signup(row) if row else None


def mark_asked(conn: Connection, signup_id: str, now: datetime) -> None:
    conn.execute(update(signups).where(signups.c.id == signup_id).values(asked_at=now))


def remove(conn: Connection, signup_id: str) -> None:
    """Forget the sign-up, and its confirmation's row (it names the sign-up)."""
    conn.execute(
        delete(summaries)
        .where(summaries.c.kind == SummaryKind.JOIN)
        .where(summaries.c.subject == signup_id)
    )
    conn.execute(delete(signups).where(signups.c.id == signup_id))


def remove_expired(conn: Connection, now: datetime) -> int:
    """Forget every sign-up whose 48 hours have passed with no YES."""
    ids = [r[0] for r in conn.execute(select(signups.c.id).where(signups.c.expires_at <= now))]
    for signup_id in ids:
        remove(conn, signup_id)
    return len(ids)


def remove_for_phone(conn: Connection, phone: str) -> int:
    ids = [r[0] for r in conn.execute(select(signups.c.id).where(signups.c.phone == phone))]
    for signup_id in ids:
        remove(conn, signup_id)
    return len(ids)
