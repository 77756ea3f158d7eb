"""Numbers that opted out, kept only as a keyed digest (see `tables.suppressed_numbers`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from service.storage.tables import suppressed_numbers


def add_digest(conn: Connection, digest: str, now: datetime) -> None:
    """Keep `digest` (once: keeping it again changes nothing)."""
    if is_suppressed(conn, digest):
        return
    try:
        with conn.begin_nested():
            conn.execute(insert(suppressed_numbers).values(digest=digest, at=now))
    except IntegrityError:  # kept meanwhile by another transaction
        pass


def is_suppressed(conn: Connection, digest: str) -> bool:
    found = conn.execute(
        select(suppressed_numbers.c.digest).where(suppressed_numbers.c.digest == digest)
    ).first()
    return found is not None
