"""`/api/participants/{id}`'s data rights: everything held about a participant, as one
JSON document (`GET .../export`), and erasing them (`DELETE`). Both are the actions of
`service.actions.data_rights`, on the audit log; a coach's token reaches only their own
participants (another coach's is a 404, as a missing one)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from service.actions import data_rights
from service.web.api.common import ActorDep, ParticipantId, RuntimeDep, answering, responses

router = APIRouter()

Rows = list[dict[str, Any]]


class ParticipantExport(BaseModel):
    """Everything Tend holds about one participant; each row with every column as
    stored, datetimes as ISO 8601 text."""

    format: str = Field(description="The document's format and version.")
    exported_at: str = Field(description="When it was made (ISO 8601, UTC).")
    participant: dict[str, Any] = Field(description="Their row: details, consent state, coach.")
    calendar_feed: dict[str, Any] = Field(description="Their calendar feed URL's version.")
    consent_log: Rows = Field(description="Opt-outs, opt-ins and pauses, oldest first.")
    enrollments: Rows = Field(
        description="Each with its occurrences (check-ins, deliveries), its calendar "
        "invitation and its weekly summaries."
    )
    replies: Rows = Field(description="Texts and check-in links from them or their number.")
    messages: Rows = Field(description="Messages kept in the outbox for them.")
    signups: Rows = Field(description="Unconfirmed sign-ups with their number or address.")


@router.get(
    "/participants/{participant_id}/export",
    response_model=ParticipantExport,
    responses=responses(404),
    tags=["participants"],
    summary="Export everything held about a participant",
)
def export_participant(runtime: RuntimeDep, actor: ActorDep, participant_id: ParticipantId) -> Any:
    """One JSON document with everything Tend holds about the participant (contract
    section 5.3). On the audit log."""
    with answering():
        return data_rights.export(runtime, participant_id, actor=actor)


@router.delete(
    "/participants/{participant_id}",
    status_code=204,
    response_class=Response,
    response_model=None,
    responses=responses(404),
    tags=["participants"],
    summary="Erase a participant",
)
def erase_participant(
    runtime: RuntimeDep, actor: ActorDep, participant_id: ParticipantId
) -> Response:
    """Remove the participant's personal data everywhere: details, enrollments,
    check-ins, deliveries, consent log, replies, messages and summaries. An SMS opt-out
    is kept only as a keyed digest of the number, so that it holds if the number is
    added again. On the audit log."""
    with answering():
        data_rights.erase(runtime, participant_id, actor=actor)
    return Response(status_code=204)
