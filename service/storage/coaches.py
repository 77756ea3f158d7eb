"""Coach and admin accounts, their API tokens, one-time password links and failed
sign-ins. Secrets are stored as hashes only: the caller hashes.

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.engine import RowMapping

from service.storage.db import NotFound, new_id, record
from service.storage.tables import coach_tokens, coaches, login_failures, password_links


@dataclass(frozen=True, slots=True)
class Coach:
    id: str
    email: str
    name: str
    role: str  # coach, admin
    password_hash: str | None
    disabled: bool
    session_version: int
    created_at: datetime
    updated_at: datetime

    @property
    def admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    coach_id: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _coach(row: RowMapping) -> Coach:
    return record(Coach, row)


def add_coach(conn: Connection, *, email: str, name: str, role: str, now: datetime) -> Coach:
    coach_id = new_id("c")
    conn.execute(
        insert(coaches).values(
            id=coach_id,
            email=email,
            name=name,
            role=role,
            password_hash=None,
            disabled=False,
            session_version=1,
            created_at=now,
            updated_at=now,
        )
    )
    return get_coach(conn, coach_id)


def get_coach(conn: Connection, coach_id: str) -> Coach:
    found = conn.execute(select(coaches).where(coaches.c.id == coach_id)).mappings().first()
    if found is None:
        raise NotFound(f"no coach '{coach_id}'")
    return _coach(found)


def find_coach_by_email(conn: Connection, email: str) -> Coach | None:
    found = conn.execute(select(coaches).where(coaches.c.email == email)).mappings().first()
    return None if found is None else _coach(found)


def list_coaches(conn: Connection) -> list[Coach]:
    rows = conn.execute(select(coaches).order_by(coaches.c.email)).mappings()
    return [_coach(r) for r in rows]


def update_coach(conn: Connection, coach_id: str, now: datetime, **values: object) -> Coach:
    """Change the account; `end_sessions` bumps its session version (every session
    cookie made before ends)."""
    end_sessions = bool(values.pop("end_sessions", False))
    changes: dict[str, object] = {**values, "updated_at": now}
    if end_sessions:
        changes["session_version"] = coaches.c.session_version + 1
    conn.execute(update(coaches).where(coaches.c.id == coach_id).values(**changes))
    return get_coach(conn, coach_id)


# --- API tokens ------------------------------------------------------------------------


def add_token(
    conn: Connection, *, coach_id: str, label: str, token_hash: str, now: datetime
) -> Token:
    token_id = new_id("t")
    conn.execute(
        insert(coach_tokens).values(
            id=token_id, coach_id=coach_id, label=label, token_hash=token_hash, created_at=now
        )
    )
    return tokens_of(conn, coach_id, token_id=token_id)[0]


def tokens_of(conn: Connection, coach_id: str, *, token_id: str | None = None) -> list[Token]:
    query = (
        select(
            coach_tokens.c.id,
            coach_tokens.c.coach_id,
            coach_tokens.c.label,
            coach_tokens.c.created_at,
            coach_tokens.c.last_used_at,
            coach_tokens.c.revoked_at,
        )
        .where(coach_tokens.c.coach_id == coach_id)
        .order_by(coach_tokens.c.created_at, coach_tokens.c.id)
    )
    if token_id is not None:
        query = query.where(coach_tokens.c.id == token_id)
    return [record(Token, r) for r in conn.execute(query).mappings()]


def coach_by_token(conn: Connection, token_hash: str) -> tuple[Coach, Token] | None:
    """The account a live token belongs to, and the token."""
    found = (
        conn.execute(
            select(
                coaches,
                coach_tokens.c.id.label("token_id"),
                coach_tokens.c.label,
                coach_tokens.c.created_at.label("token_created_at"),
                coach_tokens.c.last_used_at,
            )
            .join(coach_tokens, coach_tokens.c.coach_id == coaches.c.id)
            .where(coach_tokens.c.token_hash == token_hash)
            .where(coach_tokens.c.revoked_at.is_(None))
        )
        .mappings()
        .first()
    )
    if found is None:
        return None
    token = Token(
        id=found["token_id"],
        coach_id=found["id"],
        label=found["label"],
        created_at=found["token_created_at"],
        last_used_at=found["last_used_at"],
        revoked_at=None,
    )
    return _coach(found), token


def token_used(conn: Connection, token_id: str, now: datetime) -> None:
    conn.execute(update(coach_tokens).where(coach_tokens.c.id == token_id).values(last_used_at=now))


def revoke_token(conn: Connection, coach_id: str, token_id: str, now: datetime) -> bool:
    result = conn.execute(
        update(coach_tokens)
        .where(coach_tokens.c.id == token_id)
        .where(coach_tokens.c.coach_id == coach_id)
        .where(coach_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


# --- one-time links ----------------------------------------------------------------------


def add_link(
    conn: Connection, *, coach_id: str, token_hash: str, now: datetime, expires: datetime
) -> None:
    """A new link; the account's earlier unused links stop working."""
    conn.execute(
        update(password_links)
        .where(password_links.c.coach_id == coach_id)
        .where(password_links.c.used_at.is_(None))
        .values(used_at=now)
    )
    conn.execute(
        insert(password_links).values(
            token_hash=token_hash, coach_id=coach_id, created_at=now, expires_at=expires
        )
    )


def use_link(conn: Connection, token_hash: str, now: datetime) -> str | None:
    """Spend an unused, unexpired link; the account's id, or None."""
    found = conn.execute(
        update(password_links)
        .where(password_links.c.token_hash == token_hash)
        .where(password_links.c.used_at.is_(None))
        .where(password_links.c.expires_at > now)
        .values(used_at=now)
        .returning(password_links.c.coach_id)
    ).scalar()
    return None if found is None else str(found)


def link_usable(conn: Connection, token_hash: str, now: datetime) -> str | None:
    found = conn.execute(
        select(password_links.c.coach_id)
        .where(password_links.c.token_hash == token_hash)
        .where(password_links.c.used_at.is_(None))
        .where(password_links.c.expires_at > now)
    ).scalar()
    return None if found is None else str(found)


# --- failed sign-ins -------------------------------------------------------------------


def add_failure(conn: Connection, subjects: list[str], now: datetime) -> None:
    conn.execute(insert(login_failures), [{"subject": s, "at": now} for s in subjects])


def failures_since(conn: Connection, subject: str, since: datetime) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(login_failures)
            .where(login_failures.c.subject == subject)
            .where(login_failures.c.at > since)
        ).scalar_one()
    )


def forget_failures(
    conn: Connection, subject: str | None = None, *, before: datetime | None = None
) -> None:
    """Delete the failures of `subject` (a successful sign-in), or all before `before`."""
    query = delete(login_failures)
    if subject is not None:
        query = query.where(login_failures.c.subject == subject)
    if before is not None:
        query = query.where(login_failures.c.at < before)
    conn.execute(query)
