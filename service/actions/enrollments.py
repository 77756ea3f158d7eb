"""Enrollments: enrolling a participant in a plan, pausing, resuming and cancelling, and
materialising an enrollment's occurrences as its plan has them now (`refresh`, which the
scheduler's upkeep calls too)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Connection

from service.actions.access import visible_enrollment, visible_participant
from service.actions.coaches import Actor
from service.actions.errors import Conflict, Invalid, NotFound, action
from service.core.diagnostics import did_you_mean
from service.core.expand import resolve_plan_variables
from service.core.plan import Plan
from service.core.records import Enrollment, Participant
from service.core.schedule import Changes, desired, horizon_for, plan_end, reconcile
from service.core.states import LIVE_STATUSES, EnrollmentStatus
from service.runtime import Runtime
from service.storage import enrollments as enrollment_rows
from service.storage import occurrences as occurrence_rows
from service.storage import participants as participant_rows
from service.storage.db import transaction

log = structlog.get_logger("tend.enrollment")

START_PAST = timedelta(days=366)  # an enrollment starts at most a year before today
START_FUTURE = timedelta(days=2 * 366)  # and at most two years after

Start = date | Literal["today"]


def variables_for(
    plan: Plan, participant: Participant, overrides: dict[str, str]
) -> dict[str, str]:
    """The participant's variables that this plan declares, then the enrollment's own."""
    merged = {k: v for k, v in participant.variables.items() if k in plan.variables}
    merged.update(overrides)
    return merged


def running_plan(runtime: Runtime, plan_id: str) -> Plan:
    """The newest published version of the plan."""
    known = runtime.plans.refresh()
    plan = known.get(plan_id)
    if plan is None:
        raise NotFound(
            f"no plan '{plan_id}' is published{did_you_mean(plan_id, known)}; "
            "publish it first (tend plans push)"
        )
    return plan


@action
def enroll(
    runtime: Runtime,
    participant_id: str,
    plan: Plan,
    start: Start,
    overrides: dict[str, str],
    *,
    actor: Actor | None = None,
) -> Enrollment:
    """Enroll the participant in the plan from `start` (a date, or "today" in their own
    time zone) and materialise the first days of reminders. A participant already in
    the plan (active or paused) is refused: enrolling twice would send every reminder
    twice (a command run again after a time-out, say). `plan` is one the runtime runs
    (`running_plan`). A coach (`actor`) enrolls only their own participants."""
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        # The participant's row is held until the end, so that two requests enrolling
        # them at once (a client retrying) are checked one after the other.
        participant = visible_participant(conn, actor, participant_id, lock=True)
        enrollment = enroll_in(conn, runtime, participant, plan, start, overrides, now)
    log.info("enrolled", participant=participant_id, plan=plan.id, enrollment=enrollment.id)
    return enrollment


def enroll_in(
    conn: Connection,
    runtime: Runtime,
    participant: Participant,
    plan: Plan,
    start: Start,
    overrides: dict[str, str],
    now: datetime,
) -> Enrollment:
    """`enroll`'s work inside the caller's transaction (a cohort enrolled at once), the
    participant's row already locked by the caller."""
    current = enrollment_rows.list_enrollments(
        conn, participant_id=participant.id, plan_id=plan.id, statuses=LIVE_STATUSES
    )
    if current:
        raise Conflict(
            f"{participant.name} is already enrolled in {plan.id} ({current[0].id}, "
            f"{current[0].status}); cancel that enrollment first to start again"
        )
    today = now.astimezone(ZoneInfo(participant.timezone)).date()
    first = today if start == "today" else start
    if not today - START_PAST <= first <= today + START_FUTURE:
        raise Invalid(
            f"start {first.isoformat()} is too far from today ({today.isoformat()}); "
            "an enrollment starts at most a year before today and two years after"
        )
    try:
        resolve_plan_variables(plan, variables_for(plan, participant, overrides))
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    enrollment = enrollment_rows.add_enrollment(
        conn,
        participant_id=participant.id,
        plan_id=plan.id,
        plan_hash=plan.content_hash,
        plan_version=plan.version,
        start=first,
        end_date=plan_end(plan, first),
        variables=overrides,
        now=now,
    )
    refresh(conn, enrollment, participant, plan, now)
    return enrollment


@dataclass(frozen=True, slots=True)
class StatusChange:
    enrollment: Enrollment
    changed: bool  # False: it was in that status already, and nothing was done


_VERBS = {
    EnrollmentStatus.PAUSED: "paused",
    EnrollmentStatus.ACTIVE: "resumed",
    EnrollmentStatus.CANCELLED: "cancelled",
}


def pause(runtime: Runtime, enrollment_id: str, *, actor: Actor | None = None) -> StatusChange:
    """No reminders until resumed: every unsent one stops at once."""
    return _set_status(runtime, enrollment_id, EnrollmentStatus.PAUSED, actor)


def resume(runtime: Runtime, enrollment_id: str, *, actor: Actor | None = None) -> StatusChange:
    """Reminders still ahead come back, and the enrollment is materialised up to its
    horizon again, following its plan version."""
    return _set_status(runtime, enrollment_id, EnrollmentStatus.ACTIVE, actor)


def cancel(runtime: Runtime, enrollment_id: str, *, actor: Actor | None = None) -> StatusChange:
    """The end: nothing more is sent."""
    return _set_status(runtime, enrollment_id, EnrollmentStatus.CANCELLED, actor)


@action
def _set_status(
    runtime: Runtime, enrollment_id: str, status: EnrollmentStatus, actor: Actor | None = None
) -> StatusChange:
    """Asking for the status it has is no change and no error (a button pressed twice,
    a request retried). One that cannot follow is refused, and nothing changes. A coach
    (`actor`) changes only their own participants' enrollments (another's: NotFound)."""
    verb = _VERBS[status]
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        current = visible_enrollment(conn, actor, enrollment_id)
        if current.status == status:
            return StatusChange(current, changed=False)
        try:
            updated = enrollment_rows.set_enrollment_status(conn, enrollment_id, status, now=now)
        except ValueError:
            raise Conflict(
                f"enrollment {enrollment_id} is {current.status}; it cannot be {verb}"
            ) from None
        if status == EnrollmentStatus.ACTIVE:
            plan = runtime.plans.get(updated.plan_id, updated.plan_hash)
            if plan is not None:
                person = participant_rows.get_participant(conn, updated.participant_id)
                try:
                    refresh(conn, updated, person, plan, now)
                except ValueError as exc:  # the plan changed under it
                    raise Conflict(
                        f"enrollment {enrollment_id} cannot resume: {exc}; it stays paused"
                    ) from None
        final = enrollment_rows.get_enrollment(conn, enrollment_id)
    log.info("enrollment status changed", enrollment=enrollment_id, status=status.value)
    return StatusChange(final, changed=True)


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
    stored = occurrence_rows.stored_occurrences(conn, enrollment.id)
    return reconcile(stored, wanted, now), horizon


def refresh(
    conn: Connection, enrollment: Enrollment, participant: Participant, plan: Plan, now: datetime
) -> Changes:
    """Materialise the enrollment up to its horizon and match the plan as it is now.
    Raises ValueError when the enrollment cannot follow the plan (its variables)."""
    changes, horizon = plan_changes(conn, enrollment, participant, plan, now)
    occurrence_rows.apply_changes(conn, enrollment.id, changes, now, plan.version)
    if plan.version and enrollment.plan_version != plan.version:
        occurrence_rows.follow_version(conn, enrollment.id, plan.version, now)
    enrollment_rows.set_horizon(
        conn,
        enrollment.id,
        horizon=horizon,
        end_date=plan_end(plan, enrollment.start_date),
        plan_hash=plan.content_hash,
        plan_version=plan.version,
        now=now,
    )
    return changes


def replan_participant(
    runtime: Runtime, conn: Connection, person: Participant, now: datetime
) -> None:
    """Move the reminders still ahead of the participant's active and paused enrollments
    to their new time zone or variables, in the caller's transaction: Conflict when an
    enrollment's plan is gone, Invalid when the new variables do not fit it."""
    loaded = runtime.plans.refresh()
    for current in enrollment_rows.list_enrollments(
        conn, participant_id=person.id, statuses=LIVE_STATUSES
    ):
        plan = loaded.get(current.plan_id)
        if plan is None:
            raise Conflict(
                f"enrollment {current.id} follows plan '{current.plan_id}', which cannot be "
                "read, so its reminders cannot be moved; cancel that enrollment first, or "
                "publish the plan again"
            )
        try:
            resolve_plan_variables(plan, variables_for(plan, person, current.variables))
            refresh(conn, current, person, plan, now)
        except ValueError as exc:
            raise Invalid(
                f"enrollment {current.id} ({current.plan_id}) cannot follow the change: {exc}"
            ) from None
