"""`/api/enrollments`: enroll a participant in a plan; read and list enrollments with
their next reminder; pause, resume and cancel."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Annotated, Any, cast
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query

from service.actions import enrollments as enrolling
from service.core.records import Enrollment
from service.runtime import Runtime
from service.storage import enrollments as enrollment_rows
from service.storage import occurrences as occurrence_rows
from service.storage import participants as participant_rows
from service.storage.db import Connection, reading
from service.web.api.common import (
    EnrollmentId,
    Limit,
    Offset,
    ParticipantFilter,
    PlanFilter,
    RuntimeDep,
    answering,
    responses,
)
from service.web.api.schemas import (
    EnrollmentCreate,
    EnrollmentOut,
    EnrollmentPage,
    EnrollmentStatus,
    NextReminder,
)

router = APIRouter()


def _enrollments_out(conn: Connection, found: Sequence[Enrollment]) -> list[EnrollmentOut]:
    nexts = occurrence_rows.next_reminders(conn, [e.id for e in found])
    zones = participant_rows.participant_zones(conn, [e.participant_id for e in found])
    out = []
    for e in found:
        following = nexts.get(e.id)
        upcoming = None
        if following is not None:
            practice, key, instant = following
            zone = ZoneInfo(zones.get(e.participant_id, "UTC"))
            upcoming = NextReminder(
                practice=practice, key=key, at=instant, local=instant.astimezone(zone).isoformat()
            )
        out.append(
            EnrollmentOut(
                id=e.id,
                participant=e.participant_id,
                plan=e.plan_id,
                status=cast(EnrollmentStatus, e.status),
                start=e.start_date,
                last_day=e.end_date - timedelta(days=1),
                variables=dict(e.variables),
                created_at=e.created_at,
                updated_at=e.updated_at,
                next_reminder=upcoming,
            )
        )
    return out


def _one(runtime: Runtime, enrollment: Enrollment) -> EnrollmentOut:
    with reading(runtime.engine) as conn:
        return _enrollments_out(conn, [enrollment])[0]


@router.get(
    "/enrollments", response_model=EnrollmentPage, tags=["enrollments"], summary="List enrollments"
)
def list_enrollments(
    runtime: RuntimeDep,
    participant: ParticipantFilter = None,
    plan: PlanFilter = None,
    status: Annotated[EnrollmentStatus | None, Query(description="Only in this status.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """Enrollments, oldest first, with each one's next reminder."""
    with reading(runtime.engine) as conn:
        found, total = enrollment_rows.enrollment_page(
            conn,
            limit=limit,
            offset=offset,
            participant_id=participant,
            plan_id=plan,
            status=status,
        )
        items = _enrollments_out(conn, found)
    return EnrollmentPage(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/enrollments",
    response_model=EnrollmentOut,
    status_code=201,
    tags=["enrollments"],
    summary="Enroll a participant in a plan",
    responses=responses(400, 404, 409),
)
def create_enrollment(body: EnrollmentCreate, runtime: RuntimeDep) -> Any:
    """As `tend enroll`. 409 when the participant is already in the plan (active or
    paused): cancel that enrollment first to start again."""
    start: enrolling.Start = "today" if body.start == "today" else date.fromisoformat(body.start)
    with answering():
        plan = enrolling.running_plan(runtime, body.plan)
        made = enrolling.enroll(runtime, body.participant, plan, start, dict(body.variables))
    return _one(runtime, made)


@router.get(
    "/enrollments/{enrollment_id}",
    response_model=EnrollmentOut,
    tags=["enrollments"],
    summary="Read an enrollment",
    responses=responses(404),
)
def get_enrollment(enrollment_id: EnrollmentId, runtime: RuntimeDep) -> Any:
    with reading(runtime.engine) as conn, answering():
        return _enrollments_out(conn, [enrollment_rows.get_enrollment(conn, enrollment_id)])[0]


_STATUS_ERRORS = responses(404, 409)


@router.post(
    "/enrollments/{enrollment_id}/pause",
    response_model=EnrollmentOut,
    tags=["enrollments"],
    summary="Pause an enrollment",
    responses=_STATUS_ERRORS,
)
def pause_enrollment(enrollment_id: EnrollmentId, runtime: RuntimeDep) -> Any:
    """No reminders until resumed. 409 unless active (pausing a paused one changes nothing)."""
    with answering():
        return _one(runtime, enrolling.pause(runtime, enrollment_id).enrollment)


@router.post(
    "/enrollments/{enrollment_id}/resume",
    response_model=EnrollmentOut,
    tags=["enrollments"],
    summary="Resume a paused enrollment",
    responses=_STATUS_ERRORS,
)
def resume_enrollment(enrollment_id: EnrollmentId, runtime: RuntimeDep) -> Any:
    """Reminders still ahead come back. 409 unless paused (or already active)."""
    with answering():
        return _one(runtime, enrolling.resume(runtime, enrollment_id).enrollment)


@router.post(
    "/enrollments/{enrollment_id}/cancel",
    response_model=EnrollmentOut,
    tags=["enrollments"],
    summary="Cancel an enrollment",
    responses=_STATUS_ERRORS,
)
def cancel_enrollment(enrollment_id: EnrollmentId, runtime: RuntimeDep) -> Any:
    """Nothing more is sent. 409 for a finished enrollment."""
    with answering():
        return _one(runtime, enrolling.cancel(runtime, enrollment_id).enrollment)
