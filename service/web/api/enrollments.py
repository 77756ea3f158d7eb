"""`/api/enrollments`: enroll a participant in a plan; read and list enrollments with
their next reminder; pause, resume and cancel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Annotated, Any, Protocol, cast
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query

from service.actions import enrollments as enrolling
from service.actions.access import visible_enrollment
from service.actions.coaches import Actor
from service.core.records import Enrollment
from service.runtime import Runtime
from service.storage import enrollments as enrollment_rows
from service.storage import occurrences as occurrence_rows
from service.storage import participants as participant_rows
from service.storage.db import Connection, reading
from service.web.api.common import (
    ActorDep,
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
    actor: ActorDep,
    participant: ParticipantFilter = None,
    plan: PlanFilter = None,
    status: Annotated[EnrollmentStatus | None, Query(description="Only in this status.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """Enrollments, oldest first, with each one's next reminder (a coach's token: of
    their own participants only)."""
    with reading(runtime.engine) as conn:
        found, total = enrollment_rows.enrollment_page(
            conn,
            limit=limit,
            offset=offset,
            participant_id=participant,
            plan_id=plan,
            status=status,
            coach_id=actor.coach_id,
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
def create_enrollment(body: EnrollmentCreate, runtime: RuntimeDep, actor: ActorDep) -> Any:
    """As `tend enroll`. 409 when the participant is already in the plan (active or
    paused): cancel that enrollment first to start again."""
    start: enrolling.Start = "today" if body.start == "today" else date.fromisoformat(body.start)
    with answering():
        plan = enrolling.running_plan(runtime, body.plan)
        made = enrolling.enroll(
            runtime, body.participant, plan, start, dict(body.variables), actor=actor
        )
    return _one(runtime, made)


@router.get(
    "/enrollments/{enrollment_id}",
    response_model=EnrollmentOut,
    tags=["enrollments"],
    summary="Read an enrollment",
    responses=responses(404),
)
def get_enrollment(enrollment_id: EnrollmentId, runtime: RuntimeDep, actor: ActorDep) -> Any:
    with reading(runtime.engine) as conn, answering():
        return _enrollments_out(conn, [visible_enrollment(conn, actor, enrollment_id)])[0]


# Pause, resume and cancel: the same route each, around its own action.
class _Change(Protocol):
    def __call__(
        self, runtime: Runtime, enrollment_id: str, *, actor: Actor | None = None
    ) -> enrolling.StatusChange: ...


_STATUS_CHANGES: list[tuple[str, str, str, _Change]] = [
    (
        "pause",
        "Pause an enrollment",
        "No reminders until resumed. 409 unless active (pausing a paused one changes nothing).",
        enrolling.pause,
    ),
    (
        "resume",
        "Resume a paused enrollment",
        "Reminders still ahead come back. 409 unless paused (or already active).",
        enrolling.resume,
    ),
    (
        "cancel",
        "Cancel an enrollment",
        "Nothing more is sent. 409 for a finished enrollment.",
        enrolling.cancel,
    ),
]


def _status_route(change: _Change, doc: str) -> Callable[..., Any]:
    def route(enrollment_id: EnrollmentId, runtime: RuntimeDep, actor: ActorDep) -> Any:
        with answering():
            return _one(runtime, change(runtime, enrollment_id, actor=actor).enrollment)

    route.__doc__ = doc
    return route


for _verb, _summary, _doc, _change in _STATUS_CHANGES:
    router.add_api_route(
        f"/enrollments/{{enrollment_id}}/{_verb}",
        _status_route(_change, _doc),
        methods=["POST"],
        name=f"{_verb}_enrollment",
        response_model=EnrollmentOut,
        tags=["enrollments"],
        summary=_summary,
        responses=responses(404, 409),
    )
