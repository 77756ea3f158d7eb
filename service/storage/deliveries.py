"""Deliveries: one message of one occurrence by one channel, and its way from pending
to sent (see the states in `service.storage.tables`).

The scheduler expires stale deliveries and claims due ones with a lease; a worker moves
a claimed delivery to `sending` and reads what it needs to render it in one step, then
records the outcome. Every move is a conditional update on the state it comes from,
and the worker's moves are fenced by the attempt, so a late second worker or scheduler
changes nothing.

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.rows import dict_row
from sqlalchemy import Connection, Integer, String, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql

from service.core.quiet import QUIET_NOTE
from service.core.records import DeliveryJob
from service.core.states import (
    REPEAT_KINDS,
    WAITING_STATES,
    Channel,
    CheckInResult,
    DeliveryKind,
    DeliveryState,
    EnrollmentStatus,
    OccurrenceState,
)
from service.storage.db import NotFound, prefixed
from service.storage.participants import participant_from_row
from service.storage.tables import deliveries, enrollments, occurrences, participants
from service.storage.types import UTCDateTime

# --- the scheduler's side --------------------------------------------------------------

_LEASED = (DeliveryState.CLAIMED, DeliveryState.SENDING)  # taken, for as long as a lease


def expire_stale(conn: Connection, *, now: datetime, grace: timedelta) -> int:
    """Deliveries not handed to a channel within the grace period never go out late."""
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.state.in_(WAITING_STATES))
        .where(deliveries.c.due_at < now - grace)
        .values(
            state=DeliveryState.EXPIRED,
            lease_until=None,
            last_error="not sent within the grace period",
            updated_at=now,
        )
    )
    return int(result.rowcount or 0)


def claim_due(conn: Connection, *, now: datetime, limit: int, lease: timedelta) -> list[int]:
    """Claim up to `limit` due deliveries, and any whose claim's lease ran out, in one
    conditional update. On PostgreSQL, rows another scheduler holds are skipped."""
    due = (
        select(deliveries.c.id)
        .where(
            or_(
                and_(deliveries.c.state == DeliveryState.PENDING, deliveries.c.due_at <= now),
                and_(
                    deliveries.c.state.in_(_LEASED),
                    deliveries.c.lease_until < now,
                ),
            )
        )
        .order_by(deliveries.c.due_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed = conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(due.scalar_subquery()))
        .values(
            # A lease that ran out while sending: the outcome is unknown, and the
            # worker must ask the channel before sending again.
            uncertain=or_(deliveries.c.uncertain, deliveries.c.state == DeliveryState.SENDING),
            state=DeliveryState.CLAIMED,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(deliveries.c.id)
    )
    return sorted(int(r) for r in claimed.scalars())


def next_due(conn: Connection) -> datetime | None:
    """When the earliest pending delivery is due."""
    found: datetime | None = conn.execute(
        select(func.min(deliveries.c.due_at)).where(deliveries.c.state == DeliveryState.PENDING)
    ).scalar()
    return found


# --- the worker's side ---------------------------------------------------------------


# The worker's statements run for every reminder: built once, executed many times.
_START_SENDING = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("delivery_id"))
    .where(deliveries.c.state == DeliveryState.CLAIMED)
    .values(
        state=DeliveryState.SENDING,
        lease_until=bindparam("lease_until", type_=UTCDateTime()),
        attempts=deliveries.c.attempts + 1,
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
    .returning(deliveries.c.id)
)
_JOB_COLUMNS = (
    deliveries.c.id,
    deliveries.c.channel,
    deliveries.c.kind,
    deliveries.c.due_at,
    deliveries.c.attempts,
    deliveries.c.uncertain,
    occurrences.c.id.label("occurrence_id"),
    occurrences.c.key.label("occurrence_key"),
    occurrences.c.practice_id,
    occurrences.c.local_date,
    occurrences.c.week,
    occurrences.c.seq,
    occurrences.c.instant,
    occurrences.c.item,
    occurrences.c.window_end,
    occurrences.c.state.label("occurrence_state"),
    occurrences.c.check_in.label("occurrence_check_in"),
    occurrences.c.enrollment_id,
    occurrences.c.channels.label("occurrence_channels"),
    enrollments.c.plan_id,
    enrollments.c.plan_hash,
    enrollments.c.status.label("enrollment_status"),
    enrollments.c.variables.label("enrollment_variables"),
    # Only what sending needs: each column returned costs every reminder a little.
    *(c.label(f"p_{c.name}") for c in participants.c if c.name not in ("created_at",)),
)
_JOB = (
    select(*_JOB_COLUMNS)
    .select_from(
        deliveries.join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
        .join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
        .join(participants, participants.c.id == enrollments.c.participant_id)
    )
    .where(deliveries.c.id == bindparam("delivery_id"))
)
# PostgreSQL: the move and the read in one statement (UPDATE ... FROM ... RETURNING).
_START_SENDING_JOB = (
    _START_SENDING.where(occurrences.c.id == deliveries.c.occurrence_id)
    .where(enrollments.c.id == occurrences.c.enrollment_id)
    .where(participants.c.id == enrollments.c.participant_id)
    .returning(*_JOB_COLUMNS[1:])
)
# A `sending` delivery, on the worker's attempt: the attempt is a fencing token, so a
# worker whose lease ran out while it was sending, and whose delivery another worker
# took up since, changes nothing.
_SENDING_ATTEMPT = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("delivery_id"))
    .where(deliveries.c.state == DeliveryState.SENDING)
    .where(deliveries.c.attempts == bindparam("attempt"))
)
_FINISH = _SENDING_ATTEMPT.values(
    state=bindparam("new_state"),
    lease_until=None,
    last_error=bindparam("error"),
    updated_at=bindparam("now", type_=UTCDateTime()),
    uncertain=False,
    provider_id=func.coalesce(bindparam("provider", type_=String()), deliveries.c.provider_id),
    segments=func.coalesce(bindparam("segment_count", type_=Integer()), deliveries.c.segments),
    sent_at=func.coalesce(bindparam("sent", type_=UTCDateTime()), deliveries.c.sent_at),
)


# On PostgreSQL the two statements every reminder runs go straight to psycopg: compiled
# once here, they skip SQLAlchemy's per-execution work (about a third of a worker's
# time per reminder). The same statements, so the same meaning, on every database.
_PG = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
_PG_START = _START_SENDING_JOB.compile(dialect=_PG)
_PG_FINISH = _FINISH.compile(dialect=_PG)
_PG_START_SQL, _PG_START_DEFAULTS = str(_PG_START), dict(_PG_START.params)
_PG_FINISH_SQL, _PG_FINISH_DEFAULTS = str(_PG_FINISH), dict(_PG_FINISH.params)
_UTC_FIELDS = ("due_at", "instant", "window_end", "p_paused_until")


def _driver_execute(
    conn: Connection, sql: str, params: dict[str, Any], *, fetch: bool
) -> tuple[dict[str, Any] | None, int]:
    """Run `sql` on the connection's psycopg connection: the row (as a dict) and rowcount."""
    raw: Any = conn.connection.driver_connection
    with raw.cursor(row_factory=dict_row) as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone() if fetch else None
        count = int(cursor.rowcount)
    if row is not None:
        for field in _UTC_FIELDS:
            if row.get(field) is not None:
                row[field] = row[field].astimezone(UTC)
    return row, count


def start_sending(
    conn: Connection, delivery_id: int, *, now: datetime, lease: timedelta
) -> DeliveryJob | None:
    """Move a claimed delivery to `sending`; None when it is not (any longer) claimed.
    Returns everything the worker needs, read in the same statement (PostgreSQL) or
    the same transaction (SQLite)."""
    params = {"delivery_id": delivery_id, "lease_until": now + lease, "now": now}
    row: Any
    if conn.dialect.name == "postgresql":
        row, _ = _driver_execute(conn, _PG_START_SQL, {**_PG_START_DEFAULTS, **params}, fetch=True)
    else:
        if conn.execute(_START_SENDING, params).scalar() is None:
            return None
        row = conn.execute(_JOB, {"delivery_id": delivery_id}).mappings().first()
    if row is None:
        return None
    check_in = row["occurrence_check_in"]
    return DeliveryJob(
        id=row["id"],
        channel=Channel(row["channel"]),
        kind=DeliveryKind(row["kind"]),
        due_at=row["due_at"],
        attempts=row["attempts"],
        uncertain=bool(row["uncertain"]),
        occurrence_id=row["occurrence_id"],
        occurrence_key=row["occurrence_key"],
        occurrence_state=OccurrenceState(row["occurrence_state"]),
        occurrence_channels=tuple(row["occurrence_channels"] or ()),
        check_in=CheckInResult(check_in) if check_in is not None else None,
        practice_id=row["practice_id"],
        local_date=row["local_date"],
        week=row["week"],
        seq=row["seq"],
        instant=row["instant"],
        item=row["item"],
        window_end=row["window_end"],
        enrollment_id=row["enrollment_id"],
        plan_id=row["plan_id"],
        plan_hash=row["plan_hash"],
        enrollment_status=EnrollmentStatus(row["enrollment_status"]),
        enrollment_variables=dict(row["enrollment_variables"] or {}),
        participant=participant_from_row(prefixed(row, "p_")),  # type: ignore[arg-type]
    )


def finish(
    conn: Connection,
    delivery_id: int,
    state: DeliveryState,
    *,
    now: datetime,
    attempt: int,
    error: str | None = None,
    provider_id: str | None = None,
    segments: int | None = None,
) -> bool:
    """Move a `sending` delivery, on its `attempt`, to its outcome: sent, failed, expired
    or cancelled. False when the delivery is no longer this attempt's to finish."""
    params = {
        "delivery_id": delivery_id,
        "attempt": attempt,
        "new_state": state,
        "error": error,
        "now": now,
        "provider": provider_id,
        "segment_count": segments,
        "sent": now if state == DeliveryState.SENT else None,
    }
    if conn.dialect.name == "postgresql":
        _, count = _driver_execute(
            conn, _PG_FINISH_SQL, {**_PG_FINISH_DEFAULTS, **params}, fetch=False
        )
        return bool(count)
    return bool(conn.execute(_FINISH, params).rowcount)


def retry_later(
    conn: Connection,
    delivery_id: int,
    *,
    now: datetime,
    attempt: int,
    error: str,
    lease_until: datetime,
    uncertain: bool = False,
) -> bool:
    """After a transient error: claimed again, its lease covering the retry's delay.
    `uncertain` when the send may have gone out (the channel is asked before the next)."""
    result = conn.execute(
        _SENDING_ATTEMPT.values(
            state=DeliveryState.CLAIMED,
            lease_until=lease_until,
            last_error=error,
            updated_at=now,
            uncertain=uncertain,
        ),
        {"delivery_id": delivery_id, "attempt": attempt},
    )
    return bool(result.rowcount)


# What a provider's report may move a delivery from: states only move forward.
_REPORTED_FROM: dict[DeliveryState, tuple[DeliveryState, ...]] = {
    DeliveryState.SENT: (),
    DeliveryState.DELIVERED: (DeliveryState.SENT,),
    DeliveryState.FAILED: (DeliveryState.SENT,),
}


def record_provider_status(
    conn: Connection, provider_id: str, state: DeliveryState, *, error: str | None, now: datetime
) -> bool:
    """A provider's report on a sent message. States only move forward: sent ->
    delivered or failed; a late "sent" after "delivered" changes nothing. False when no
    delivery has that provider id in a state the report may move."""
    earlier = _REPORTED_FROM.get(state, ())
    values: dict[str, Any] = {"state": state, "updated_at": now}
    if error is not None:
        values["last_error"] = error
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.provider_id == provider_id)
        .where(deliveries.c.state.in_(earlier))
        .values(**values)
    )
    return bool(result.rowcount)


def delivery_states(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(deliveries.c.state, func.count()).group_by(deliveries.c.state))
    return {state: int(count) for state, count in rows}


def delivery_counts(conn: Connection) -> list[tuple[str, str, str, int]]:
    """How many deliveries there are of each (channel, kind, state)."""
    rows = conn.execute(
        select(deliveries.c.channel, deliveries.c.kind, deliveries.c.state, func.count())
        .group_by(deliveries.c.channel, deliveries.c.kind, deliveries.c.state)
    ).all()  # fmt: skip
    return [(channel, kind, state, int(count)) for channel, kind, state, count in rows]


def queue_depth(conn: Connection, *, now: datetime) -> list[tuple[str, int]]:
    """Per channel, the deliveries due and not yet sent at `now`: pending past their
    time, claimed or sending."""
    rows = conn.execute(
        select(deliveries.c.channel, func.count())
        .where(
            or_(
                and_(deliveries.c.state == DeliveryState.PENDING, deliveries.c.due_at <= now),
                deliveries.c.state.in_(_LEASED),
            )
        )
        .group_by(deliveries.c.channel)
    ).all()
    return [(channel, int(count)) for channel, count in rows]


def sent_since(conn: Connection, since: datetime) -> list[tuple[str, datetime, datetime]]:
    """(channel, sent_at, due_at) of every delivery sent at or after `since`."""
    rows = conn.execute(
        select(deliveries.c.channel, deliveries.c.sent_at, deliveries.c.due_at)
        .where(deliveries.c.sent_at >= since)
        .where(deliveries.c.sent_at.is_not(None))
    ).all()
    return [(channel, sent_at, due_at) for channel, sent_at, due_at in rows]


def get_delivery(conn: Connection, delivery_id: int) -> dict[str, Any]:
    row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).mappings().first()
    if row is None:
        raise NotFound(f"no delivery {delivery_id}")
    return dict(row)


# --- quiet hours and repeats -----------------------------------------------------------


def hold(
    conn: Connection, delivery_id: int, *, now: datetime, attempt: int, until: datetime, note: str
) -> bool:
    """A delivery that met the participant's quiet hours waits for their end: pending
    again, due `until`, remembering when it was first due (`held_from`)."""
    result = conn.execute(
        _SENDING_ATTEMPT.values(
            state=DeliveryState.PENDING,
            held_from=func.coalesce(deliveries.c.held_from, deliveries.c.due_at),
            due_at=until,
            lease_until=None,
            last_error=note,
            updated_at=now,
        ),
        {"delivery_id": delivery_id, "attempt": attempt},
    )
    return bool(result.rowcount)


def repeat_counts(conn: Connection, occurrence_ids: list[int]) -> dict[int, int]:
    """How many LATER repeats each occurrence has had (any state), by occurrence id."""
    if not occurrence_ids:
        return {}
    rows = conn.execute(
        select(deliveries.c.occurrence_id, func.count())
        .where(deliveries.c.occurrence_id.in_(occurrence_ids))
        .where(deliveries.c.kind.in_(REPEAT_KINDS))
        .group_by(deliveries.c.occurrence_id)
    )
    return {int(occurrence): int(count) for occurrence, count in rows}


def add_repeat(
    conn: Connection, occurrence_id: int, kind: DeliveryKind, *, due_at: datetime, now: datetime
) -> int:
    """The reminder again, by SMS, due at `due_at` (a LATER). Returns its id."""
    return int(
        conn.execute(
            deliveries.insert()
            .values(
                occurrence_id=occurrence_id,
                channel=Channel.SMS,
                kind=kind,
                state=DeliveryState.PENDING,
                due_at=due_at,
                attempts=0,
                uncertain=False,
                updated_at=now,
            )
            .returning(deliveries.c.id)
        ).scalar_one()
    )


def held_and_quiet(
    conn: Connection, participant_id: str, *, limit: int = 20
) -> list[dict[str, Any]]:
    """The participant's deliveries quiet hours held or stopped, newest first."""
    rows = conn.execute(
        select(
            deliveries.c.id, deliveries.c.kind, deliveries.c.channel, deliveries.c.state,
            deliveries.c.due_at, deliveries.c.held_from, deliveries.c.last_error,
            deliveries.c.sent_at, occurrences.c.practice_id, occurrences.c.instant,
        )
        .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
        .join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
        .where(enrollments.c.participant_id == participant_id)
        .where(
            or_(
                deliveries.c.held_from.is_not(None),
                deliveries.c.last_error.like(f"{QUIET_NOTE}%"),
            )
        )
        .order_by(deliveries.c.due_at.desc())
        .limit(limit)
    )  # fmt: skip
    return [dict(r) for r in rows.mappings()]
