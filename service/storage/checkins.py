"""Check-ins and what adherence reads: the queries behind them (the replies they come
with are in `storage.replies`).

A check-in lands on the
occurrence itself (`record_check_in`); when its window closes with none, the scheduler
marks it missed, or excused when nothing was asked or no reminder reached the person
(`close_windows`). The report reads the same rule through `result_expression`, so a
window that closed a moment ago counts the same before and after the scheduler got to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    update,
)

from service.core.records import Participant
from service.core.states import (
    WAITING_STATES,
    CheckInResult,
    DeliveryKind,
    DeliveryState,
    EnrollmentStatus,
    OccurrenceState,
)
from service.storage.db import record
from service.storage.participants import get_participant
from service.storage.tables import (
    deliveries,
    enrollments,
    invitations,
    occurrences,
    participants,
)
from service.storage.types import UTCDateTime

CHECKED_IN_NOTE = "checked in already"
WINDOW_CLOSED_NOTE = "the check-in window closed"
# A check-in someone gave, which they may change while the window is open.
ANSWERED = (CheckInResult.DONE, CheckInResult.SKIPPED)


# What a check-in target is read with: the open windows' statement and `_TARGET`.
_TARGET_COLUMNS = (
    occurrences.c.id,
    occurrences.c.key,
    occurrences.c.practice_id,
    occurrences.c.instant,
    occurrences.c.window_end,
    occurrences.c.check_in_kind,
    occurrences.c.check_in,
    occurrences.c.check_in_value,
    occurrences.c.check_in_unit,
    occurrences.c.check_in_text,
    occurrences.c.local_date,
    occurrences.c.week,
    occurrences.c.seq,
    occurrences.c.item,
    enrollments.c.id.label("enrollment_id"),
    enrollments.c.status.label("enrollment_status"),
    enrollments.c.plan_id,
    enrollments.c.plan_hash,
)

# The statements every check-in by text runs: written once, as plain SQL both databases
# take, so that a webhook pays for neither building nor compiling them.
_OPEN = (
    text(
        'SELECT o.id, o."key", o.practice_id, o.instant, o.window_end, o.check_in_kind, '
        "o.check_in, o.check_in_value, o.check_in_unit, o.check_in_text, o.local_date, "
        "o.week, o.seq, o.item, e.id AS enrollment_id, e.status AS enrollment_status, "
        "e.plan_id, e.plan_hash "
        "FROM enrollments AS e JOIN occurrences AS o ON o.enrollment_id = e.id "
        "WHERE e.participant_id = :participant_id AND e.status = 'active' "
        "AND o.state = 'scheduled' AND o.check_in_kind <> 'none' "
        "AND o.instant <= :now AND o.window_end > :now "
        "ORDER BY o.instant DESC, o.id DESC"
    )
    .bindparams(bindparam("now", type_=UTCDateTime()))
    .columns(*_TARGET_COLUMNS)
)
_RECORD = text(
    "UPDATE occurrences SET check_in = :result, check_in_at = :now, "
    "check_in_value = :value, check_in_unit = :unit, check_in_text = :text, "
    "check_in_source = :source "
    "WHERE id = :occurrence_id AND state = 'scheduled' AND check_in_kind <> 'none' "
    "AND instant <= :now AND window_end > :now "
    "AND (check_in IS NULL OR check_in IN ('done', 'skipped'))"
).bindparams(bindparam("now", type_=UTCDateTime()), bindparam("value", type_=Float()))


# --- check-ins -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckInTarget:
    """An occurrence a check-in may land on, with what the caller needs to judge it."""

    occurrence_id: int
    key: str
    practice_id: str
    instant: datetime
    window_end: datetime
    check_in_kind: str
    check_in: CheckInResult | None
    check_in_value: float | None
    check_in_unit: str | None
    check_in_text: str | None
    enrollment_id: str
    enrollment_status: EnrollmentStatus
    plan_id: str
    plan_hash: str
    local_date: date
    week: int
    seq: int
    item: str | None
    participant: Participant


_TARGET = select(*_TARGET_COLUMNS, enrollments.c.participant_id).select_from(
    occurrences.join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
)


def _target(row: Any, participant: Participant) -> CheckInTarget:
    return record(
        CheckInTarget,
        row._mapping,
        occurrence_id=row.id,
        check_in=CheckInResult(row.check_in) if row.check_in is not None else None,
        enrollment_status=EnrollmentStatus(row.enrollment_status),
        participant=participant,
    )


def check_in_target(conn: Connection, occurrence_id: int) -> CheckInTarget | None:
    """The occurrence a check-in link names, or None when there is no such one."""
    row = conn.execute(
        _TARGET.where(occurrences.c.id == occurrence_id).where(
            occurrences.c.state == OccurrenceState.SCHEDULED
        )
    ).first()
    if row is None:
        return None
    return _target(row, get_participant(conn, row.participant_id))


def open_check_ins(
    conn: Connection, participant: Participant, *, now: datetime
) -> list[CheckInTarget]:
    """The participant's occurrences whose check-in window is open at `now`, most recent
    first: due already, window not closed, a check-in asked, the enrollment active.
    (A window still open was never marked missed or excused: those come after it.)"""
    rows = conn.execute(_OPEN, {"participant_id": participant.id, "now": now})
    return [_target(row, participant) for row in rows]


def record_check_in(
    conn: Connection,
    occurrence_id: int,
    result: CheckInResult,
    *,
    now: datetime,
    source: str,
    value: float | None = None,
    unit: str | None = None,
    text: str | None = None,
    nudge: bool = True,
) -> bool:
    """Record a check-in (done or skipped, with a rating, number or text) on an open
    occurrence; a later one replaces an earlier one while the window is open. The
    nudge that waits for it is cancelled (`nudge=False`: the practice has none). False
    when the window is not open."""
    if result not in ANSWERED:
        raise ValueError(f"a check-in is done or skipped, not {str(result)!r}")
    changed = conn.execute(
        _RECORD,
        {
            "occurrence_id": occurrence_id,
            "result": result,
            "now": now,
            "value": value,
            "unit": unit,
            "text": text,
            "source": source,
        },
    ).rowcount
    if changed and nudge:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.occurrence_id == occurrence_id)
            .where(deliveries.c.kind == DeliveryKind.NUDGE)
            .where(deliveries.c.state.in_(WAITING_STATES))
            .values(
                state=DeliveryState.CANCELLED,
                last_error=CHECKED_IN_NOTE,
                lease_until=None,
                updated_at=now,
            )
        )
    return bool(changed)


_HISTORY = (
    text(
        "SELECT instant, window_end, check_in FROM occurrences "
        "WHERE enrollment_id = :enrollment_id AND practice_id = :practice_id "
        "AND state = 'scheduled' AND instant <= :now ORDER BY instant, id"
    )
    .bindparams(bindparam("now", type_=UTCDateTime()))
    .columns(occurrences.c.instant, occurrences.c.window_end, occurrences.c.check_in)
)


def history(
    conn: Connection, enrollment_id: str, practice_id: str, *, now: datetime
) -> list[tuple[datetime, datetime, str | None]]:
    """A practice's occurrences in an enrollment due by `now`, oldest first, with their
    check-in as stored (None: none yet, or a closed window not yet marked)."""
    rows = conn.execute(
        _HISTORY, {"enrollment_id": enrollment_id, "practice_id": practice_id, "now": now}
    )
    return [(r.instant, r.window_end, r.check_in) for r in rows]


def has_check_in(conn: Connection, occurrence_id: int) -> bool:
    found = conn.execute(
        select(occurrences.c.check_in).where(occurrences.c.id == occurrence_id)
    ).scalar()
    return found in ANSWERED


# --- closing windows, and what adherence reads ------------------------------------------


def _reached() -> ColumnElement[bool]:
    """Whether the occurrence reached the participant: a reminder of it was sent, or it is
    a calendar practice and the enrollment's calendar invitation stands (a feed
    subscription cannot be seen, so it does not count)."""
    sent = (
        select(deliveries.c.id)
        .where(deliveries.c.occurrence_id == occurrences.c.id)
        .where(deliveries.c.kind == DeliveryKind.REMINDER)
        .where(deliveries.c.state.in_((DeliveryState.SENT, DeliveryState.DELIVERED)))
        .exists()
    )
    invited = (
        select(invitations.c.enrollment_id)
        .where(invitations.c.enrollment_id == occurrences.c.enrollment_id)
        .where(invitations.c.method_sent == "REQUEST")
        .exists()
    )
    in_calendar = and_(cast(occurrences.c.channels, Text).like('%"calendar"%'), invited)
    return or_(in_calendar, sent)


def _excused() -> ColumnElement[bool]:
    """Not counted when its window closes without a check-in: nothing was asked, the
    occurrence or its enrollment was stopped, or no reminder reached the person."""
    stopped = (
        select(enrollments.c.id)
        .where(enrollments.c.id == occurrences.c.enrollment_id)
        .where(enrollments.c.status.in_((EnrollmentStatus.PAUSED, EnrollmentStatus.CANCELLED)))
        .exists()
    )
    return or_(
        occurrences.c.check_in_kind == "none",
        occurrences.c.state != OccurrenceState.SCHEDULED,
        stopped,
        ~_reached(),
    )


def result_expression(now: datetime) -> ColumnElement[Any]:
    """An occurrence's check-in result at `now`: as recorded; NULL while its window is
    open; else excused or missed, the same rule `close_windows` applies."""
    return case(
        (occurrences.c.check_in.is_not(None), occurrences.c.check_in),
        (occurrences.c.window_end > now, literal(None, type_=occurrences.c.check_in.type)),
        (_excused(), _text(CheckInResult.EXCUSED)),
        else_=_text(CheckInResult.MISSED),
    )


def _text(value: str) -> ColumnElement[str]:
    """A state as an SQL literal of text (an enum would not be taken as one)."""
    return literal(str(value), type_=String())


def close_windows(
    conn: Connection, *, now: datetime, limit: int = 5000, enrollment_id: str | None = None
) -> dict[str, int]:
    """Windows that closed with no check-in become missed or excused; at most `limit`
    at a time (the caller calls again while there are more), of one enrollment or all.
    Returns the counts."""
    query = (
        select(occurrences.c.id)
        .where(occurrences.c.check_in.is_(None))
        .where(occurrences.c.window_end <= now)
        .order_by(occurrences.c.window_end)
        .limit(limit)
    )
    if enrollment_id is not None:
        query = query.where(occurrences.c.enrollment_id == enrollment_id)
    ids = list(conn.execute(query).scalars())
    counts = {"missed": 0, "excused": 0}
    if not ids:
        return counts
    closed = conn.execute(
        update(occurrences)
        .where(occurrences.c.id.in_(ids))
        .where(occurrences.c.check_in.is_(None))  # a check-in that came meanwhile stays
        .values(
            check_in=case(
                (_excused(), _text(CheckInResult.EXCUSED)), else_=_text(CheckInResult.MISSED)
            ),
            check_in_source="window",
        )
        .returning(occurrences.c.check_in)
    ).scalars()
    for result in closed:
        counts[result] += 1
    return counts


def _scheduled(enrollment_ids: Sequence[str], *columns: ColumnElement[Any]) -> Select[Any]:
    """The scheduled occurrences of these enrollments: their enrollment id and practice
    id, then `columns`."""
    return (
        select(occurrences.c.enrollment_id, occurrences.c.practice_id, *columns)
        .where(occurrences.c.enrollment_id.in_(list(enrollment_ids)))
        .where(occurrences.c.state == OccurrenceState.SCHEDULED)
    )


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One occurrence as the report reads it."""

    enrollment_id: str
    practice_id: str
    instant: datetime
    window_end: datetime
    result: str | None  # done, skipped, missed, excused; None while the window is open
    value: float | None
    check_in_kind: str
    week: int  # the plan week, from 1
    plan_version: int | None  # the published version it was planned from (None: before)


def outcomes(
    conn: Connection,
    enrollment_ids: Sequence[str],
    *,
    now: datetime,
    practice_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[OutcomeRow]:
    """The occurrences of these enrollments that are due by `now` (and, with `since` and
    `until`, in [since, until)), in time order, with their result at `now`."""
    if not enrollment_ids:
        return []
    query = (
        _scheduled(
            enrollment_ids,
            occurrences.c.instant,
            occurrences.c.window_end,
            result_expression(now).label("result"),
            occurrences.c.check_in_value,
            occurrences.c.check_in_kind,
            occurrences.c.week,
            occurrences.c.plan_version,
        )
        .where(occurrences.c.instant <= now)
        .order_by(occurrences.c.enrollment_id, occurrences.c.instant, occurrences.c.id)
    )
    if practice_id is not None:
        query = query.where(occurrences.c.practice_id == practice_id)
    if since is not None:
        query = query.where(occurrences.c.instant >= since)
    if until is not None:
        query = query.where(occurrences.c.instant < until)
    return [OutcomeRow(*r) for r in conn.execute(query)]  # the columns in field order


@dataclass(frozen=True, slots=True)
class HeatmapRow:
    """One scheduled occurrence as a heatmap shows it."""

    enrollment_id: str
    practice_id: str
    local_date: date
    instant: datetime
    result: str | None  # done, skipped, missed, excused; None while the window is open
    check_in_kind: str
    check_in_value: float | None
    check_in_unit: str | None
    check_in_text: str | None


def heatmap_rows(
    conn: Connection, enrollment_ids: Sequence[str], *, now: datetime, first: date
) -> list[HeatmapRow]:
    """Every scheduled occurrence of these enrollments from the local date `first` on
    (future ones too), with its result at `now` and its check-in; by enrollment, then
    in time order."""
    if not enrollment_ids:
        return []
    query = (
        _scheduled(
            enrollment_ids,
            occurrences.c.local_date,
            occurrences.c.instant,
            result_expression(now).label("result"),
            occurrences.c.check_in_kind,
            occurrences.c.check_in_value,
            occurrences.c.check_in_unit,
            occurrences.c.check_in_text,
        )
        .where(occurrences.c.local_date >= first)
        .order_by(occurrences.c.enrollment_id, occurrences.c.local_date, occurrences.c.id)
    )
    return [HeatmapRow(*r) for r in conn.execute(query)]  # the columns in field order


def report_enrollments(
    conn: Connection,
    *,
    participant_id: str | None = None,
    plan_id: str | None = None,
    enrollment_id: str | None = None,
    statuses: tuple[str, ...] | None = None,
    coach_id: str | None = None,
    cohort_id: str | None = None,
) -> list[dict[str, Any]]:
    """Enrollments with their participants, for the report: by participant name, then
    the enrollment's start, then the plan. Raises NotFound for a participant id that
    does not exist (or, with `coach_id`, is another coach's: the same words)."""
    if participant_id is not None:
        get_participant(conn, participant_id, coach_id=coach_id)
    query = (
        select(
            enrollments.c.id.label("enrollment_id"),
            enrollments.c.plan_id,
            enrollments.c.plan_hash,
            enrollments.c.plan_version,
            enrollments.c.status,
            enrollments.c.start_date,
            participants.c.id.label("participant_id"),
        )
        .select_from(
            enrollments.join(participants, participants.c.id == enrollments.c.participant_id)
        )
        .order_by(
            func.lower(participants.c.name),
            participants.c.id,
            enrollments.c.start_date,
            enrollments.c.plan_id,  # before the (random) id: the same data, the same order
            enrollments.c.id,
        )
    )
    if participant_id is not None:
        query = query.where(participants.c.id == participant_id)
    if plan_id is not None:
        query = query.where(enrollments.c.plan_id == plan_id)
    if cohort_id is not None:
        query = query.where(participants.c.cohort_id == cohort_id)
    if enrollment_id is not None:
        query = query.where(enrollments.c.id == enrollment_id)
    if statuses is not None:
        query = query.where(enrollments.c.status.in_(statuses))
    if coach_id is not None:
        query = query.where(participants.c.coach_id == coach_id)
    return [dict(r) for r in conn.execute(query).mappings()]
