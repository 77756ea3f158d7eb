"""Creating an enrollment and materialising its occurrences: shared by the engine (the
scheduler, `tend enroll`) and the web layer (the JSON API), which sit side by side
above this layer."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Connection

from service.core.expand import resolve_plan_variables
from service.core.plan import Plan
from service.core.records import Enrollment, Participant
from service.core.schedule import Changes, desired, horizon_for, plan_end, reconcile
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
        # The participant's row is held until the end, so that two requests enrolling
        # them at once (a client retrying) are checked one after the other.
        participant = repo.get_participant(conn, participant_id, lock=True)
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
