"""Small values the application keeps for itself (such as its secret), by key."""

from __future__ import annotations

from sqlalchemy import Connection, Integer, Text, cast, insert, select, update
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


def next_count(conn: Connection, key: str) -> int:
    """Add one to the counter kept under `key` (0 when there is none yet) and return it:
    an UPDATE when the row exists (the row lock orders two processes), else an INSERT."""
    done = conn.execute(
        update(app_state)
        .where(app_state.c.key == key)
        .values(value=cast(cast(app_state.c.value, Integer) + 1, Text))
        .returning(app_state.c.value)
    ).scalar()
    if done is not None:
        return int(done)
    try:
        with conn.begin_nested():
            conn.execute(insert(app_state).values(key=key, value="1"))
    except IntegrityError:  # another process made it first: count on from theirs
        return next_count(conn, key)
    return 1
