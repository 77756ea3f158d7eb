"""Calendar invitations: one row per enrollment, the version of its events last sent
by email and the state of sending the next (see the states in `service.storage.tables`).

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Update

from service.core.records import InvitationCandidate, InvitationState
from service.core.states import LIVE_STATUSES, InvitationStatus
from service.storage.db import prefixed, record
from service.storage.enrollments import enrollment_from_row
from service.storage.participants import participant_from_row
from service.storage.tables import enrollments, invitations, participants


def _invitation(row: RowMapping) -> InvitationState:
    return record(
        InvitationState,
        row,
        sent_keys=tuple(row["sent_keys"] or ()),
        state=InvitationStatus(row["state"]),
    )


def get_invitation(conn: Connection, enrollment_id: str) -> InvitationState | None:
    row = (
        conn.execute(select(invitations).where(invitations.c.enrollment_id == enrollment_id))
        .mappings()
        .first()
    )
    return _invitation(row) if row is not None else None


def invitation_candidates(
    conn: Connection,
    *,
    plan_ids: Iterable[str],
    after: str | None = None,
    limit: int = 500,
) -> list[InvitationCandidate]:
    """Enrollments of `plan_ids` (the plans with calendar practices) whose participant
    has an email address: active or paused ones, and any other that has an invitation
    row (it may need a CANCEL). In enrollment id order, after `after`."""
    query = (
        select(
            *(c.label(f"e_{c.name}") for c in enrollments.c),
            *(c.label(f"p_{c.name}") for c in participants.c),
            *(c.label(f"i_{c.name}") for c in invitations.c),
        )
        .select_from(
            enrollments.join(
                participants, participants.c.id == enrollments.c.participant_id
            ).outerjoin(invitations, invitations.c.enrollment_id == enrollments.c.id)
        )
        .where(enrollments.c.plan_id.in_(list(plan_ids)))
        .where(participants.c.email.is_not(None))
        .where(
            or_(
                enrollments.c.status.in_(LIVE_STATUSES),
                invitations.c.enrollment_id.is_not(None),
            )
        )
        .order_by(enrollments.c.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(enrollments.c.id > after)
    out = []
    for row in conn.execute(query).mappings():
        state = prefixed(row, "i_")
        out.append(
            InvitationCandidate(
                enrollment=enrollment_from_row(prefixed(row, "e_")),  # type: ignore[arg-type]
                participant=participant_from_row(prefixed(row, "p_")),  # type: ignore[arg-type]
                invitation=(
                    _invitation(state)  # type: ignore[arg-type]
                    if state["enrollment_id"] is not None
                    else None
                ),
            )
        )
    return out


def _ensure_invitation(conn: Connection, enrollment_id: str, now: datetime) -> None:
    exists = conn.execute(
        select(invitations.c.enrollment_id).where(invitations.c.enrollment_id == enrollment_id)
    ).scalar()
    if exists is not None:
        return
    try:
        with conn.begin_nested():  # two schedulers may race to be first
            conn.execute(
                insert(invitations).values(
                    enrollment_id=enrollment_id,
                    sequence=0,
                    sent_keys=[],
                    state=InvitationStatus.IDLE,
                    attempts=0,
                    updated_at=now,
                )
            )
    except IntegrityError:
        pass


def _update(enrollment_id: str) -> Update:
    """An UPDATE of the enrollment's invitation row."""
    return update(invitations).where(invitations.c.enrollment_id == enrollment_id)


def _fenced(enrollment_id: str, attempt: int, wanted_hash: str) -> Update:
    """An UPDATE of the row only while this attempt, of this version, holds it (attempts
    restart at each version, so the version is part of the fence)."""
    return (
        _update(enrollment_id)
        .where(invitations.c.state == InvitationStatus.SENDING)
        .where(invitations.c.attempts == attempt)
        .where(invitations.c.wanted_hash == wanted_hash)
    )


def invitation_checked(
    conn: Connection, enrollment_id: str, checked_key: str, now: datetime
) -> None:
    """Remember that the invitation was up to date for these inputs."""
    _ensure_invitation(conn, enrollment_id, now)
    conn.execute(
        _update(enrollment_id)
        .where(invitations.c.state == InvitationStatus.IDLE)
        .values(checked_key=checked_key)
    )


def invitation_want(conn: Connection, enrollment_id: str, wanted_hash: str, now: datetime) -> bool:
    """A new version is wanted: idle -> pending unless that version is the one last sent
    (another scheduler, which read the row before this one, has just sent it), and
    failed -> pending when the version differs from the one that failed. False when the
    row is in no state to take it."""
    _ensure_invitation(conn, enrollment_id, now)
    result = conn.execute(
        _update(enrollment_id)
        .where(
            or_(
                and_(
                    invitations.c.state == InvitationStatus.IDLE,
                    or_(
                        invitations.c.sent_hash.is_(None),
                        invitations.c.sent_hash != wanted_hash,
                    ),
                ),
                and_(
                    invitations.c.state == InvitationStatus.FAILED,
                    or_(
                        invitations.c.wanted_hash.is_(None),
                        invitations.c.wanted_hash != wanted_hash,
                    ),
                ),
            )
        )
        .values(
            state=InvitationStatus.PENDING,
            wanted_hash=wanted_hash,
            attempts=0,
            lease_until=None,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


def invitation_start(
    conn: Connection, enrollment_id: str, wanted_hash: str, *, now: datetime, lease: timedelta
) -> int | None:
    """pending (once its retry time has come) -> sending with a lease, or a sending row
    whose lease ran out; returns the attempt (the fencing token), None when not ours."""
    result = conn.execute(
        _update(enrollment_id)
        .where(
            or_(
                and_(
                    invitations.c.state == InvitationStatus.PENDING,
                    or_(invitations.c.lease_until.is_(None), invitations.c.lease_until <= now),
                ),
                and_(
                    invitations.c.state == InvitationStatus.SENDING,
                    invitations.c.lease_until < now,
                ),
            )
        )
        .values(
            state=InvitationStatus.SENDING,
            wanted_hash=wanted_hash,
            attempts=invitations.c.attempts + 1,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(invitations.c.attempts)
    ).scalar()
    return int(result) if result is not None else None


def invitation_sent(
    conn: Connection,
    enrollment_id: str,
    *,
    attempt: int,
    sent_hash: str,
    sequence: int,
    method: str,
    keys: Sequence[str],
    checked_key: str | None,
    now: datetime,
    sent_to: str | None = None,
) -> bool:
    """Record a version as sent, only if this attempt, of this version, still holds the
    row (attempts restart at each version, so the version is part of the fence)."""
    result = conn.execute(
        _fenced(enrollment_id, attempt, sent_hash).values(
            state=InvitationStatus.IDLE,
            sent_hash=sent_hash,
            sequence=sequence,
            method_sent=method,
            sent_keys=list(keys),
            sent_at=now,
            sent_to=sent_to,
            checked_key=checked_key,
            attempts=0,
            last_error=None,
            lease_until=None,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


def invitation_not_sent(
    conn: Connection,
    enrollment_id: str,
    *,
    attempt: int,
    wanted_hash: str,
    error: str,
    retry_at: datetime | None,
    now: datetime,
) -> bool:
    """A send that failed: pending again from `retry_at`, or failed when it is None
    (permanent). Only if this attempt, of this version, still holds the row."""
    result = conn.execute(
        _fenced(enrollment_id, attempt, wanted_hash).values(
            state=InvitationStatus.FAILED if retry_at is None else InvitationStatus.PENDING,
            last_error=error,
            lease_until=retry_at,
            updated_at=now,
        )
    )
    return bool(result.rowcount)
