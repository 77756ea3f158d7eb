"""Enrollments: a participant in a plan, its status and how far its occurrences are
materialised (the horizon).

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from service.core.records import Enrollment
from service.core.states import (
    LIVE_STATUSES,
    WAITING_STATES,
    Channel,
    DeliveryState,
    EnrollmentStatus,
    OccurrenceState,
    SmsState,
)
from service.storage.db import NotFound, fetch_page, new_id, record
from service.storage.participants import (
    OPTED_OUT_NOTE,
    coach_participant_ids,
    get_participant,
    restore_deliveries,
)
from service.storage.tables import deliveries, enrollments, occurrences

PAUSED_NOTE = "enrollment paused"


@dataclass(frozen=True, slots=True)
class EnrollmentBrief:
    """An enrollment in a few words, as a list of a participant's enrollments shows it."""

    id: str
    participant_id: str
    plan_id: str
    status: EnrollmentStatus


def enrollment_from_row(row: RowMapping) -> Enrollment:
    """An enrollment from a row of the enrollments table (or its columns by name)."""
    return record(
        Enrollment,
        row,
        variables=dict(row["variables"] or {}),
        status=EnrollmentStatus(row["status"]),
    )


def add_enrollment(
    conn: Connection,
    *,
    participant_id: str,
    plan_id: str,
    plan_hash: str,
    plan_version: int,
    start: date,
    end_date: date,
    variables: Mapping[str, str],
    now: datetime,
) -> Enrollment:
    enrollment_id = new_id("e")
    conn.execute(
        insert(enrollments).values(
            id=enrollment_id,
            participant_id=participant_id,
            plan_id=plan_id,
            plan_hash=plan_hash,
            plan_version=plan_version or None,
            start_date=start,
            variables=dict(variables),
            status=EnrollmentStatus.ACTIVE,
            horizon=start,
            end_date=end_date,
            not_before=now,
            created_at=now,
            updated_at=now,
        )
    )
    return get_enrollment(conn, enrollment_id)


def _of_coach(query: Any, coach_id: str | None) -> Any:
    """`query` over enrollments narrowed to those of `coach_id`'s participants (None: all)."""
    if coach_id is None:
        return query
    return query.where(enrollments.c.participant_id.in_(coach_participant_ids(coach_id)))


def get_enrollment(
    conn: Connection, enrollment_id: str, *, coach_id: str | None = None
) -> Enrollment:
    """The enrollment. With `coach_id`, one of another coach's participants is NotFound
    with the very words a missing one gets."""
    query = _of_coach(select(enrollments).where(enrollments.c.id == enrollment_id), coach_id)
    found = conn.execute(query).mappings().first()
    if found is None:
        raise NotFound(f"no enrollment '{enrollment_id}'")
    return enrollment_from_row(found)


def _oldest_first(participant_id: str | None, plan_id: str | None) -> Select[Any]:
    """Enrollments, oldest first, of a participant and in a plan when they are given."""
    query = select(enrollments).order_by(enrollments.c.created_at, enrollments.c.id)
    if participant_id is not None:
        query = query.where(enrollments.c.participant_id == participant_id)
    if plan_id is not None:
        query = query.where(enrollments.c.plan_id == plan_id)
    return query


def list_enrollments(
    conn: Connection,
    *,
    participant_id: str | None = None,
    plan_id: str | None = None,
    statuses: Sequence[str] | None = None,
    coach_id: str | None = None,
) -> list[Enrollment]:
    query = _of_coach(_oldest_first(participant_id, plan_id), coach_id)
    if statuses is not None:
        query = query.where(enrollments.c.status.in_(tuple(statuses)))
    return [enrollment_from_row(r) for r in conn.execute(query).mappings()]


def live_participants(conn: Connection, plan_id: str, participant_ids: Sequence[str]) -> set[str]:
    """Which of the participants are in the plan now (an active or paused enrollment)."""
    found: set[str] = set()
    ids = list(participant_ids)
    for at in range(0, len(ids), 500):  # bounded IN lists
        rows = conn.execute(
            select(enrollments.c.participant_id)
            .where(enrollments.c.plan_id == plan_id)
            .where(enrollments.c.status.in_(tuple(LIVE_STATUSES)))
            .where(enrollments.c.participant_id.in_(ids[at : at + 500]))
        )
        found.update(r[0] for r in rows)
    return found


def enrollment_page(
    conn: Connection,
    *,
    limit: int,
    offset: int,
    participant_id: str | None = None,
    plan_id: str | None = None,
    status: str | None = None,
    coach_id: str | None = None,
) -> tuple[list[Enrollment], int]:
    """A page of enrollments, oldest first (of a participant, in a plan, in a status, of
    `coach_id`'s participants), and how many match in all."""
    query = _of_coach(_oldest_first(participant_id, plan_id), coach_id)
    if status is not None:
        query = query.where(enrollments.c.status == status)
    rows, total = fetch_page(conn, query, limit, offset)
    return [enrollment_from_row(r) for r in rows], total


def enrollment_briefs(conn: Connection, participant_ids: Sequence[str]) -> list[EnrollmentBrief]:
    """The enrollments of these participants, oldest first."""
    if not participant_ids:
        return []
    rows = conn.execute(
        select(enrollments.c.id, enrollments.c.participant_id, enrollments.c.plan_id,
               enrollments.c.status)
        .where(enrollments.c.participant_id.in_(list(participant_ids)))
        .order_by(enrollments.c.created_at, enrollments.c.id)
    )  # fmt: skip
    return [
        EnrollmentBrief(r.id, r.participant_id, r.plan_id, EnrollmentStatus(r.status)) for r in rows
    ]


def status_counts_by_plan(
    conn: Connection, *, coach_id: str | None = None
) -> dict[str, dict[str, int]]:
    """For each plan id that enrollments name, how many enrollments are in each status
    (only those of `coach_id`'s participants, when given)."""
    query = _of_coach(
        select(enrollments.c.plan_id, enrollments.c.status, func.count())
        .group_by(enrollments.c.plan_id, enrollments.c.status),
        coach_id,
    )  # fmt: skip
    rows = conn.execute(query).all()
    counts: dict[str, dict[str, int]] = {}
    for plan_id, status, count in rows:
        counts.setdefault(plan_id, {})[status] = int(count)
    return counts


def set_enrollment_status(
    conn: Connection, enrollment_id: str, status: EnrollmentStatus, *, now: datetime
) -> Enrollment:
    """Pause, resume, finish or cancel. Pausing or cancelling stops every unsent
    delivery at once; resuming brings back those still ahead that the pause stopped."""
    current = get_enrollment(conn, enrollment_id)
    allowed = {
        EnrollmentStatus.PAUSED: (EnrollmentStatus.ACTIVE,),
        EnrollmentStatus.ACTIVE: (EnrollmentStatus.PAUSED,),
        EnrollmentStatus.CANCELLED: LIVE_STATUSES,
        EnrollmentStatus.FINISHED: LIVE_STATUSES,
    }.get(status, ())
    # Conditional, so that two changes at once (a cancel and a pause) cannot both pass.
    changed = conn.execute(
        update(enrollments)
        .where(enrollments.c.id == enrollment_id)
        .where(enrollments.c.status.in_(allowed))
        .values(status=status, updated_at=now)
    ).rowcount
    if not changed:
        raise ValueError(
            f"enrollment {enrollment_id} is {current.status}; it cannot become {status}"
        )
    ids = (
        select(deliveries.c.id)
        .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
        .where(occurrences.c.enrollment_id == enrollment_id)
        .scalar_subquery()
    )
    if status == EnrollmentStatus.PAUSED:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids))
            .where(deliveries.c.state.in_(WAITING_STATES))
            .values(
                state=DeliveryState.CANCELLED,
                last_error=PAUSED_NOTE,
                lease_until=None,
                updated_at=now,
            )
        )
    elif status == EnrollmentStatus.ACTIVE:
        participant = get_participant(conn, current.participant_id)
        subscribed = participant.sms_state == SmsState.SUBSCRIBED
        # What the pause stopped comes back, SMS only while the participant is subscribed;
        # and SMS that an opt-out stopped during the pause, now that they opted back in.
        restore_deliveries(
            conn, now, PAUSED_NOTE, enrollment_id=enrollment_id,
            channels=None if subscribed else (Channel.EMAIL,),
        )  # fmt: skip
        if subscribed:
            restore_deliveries(
                conn, now, OPTED_OUT_NOTE, enrollment_id=enrollment_id, channels=(Channel.SMS,)
            )
    else:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids))
            .where(deliveries.c.state.in_(WAITING_STATES))
            .values(
                state=DeliveryState.CANCELLED, last_error=f"enrollment {status}", updated_at=now
            )
        )
        if status == EnrollmentStatus.CANCELLED:
            conn.execute(
                update(occurrences)
                .where(occurrences.c.enrollment_id == enrollment_id)
                .where(occurrences.c.instant > now)
                .values(
                    state=OccurrenceState.CANCELLED,
                    sequence=occurrences.c.sequence + 1,
                    updated_at=now,
                )
            )
    return get_enrollment(conn, enrollment_id)


def set_horizon(
    conn: Connection,
    enrollment_id: str,
    *,
    horizon: date,
    end_date: date,
    plan_hash: str,
    plan_version: int,
    now: datetime,
) -> None:
    conn.execute(
        update(enrollments)
        .where(enrollments.c.id == enrollment_id)
        .values(
            horizon=horizon,
            end_date=end_date,
            plan_hash=plan_hash,
            plan_version=plan_version or None,
            updated_at=now,
        )
    )


def enrollments_to_extend(
    conn: Connection,
    before: date,
    *,
    plan_ids: Iterable[str],
    after: tuple[date, str] | None = None,
    limit: int = 500,
) -> list[Enrollment]:
    """Active enrollments of `plan_ids` whose materialised horizon ends before `before`
    and before their plan's end, in (horizon, id) order, after the key `after`."""
    query = (
        select(enrollments)
        .where(enrollments.c.status == EnrollmentStatus.ACTIVE)
        .where(enrollments.c.plan_id.in_(list(plan_ids)))
        .where(enrollments.c.horizon < before)
        .where(enrollments.c.horizon < enrollments.c.end_date)
        .order_by(enrollments.c.horizon, enrollments.c.id)
        .limit(limit)
    )
    if after is not None:
        horizon, enrollment_id = after
        query = query.where(
            or_(
                enrollments.c.horizon > horizon,
                and_(enrollments.c.horizon == horizon, enrollments.c.id > enrollment_id),
            )
        )
    return [enrollment_from_row(r) for r in conn.execute(query).mappings()]


def finish_ended(conn: Connection, *, now: datetime) -> int:
    """Active enrollments past their plan's end, with every check-in window closed."""
    open_windows = (
        select(occurrences.c.id)
        .where(occurrences.c.enrollment_id == enrollments.c.id)
        .where(occurrences.c.state == OccurrenceState.SCHEDULED)
        .where(occurrences.c.window_end > now)
        .exists()
    )
    result = conn.execute(
        update(enrollments)
        .where(enrollments.c.status == EnrollmentStatus.ACTIVE)
        .where(enrollments.c.horizon >= enrollments.c.end_date)
        .where(enrollments.c.end_date < now.date())
        .where(~open_windows)
        .values(status=EnrollmentStatus.FINISHED, updated_at=now)
    )
    return int(result.rowcount or 0)


def plan_hashes(conn: Connection) -> dict[str, set[str]]:
    """For each plan id, the content hashes its active or paused enrollments were built from."""
    rows = conn.execute(
        select(enrollments.c.plan_id, enrollments.c.plan_hash)
        .where(enrollments.c.status.in_(LIVE_STATUSES))
        .distinct()
    )
    out: dict[str, set[str]] = {}
    for plan_id, plan_hash in rows:
        out.setdefault(plan_id, set()).add(plan_hash)
    return out


def plans_followed(conn: Connection) -> dict[str, set[tuple[str, int | None]]]:
    """For each plan id, the (content hash, version) pairs its active or paused
    enrollments follow."""
    rows = conn.execute(
        select(enrollments.c.plan_id, enrollments.c.plan_hash, enrollments.c.plan_version)
        .where(enrollments.c.status.in_(LIVE_STATUSES))
        .distinct()
    )
    out: dict[str, set[tuple[str, int | None]]] = {}
    for plan_id, plan_hash, version in rows:
        out.setdefault(plan_id, set()).add((plan_hash, version))
    return out


def set_variables(
    conn: Connection, enrollment_id: str, variables: dict[str, str], *, now: datetime
) -> None:
    """The enrollment's own variable values (overriding the participant's)."""
    conn.execute(
        update(enrollments)
        .where(enrollments.c.id == enrollment_id)
        .values(variables=variables, updated_at=now)
    )
