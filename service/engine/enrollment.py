"""Enrollments: creating them, keeping their occurrences materialised over a rolling
horizon, and bringing them up to date when their plan changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Connection

from service.core.expand import resolve_plan_variables
from service.core.plan import Plan
from service.core.records import Enrollment, Participant
from service.core.schedule import (
    HORIZON_DAYS,
    Changes,
    desired,
    horizon_for,
    plan_end,
    reconcile,
)
from service.runtime import Runtime
from service.storage import repo
from service.storage.db import transaction

log = structlog.get_logger("tend.enrollment")


class EnrollmentError(ValueError):
    """An enrollment that cannot be made as asked; the message says why."""


def variables_for(
    plan: Plan, participant: Participant, overrides: dict[str, str]
) -> dict[str, str]:
    """The participant's variables that this plan declares, then the enrollment's own."""
    merged = {k: v for k, v in participant.variables.items() if k in plan.variables}
    merged.update(overrides)
    return merged


def enroll(
    runtime: Runtime,
    participant_id: str,
    plan: Plan,
    start: date,
    overrides: dict[str, str],
) -> Enrollment:
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        participant = repo.get_participant(conn, participant_id)
        variables = variables_for(plan, participant, overrides)
        try:
            resolve_plan_variables(plan, variables)
        except ValueError as exc:
            raise EnrollmentError(str(exc)) from exc
        enrollment = repo.add_enrollment(
            conn,
            participant_id=participant_id,
            plan_id=plan.id,
            plan_hash=plan.content_hash,
            start=start,
            end_date=plan_end(plan, start),
            variables=overrides,
            now=now,
        )
        refresh(conn, enrollment, participant, plan, now)
    log.info("enrolled", participant=participant_id, plan=plan.id, enrollment=enrollment.id)
    return enrollment


def plan_changes(
    conn: Connection, enrollment: Enrollment, participant: Participant, plan: Plan, now: datetime
) -> tuple[Changes, date]:
    """What `refresh` would change, and the horizon it would reach."""
    zone = ZoneInfo(participant.timezone)
    today = now.astimezone(zone).date()
    horizon = max(enrollment.horizon, horizon_for(plan, enrollment.start_date, today))
    horizon = min(horizon, plan_end(plan, enrollment.start_date))
    variables = variables_for(plan, participant, enrollment.variables)
    wanted = desired(plan, enrollment.start_date, zone, variables, horizon, enrollment.not_before)
    stored = repo.stored_occurrences(conn, enrollment.id)
    return reconcile(stored, wanted, now), horizon


def refresh(
    conn: Connection, enrollment: Enrollment, participant: Participant, plan: Plan, now: datetime
) -> Changes:
    """Materialise the enrollment up to its horizon and match the plan as it is now."""
    changes, horizon = plan_changes(conn, enrollment, participant, plan, now)
    repo.apply_changes(conn, enrollment.id, changes, now)
    repo.set_horizon(
        conn,
        enrollment.id,
        horizon=horizon,
        end_date=plan_end(plan, enrollment.start_date),
        plan_hash=plan.content_hash,
        now=now,
    )
    return changes


@dataclass(frozen=True, slots=True)
class SyncLine:
    plan_id: str
    enrollment_id: str
    participant_id: str
    changes: Changes


def sync_plans(
    runtime: Runtime, *, dry_run: bool = False, plan_ids: set[str] | None = None
) -> list[SyncLine]:
    """Bring active and paused enrollments whose plan file changed up to date.

    With `dry_run`, nothing is written and the lines say what would change.
    """
    plans = runtime.plans.refresh()
    now = runtime.clock.now()
    lines: list[SyncLine] = []
    with transaction(runtime.engine) as conn:
        hashes = repo.plan_hashes(conn)
    for plan_id, stored_hashes in sorted(hashes.items()):
        if plan_ids is not None and plan_id not in plan_ids:
            continue
        plan = plans.get(plan_id)
        if plan is None or stored_hashes == {plan.content_hash}:
            continue
        with transaction(runtime.engine) as conn:
            for enrollment in repo.list_enrollments(
                conn, plan_id=plan_id, statuses=("active", "paused")
            ):
                if enrollment.plan_hash == plan.content_hash:
                    continue
                participant = repo.get_participant(conn, enrollment.participant_id)
                if dry_run:
                    changes, _ = plan_changes(conn, enrollment, participant, plan, now)
                else:
                    changes = refresh(conn, enrollment, participant, plan, now)
                lines.append(SyncLine(plan_id, enrollment.id, participant.id, changes))
            if dry_run:
                conn.rollback()
    for line in lines:
        if not dry_run and line.changes:
            log.info(
                "plan change applied",
                plan=line.plan_id,
                enrollment=line.enrollment_id,
                changes=line.changes.summary(),
            )
    return lines


def finish_ended(runtime: Runtime) -> int:
    """Enrollments whose plan has ended (and whose last check-in window has closed)."""
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        return repo.finish_ended(conn, now=now)


def extend_horizons(runtime: Runtime, limit: int = 200) -> int:
    """Materialise the next days for active enrollments; returns how many were extended."""
    now = runtime.clock.now()
    # Any zone's today is within a day of UTC's; the per-enrollment check is exact.
    before = now.date() + timedelta(days=HORIZON_DAYS + 1)
    extended = 0
    with transaction(runtime.engine) as conn:
        candidates = repo.enrollments_to_extend(conn, before, limit=limit)
        for enrollment in candidates:
            plan = runtime.plans.get(enrollment.plan_id)
            if plan is None:
                continue
            participant = repo.get_participant(conn, enrollment.participant_id)
            changes, horizon = plan_changes(conn, enrollment, participant, plan, now)
            if horizon != enrollment.horizon or changes:
                refresh(conn, enrollment, participant, plan, now)
                extended += 1
    return extended
