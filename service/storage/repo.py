"""Repository functions: every read and write of Tend's tables, on a given connection.

Each function runs inside the caller's transaction, so that a caller can make several
of them one atomic step. State changes are conditional updates: they say which state
they move from, and do nothing (reporting so) when someone else moved it first.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg.rows import dict_row
from sqlalchemy import (
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from service.core.records import (
    DeliveryJob,
    Enrollment,
    InvitationCandidate,
    InvitationState,
    Participant,
)
from service.core.schedule import Changes, Planned, Stored
from service.storage.tables import (
    app_state,
    consent_log,
    deliveries,
    enrollments,
    invitations,
    occurrences,
    outbox,
    participants,
)
from service.storage.types import UTCDateTime

PAUSED_NOTE = "enrollment paused"
OPTED_OUT_NOTE = "participant opted out of SMS"
UNSUBSCRIBED_NOTE = "participant unsubscribed from email"


class NotFound(LookupError):
    """No row with that id."""


def new_id(prefix: str) -> str:
    """A short random id such as `p_k3m9x2q7hv4d`: 60 bits, lower case, no look-alikes."""
    raw = base64.b32encode(secrets.token_bytes(8)).decode().lower().rstrip("=")
    return f"{prefix}_{raw[:12]}"


# --- app state -----------------------------------------------------------------------


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


# --- participants --------------------------------------------------------------------


def _participant(row: RowMapping) -> Participant:
    return Participant(
        id=row["id"],
        name=row["name"],
        phone=row["phone"],
        email=row["email"],
        timezone=row["timezone"],
        variables=dict(row["variables"] or {}),
        sms_state=row["sms_state"],
        paused_until=row["paused_until"],
        email_unsubscribed=row["email_unsubscribed"],
        feed_version=row["feed_version"],
        created_at=row.get("created_at"),
    )


participant_from_row = _participant  # for queries of participants made elsewhere


def add_participant(
    conn: Connection,
    *,
    name: str,
    timezone: str,
    now: datetime,
    phone: str | None = None,
    email: str | None = None,
    variables: Mapping[str, str] | None = None,
) -> Participant:
    participant_id = new_id("p")
    conn.execute(
        insert(participants).values(
            id=participant_id,
            name=name,
            phone=phone,
            email=email,
            timezone=timezone,
            variables=dict(variables or {}),
            sms_state="subscribed",
            email_unsubscribed=False,
            feed_version=1,
            created_at=now,
        )
    )
    return get_participant(conn, participant_id)


def get_participant(conn: Connection, participant_id: str, *, lock: bool = False) -> Participant:
    """The participant; `lock` holds their row to the end of the transaction (PostgreSQL;
    SQLite's writers take turns anyway)."""
    query = select(participants).where(participants.c.id == participant_id)
    found = conn.execute(query.with_for_update() if lock else query).mappings().first()
    if found is None:
        raise NotFound(f"no participant '{participant_id}'")
    return _participant(found)


# Every inbound text starts here: one statement, built once.
_BY_PHONE = select(participants).where(participants.c.phone == bindparam("phone"))


_BY_PHONE_LOCKED = _BY_PHONE.with_for_update()


def find_participant_by_phone(
    conn: Connection, phone: str, *, lock: bool = False
) -> Participant | None:
    """The participant with this number. `lock`: hold their row until the transaction
    ends (PostgreSQL; SQLite's writers take turns anyway), so that two texts from one
    person are handled one after the other."""
    statement = _BY_PHONE_LOCKED if lock else _BY_PHONE
    found = conn.execute(statement, {"phone": phone}).mappings().first()
    return _participant(found) if found else None


def list_participants(conn: Connection) -> list[Participant]:
    rows = conn.execute(select(participants).order_by(participants.c.created_at, participants.c.id))
    return [_participant(r) for r in rows.mappings()]


def rotate_feed(conn: Connection, participant_id: str) -> int:
    result = conn.execute(
        update(participants)
        .where(participants.c.id == participant_id)
        .values(feed_version=participants.c.feed_version + 1)
        .returning(participants.c.feed_version)
    ).scalar()
    if result is None:
        raise NotFound(f"no participant '{participant_id}'")
    return int(result)


def log_consent(
    conn: Connection,
    participant_id: str,
    *,
    channel: str,
    action: str,
    source: str,
    now: datetime,
    detail: str | None = None,
) -> None:
    conn.execute(
        insert(consent_log).values(
            participant_id=participant_id,
            channel=channel,
            action=action,
            source=source,
            detail=detail,
            at=now,
        )
    )


def opted_out_between(conn: Connection, since: datetime, until: datetime) -> set[str]:
    """Participants who opted out of SMS in [since, until)."""
    rows = conn.execute(
        select(consent_log.c.participant_id)
        .where(consent_log.c.channel == "sms")
        .where(consent_log.c.action == "opt_out")
        .where(consent_log.c.at >= since)
        .where(consent_log.c.at < until)
        .distinct()
    )
    return {r[0] for r in rows}


def consent_history(conn: Connection, participant_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(consent_log)
        .where(consent_log.c.participant_id == participant_id)
        .order_by(consent_log.c.at, consent_log.c.id)
    )
    return [dict(r) for r in rows.mappings()]


def opt_out_sms(conn: Connection, participant_id: str, *, source: str, now: datetime) -> int:
    """Record an SMS opt-out and cancel every unsent SMS; returns how many were cancelled."""
    conn.execute(
        update(participants)
        .where(participants.c.id == participant_id)
        .values(sms_state="opted_out")
    )
    log_consent(conn, participant_id, channel="sms", action="opt_out", source=source, now=now)
    return _cancel_channel(conn, participant_id, "sms", now, OPTED_OUT_NOTE)


def opt_in_sms(conn: Connection, participant_id: str, *, source: str, now: datetime) -> int:
    """Record an SMS opt-in; reminders still ahead that the opt-out cancelled come back."""
    conn.execute(
        update(participants)
        .where(participants.c.id == participant_id)
        .values(sms_state="subscribed")
    )
    log_consent(conn, participant_id, channel="sms", action="opt_in", source=source, now=now)
    return _restore(conn, now, OPTED_OUT_NOTE, participant_id=participant_id, channels=("sms",))


def _participant_deliveries(participant_id: str) -> Any:
    return (
        select(deliveries.c.id)
        .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
        .join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
        .where(enrollments.c.participant_id == participant_id)
    )


def _cancel_channel(
    conn: Connection, participant_id: str, channel: str, now: datetime, note: str
) -> int:
    """Cancel every unsent delivery of `channel` for the participant, with `note`."""
    ids = _participant_deliveries(participant_id).where(deliveries.c.channel == channel)
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(ids.scalar_subquery()))
        .where(deliveries.c.state.in_(("pending", "claimed")))
        .values(state="cancelled", last_error=note, lease_until=None, updated_at=now)
    )
    return int(result.rowcount or 0)


def _restore(
    conn: Connection,
    now: datetime,
    note: str,
    *,
    participant_id: str | None = None,
    enrollment_id: str | None = None,
    channels: tuple[str, ...] | None = None,
) -> int:
    """Cancelled deliveries still ahead, cancelled for `note`, become pending again."""
    ids = (
        select(deliveries.c.id)
        .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
        .join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
        .where(occurrences.c.state == "scheduled")
        .where(enrollments.c.status == "active")
    )
    if participant_id is not None:
        ids = ids.where(enrollments.c.participant_id == participant_id)
    if enrollment_id is not None:
        ids = ids.where(enrollments.c.id == enrollment_id)
    if channels is not None:
        ids = ids.where(deliveries.c.channel.in_(channels))
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(ids.scalar_subquery()))
        .where(deliveries.c.state == "cancelled")
        .where(deliveries.c.last_error == note)
        .where(deliveries.c.due_at > now)
        .values(state="pending", last_error=None, updated_at=now)
    )
    return int(result.rowcount or 0)


def email_unsubscribed(conn: Connection, participant_id: str) -> bool | None:
    """Whether the participant unsubscribed from email; None when there is no such one."""
    row = conn.execute(
        select(participants.c.email_unsubscribed).where(participants.c.id == participant_id)
    ).first()
    return None if row is None else bool(row[0])


def unsubscribe_email(
    conn: Connection, participant_id: str, *, source: str, now: datetime, detail: str | None = None
) -> int:
    """Unsubscribe the participant from email and cancel their unsent reminder emails;
    returns how many were cancelled. The consent log records the change once: asking
    again changes nothing and logs nothing. An email already being sent goes out."""
    changed = conn.execute(
        update(participants)
        .where(participants.c.id == participant_id)
        .where(participants.c.email_unsubscribed.is_(False))
        .values(email_unsubscribed=True)
    ).rowcount
    if changed:
        log_consent(
            conn,
            participant_id,
            channel="email",
            action="opt_out",
            source=source,
            now=now,
            detail=detail,
        )
    return _cancel_channel(conn, participant_id, "email", now, UNSUBSCRIBED_NOTE)


def set_sms_pause(
    conn: Connection, participant_id: str, until: datetime | None, *, source: str, now: datetime
) -> None:
    conn.execute(
        update(participants).where(participants.c.id == participant_id).values(paused_until=until)
    )
    action = "pause" if until is not None else "resume"
    detail = until.isoformat() if until is not None else None
    log_consent(
        conn, participant_id, channel="sms", action=action, source=source, now=now, detail=detail
    )


# --- enrollments ---------------------------------------------------------------------


def _enrollment(row: RowMapping) -> Enrollment:
    return Enrollment(
        id=row["id"],
        participant_id=row["participant_id"],
        plan_id=row["plan_id"],
        plan_hash=row["plan_hash"],
        start_date=row["start_date"],
        variables=dict(row["variables"] or {}),
        status=row["status"],
        horizon=row["horizon"],
        end_date=row["end_date"],
        not_before=row["not_before"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


enrollment_from_row = _enrollment  # for queries of enrollments made elsewhere


def add_enrollment(
    conn: Connection,
    *,
    participant_id: str,
    plan_id: str,
    plan_hash: str,
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
            start_date=start,
            variables=dict(variables),
            status="active",
            horizon=start,
            end_date=end_date,
            not_before=now,
            created_at=now,
            updated_at=now,
        )
    )
    return get_enrollment(conn, enrollment_id)


def get_enrollment(conn: Connection, enrollment_id: str) -> Enrollment:
    found = (
        conn.execute(select(enrollments).where(enrollments.c.id == enrollment_id))
        .mappings()
        .first()
    )
    if found is None:
        raise NotFound(f"no enrollment '{enrollment_id}'")
    return _enrollment(found)


def list_enrollments(
    conn: Connection,
    *,
    participant_id: str | None = None,
    plan_id: str | None = None,
    statuses: Sequence[str] | None = None,
) -> list[Enrollment]:
    query = select(enrollments).order_by(enrollments.c.created_at, enrollments.c.id)
    if participant_id is not None:
        query = query.where(enrollments.c.participant_id == participant_id)
    if plan_id is not None:
        query = query.where(enrollments.c.plan_id == plan_id)
    if statuses is not None:
        query = query.where(enrollments.c.status.in_(tuple(statuses)))
    return [_enrollment(r) for r in conn.execute(query).mappings()]


def set_enrollment_status(
    conn: Connection, enrollment_id: str, status: str, *, now: datetime
) -> Enrollment:
    """Pause, resume, finish or cancel. Pausing or cancelling stops every unsent
    delivery at once; resuming brings back those still ahead that the pause stopped."""
    current = get_enrollment(conn, enrollment_id)
    allowed = {
        "paused": ("active",),
        "active": ("paused",),
        "cancelled": ("active", "paused"),
        "finished": ("active", "paused"),
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
    if status == "paused":
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids))
            .where(deliveries.c.state.in_(("pending", "claimed")))
            .values(state="cancelled", last_error=PAUSED_NOTE, lease_until=None, updated_at=now)
        )
    elif status == "active":
        participant = get_participant(conn, current.participant_id)
        subscribed = participant.sms_state == "subscribed"
        # What the pause stopped comes back, SMS only while the participant is subscribed;
        # and SMS that an opt-out stopped during the pause, now that they opted back in.
        _restore(
            conn, now, PAUSED_NOTE, enrollment_id=enrollment_id,
            channels=None if subscribed else ("email",),
        )  # fmt: skip
        if subscribed:
            _restore(conn, now, OPTED_OUT_NOTE, enrollment_id=enrollment_id, channels=("sms",))
    else:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids))
            .where(deliveries.c.state.in_(("pending", "claimed")))
            .values(state="cancelled", last_error=f"enrollment {status}", updated_at=now)
        )
        if status == "cancelled":
            conn.execute(
                update(occurrences)
                .where(occurrences.c.enrollment_id == enrollment_id)
                .where(occurrences.c.instant > now)
                .values(state="cancelled", sequence=occurrences.c.sequence + 1, updated_at=now)
            )
    return get_enrollment(conn, enrollment_id)


def set_horizon(
    conn: Connection,
    enrollment_id: str,
    *,
    horizon: date,
    end_date: date,
    plan_hash: str,
    now: datetime,
) -> None:
    conn.execute(
        update(enrollments)
        .where(enrollments.c.id == enrollment_id)
        .values(horizon=horizon, end_date=end_date, plan_hash=plan_hash, updated_at=now)
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
        .where(enrollments.c.status == "active")
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
    return [_enrollment(r) for r in conn.execute(query).mappings()]


def finish_ended(conn: Connection, *, now: datetime) -> int:
    """Active enrollments past their plan's end, with every check-in window closed."""
    open_windows = (
        select(occurrences.c.id)
        .where(occurrences.c.enrollment_id == enrollments.c.id)
        .where(occurrences.c.state == "scheduled")
        .where(occurrences.c.window_end > now)
        .exists()
    )
    result = conn.execute(
        update(enrollments)
        .where(enrollments.c.status == "active")
        .where(enrollments.c.horizon >= enrollments.c.end_date)
        .where(enrollments.c.end_date < now.date())
        .where(~open_windows)
        .values(status="finished", updated_at=now)
    )
    return int(result.rowcount or 0)


def plan_hashes(conn: Connection) -> dict[str, set[str]]:
    """For each plan id, the content hashes its active or paused enrollments were built from."""
    rows = conn.execute(
        select(enrollments.c.plan_id, enrollments.c.plan_hash)
        .where(enrollments.c.status.in_(("active", "paused")))
        .distinct()
    )
    out: dict[str, set[str]] = {}
    for plan_id, plan_hash in rows:
        out.setdefault(plan_id, set()).add(plan_hash)
    return out


# --- occurrences ---------------------------------------------------------------------


def _touched(occurrence_id: Any) -> Any:
    """Whether a delivery of the occurrence is being sent or was sent: history then."""
    return (
        select(deliveries.c.id)
        .where(deliveries.c.occurrence_id == occurrence_id)
        .where(deliveries.c.state.in_(("sending", "sent", "delivered")))
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
        .where(deliveries.c.state.in_(("sending", "sent", "delivered")))
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
    return [Stored(r.id, r.key, r.instant, r.fingerprint, r.state, bool(r.touched)) for r in rows]


def apply_changes(conn: Connection, enrollment_id: str, changes: Changes, now: datetime) -> None:
    """Store what `reconcile` decided: new occurrences with their deliveries, changed
    ones moved (pending deliveries follow), and the dropped ones cancelled."""
    if changes.added:
        _insert_occurrences(conn, enrollment_id, changes.added, now)
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
                state="scheduled",
                sequence=occurrences.c.sequence + 1,
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
            .values(state="cancelled", sequence=occurrences.c.sequence + 1, updated_at=now)
        )
        conn.execute(
            update(deliveries)
            .where(deliveries.c.occurrence_id.in_(ids))
            .where(deliveries.c.state.in_(("pending", "claimed")))
            .values(state="cancelled", last_error="removed from the plan", updated_at=now)
        )


def _insert_occurrences(
    conn: Connection, enrollment_id: str, planned: Iterable[Planned], now: datetime
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
            "state": "scheduled",
            "sequence": 0,
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
        {
            "occurrence_id": occurrence_id,
            "channel": channel,
            "kind": kind,
            "state": "pending",
            "due_at": due_at,
            "attempts": 0,
            "updated_at": now,
        }
        for occurrence_id, key in ids
        for (channel, kind), due_at in by_key[key].deliveries().items()
    ]
    if delivery_rows:
        conn.execute(insert(deliveries), delivery_rows)


REMOVED_NOTES = ("removed from the plan", "channel removed from the plan")


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
            ).where(deliveries.c.occurrence_id == occurrence_id)
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
                base.where(
                    deliveries.c.state.in_(("pending", "claimed", "cancelled", "expired"))
                ).values(state="cancelled", last_error=REMOVED_NOTES[1], updated_at=now)
            )
        elif row.state in ("pending", "claimed", "expired") or (
            row.state == "cancelled" and row.last_error in REMOVED_NOTES
        ):
            conn.execute(
                base.where(deliveries.c.state == row.state).values(
                    state="pending",
                    due_at=due_at,
                    lease_until=None,
                    last_error=None,
                    updated_at=now,
                )
            )
        elif row.state == "cancelled":
            # Stopped by a pause or an opt-out: it stays stopped, at its new time, so
            # that resuming or opting back in brings it back when it is really due.
            conn.execute(
                base.where(deliveries.c.state == "cancelled").values(due_at=due_at, updated_at=now)
            )
    new = [(slot, due_at) for slot, due_at in wanted.items() if slot not in existing]
    if new:
        conn.execute(
            insert(deliveries),
            [
                {
                    "occurrence_id": occurrence_id,
                    "channel": channel,
                    "kind": kind,
                    "state": "pending",
                    "due_at": due_at,
                    "attempts": 0,
                    "updated_at": now,
                }
                for (channel, kind), due_at in new
            ],
        )


# --- the scheduler's side --------------------------------------------------------------


def expire_stale(conn: Connection, *, now: datetime, grace: timedelta) -> int:
    """Deliveries not handed to a channel within the grace period never go out late."""
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.state.in_(("pending", "claimed")))
        .where(deliveries.c.due_at < now - grace)
        .values(
            state="expired",
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
                and_(deliveries.c.state == "pending", deliveries.c.due_at <= now),
                and_(
                    deliveries.c.state.in_(("claimed", "sending")),
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
            uncertain=or_(deliveries.c.uncertain, deliveries.c.state == "sending"),
            state="claimed",
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(deliveries.c.id)
    )
    return sorted(int(r) for r in claimed.scalars())


def next_due(conn: Connection) -> datetime | None:
    """When the earliest pending delivery is due."""
    found: datetime | None = conn.execute(
        select(func.min(deliveries.c.due_at)).where(deliveries.c.state == "pending")
    ).scalar()
    return found


# --- the worker's side ---------------------------------------------------------------


# The worker's statements run for every reminder: built once, executed many times.
_START_SENDING = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("delivery_id"))
    .where(deliveries.c.state == "claimed")
    .values(
        state="sending",
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
_FINISH = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("delivery_id"))
    .where(deliveries.c.state == "sending")
    # The attempt is a fencing token: a worker whose lease ran out while it was
    # sending, and whose delivery another worker took up since, changes nothing.
    .where(deliveries.c.attempts == bindparam("attempt"))
    .values(
        state=bindparam("new_state"),
        lease_until=None,
        last_error=bindparam("error"),
        updated_at=bindparam("now", type_=UTCDateTime()),
        uncertain=False,
        provider_id=func.coalesce(bindparam("provider", type_=String()), deliveries.c.provider_id),
        segments=func.coalesce(bindparam("segment_count", type_=Integer()), deliveries.c.segments),
        sent_at=func.coalesce(bindparam("sent", type_=UTCDateTime()), deliveries.c.sent_at),
    )
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


def _prefixed(row: Any, prefix: str) -> dict[str, Any]:
    return {key[len(prefix) :]: value for key, value in row.items() if key.startswith(prefix)}


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
    return DeliveryJob(
        id=row["id"],
        channel=row["channel"],
        kind=row["kind"],
        due_at=row["due_at"],
        attempts=row["attempts"],
        occurrence_id=row["occurrence_id"],
        occurrence_key=row["occurrence_key"],
        practice_id=row["practice_id"],
        local_date=row["local_date"],
        week=row["week"],
        seq=row["seq"],
        instant=row["instant"],
        item=row["item"],
        window_end=row["window_end"],
        enrollment_id=row["enrollment_id"],
        plan_id=row["plan_id"],
        enrollment_status=row["enrollment_status"],
        enrollment_variables=dict(row["enrollment_variables"] or {}),
        participant=_participant(_prefixed(row, "p_")),  # type: ignore[arg-type]
        extra={
            "uncertain": bool(row["uncertain"]),
            "occurrence_state": row["occurrence_state"],
            "check_in": row["occurrence_check_in"],
            "occurrence_channels": list(row["occurrence_channels"] or []),
            "plan_hash": row["plan_hash"],
        },
    )


def finish(
    conn: Connection,
    delivery_id: int,
    state: str,
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
        "sent": now if state == "sent" else None,
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
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .where(deliveries.c.state == "sending")
        .where(deliveries.c.attempts == attempt)
        .values(
            state="claimed",
            lease_until=lease_until,
            last_error=error,
            updated_at=now,
            uncertain=uncertain,
        )
    )
    return bool(result.rowcount)


def record_provider_status(
    conn: Connection, provider_id: str, state: str, *, error: str | None, now: datetime
) -> bool:
    """A provider's report on a sent message. States only move forward: sent ->
    delivered or failed; a late "sent" after "delivered" changes nothing. False when no
    delivery has that provider id in a state the report may move."""
    earlier = {"sent": (), "delivered": ("sent",), "failed": ("sent",)}.get(state, ())
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


def get_delivery(conn: Connection, delivery_id: int) -> dict[str, Any]:
    row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).mappings().first()
    if row is None:
        raise NotFound(f"no delivery {delivery_id}")
    return dict(row)


# --- the development outbox ----------------------------------------------------------


def outbox_put(
    conn: Connection,
    *,
    delivery_id: int | None,
    channel: str,
    recipient: str,
    body: str,
    now: datetime,
    subject: str | None = None,
    html: str | None = None,
    calendar: str | None = None,
) -> int:
    """Store a message; idempotent on the delivery: the same delivery is stored once."""
    if delivery_id is not None:
        existing = conn.execute(
            select(outbox.c.id).where(outbox.c.delivery_id == delivery_id)
        ).scalar()
        if existing is not None:
            return int(existing)
    return int(
        conn.execute(
            insert(outbox)
            .values(
                delivery_id=delivery_id,
                channel=channel,
                recipient=recipient,
                subject=subject,
                body=body,
                html=html,
                calendar=calendar,
                created_at=now,
            )
            .returning(outbox.c.id)
        ).scalar_one()
    )


def outbox_has(conn: Connection, delivery_id: int) -> bool:
    return (
        conn.execute(select(outbox.c.id).where(outbox.c.delivery_id == delivery_id)).scalar()
        is not None
    )


def outbox_list(conn: Connection, limit: int = 50) -> list[dict[str, Any]]:
    rows = conn.execute(select(outbox).order_by(outbox.c.id.desc()).limit(limit))
    return [dict(r) for r in rows.mappings()]


def outbox_clear(conn: Connection) -> int:
    return int(conn.execute(delete(outbox)).rowcount or 0)


def upcoming(conn: Connection, enrollment_id: str, limit: int = 5) -> list[dict[str, Any]]:
    """The enrollment's next scheduled occurrences still to come (by instant)."""
    rows = conn.execute(
        select(occurrences.c.key, occurrences.c.practice_id, occurrences.c.instant)
        .where(occurrences.c.enrollment_id == enrollment_id)
        .where(occurrences.c.state == "scheduled")
        .where(
            select(deliveries.c.id)
            .where(deliveries.c.occurrence_id == occurrences.c.id)
            .where(deliveries.c.state == "pending")
            .exists()
        )
        .order_by(occurrences.c.instant)
        .limit(limit)
    )
    return [dict(r) for r in rows.mappings()]


# --- calendar invitations ------------------------------------------------------------


def _invitation(row: RowMapping) -> InvitationState:
    return InvitationState(
        enrollment_id=row["enrollment_id"],
        sequence=row["sequence"],
        sent_hash=row["sent_hash"],
        method_sent=row["method_sent"],
        sent_keys=tuple(row["sent_keys"] or ()),
        wanted_hash=row["wanted_hash"],
        checked_key=row["checked_key"],
        state=row["state"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        lease_until=row["lease_until"],
        sent_to=row["sent_to"],
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
                enrollments.c.status.in_(("active", "paused")),
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
        state = _prefixed(row, "i_")
        out.append(
            InvitationCandidate(
                enrollment=_enrollment(_prefixed(row, "e_")),  # type: ignore[arg-type]
                participant=_participant(_prefixed(row, "p_")),  # type: ignore[arg-type]
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
                    state="idle",
                    attempts=0,
                    updated_at=now,
                )
            )
    except IntegrityError:
        pass


def invitation_checked(
    conn: Connection, enrollment_id: str, checked_key: str, now: datetime
) -> None:
    """Remember that the invitation was up to date for these inputs."""
    _ensure_invitation(conn, enrollment_id, now)
    conn.execute(
        update(invitations)
        .where(invitations.c.enrollment_id == enrollment_id)
        .where(invitations.c.state == "idle")
        .values(checked_key=checked_key)
    )


def invitation_want(conn: Connection, enrollment_id: str, wanted_hash: str, now: datetime) -> bool:
    """A new version is wanted: idle -> pending unless that version is the one last sent
    (another scheduler, which read the row before this one, has just sent it), and
    failed -> pending when the version differs from the one that failed. False when the
    row is in no state to take it."""
    _ensure_invitation(conn, enrollment_id, now)
    result = conn.execute(
        update(invitations)
        .where(invitations.c.enrollment_id == enrollment_id)
        .where(
            or_(
                and_(
                    invitations.c.state == "idle",
                    or_(
                        invitations.c.sent_hash.is_(None),
                        invitations.c.sent_hash != wanted_hash,
                    ),
                ),
                and_(
                    invitations.c.state == "failed",
                    or_(
                        invitations.c.wanted_hash.is_(None),
                        invitations.c.wanted_hash != wanted_hash,
                    ),
                ),
            )
        )
        .values(
            state="pending", wanted_hash=wanted_hash, attempts=0, lease_until=None, updated_at=now
        )
    )
    return bool(result.rowcount)


def invitation_start(
    conn: Connection, enrollment_id: str, wanted_hash: str, *, now: datetime, lease: timedelta
) -> int | None:
    """pending (once its retry time has come) -> sending with a lease, or a sending row
    whose lease ran out; returns the attempt (the fencing token), None when not ours."""
    result = conn.execute(
        update(invitations)
        .where(invitations.c.enrollment_id == enrollment_id)
        .where(
            or_(
                and_(
                    invitations.c.state == "pending",
                    or_(invitations.c.lease_until.is_(None), invitations.c.lease_until <= now),
                ),
                and_(invitations.c.state == "sending", invitations.c.lease_until < now),
            )
        )
        .values(
            state="sending",
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
        update(invitations)
        .where(invitations.c.enrollment_id == enrollment_id)
        .where(invitations.c.state == "sending")
        .where(invitations.c.attempts == attempt)
        .where(invitations.c.wanted_hash == sent_hash)
        .values(
            state="idle",
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
        update(invitations)
        .where(invitations.c.enrollment_id == enrollment_id)
        .where(invitations.c.state == "sending")
        .where(invitations.c.attempts == attempt)
        .where(invitations.c.wanted_hash == wanted_hash)
        .values(
            state="failed" if retry_at is None else "pending",
            last_error=error,
            lease_until=retry_at,
            updated_at=now,
        )
    )
    return bool(result.rowcount)
