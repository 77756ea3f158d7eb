"""Small values the application keeps for itself (such as its secret), by key."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from service.storage.tables import app_state


def get_state(conn: Connection, key: str) -> str | None:
    return conn.execute(select(app_state.c.value).where(app_state.c.key == key)).scalar()


def put_state_once(conn: Connection, key: str, value: str) -> str:
    """Store `value` under `key` unless one is there already; return the stored value."""
    current = get_state(conn, key)
    if current is not None:
        return current
    try:
        with conn.begin_nested():  # two processes may race to be first
            conn.execute(insert(app_state).values(key=key, value=value))
    except IntegrityError:
        stored = get_state(conn, key)
        assert stored is not None
        return stored
    return value
