"""Occurrences: the materialised schedule of each enrollment, with their deliveries.

What `core.schedule.reconcile` decides is stored here (`apply_changes`): new
occurrences with a delivery per channel and kind, moved ones (their unsent deliveries
follow), dropped ones cancelled. An occurrence a worker has started to send, or sent,
is history and never changes.

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from service.core.schedule import Changes, Planned, Stored
from service.core.states import REPEAT_KINDS, WAITING_STATES, DeliveryState, OccurrenceState
from service.storage.tables import deliveries, enrollments, occurrences

# A delivery in one of these is being sent or was sent: its occurrence is history.
_TOUCHED = (DeliveryState.SENDING, DeliveryState.SENT, DeliveryState.DELIVERED)


def _touched(occurrence_id: Any) -> Any:
    """Whether a delivery of the occurrence is being sent or was sent: history then."""
    return (
        select(deliveries.c.id)
        .where(deliveries.c.occurrence_id == occurrence_id)
        .where(deliveries.c.state.in_(_TOUCHED))
        .exists()
    )


def align_check_in_kinds(
    conn: Connection, plan_id: str, plan_hash: str, kinds: dict[str, str]
) -> int:
    """Occurrences of this plan version with no check-in yet take the kind their practice
    asks for now (rows stored before Tend kept the kind say "done"); returns how many."""
    changed = 0
    members = select(enrollments.c.id).where(enrollments.c.plan_id == plan_id)
    members = members.where(enrollments.c.plan_hash == plan_hash)
    for practice_id, kind in kinds.items():
        changed += int(
            conn.execute(
                update(occurrences)
                .where(occurrences.c.enrollment_id.in_(members.scalar_subquery()))
                .where(occurrences.c.practice_id == practice_id)
                .where(occurrences.c.check_in.is_(None))
                .where(occurrences.c.check_in_kind != kind)
                .values(check_in_kind=kind)
            ).rowcount
            or 0
        )
    return changed


def stored_occurrences(conn: Connection, enrollment_id: str) -> list[Stored]:
    touched = (
        select(func.count())
        .select_from(deliveries)
        .where(deliveries.c.occurrence_id == occurrences.c.id)
        .where(deliveries.c.state.in_(_TOUCHED))
        .scalar_subquery()
    )
    rows = conn.execute(
        select(
            occurrences.c.id,
            occurrences.c.key,
            occurrences.c.instant,
            occurrences.c.fingerprint,
            occurrences.c.state,
            touched.label("touched"),
        ).where(occurrences.c.enrollment_id == enrollment_id)
    )
    return [
        Stored(r.id, r.key, r.instant, r.fingerprint, OccurrenceState(r.state), bool(r.touched))
        for r in rows
    ]


def apply_changes(
    conn: Connection, enrollment_id: str, changes: Changes, now: datetime, plan_version: int = 0
) -> None:
    """Store what `reconcile` decided: new occurrences with their deliveries, changed
    ones moved (pending deliveries follow), and the dropped ones cancelled. Those added
    or changed record the plan version they now follow (0: a plan not published)."""
    version = plan_version or None
    if changes.added:
        _insert_occurrences(conn, enrollment_id, changes.added, now, version)
    for stored, planned in changes.moved:
        moved = conn.execute(
            update(occurrences)
            .where(occurrences.c.id == stored.id)
            .where(~_touched(occurrences.c.id))  # a worker may have started meanwhile
            .values(
                instant=planned.instant,
                duration_minutes=planned.duration_minutes,
                window_end=planned.window_end,
                week=planned.week,
                seq=planned.seq,
                channels=list(planned.channels),
                item=planned.item,
                fingerprint=planned.fingerprint,
                check_in_kind=planned.check_in_kind,
                state=OccurrenceState.SCHEDULED,
                sequence=occurrences.c.sequence + 1,
                plan_version=version,
                updated_at=now,
            )
        ).rowcount
        if moved:
            _sync_deliveries(conn, stored.id, planned, now)
    if changes.cancelled:
        ids = [s.id for s in changes.cancelled]
        conn.execute(
            update(occurrences)
            .where(occurrences.c.id.in_(ids))
            .where(~_touched(occurrences.c.id))
            .values(
                state=OccurrenceState.CANCELLED,
                sequence=occurrences.c.sequence + 1,
                updated_at=now,
            )
        )
        conn.execute(
            update(deliveries)
            .where(deliveries.c.occurrence_id.in_(ids))
            .where(deliveries.c.state.in_(WAITING_STATES))
            .values(state=DeliveryState.CANCELLED, last_error=REMOVED_NOTES[0], updated_at=now)
        )


def follow_version(conn: Connection, enrollment_id: str, plan_version: int, now: datetime) -> None:
    """Occurrences still ahead are now planned from `plan_version`, changed or not (those
    before `now` keep the version they ran on)."""
    conn.execute(
        update(occurrences)
        .where(occurrences.c.enrollment_id == enrollment_id)
        .where(occurrences.c.instant > now)
        .where(occurrences.c.plan_version.is_distinct_from(plan_version))
        .values(plan_version=plan_version)
    )


def _insert_occurrences(
    conn: Connection,
    enrollment_id: str,
    planned: Iterable[Planned],
    now: datetime,
    plan_version: int | None,
) -> None:
    items = list(planned)
    rows = [
        {
            "enrollment_id": enrollment_id,
            "key": p.key,
            "practice_id": p.practice_id,
            "local_date": p.local_date,
            "week": p.week,
            "seq": p.seq,
            "instant": p.instant,
            "duration_minutes": p.duration_minutes,
            "window_end": p.window_end,
            "channels": list(p.channels),
            "item": p.item,
            "fingerprint": p.fingerprint,
            "check_in_kind": p.check_in_kind,
            "state": OccurrenceState.SCHEDULED,
            "sequence": 0,
            "plan_version": plan_version,
            "updated_at": now,
        }
        for p in items
    ]
    ids = conn.execute(
        insert(occurrences).returning(
            occurrences.c.id, occurrences.c.key, sort_by_parameter_order=True
        ),
        rows,
    ).all()
    by_key = {p.key: p for p in items}
    delivery_rows = [
        _pending_delivery(occurrence_id, slot, due_at, now)
        for occurrence_id, key in ids
        for slot, due_at in by_key[key].deliveries().items()
    ]
    if delivery_rows:
        conn.execute(insert(deliveries), delivery_rows)


def _pending_delivery(
    occurrence_id: int, slot: tuple[str, str], due_at: datetime, now: datetime
) -> dict[str, Any]:
    """A new delivery row of an occurrence, for one (channel, kind), waiting to be due."""
    channel, kind = slot
    return {
        "occurrence_id": occurrence_id,
        "channel": channel,
        "kind": kind,
        "state": DeliveryState.PENDING,
        "due_at": due_at,
        "attempts": 0,
        "updated_at": now,
    }


REMOVED_NOTES = ("removed from the plan", "channel removed from the plan")
_STOPPED = (DeliveryState.CANCELLED, DeliveryState.EXPIRED)  # stopped before being sent


def _sync_deliveries(conn: Connection, occurrence_id: int, planned: Planned, now: datetime) -> None:
    """The deliveries of a moved occurrence follow it. Every update names the states it
    moves from, so a delivery a worker took in the meantime is left alone."""
    existing = {
        (r.channel, r.kind): r
        for r in conn.execute(
            select(
                deliveries.c.id,
                deliveries.c.channel,
                deliveries.c.kind,
                deliveries.c.state,
                deliveries.c.last_error,
            )
            .where(deliveries.c.occurrence_id == occurrence_id)
            .where(deliveries.c.kind.not_in(REPEAT_KINDS))  # LATER's: asked for, not planned
        )
    }
    wanted = planned.deliveries()
    for slot, row in existing.items():
        base = update(deliveries).where(deliveries.c.id == row.id)
        due_at = wanted.get(slot)
        if due_at is None:
            # Cancelled for good, whatever stopped it before: a later resume or START
            # must not bring back a channel (or a nudge) the plan no longer has.
            conn.execute(
                base.where(deliveries.c.state.in_((*WAITING_STATES, *_STOPPED))).values(
                    state=DeliveryState.CANCELLED, last_error=REMOVED_NOTES[1], updated_at=now
                )
            )
        elif row.state in (*WAITING_STATES, DeliveryState.EXPIRED) or (
            row.state == DeliveryState.CANCELLED and row.last_error in REMOVED_NOTES
        ):
            conn.execute(
                base.where(deliveries.c.state == row.state).values(
                    state=DeliveryState.PENDING,
                    due_at=due_at,
                    held_from=None,
                    lease_until=None,
                    last_error=None,
                    updated_at=now,
                )
            )
        elif row.state == DeliveryState.CANCELLED:
            # Stopped by a pause or an opt-out: it stays stopped, at its new time, so
            # that resuming or opting back in brings it back when it is really due.
            conn.execute(
                base.where(deliveries.c.state == DeliveryState.CANCELLED).values(
                    due_at=due_at, updated_at=now
                )
            )
    new = [(slot, due_at) for slot, due_at in wanted.items() if slot not in existing]
    if new:
        conn.execute(
            insert(deliveries),
            [_pending_delivery(occurrence_id, slot, due_at, now) for slot, due_at in new],
        )


def upcoming(conn: Connection, enrollment_id: str, limit: int = 5) -> list[dict[str, Any]]:
    """The enrollment's next scheduled occurrences still to come (by instant)."""
    rows = conn.execute(
        select(occurrences.c.key, occurrences.c.practice_id, occurrences.c.instant)
        .where(occurrences.c.enrollment_id == enrollment_id)
        .where(occurrences.c.state == OccurrenceState.SCHEDULED)
        .where(
            select(deliveries.c.id)
            .where(deliveries.c.occurrence_id == occurrences.c.id)
            .where(deliveries.c.state == DeliveryState.PENDING)
            .exists()
        )
        .order_by(occurrences.c.instant)
        .limit(limit)
    )
    return [dict(r) for r in rows.mappings()]


def next_reminders(
    conn: Connection, enrollment_ids: Sequence[str]
) -> dict[str, tuple[str, str, datetime]]:
    """Each enrollment's next reminder still to go, by enrollment id: (practice id,
    occurrence key, instant). The first scheduled occurrence with a pending delivery;
    of several at that instant, the first practice by id."""
    if not enrollment_ids:
        return {}
    pending = (
        select(deliveries.c.id)
        .where(deliveries.c.occurrence_id == occurrences.c.id)
        .where(deliveries.c.state == DeliveryState.PENDING)
        .exists()
    )
    firsts = (
        select(occurrences.c.enrollment_id, func.min(occurrences.c.instant).label("first"))
        .where(occurrences.c.enrollment_id.in_(list(enrollment_ids)))
        .where(occurrences.c.state == OccurrenceState.SCHEDULED)
        .where(pending)
        .group_by(occurrences.c.enrollment_id)
        .subquery()
    )
    rows = conn.execute(
        select(occurrences.c.enrollment_id, occurrences.c.practice_id, occurrences.c.key,
               occurrences.c.instant)
        .join(firsts, and_(firsts.c.enrollment_id == occurrences.c.enrollment_id,
                           firsts.c.first == occurrences.c.instant))
        .where(occurrences.c.state == OccurrenceState.SCHEDULED)
        .where(pending)
        .order_by(occurrences.c.enrollment_id, occurrences.c.practice_id)
    )  # fmt: skip
    out: dict[str, tuple[str, str, datetime]] = {}
    for row in rows:
        out.setdefault(row.enrollment_id, (row.practice_id, row.key, row.instant))
    return out
