"""`/api/plans`: the plans Tend runs, and a preview of one for a sample participant or
a real one (as `tend plans preview --format json`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as FastPath
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import Field

from service.actions import enrollments as enrolling
from service.actions import plans as publishing
from service.actions.access import visible_participant
from service.core import validate
from service.core.diagnostics import Diagnostic
from service.core.plan import WEEKDAYS, Plan
from service.core.preview import as_json, build_preview
from service.core.render import SAMPLE_PERSON, Person, RenderError
from service.core.states import LIVE_STATUSES
from service.storage import enrollments as enrollment_rows
from service.storage.db import reading
from service.storage.plan_versions import PlanVersion, VersionBrief
from service.web.api.common import (
    ADMIN_ONLY,
    ID_TEXT,
    ActorDep,
    Limit,
    Offset,
    PlanId,
    Problem,
    RuntimeDep,
    answering,
    bad_request,
    responses,
)
from service.web.api.schemas import (
    PlanChanges,
    PlanOut,
    PlanPage,
    PlanProblem,
    PlanRejectedOut,
    PracticeOut,
    PreviewOut,
    PublishOut,
    PutPlanRefused,
    VersionOut,
    VersionPage,
    VersionText,
)
from service.web.forms import TooLarge, has_control, read_capped

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
    """The published plans (the newest version of each), by id."""
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


PLAN_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")
_PLAN_BODY = {
    "requestBody": {
        "required": True,
        "description": "The plan's YAML, as a file holds it (UTF-8).",
        "content": {
            kind: {"schema": {"type": "string", "maxLength": publishing.MAX_PLAN_BYTES}}
            for kind in ("application/yaml", "text/plain")
        },
    }
}


def _problems(diagnostics: Sequence[Diagnostic]) -> list[PlanProblem]:
    return [PlanProblem(line=d.line, col=d.column, message=d.message) for d in diagnostics]


@router.put(
    "/plans/{plan_id}",
    response_model=PublishOut,
    tags=["plans"],
    summary="Publish a plan's next version",
    dependencies=ADMIN_ONLY,
    responses={
        **responses(400, 403, 409),
        413: {"model": Problem, "description": "The body is larger than a plan may be."},
        415: {"model": Problem, "description": "The body is not YAML or plain text."},
        422: {
            "model": PutPlanRefused,
            "description": "The plan has errors (lines and columns as `tend plans check` "
            "gives them), or a parameter has the wrong shape; nothing was stored.",
        },
    },
    openapi_extra=_PLAN_BODY,
)
async def put_plan(
    plan_id: PlanId,
    request: Request,
    runtime: RuntimeDep,
    dry_run: Annotated[
        bool, Query(description="Check and say what publishing would change; store nothing.")
    ] = False,
    note: Annotated[
        str | None,
        Query(max_length=publishing.MAX_NOTE, description="A few words on what changed."),
    ] = None,
    expect_version: Annotated[
        int | None,
        Query(
            ge=0,
            le=1_000_000_000,
            description="Publish only if this is still the plan's newest version (0: only "
            "if the plan does not exist yet); otherwise 409 and nothing is stored.",
        ),
    ] = None,
) -> Any:
    """Check the plan; unless the newest version already has this content, store it
    (with the text of every template it uses) as the next version, and move live
    enrollments forward to it (sent occurrences are untouched). Rolling back is sending
    an old version's text again. The `plan:` in the text must be `plan_id`."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind not in PLAN_TYPES:
        raise HTTPException(
            415,
            "send the plan's YAML as application/yaml or text/plain, not " + (kind or "nothing"),
        )
    try:
        body = await read_capped(request, publishing.MAX_PLAN_BYTES)
    except TooLarge:
        raise HTTPException(
            413, f"a plan may be at most {publishing.MAX_PLAN_BYTES:,} bytes"
        ) from None
    if note is not None and has_control(note):
        raise bad_request("the note may not hold control characters")
    with answering():
        try:
            published = await run_in_threadpool(
                publishing.publish,
                runtime,
                body,
                by="api",
                note=note,
                plan_id=plan_id,
                dry_run=dry_run,
                shown=f"{plan_id}.yaml",
                expect_version=expect_version,
            )
        except publishing.PlanRejected as rejected:
            content = PlanRejectedOut(
                errors=_problems(rejected.errors), warnings=_problems(rejected.warnings)
            )
            return JSONResponse(content.model_dump(), status_code=422)
    effect = published.effect
    return PublishOut(
        plan=published.plan.id,
        version=published.version,
        created=published.created,
        dry_run=published.dry_run,
        changes=PlanChanges(
            enrollments=effect.enrollments,
            added=effect.added,
            moved=effect.moved,
            cancelled=effect.cancelled,
        ),
        cannot_follow=[
            f"{line.enrollment_id}: {line.error}" for line in published.lines if line.error
        ],
        warnings=_problems(published.warnings),
    )


def _version_out(v: VersionBrief | PlanVersion) -> VersionOut:
    return VersionOut(
        plan=v.plan_id,
        version=v.version,
        title=v.title,
        content_hash=v.content_hash,
        published_by=v.published_by,
        published_at=v.published_at,
        note=v.note,
    )


@router.get(
    "/plans/{plan_id}/versions",
    response_model=VersionPage,
    tags=["plans"],
    summary="List a plan's published versions",
    responses=responses(404),
)
def list_versions(
    plan_id: PlanId, runtime: RuntimeDep, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """Oldest first: number, when, by whom, content hash and note."""
    with answering():
        found = publishing.versions(runtime, plan_id)
    items = [_version_out(v) for v in found[offset : offset + limit]]
    return VersionPage(items=items, total=len(found), limit=limit, offset=offset)


@router.get(
    "/plans/{plan_id}/versions/{number}",
    response_model=VersionText,
    tags=["plans"],
    summary="Read one published version, with its text",
    responses=responses(404),
)
def get_version(
    plan_id: PlanId,
    number: Annotated[int, FastPath(ge=1, le=1_000_000_000, description="The version number.")],
    runtime: RuntimeDep,
) -> Any:
    with answering():
        found = publishing.version(runtime, plan_id, number)
    return VersionText(
        **_version_out(found).model_dump(), yaml=found.yaml, templates=found.templates
    )


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
    actor: ActorDep,
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
            someone = visible_participant(conn, actor, participant)
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
