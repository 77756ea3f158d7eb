"""`/api/replies`, `/api/consent` and `/api/adherence`: what participants said and
did, read from the records (the adherence report is `tend report --format json`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from service import report
from service.storage import replies as reply_rows
from service.storage.db import reading
from service.web.api.common import (
    ActorDep,
    Limit,
    Offset,
    ParticipantFilter,
    PlanFilter,
    RuntimeDep,
    answering,
    from_row,
    responses,
    utc,
)
from service.web.api.participants import consent_page
from service.web.api.schemas import AdherenceOut, ConsentPage, ReplyOut, ReplyPage

router = APIRouter()


@router.get("/consent", response_model=ConsentPage, tags=["consent"], summary="The consent log")
def list_consent(
    runtime: RuntimeDep,
    actor: ActorDep,
    participant: ParticipantFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """Every participant's opt-outs, opt-ins, pauses and resumes, oldest first (a
    coach's token: their own participants')."""
    with reading(runtime.engine) as conn:
        return consent_page(conn, actor, participant, limit, offset)


@router.get("/replies", response_model=ReplyPage, tags=["replies"], summary="List replies")
def list_replies(
    runtime: RuntimeDep,
    actor: ActorDep,
    participant: ParticipantFilter = None,
    since: Annotated[
        datetime | None,
        Query(description="Only those received at or after this instant (UTC if no offset)."),
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """Replies by SMS or check-in link, newest first, with what each was taken to mean
    (a coach's token: from their own participants only)."""
    after = utc(since, "since") if since is not None else None
    with reading(runtime.engine) as conn:
        rows, total = reply_rows.reply_page(
            conn,
            limit=limit,
            offset=offset,
            participant_id=participant,
            since=after,
            coach_id=actor.coach_id,
        )
    items = [
        from_row(
            ReplyOut,
            r,
            participant="participant_id",
            occurrence="occurrence_key",
            practice="occurrence_practice",
        )
        for r in rows
    ]
    return ReplyPage(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/adherence",
    response_model=AdherenceOut,
    tags=["adherence"],
    summary="Adherence: the report's data",
    responses=responses(404),
)
def adherence(
    runtime: RuntimeDep,
    actor: ActorDep,
    participant: ParticipantFilter = None,
    plan: PlanFilter = None,
) -> Any:
    """Exactly `tend report --format json`: per enrollment and practice, what was done,
    skipped and missed, streaks and habit strength (a coach's token: their own
    participants' only)."""
    with answering():
        found = report.build(
            runtime, participant_id=participant, plan_id=plan, coach_id=actor.coach_id
        )
    return found.as_json()
