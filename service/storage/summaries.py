"""Weekly messages (a participant's summary, a coach's digest): their rows and states.

The same discipline as reminders. A row is made once per recipient, week and channel
(a unique key), claimed by the scheduler with a lease, taken to `sending` by a worker
with a conditional update that counts the attempt, and finished by that attempt only.
A row whose lease ran out while claimed is claimed again; one whose lease ran out while
sending may have gone out, and is failed rather than sent twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from service.core.states import (
    LIVE_STATUSES,
    Channel,
    DeliveryState,
    SmsState,
    SummaryKind,
    SummaryState,
)
from service.storage.tables import deliveries, enrollments, occurrences, participants, summaries

MAY_HAVE_GONE = "the worker stopped while sending; not sent again, to avoid a duplicate"


@dataclass(frozen=True, slots=True)
class Wanted:
    kind: SummaryKind
    subject: str  # enrollment id, or the coach's address
    period_end: date
    channel: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class SummaryJob:
    id: int
    kind: SummaryKind
    subject: str
    period_end: date
    channel: Channel
    due_at: datetime
    attempts: int


def existing(conn: Connection, kind: SummaryKind, since: date) -> set[tuple[str, date, str]]:
    """(subject, period_end, channel) of the rows of `kind` for weeks ending on or after
    `since`: what need not be made again."""
    rows = conn.execute(
        select(summaries.c.subject, summaries.c.period_end, summaries.c.channel)
        .where(summaries.c.kind == kind)
        .where(summaries.c.period_end >= since)
    )
    return {(r.subject, r.period_end, r.channel) for r in rows}


def add(conn: Connection, wanted: Iterable[Wanted], *, now: datetime) -> int:
    """Make the rows that do not exist yet; returns how many were made."""
    rows = [
        {
            "kind": w.kind,
            "subject": w.subject,
            "period_end": w.period_end,
            "channel": w.channel,
            "due_at": w.due_at,
            "state": SummaryState.PENDING,
            "attempts": 0,
            "updated_at": now,
        }
        for w in wanted
    ]
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    made = 0
    for row in rows:
        inserted = conn.execute(
            dialect.insert(summaries)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["kind", "subject", "period_end", "channel"])
            .returning(summaries.c.id)
        ).first()
        made += inserted is not None
    return made


def claim_due(conn: Connection, *, now: datetime, lease: timedelta, limit: int = 500) -> list[int]:
    """Claim what is due (pending, or claimed with its lease run out) for `lease`; and
    fail what a worker left in `sending` (it may have gone out)."""
    conn.execute(
        update(summaries)
        .where(summaries.c.state == SummaryState.SENDING)
        .where(summaries.c.lease_until < now)
        .values(
            state=SummaryState.FAILED, last_error=MAY_HAVE_GONE, lease_until=None, updated_at=now
        )
    )
    due = or_(
        and_(summaries.c.state == SummaryState.PENDING, summaries.c.due_at <= now),
        and_(summaries.c.state == SummaryState.CLAIMED, summaries.c.lease_until < now),
    )
    query = select(summaries.c.id).where(due).order_by(summaries.c.due_at).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(conn.execute(query).scalars())
    if ids:
        conn.execute(
            update(summaries)
            .where(summaries.c.id.in_(ids))
            .where(due)
            .values(state=SummaryState.CLAIMED, lease_until=now + lease, updated_at=now)
        )
    return ids


def start_sending(
    conn: Connection, summary_id: int, *, now: datetime, lease: timedelta
) -> SummaryJob | None:
    """claimed -> sending, counting the attempt; None when it is not claimed any more."""
    row = conn.execute(
        update(summaries)
        .where(summaries.c.id == summary_id)
        .where(summaries.c.state == SummaryState.CLAIMED)
        .values(
            state=SummaryState.SENDING,
            attempts=summaries.c.attempts + 1,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(
            summaries.c.id,
            summaries.c.kind,
            summaries.c.subject,
            summaries.c.period_end,
            summaries.c.channel,
            summaries.c.due_at,
            summaries.c.attempts,
        )
    ).first()
    if row is None:
        return None
    return SummaryJob(
        row.id,
        SummaryKind(row.kind),
        row.subject,
        row.period_end,
        Channel(row.channel),
        row.due_at,
        row.attempts,
    )


def finish(
    conn: Connection,
    job: SummaryJob,
    state: SummaryState,
    *,
    now: datetime,
    error: str | None = None,
    provider_id: str | None = None,
    retry_at: datetime | None = None,
) -> bool:
    """Move this attempt's row to `state` (sent, failed, expired, cancelled, or claimed
    with `retry_at` for a retry). False when the row is no longer this attempt's."""
    values: dict[str, Any] = {
        "state": state,
        "last_error": error,
        "lease_until": retry_at,
        "updated_at": now,
    }
    if state == SummaryState.SENT:
        values.update(sent_at=now, provider_id=provider_id)
    result = conn.execute(
        update(summaries)
        .where(summaries.c.id == job.id)
        .where(summaries.c.state == SummaryState.SENDING)
        .where(summaries.c.attempts == job.attempts)
        .values(**values)
    )
    return bool(result.rowcount)


def list_summaries(conn: Connection, *, kind: str | None = None) -> list[dict[str, Any]]:
    query = select(summaries).order_by(summaries.c.due_at, summaries.c.id)
    if kind is not None:
        query = query.where(summaries.c.kind == kind)
    return [dict(r) for r in conn.execute(query).mappings()]


# --- the confirmation SMS ----------------------------------------------------------------


def participants_to_welcome(
    conn: Connection, *, limit: int = 500
) -> list[tuple[str, str, datetime | None]]:
    """Participants who have a number, may be texted, are in a plan (active or paused)
    and have not had their confirmation SMS, with none on its way: (id, time zone, when
    their first text still to go is due, or None)."""
    on_its_way = (
        select(summaries.c.subject)
        .where(summaries.c.kind == SummaryKind.WELCOME)
        .where(summaries.c.state.in_((SummaryState.PENDING, SummaryState.CLAIMED,
                                      SummaryState.SENDING)))
    )  # fmt: skip
    live = select(enrollments.c.participant_id).where(enrollments.c.status.in_(LIVE_STATUSES))
    first_text = (
        select(func.min(deliveries.c.due_at))
        .select_from(
            deliveries.join(occurrences, occurrences.c.id == deliveries.c.occurrence_id).join(
                enrollments, enrollments.c.id == occurrences.c.enrollment_id
            )
        )
        .where(enrollments.c.participant_id == participants.c.id)
        .where(deliveries.c.channel == Channel.SMS)
        .where(deliveries.c.state.in_((DeliveryState.PENDING, DeliveryState.CLAIMED)))
        .scalar_subquery()
    )
    rows = conn.execute(
        select(participants.c.id, participants.c.timezone, first_text)
        .where(participants.c.welcomed_at.is_(None))
        .where(participants.c.phone.is_not(None))
        .where(participants.c.sms_state == SmsState.SUBSCRIBED)
        .where(participants.c.id.in_(live))
        .where(participants.c.id.not_in(on_its_way))
        .order_by(participants.c.created_at, participants.c.id)
        .limit(limit)
    )
    return [(r[0], r[1], r[2]) for r in rows]


def forget_welcome(conn: Connection, participant_id: str) -> None:
    """The participant has a new number: their confirmation is to be sent again (the
    consent log keeps that the earlier one went)."""
    conn.execute(
        delete(summaries)
        .where(summaries.c.kind == SummaryKind.WELCOME)
        .where(summaries.c.subject == participant_id)
    )


def hold(conn: Connection, job: SummaryJob, *, now: datetime, until: datetime) -> bool:
    """This attempt's row waits for the end of the participant's quiet hours: pending
    again, due `until`."""
    result = conn.execute(
        update(summaries)
        .where(summaries.c.id == job.id)
        .where(summaries.c.state == SummaryState.SENDING)
        .where(summaries.c.attempts == job.attempts)
        .values(
            state=SummaryState.PENDING,
            due_at=until,
            lease_until=None,
            last_error="held for quiet hours",
            updated_at=now,
        )
    )
    return bool(result.rowcount)
