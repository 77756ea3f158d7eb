"""Cohorts: named groups of participants, owned by a coach (see `tables.cohorts`).

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from service.storage.db import NotFound, new_id, record
from service.storage.tables import cohorts, participants


@dataclass(frozen=True, slots=True)
class Cohort:
    id: str
    coach_id: str | None  # None: the operator's (admins see it)
    name: str
    plan_id: str | None  # the plan people who join are enrolled in
    keyword: str | None  # JOIN <keyword> by SMS
    signup_token: str | None  # the sign-up page's public id
    created_at: datetime
    members: int = 0


class CohortTaken(ValueError):
    """Another cohort has that name (for the same coach) or that keyword."""


def _cohort(row: Any) -> Cohort:
    return record(Cohort, row, members=int(row.get("members") or 0))


def _members() -> Any:
    return (
        select(func.count())
        .select_from(participants)
        .where(participants.c.cohort_id == cohorts.c.id)
        .scalar_subquery()
        .label("members")
    )


def _select(coach_id: str | None) -> Any:
    query = select(cohorts, _members())
    return query if coach_id is None else query.where(cohorts.c.coach_id == coach_id)


def add_cohort(
    conn: Connection,
    *,
    name: str,
    coach_id: str | None,
    now: datetime,
    plan_id: str | None = None,
    keyword: str | None = None,
    signup_token: str | None = None,
) -> Cohort:
    """Add a cohort; CohortTaken when the coach has one of that name or the keyword is
    another's (the transaction must then be rolled back, or the call made in a savepoint)."""
    cohort_id = new_id("h")
    try:
        conn.execute(
            insert(cohorts).values(
                id=cohort_id,
                coach_id=coach_id,
                name=name,
                plan_id=plan_id,
                keyword=keyword,
                signup_token=signup_token,
                created_at=now,
            )
        )
    except IntegrityError as exc:
        raise CohortTaken(name) from exc
    return get_cohort(conn, cohort_id)


def get_cohort(conn: Connection, cohort_id: str, *, coach_id: str | None = None) -> Cohort:
    """The cohort; NotFound when there is none, or it is not `coach_id`'s (when given)."""
    row = conn.execute(_select(coach_id).where(cohorts.c.id == cohort_id)).mappings().first()
    if row is None:
        raise NotFound(f"no cohort '{cohort_id}'")
    return _cohort(row)


def find_cohort(conn: Connection, *, coach_id: str | None, name: str) -> Cohort | None:
    """The cohort of that name (case ignored) owned by `coach_id` (None: the operator's)."""
    owner = cohorts.c.coach_id.is_(None) if coach_id is None else cohorts.c.coach_id == coach_id
    row = (
        conn.execute(
            select(cohorts, _members())
            .where(owner)
            .where(func.lower(cohorts.c.name) == name.lower())
        )
        .mappings()
        .first()
    )
    return _cohort(row) if row else None


def cohort_by(
    conn: Connection, *, keyword: str | None = None, token: str | None = None
) -> Cohort | None:
    """The cohort with this JOIN keyword (upper case) or sign-up token."""
    if keyword is not None:
        where = cohorts.c.keyword == keyword
    elif token is not None:
        where = cohorts.c.signup_token == token
    else:
        return None
    row = conn.execute(select(cohorts, _members()).where(where)).mappings().first()
    return _cohort(row) if row else None


def list_cohorts(conn: Connection, *, coach_id: str | None = None) -> list[Cohort]:
    """The cohorts `coach_id` owns (None: all), by name."""
    rows = conn.execute(_select(coach_id).order_by(func.lower(cohorts.c.name), cohorts.c.id))
    return [_cohort(r) for r in rows.mappings()]


def update_cohort(conn: Connection, cohort_id: str, **values: Any) -> None:
    """Change the given columns; CohortTaken on a taken name or keyword."""
    try:
        with conn.begin_nested():
            conn.execute(update(cohorts).where(cohorts.c.id == cohort_id).values(**values))
    except IntegrityError as exc:
        raise CohortTaken(str(values)) from exc


def set_cohort(conn: Connection, participant_ids: Sequence[str], cohort_id: str | None) -> int:
    """Put the participants in the cohort (None: in none); how many rows changed."""
    if not participant_ids:
        return 0
    done = conn.execute(
        update(participants)
        .where(participants.c.id.in_(list(participant_ids)))
        .values(cohort_id=cohort_id)
    )
    return int(done.rowcount or 0)


def member_ids(conn: Connection, cohort_id: str) -> list[str]:
    """The ids of the cohort's participants, by name."""
    rows = conn.execute(
        select(participants.c.id)
        .where(participants.c.cohort_id == cohort_id)
        .order_by(participants.c.name, participants.c.id)
    )
    return [r[0] for r in rows]
