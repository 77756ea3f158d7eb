"""`/api/plans`: the plans Tend runs, and a preview of one for a sample participant or
a real one (as `tend plans preview --format json`)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from pydantic import Field

from service.actions import enrollments as enrolling
from service.core import validate
from service.core.plan import WEEKDAYS, Plan
from service.core.preview import as_json, build_preview
from service.core.render import SAMPLE_PERSON, Person, RenderError
from service.core.states import LIVE_STATUSES
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import reading
from service.web.api.common import (
    ID_TEXT,
    Limit,
    Offset,
    PlanId,
    RuntimeDep,
    answering,
    bad_request,
    responses,
)
from service.web.api.schemas import PlanOut, PlanPage, PracticeOut, PreviewOut

router = APIRouter()

# The dates a preview may start on: wide enough for any real use, narrow enough that
# no date arithmetic overflows.
PREVIEW_FIRST = date(2000, 1, 1)
PREVIEW_LAST = date(2100, 12, 31)


def _plan_out(plan: Plan) -> PlanOut:
    practices = []
    for p in plan.practices:
        practices.append(
            PracticeOut(
                id=p.id,
                title=p.title,
                category=p.category,
                at=str(p.base.at),
                every=[WEEKDAYS[d] for d in sorted(p.weekdays)] if p.weekdays is not None else None,
                rrule=p.rrule,
                weeks=sorted(p.weeks) if p.weeks is not None else None,
                duration_minutes=p.base.duration_minutes,
                channels=list(p.channels),
                check_in=p.check_in.kind,
                check_in_scale=list(p.check_in.scale) if p.check_in.scale else None,
                check_in_unit=p.check_in.unit,
                window_minutes=p.window_minutes,
                nudge_after_minutes=p.nudge.after_minutes if p.nudge else None,
            )
        )
    return PlanOut(
        id=plan.id,
        title=plan.title,
        summary=plan.summary,
        days=plan.days,
        weeks=plan.weeks,
        variables={name: str(expr) for name, expr in plan.variables.items()},
        practices=practices,
    )


@router.get("/plans", response_model=PlanPage, tags=["plans"], summary="List plans")
def list_plans(runtime: RuntimeDep, limit: Limit = 100, offset: Offset = 0) -> Any:
    """The plans in the schedules folder, by id."""
    found = [plan for _, plan in sorted(runtime.plans.refresh().items())]
    items = [_plan_out(plan) for plan in found[offset : offset + limit]]
    return PlanPage(items=items, total=len(found), limit=limit, offset=offset)


@router.get(
    "/plans/{plan_id}",
    response_model=PlanOut,
    tags=["plans"],
    summary="Read a plan",
    responses=responses(404),
)
def get_plan(plan_id: PlanId, runtime: RuntimeDep) -> Any:
    with answering():
        return _plan_out(enrolling.running_plan(runtime, plan_id))


_VAR_PAIR = r"^[a-z_][a-z0-9_]{0,62}=[^\x00]{1,64}$"


@router.get(
    "/plans/{plan_id}/preview",
    response_model=PreviewOut,
    tags=["plans"],
    summary="Preview a plan, for a sample participant or a real one",
    responses=responses(400, 404, 409),
)
def preview_plan(
    plan_id: PlanId,
    runtime: RuntimeDep,
    start: Annotated[
        date | None,
        Query(description="The first day; default: the participant's enrollment's, or today."),
    ] = None,
    tz: Annotated[
        str | None,
        Query(max_length=64, pattern=r"^[^\x00]+$", examples=["America/New_York"],
              description="IANA time zone; default: the participant's."),
    ] = None,
    participant: Annotated[
        str | None,
        Query(pattern=ID_TEXT,
              description="Preview for this participant: their name, zone and variables."),
    ] = None,
    var: Annotated[
        list[Annotated[str, Field(pattern=_VAR_PAIR)]] | None,
        Query(max_length=50, description="Variable overrides, NAME=VALUE (repeat for more)."),
    ] = None,
) -> Any:  # fmt: skip
    """As `tend plans preview --format json`. Without `participant`, a sample participant
    named Alex and the plan's own variables; with one, their name, time zone and
    variables (and those of their enrollment in this plan, if any)."""
    with answering():
        plan = enrolling.running_plan(runtime, plan_id)
    now = runtime.clock.now()
    person = SAMPLE_PERSON
    overrides: dict[str, str] = {}
    zone_name = tz
    first: date | None = start
    if participant is not None:
        with reading(runtime.engine) as conn, answering():
            someone = participant_rows.get_participant(conn, participant)
            current = enrollment_rows.list_enrollments(
                conn, participant_id=someone.id, plan_id=plan.id, statuses=LIVE_STATUSES
            )
        person = Person(someone.name)
        overrides = enrolling.variables_for(plan, someone, current[0].variables if current else {})
        zone_name = zone_name or someone.timezone
        if first is None and current:
            first = current[0].start_date
    if zone_name is None:
        raise bad_request("give a time zone (tz), or a participant whose zone to use")
    try:
        zone = ZoneInfo(validate.zone(zone_name))
    except validate.Invalid as exc:
        raise bad_request(str(exc)) from None
    first = first or now.astimezone(zone).date()
    if not PREVIEW_FIRST <= first <= PREVIEW_LAST:
        raise bad_request(
            f"start {first.isoformat()} is out of range; a preview starts between "
            f"{PREVIEW_FIRST.isoformat()} and {PREVIEW_LAST.isoformat()}"
        )
    for pair in var or []:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(validate.VARIABLE_NAME, key.strip()) or not value.strip():
            raise bad_request(f"var takes NAME=VALUE, such as wake=06:30, not '{pair}'")
        overrides[key.strip()] = value.strip()
    check_in_url = f"{runtime.settings.public_base}/check-in/preview"
    try:
        preview = build_preview(
            plan, first, zone, overrides, runtime.plans.renderer(plan), check_in_url, person
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    except RenderError as exc:
        raise HTTPException(409, f"the plan's text cannot be rendered: {exc}") from None
    return as_json(preview)
