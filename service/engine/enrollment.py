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
        current = repo.list_enrollments(
            conn, participant_id=participant_id, plan_id=plan.id, statuses=("active", "paused")
        )
        if current:
            # Enrolling twice would send every reminder twice (a command run again
            # after a timeout, say): cancel the first one to start over.
            raise EnrollmentError(
                f"{participant.name} is already enrolled in {plan.id} ({current[0].id}, "
                f"{current[0].status}); cancel that enrollment first to start again"
            )
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
    error: str | None = None


def sync_plans(
    runtime: Runtime, *, dry_run: bool = False, plan_ids: set[str] | None = None
) -> list[SyncLine]:
    """Bring active and paused enrollments whose plan file changed up to date.

    Each enrollment is its own transaction: one that cannot follow the new plan (an
    override of a variable the plan no longer has, say) is reported and left as it
    is, and the others go on. With `dry_run`, nothing is written.
    """
    plans = runtime.plans.refresh()
    now = runtime.clock.now()
    lines: list[SyncLine] = []
    with transaction(runtime.engine) as conn:
        hashes = repo.plan_hashes(conn)
        stale = {
            plan_id: [
                e
                for e in repo.list_enrollments(conn, plan_id=plan_id, statuses=("active", "paused"))
                if e.plan_hash != plans[plan_id].content_hash
            ]
            for plan_id, stored in sorted(hashes.items())
            if plan_id in plans
            and (plan_ids is None or plan_id in plan_ids)
            and stored != {plans[plan_id].content_hash}
        }
    for plan_id, enrollments in stale.items():
        plan = plans[plan_id]
        for enrollment in enrollments:
            try:
                with transaction(runtime.engine) as conn:
                    participant = repo.get_participant(conn, enrollment.participant_id)
                    if dry_run:
                        changes, _ = plan_changes(conn, enrollment, participant, plan, now)
                        conn.rollback()
                    else:
                        changes = refresh(conn, enrollment, participant, plan, now)
            except ValueError as exc:
                log.error(
                    "enrollment cannot follow its plan's change; left as it was",
                    plan=plan_id,
                    enrollment=enrollment.id,
                    error=str(exc),
                )
                lines.append(SyncLine(plan_id, enrollment.id, enrollment.participant_id,
                                      Changes(), error=str(exc)))  # fmt: skip
                continue
            lines.append(SyncLine(plan_id, enrollment.id, participant.id, changes))
            if not dry_run and changes:
                log.info(
                    "plan change applied",
                    plan=plan_id,
                    enrollment=enrollment.id,
                    changes=changes.summary(),
                )
    return lines


def finish_ended(runtime: Runtime) -> int:
    """Enrollments whose plan has ended (and whose last check-in window has closed)."""
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        return repo.finish_ended(conn, now=now)


def extend_horizons(runtime: Runtime, page: int = 200) -> int:
    """Materialise the next days for active enrollments; returns how many were extended.

    An enrollment is extended once fewer than about 12 days are materialised, so that
    one just extended (to 14 days in its own zone) is not looked at again tomorrow's
    UTC date. Candidates are paged through in (horizon, id) order, each in its own
    transaction, so that none can hold up the others: not one whose plan is gone, not
    one whose refresh fails.
    """
    now = runtime.clock.now()
    before = now.date() + timedelta(days=HORIZON_DAYS - 2)
    loaded = set(runtime.plans.all())
    extended = 0
    after: tuple[date, str] | None = None
    while True:
        with transaction(runtime.engine) as conn:
            candidates = repo.enrollments_to_extend(
                conn, before, plan_ids=loaded, after=after, limit=page
            )
        for enrollment in candidates:
            plan = runtime.plans.get(enrollment.plan_id)
            if plan is None:
                continue
            try:
                with transaction(runtime.engine) as conn:
                    participant = repo.get_participant(conn, enrollment.participant_id)
                    refresh(conn, enrollment, participant, plan, now)
                extended += 1
            except ValueError as exc:
                log.error("enrollment cannot be extended", enrollment=enrollment.id, error=str(exc))
        if len(candidates) < page:
            return extended
        after = (candidates[-1].horizon, candidates[-1].id)


def align_check_in_kinds(runtime: Runtime) -> int:
    """Stored occurrences ask what their practice asks (once per scheduler start: rows
    from before Tend stored the kind, and any left behind, are put right)."""
    changed = 0
    with transaction(runtime.engine) as conn:
        versions = repo.plan_hashes(conn)
    for plan_id, hashes in versions.items():
        for content_hash in hashes:
            plan = runtime.plans.get(plan_id, content_hash)
            if plan is None or plan.content_hash != content_hash:
                continue  # that version is gone: sync_plans moves its enrollments on
            kinds = {p.id: p.check_in.kind for p in plan.practices}
            with transaction(runtime.engine) as conn:
                changed += repo.align_check_in_kinds(conn, plan_id, content_hash, kinds)
    if changed:
        log.info("check-in kinds aligned with the plans", occurrences=changed)
    return changed
