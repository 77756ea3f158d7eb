"""`/api/participants`: add, read, change and list participants; their calendar feed's
URL and a new one; a test message; their consent log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query

from service.actions import messages
from service.actions import participants as people
from service.actions.access import visible_participant
from service.actions.coaches import Actor
from service.core.records import Participant
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import Connection, reading
from service.web.api.common import (
    ID_TEXT,
    ActorDep,
    Limit,
    Offset,
    ParticipantId,
    PlanFilter,
    RuntimeDep,
    answering,
    from_row,
    responses,
)
from service.web.api.schemas import (
    ConsentOut,
    ConsentPage,
    EnrollmentBrief,
    EnrollmentStatus,
    FeedOut,
    ParticipantCreate,
    ParticipantOut,
    ParticipantPage,
    ParticipantUpdate,
    SmsStatus,
    TestMessageCreate,
    TestMessageOut,
)

router = APIRouter()


def participant_out(person: Participant, briefs: list[EnrollmentBrief], now: datetime) -> Any:
    return ParticipantOut(
        id=person.id,
        name=person.name,
        phone=person.phone,
        email=person.email,
        timezone=person.timezone,
        variables=dict(person.variables),
        sms=cast(SmsStatus, person.sms_status(now)),
        sms_paused_until=person.paused_until if person.sms_paused(now) else None,
        email_unsubscribed=person.email_unsubscribed,
        created_at=person.created_at,
        coach=person.coach_id,
        cohort=person.cohort_id,
        language=person.language,
        discreet=person.discreet,
        quiet_hours=person.quiet_hours,
        enrollments=briefs,
    )


def _briefs(conn: Connection, participant_ids: Sequence[str]) -> dict[str, list[EnrollmentBrief]]:
    out: dict[str, list[EnrollmentBrief]] = {pid: [] for pid in participant_ids}
    for row in enrollment_rows.enrollment_briefs(conn, participant_ids):
        out[row.participant_id].append(
            EnrollmentBrief(id=row.id, plan=row.plan_id, status=cast(EnrollmentStatus, row.status))
        )
    return out


def _one(conn: Connection, actor: Actor, participant_id: str, now: datetime) -> Any:
    person = visible_participant(conn, actor, participant_id)
    return participant_out(person, _briefs(conn, [person.id])[person.id], now)


@router.get(
    "/participants",
    response_model=ParticipantPage,
    tags=["participants"],
    summary="List participants",
)
def list_participants(
    runtime: RuntimeDep,
    actor: ActorDep,
    limit: Limit = 100,
    offset: Offset = 0,
    plan: PlanFilter = None,
    status: Annotated[
        EnrollmentStatus | None,
        Query(description="Only those with an enrollment in this status (in `plan`, if given)."),
    ] = None,
    sms: Annotated[SmsStatus | None, Query(description="Only those in this SMS state.")] = None,
    name: Annotated[
        str | None,
        Query(max_length=200, pattern=r"^[^\x00]*$", description="Part of the name, any case."),
    ] = None,
    cohort: Annotated[
        str | None, Query(pattern=ID_TEXT, description="Only the members of this cohort (its id).")
    ] = None,
) -> Any:
    """Participants, oldest first, with their enrollments; filtered by plan, enrollment
    status, SMS state, cohort and part of the name. A coach's token lists only their own."""
    now = runtime.clock.now()
    with reading(runtime.engine) as conn:
        found, total = participant_rows.participant_page(
            conn,
            now=now,
            limit=limit,
            offset=offset,
            name=name,
            sms=sms,
            plan_id=plan,
            status=status,
            coach_id=actor.coach_id,
            cohort_id=cohort,
        )
        briefs = _briefs(conn, [p.id for p in found])
    items = [participant_out(p, briefs[p.id], now) for p in found]
    return ParticipantPage(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/participants",
    response_model=ParticipantOut,
    status_code=201,
    tags=["participants"],
    summary="Add a participant",
    responses=responses(400, 403, 409),
)
def create_participant(body: ParticipantCreate, runtime: RuntimeDep, actor: ActorDep) -> Any:
    """As `tend participants add`. 409 when another participant has the phone number.
    Added with a coach's token, the participant is that coach's; an admin may name
    their `coach` (403 for a coach naming another; 400 for an unknown or disabled one)."""
    with answering():
        person = people.create(
            runtime,
            name=body.name,
            timezone=body.timezone,
            phone=body.phone,
            email=body.email,
            variables=body.variables,
            actor=actor,
            coach=body.coach,
            source="api",
            language=body.language,
            discreet=body.discreet,
            quiet_hours=body.quiet_hours,
        )
    return participant_out(person, [], runtime.clock.now())


@router.get(
    "/participants/{participant_id}",
    response_model=ParticipantOut,
    tags=["participants"],
    summary="Read a participant",
    responses=responses(404),
)
def get_participant(participant_id: ParticipantId, runtime: RuntimeDep, actor: ActorDep) -> Any:
    now = runtime.clock.now()
    with reading(runtime.engine) as conn, answering():
        return _one(conn, actor, participant_id, now)


@router.patch(
    "/participants/{participant_id}",
    response_model=ParticipantOut,
    tags=["participants"],
    summary="Change a participant",
    responses=responses(400, 403, 404, 409),
)
def update_participant(
    participant_id: ParticipantId, body: ParticipantUpdate, runtime: RuntimeDep, actor: ActorDep
) -> Any:
    """Only the fields given change. A new time zone or new variables re-plan the
    reminders still ahead of the participant's active and paused enrollments, in the
    same transaction: when one of them cannot follow (its plan file is gone, or the
    new variables do not fit its plan), nothing changes and the answer says why.
    `coach` hands the participant to another coach: admins only (403 for a coach).
    Their settings (`language`, `discreet`, `quiet_hours`) move no reminder: they apply
    to what is sent from then on."""
    fields = (*people.FIELDS, "coach")
    changes = {key: getattr(body, key) for key in fields if key in body.model_fields_set}
    with answering():
        people.update(runtime, participant_id, changes, actor=actor)
    with reading(runtime.engine) as conn, answering():
        return _one(conn, actor, participant_id, runtime.clock.now())


def _feed_out(feed: people.Feed) -> FeedOut:
    return FeedOut(
        participant=feed.participant_id, url=feed.url, webcal=feed.webcal, version=feed.version
    )


@router.get(
    "/participants/{participant_id}/feed",
    response_model=FeedOut,
    tags=["participants"],
    summary="The participant's calendar feed URL",
    responses=responses(404),
)
def get_feed(participant_id: ParticipantId, runtime: RuntimeDep, actor: ActorDep) -> Any:
    with answering():
        return _feed_out(people.feed(runtime, participant_id, actor=actor))


@router.post(
    "/participants/{participant_id}/feed/rotate",
    response_model=FeedOut,
    tags=["participants"],
    summary="A new calendar feed URL (the old one stops working)",
    responses=responses(404),
)
def rotate_feed(participant_id: ParticipantId, runtime: RuntimeDep, actor: ActorDep) -> Any:
    with answering():
        return _feed_out(people.rotate_feed(runtime, participant_id, actor=actor))


@router.post(
    "/participants/{participant_id}/test-message",
    response_model=TestMessageOut,
    tags=["participants"],
    summary="Send the participant a test message",
    responses=responses(400, 404, 409, 502),
)
def send_test_message(
    participant_id: ParticipantId, body: TestMessageCreate, runtime: RuntimeDep, actor: ActorDep
) -> Any:
    """Sent now, through the same channel as reminders. Refused (409) when the
    participant has no number or address for it, opted out of SMS, paused SMS, or
    unsubscribed from email: consent holds for test messages too. A carrier's refusal
    because the number opted out is recorded as the participant's opt-out (409)."""
    with answering():
        sent = messages.send_test(runtime, participant_id, body.channel, body.text, actor=actor)
    return TestMessageOut(
        participant=sent.participant_id,
        channel=body.channel,
        to=sent.to,
        provider_id=sent.provider_id,
        segments=sent.segments,
    )


@router.get(
    "/participants/{participant_id}/consent",
    response_model=ConsentPage,
    tags=["consent"],
    summary="The participant's consent log",
    responses=responses(404),
)
def participant_consent(
    participant_id: ParticipantId,
    runtime: RuntimeDep,
    actor: ActorDep,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """Opt-outs, opt-ins, pauses and resumes, oldest first."""
    with reading(runtime.engine) as conn, answering():
        visible_participant(conn, actor, participant_id)
        return consent_page(conn, actor, participant_id, limit, offset)


def consent_page(
    conn: Connection, actor: Actor, participant_id: str | None, limit: int, offset: int
) -> Any:
    """A page of the consent log: only the participants `actor` sees."""
    rows, total = participant_rows.consent_page(
        conn, limit=limit, offset=offset, participant_id=participant_id, coach_id=actor.coach_id
    )
    items = [from_row(ConsentOut, r, participant="participant_id") for r in rows]
    return ConsentPage(items=items, total=total, limit=limit, offset=offset)
