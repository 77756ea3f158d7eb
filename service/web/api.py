"""The JSON API under `/api` (admin bearer token): what the coach's dashboard does, for
other programs.

Participants (create, read, update, list with filters; their calendar feed URL, a new
one, a test message, their consent log), enrollments (create, pause, resume, cancel),
plans (list, read, preview), replies, the consent log and adherence (the report's JSON,
exactly as `tend report --format json` prints it).

Every body is a pydantic model that refuses unknown keys; every answer has a
response model, so that `/openapi.json` describes what the API really does. Input the
schema cannot express (a phone number, a time zone, a variable's time) is checked by
the models and refused with 422, like any other shape error; ids that name nothing get
404; a request that the current state forbids (a second enrollment in the same plan,
pausing a cancelled enrollment, a test SMS to someone who opted out) gets 409; other
bad values 400. Errors other than 422 are `{"detail": "..."}`, written for a person.
A channel that fails to send a test message gets 502: that is not the caller's fault.

The routes are plain functions (`def`), so that FastAPI runs their database work in
its thread pool; each does its work in one transaction.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, Self, cast
from zoneinfo import ZoneInfo

import phonenumbers
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.security import HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import Connection, Select, and_, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from service.channels.base import ChannelError, OutgoingMessage
from service.channels.email import unsubscribe_link
from service.core.diagnostics import did_you_mean
from service.core.expand import resolve_plan_variables
from service.core.plan import ID_PATTERN, WEEKDAYS, Plan
from service.core.preview import as_json, build_preview
from service.core.records import Enrollment, Participant
from service.core.render import SAMPLE_PERSON, Person, RenderError
from service.core.sms import clean_for_sms
from service.core.timeexpr import TimeExpr, TimeSyntaxError
from service.runtime import Runtime
from service.storage import repo
from service.storage.db import reading, transaction
from service.storage.tables import (
    consent_log,
    deliveries,
    enrollments,
    occurrences,
    participants,
    replies,
)
from service.tracking import report
from service.tracking.enrolling import EnrollmentError, enroll, refresh, variables_for
from service.tracking.links import feed_link, webcal_link
from service.web.auth import require_admin

# --- errors --------------------------------------------------------------------------


class Problem(BaseModel):
    """What went wrong, in words."""

    detail: str = Field(description="What went wrong and, where it helps, what to do.")


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    words = {
        400: "A body that is not JSON, or a value that cannot be used (the message says why).",
        404: "No such participant, enrollment or plan.",
        409: "The current state does not allow it (the message says why).",
        502: "The channel could not send the message.",
    }
    return {code: {"model": Problem, "description": words[code]} for code in codes}


def bad_request(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


def not_found(message: str) -> HTTPException:
    return HTTPException(status_code=404, detail=message)


def conflict(message: str) -> HTTPException:
    return HTTPException(status_code=409, detail=message)


# Declares the bearer scheme in the OpenAPI document (it refuses nothing itself:
# `require_admin` decides, the same way for the API and the dashboard).
_bearer = HTTPBearer(
    scheme_name="AdminToken",
    description="TEND_ADMIN_TOKEN, as `Authorization: Bearer <token>`.",
    auto_error=False,
)


def _no_store(response: Response) -> None:
    """Answers hold people's health data: no cache keeps them."""
    response.headers["Cache-Control"] = "no-store"


router = APIRouter(
    prefix="/api",
    dependencies=[Depends(_bearer), Depends(require_admin), Depends(_no_store)],
    responses={
        401: {
            "model": Problem,
            "description": "No admin bearer token, or a wrong one (Authorization: Bearer ...).",
        }
    },
)


# --- input types ---------------------------------------------------------------------

ID_TEXT = r"^[A-Za-z0-9_-]{1,32}$"
VARIABLE_NAME = r"^[a-z_][a-z0-9_]{0,62}$"
ParticipantId = Annotated[
    str, Path(pattern=ID_TEXT, description="A participant's id, such as p_k3m9x2q7hv4d.")
]
EnrollmentId = Annotated[
    str, Path(pattern=ID_TEXT, description="An enrollment's id, such as e_k3m9x2q7hv4d.")
]
PlanId = Annotated[str, Path(pattern=ID_PATTERN, description="A plan's id, such as sleep-hygiene.")]
Limit = Annotated[int, Query(ge=1, le=500, description="At most this many items (1 to 500).")]
Offset = Annotated[
    int, Query(ge=0, le=1_000_000_000, description="Skip this many items first (for paging).")
]
ParticipantFilter = Annotated[
    str | None, Query(pattern=ID_TEXT, description="Only this participant's.")
]
PlanFilter = Annotated[str | None, Query(pattern=ID_PATTERN, description="Only this plan's.")]

EnrollmentStatus = Literal["active", "paused", "finished", "cancelled"]
SmsStatus = Literal["subscribed", "opted_out", "paused"]

# How far from today an enrollment may start, and the dates a preview may start on:
# wide enough for any real use, narrow enough that no date arithmetic overflows.
START_PAST = timedelta(days=366)
START_FUTURE = timedelta(days=2 * 366)
PREVIEW_FIRST = date(2000, 1, 1)
PREVIEW_LAST = date(2100, 12, 31)


def _text(value: str) -> str:
    """Text that every database stores as given: no NUL, no lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _name(value: str) -> str:
    cleaned = " ".join(_text(value).split())
    if not cleaned:
        raise ValueError("a name cannot be empty")
    return cleaned


def _phone(value: str) -> str:
    """An E.164 number, as the CLI's `--phone` takes it."""
    try:
        number = phonenumbers.parse(_text(value), None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValueError(
            f"'{value}' is not a valid phone number; write it in E.164, such as +14155550123"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email(value: str) -> str:
    address = _text(value).strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in address):
        raise ValueError(f"'{value}' is not an email address")
    return address


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(value: str) -> str:
    if value not in _zones():
        hint = did_you_mean(value, _zones()) if "\x00" not in value else ""
        raise ValueError(
            f"unknown time zone '{value}'{hint}; use an IANA name such as America/New_York"
        )
    return value


def _variables(values: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, text in values.items():
        if not re.fullmatch(VARIABLE_NAME, name):
            raise ValueError(
                f"'{name}' is not a variable name; names are lower case letters, digits and _"
            )
        cleaned = _text(text).strip()
        try:
            TimeExpr.parse(cleaned)
        except TimeSyntaxError as exc:
            raise ValueError(f"variable '{name}': {exc}") from None
        out[name] = cleaned
    return out


def _start(value: str) -> str:
    if value != "today":
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"'{value}' is not a date; write YYYY-MM-DD, such as 2026-03-02, or today"
            ) from None
    return value


Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="Full name; the first word greets them.",
        examples=["Rae Example"],
    ),
    AfterValidator(_name),
]
Phone = Annotated[
    str,
    Field(
        min_length=1,
        max_length=32,
        description="Mobile number in E.164, such as +14155550123.",
        examples=["+14155550123"],
    ),
    AfterValidator(_phone),
]
Email = Annotated[
    str,
    Field(min_length=3, max_length=320, description="Email address.", examples=["rae@example.com"]),
    AfterValidator(_email),
]
TimeZone = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="IANA time zone, such as Europe/London.",
        examples=["America/New_York"],
    ),
    AfterValidator(_timezone),
]
VariableValue = Annotated[str, Field(min_length=1, max_length=64)]
Variables = Annotated[
    dict[str, VariableValue],
    Field(
        max_length=50,
        description=(
            "Plan variables by name (lower case letters, digits and _), each a time: "
            '"07:30", another variable, or one plus or minus a duration ("wake + 15h").'
        ),
        examples=[{"wake": "06:30"}],
        json_schema_extra={"propertyNames": {"pattern": VARIABLE_NAME}},
    ),
    AfterValidator(_variables),
]
StartText = Annotated[
    str,
    Field(
        pattern=r"^(\d{4}-\d{2}-\d{2}|today)$",
        description="The first day, YYYY-MM-DD, or `today` in the participant's time zone.",
        examples=["2026-03-02", "today"],
    ),
    AfterValidator(_start),
]


# --- bodies --------------------------------------------------------------------------


class ParticipantCreate(BaseModel):
    """A new participant (as `tend participants add`)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    phone: Phone | None = None
    email: Email | None = None
    timezone: TimeZone
    variables: Variables = Field(default_factory=dict)


class ParticipantUpdate(BaseModel):
    """Changes to a participant: only the fields given change. `phone` or `email` null
    removes it. A new time zone or new variables move the participant's reminders
    still ahead (of active and paused enrollments) at once."""

    model_config = ConfigDict(extra="forbid")

    name: Name | SkipJsonSchema[None] = None
    phone: Phone | None = None
    email: Email | None = None
    timezone: TimeZone | SkipJsonSchema[None] = None
    variables: Variables | SkipJsonSchema[None] = Field(
        None, description="Replaces all of the participant's variables."
    )

    @model_validator(mode="after")
    def _not_null(self) -> Self:
        for key in ("name", "timezone", "variables"):
            if key in self.model_fields_set and getattr(self, key) is None:
                raise ValueError(f"{key} cannot be null; leave it out to keep it as it is")
        return self


class EnrollmentCreate(BaseModel):
    """Enroll a participant in a plan (as `tend enroll`)."""

    model_config = ConfigDict(extra="forbid")

    participant: str = Field(
        pattern=ID_TEXT, description="The participant's id.", examples=["p_k3m9x2q7hv4d"]
    )
    plan: str = Field(pattern=ID_PATTERN, description="The plan's id.", examples=["sleep-hygiene"])
    start: StartText = "today"
    variables: Variables = Field(
        default_factory=dict,
        description="Overrides of the plan's variables for this enrollment only.",
    )


class TestMessageCreate(BaseModel):
    """A test message to a participant, sent now through the channel's real sender."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["sms", "email"] = Field(description="Which channel to test.")
    text: Annotated[str, Field(min_length=1, max_length=1600), AfterValidator(_text)] | None = (
        Field(
            None,
            description="The message; a short standard one when left out.",
            examples=["Testing: does this reach you?"],
        )
    )


# --- answers -------------------------------------------------------------------------


class EnrollmentBrief(BaseModel):
    id: str
    plan: str
    status: EnrollmentStatus


class ParticipantOut(BaseModel):
    id: str
    name: str
    phone: str | None
    email: str | None
    timezone: str
    variables: dict[str, str]
    sms: SmsStatus = Field(description="subscribed, opted_out or paused, as the report has it.")
    sms_paused_until: datetime | None = Field(
        description="When a pause the participant asked for by SMS ends (if one is set)."
    )
    email_unsubscribed: bool
    created_at: datetime | None
    enrollments: list[EnrollmentBrief]


class ParticipantPage(BaseModel):
    items: list[ParticipantOut]
    total: int = Field(description="How many match the filters, over all pages.")
    limit: int
    offset: int


_DATE_TIME: dict[str, Any] = {"format": "date-time"}


class NextReminder(BaseModel):
    practice: str
    key: str = Field(description="The occurrence's key, <practice>:<local date>.")
    at: datetime = Field(description="The instant, in UTC.")
    local: str = Field(
        description="The same instant in the participant's time zone (ISO 8601, with offset).",
        json_schema_extra=_DATE_TIME,
    )


class EnrollmentOut(BaseModel):
    id: str
    participant: str
    plan: str
    status: EnrollmentStatus
    start: date = Field(description="The first day, in the participant's time zone.")
    last_day: date = Field(description="The plan's last day for this enrollment.")
    variables: dict[str, str] = Field(description="This enrollment's own variable overrides.")
    created_at: datetime
    updated_at: datetime
    next_reminder: NextReminder | None


class EnrollmentPage(BaseModel):
    items: list[EnrollmentOut]
    total: int
    limit: int
    offset: int


class FeedOut(BaseModel):
    participant: str
    url: str = Field(description="The https URL of the calendar subscription feed.")
    webcal: str = Field(description="The same feed as webcal://, for calendar apps.")
    version: int = Field(description="Goes up each time the URL is rotated.")


class TestMessageOut(BaseModel):
    participant: str
    channel: Literal["sms", "email"]
    to: str
    provider_id: str | None
    segments: int | None


class ConsentOut(BaseModel):
    id: int
    participant: str
    channel: str
    action: str = Field(description="opt_out, opt_in, pause or resume.")
    source: str = Field(description="What caused it: sms:STOP, cli, email:list-unsubscribe, ...")
    detail: str | None
    at: datetime


class ConsentPage(BaseModel):
    items: list[ConsentOut]
    total: int
    limit: int
    offset: int


class ReplyOut(BaseModel):
    id: int
    participant: str | None = Field(description="None for a sender Tend does not know.")
    channel: str
    sender: str | None
    body: str
    received_at: datetime
    handled_at: datetime | None
    understood: str | None = Field(description="What the reply was taken to mean.")
    occurrence: str | None = Field(description="The key of the occurrence it counted for.")
    practice: str | None
    detail: str | None
    answer: str | None = Field(description="The text sent back, if any.")


class ReplyPage(BaseModel):
    items: list[ReplyOut]
    total: int
    limit: int
    offset: int


class PracticeOut(BaseModel):
    id: str
    title: str
    category: str
    at: str = Field(description="The time as written: 07:30, wake, bedtime - 1h.")
    every: list[str] | None = Field(description="The days (mon..sun); None when rrule decides.")
    rrule: str | None
    weeks: list[int] | None = Field(description="Active weeks; None for every week.")
    duration_minutes: int
    channels: list[str]
    check_in: str
    check_in_scale: list[int] | None
    check_in_unit: str | None
    window_minutes: int
    nudge_after_minutes: int | None


class PlanOut(BaseModel):
    id: str
    title: str
    summary: str | None
    days: int
    weeks: int
    variables: dict[str, str] = Field(description="The plan's variables and their defaults.")
    practices: list[PracticeOut]


class PlanPage(BaseModel):
    items: list[PlanOut]
    total: int
    limit: int
    offset: int


class PreviewOccurrence(BaseModel):
    key: str
    practice: str
    category: str
    title: str
    week: int
    local: str = Field(
        description="Local date and time, with offset.", json_schema_extra=_DATE_TIME
    )
    utc: str = Field(description="The instant in UTC.", json_schema_extra=_DATE_TIME)
    duration_minutes: int
    channels: list[str]
    check_in: str
    text: str


class PreviewOut(BaseModel):
    """The same object as `tend plans preview --format json`."""

    plan: str
    start: str = Field(json_schema_extra={"format": "date"})
    timezone: str
    occurrences: list[PreviewOccurrence]


class PracticeAdherenceOut(BaseModel):
    practice: str
    scheduled: int = Field(description="Occurrences whose instant has passed.")
    done: int
    skipped: int
    missed: int
    pending: int = Field(description="Of the scheduled, those whose window is still open.")
    completion_rate: float | None = Field(description="done / (scheduled - pending).")
    current_streak: int
    longest_streak: int
    strength: float = Field(description="Habit strength, 0 to 1.")


class EnrollmentAdherenceOut(BaseModel):
    participant: str
    name: str
    enrollment: str
    plan: str
    status: EnrollmentStatus
    sms: SmsStatus
    practices: list[PracticeAdherenceOut]


class AdherenceOut(BaseModel):
    """Exactly `tend report --format json`."""

    participants: list[EnrollmentAdherenceOut]


# --- helpers -------------------------------------------------------------------------


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


@contextmanager
def _found() -> Iterator[None]:
    """repo.NotFound becomes a 404 with its message."""
    try:
        yield
    except repo.NotFound as exc:
        raise not_found(str(exc)) from None


def _participant_out(person: Participant, briefs: list[EnrollmentBrief], now: datetime) -> Any:
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
        enrollments=briefs,
    )


def _briefs(conn: Connection, participant_ids: Sequence[str]) -> dict[str, list[EnrollmentBrief]]:
    out: dict[str, list[EnrollmentBrief]] = {pid: [] for pid in participant_ids}
    if not participant_ids:
        return out
    rows = conn.execute(
        select(enrollments.c.id, enrollments.c.participant_id, enrollments.c.plan_id,
               enrollments.c.status)
        .where(enrollments.c.participant_id.in_(list(participant_ids)))
        .order_by(enrollments.c.created_at, enrollments.c.id)
    )  # fmt: skip
    for row in rows:
        out[row.participant_id].append(
            EnrollmentBrief(id=row.id, plan=row.plan_id, status=row.status)
        )
    return out


def _one_participant(conn: Connection, participant_id: str, now: datetime) -> Any:
    person = repo.get_participant(conn, participant_id)
    return _participant_out(person, _briefs(conn, [person.id])[person.id], now)


def _next_reminders(
    conn: Connection, found: Sequence[Enrollment]
) -> dict[str, tuple[str, str, datetime]]:
    """Each enrollment's next reminder still to go: (practice, key, instant)."""
    if not found:
        return {}
    pending = (
        select(deliveries.c.id)
        .where(deliveries.c.occurrence_id == occurrences.c.id)
        .where(deliveries.c.state == "pending")
        .exists()
    )
    ids = [e.id for e in found]
    firsts = (
        select(occurrences.c.enrollment_id, func.min(occurrences.c.instant).label("first"))
        .where(occurrences.c.enrollment_id.in_(ids))
        .where(occurrences.c.state == "scheduled")
        .where(pending)
        .group_by(occurrences.c.enrollment_id)
        .subquery()
    )
    rows = conn.execute(
        select(occurrences.c.enrollment_id, occurrences.c.practice_id, occurrences.c.key,
               occurrences.c.instant)
        .join(firsts, and_(firsts.c.enrollment_id == occurrences.c.enrollment_id,
                           firsts.c.first == occurrences.c.instant))
        .where(occurrences.c.state == "scheduled")
        .where(pending)
        .order_by(occurrences.c.enrollment_id, occurrences.c.practice_id)
    )  # fmt: skip
    out: dict[str, tuple[str, str, datetime]] = {}
    for row in rows:
        out.setdefault(row.enrollment_id, (row.practice_id, row.key, row.instant))
    return out


def _enrollments_out(conn: Connection, found: Sequence[Enrollment]) -> list[EnrollmentOut]:
    nexts = _next_reminders(conn, found)
    zones: dict[str, str] = {}
    wanted = {e.participant_id for e in found}
    if wanted:
        rows = conn.execute(
            select(participants.c.id, participants.c.timezone).where(
                participants.c.id.in_(sorted(wanted))
            )
        )
        zones = {row.id: row.timezone for row in rows}
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


def _page_of(conn: Connection, query: Select[Any], limit: int, offset: int) -> tuple[Any, int]:
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
    return rows, int(total)


def _utc(moment: datetime, what: str) -> datetime:
    try:
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except OverflowError:
        raise bad_request(f"{what} is out of range") from None


def _plan(runtime: Runtime, plan_id: str) -> Plan:
    """The plan as the schedules folder has it now (a file with errors: its last good
    version, as the scheduler keeps it)."""
    known = runtime.plans.refresh()
    plan = known.get(plan_id)
    if plan is None:
        raise not_found(
            f"no plan '{plan_id}' in the schedules folder{did_you_mean(plan_id, known)}"
        )
    return plan


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


# --- participants --------------------------------------------------------------------


@router.get(
    "/participants",
    response_model=ParticipantPage,
    tags=["participants"],
    summary="List participants",
)
def list_participants(
    runtime: RuntimeDep,
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
) -> Any:
    """Participants, oldest first, with their enrollments; filtered by plan, enrollment
    status, SMS state and part of the name."""
    now = runtime.clock.now()
    query = select(participants).order_by(participants.c.created_at, participants.c.id)
    if name:
        query = query.where(participants.c.name.icontains(name.strip(), autoescape=True))
    if sms == "opted_out":
        query = query.where(participants.c.sms_state == "opted_out")
    elif sms is not None:
        paused = and_(participants.c.paused_until.is_not(None), participants.c.paused_until > now)
        query = query.where(participants.c.sms_state == "subscribed")
        query = query.where(paused if sms == "paused" else ~paused)
    if plan is not None or status is not None:
        member = select(enrollments.c.id).where(enrollments.c.participant_id == participants.c.id)
        if plan is not None:
            member = member.where(enrollments.c.plan_id == plan)
        if status is not None:
            member = member.where(enrollments.c.status == status)
        query = query.where(exists(member))
    with reading(runtime.engine) as conn:
        rows, total = _page_of(conn, query, limit, offset)
        people = [repo.participant_from_row(r) for r in rows]
        briefs = _briefs(conn, [p.id for p in people])
    items = [_participant_out(p, briefs[p.id], now) for p in people]
    return ParticipantPage(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/participants",
    response_model=ParticipantOut,
    status_code=201,
    tags=["participants"],
    summary="Add a participant",
    responses=_responses(400, 409),
)
def create_participant(body: ParticipantCreate, runtime: RuntimeDep) -> Any:
    """As `tend participants add`. 409 when another participant has the phone number."""
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        if body.phone and repo.find_participant_by_phone(conn, body.phone):
            raise conflict(f"a participant with phone {body.phone} exists already")
        try:
            with conn.begin_nested():
                person = repo.add_participant(
                    conn,
                    name=body.name,
                    phone=body.phone,
                    email=body.email,
                    timezone=body.timezone,
                    variables=body.variables,
                    now=now,
                )
        except IntegrityError:
            raise conflict(f"a participant with phone {body.phone} exists already") from None
        return _participant_out(person, [], now)


@router.get(
    "/participants/{participant_id}",
    response_model=ParticipantOut,
    tags=["participants"],
    summary="Read a participant",
    responses=_responses(404),
)
def get_participant(participant_id: ParticipantId, runtime: RuntimeDep) -> Any:
    now = runtime.clock.now()
    with reading(runtime.engine) as conn, _found():
        return _one_participant(conn, participant_id, now)


@router.patch(
    "/participants/{participant_id}",
    response_model=ParticipantOut,
    tags=["participants"],
    summary="Change a participant",
    responses=_responses(400, 404, 409),
)
def update_participant(
    participant_id: ParticipantId, body: ParticipantUpdate, runtime: RuntimeDep
) -> Any:
    """Only the fields given change. A new time zone or new variables re-plan the
    reminders still ahead of the participant's active and paused enrollments, in the
    same transaction: when one of them cannot follow (its plan file is gone, or the
    new variables do not fit its plan), nothing changes and the answer says why."""
    now = runtime.clock.now()
    given = body.model_fields_set
    with transaction(runtime.engine) as conn, _found():
        before = repo.get_participant(conn, participant_id)
        values: dict[str, Any] = {
            key: getattr(body, key)
            for key in ("name", "phone", "email", "timezone", "variables")
            if key in given
        }
        phone = values.get("phone")
        if phone is not None and phone != before.phone:
            other = repo.find_participant_by_phone(conn, phone)
            if other is not None:
                raise conflict(f"a participant with phone {phone} exists already ({other.id})")
        if values:
            try:
                with conn.begin_nested():
                    conn.execute(
                        update(participants)
                        .where(participants.c.id == participant_id)
                        .values(**values)
                    )
            except IntegrityError:
                raise conflict(f"a participant with phone {phone} exists already") from None
        after = repo.get_participant(conn, participant_id)
        if (after.timezone, after.variables) != (before.timezone, before.variables):
            _replan(runtime, conn, after, now)
        return _one_participant(conn, participant_id, now)


def _replan(runtime: Runtime, conn: Connection, person: Participant, now: datetime) -> None:
    """Move the reminders of the participant's active and paused enrollments to their
    new time zone or variables."""
    loaded = runtime.plans.refresh()
    for current in repo.list_enrollments(
        conn, participant_id=person.id, statuses=("active", "paused")
    ):
        plan = loaded.get(current.plan_id)
        if plan is None:
            raise conflict(
                f"enrollment {current.id} follows plan '{current.plan_id}', which is no longer "
                "in the schedules folder, so its reminders cannot be moved; cancel that "
                "enrollment first, or restore the plan file"
            )
        try:
            resolve_plan_variables(plan, variables_for(plan, person, current.variables))
            refresh(conn, current, person, plan, now)
        except ValueError as exc:
            raise bad_request(
                f"enrollment {current.id} ({current.plan_id}) cannot follow the change: {exc}"
            ) from None


@router.get(
    "/participants/{participant_id}/feed",
    response_model=FeedOut,
    tags=["participants"],
    summary="The participant's calendar feed URL",
    responses=_responses(404),
)
def get_feed(participant_id: ParticipantId, runtime: RuntimeDep) -> Any:
    with reading(runtime.engine) as conn, _found():
        person = repo.get_participant(conn, participant_id)
    return _feed(runtime, person.id, person.feed_version)


@router.post(
    "/participants/{participant_id}/feed/rotate",
    response_model=FeedOut,
    tags=["participants"],
    summary="A new calendar feed URL (the old one stops working)",
    responses=_responses(404),
)
def rotate_feed(participant_id: ParticipantId, runtime: RuntimeDep) -> Any:
    with transaction(runtime.engine) as conn, _found():
        version = repo.rotate_feed(conn, participant_id)
    return _feed(runtime, participant_id, version)


def _feed(runtime: Runtime, participant_id: str, version: int) -> FeedOut:
    url = feed_link(runtime, participant_id, version)
    return FeedOut(participant=participant_id, url=url, webcal=webcal_link(url), version=version)


TEST_SMS = "Test message from Tend for {name}: your reminders will come from this number."
TEST_EMAIL = "Hello {name},\n\nThis is a test message from Tend: reminders will come like this."


@router.post(
    "/participants/{participant_id}/test-message",
    response_model=TestMessageOut,
    tags=["participants"],
    summary="Send the participant a test message",
    responses=_responses(400, 404, 409, 502),
)
def send_test_message(
    participant_id: ParticipantId, body: TestMessageCreate, runtime: RuntimeDep
) -> Any:
    """Sent now, through the same channel as reminders. Refused (409) when the
    participant has no number or address for it, opted out of SMS, paused SMS, or
    unsubscribed from email: consent holds for test messages too."""
    now = runtime.clock.now()
    with reading(runtime.engine) as conn, _found():
        person = repo.get_participant(conn, participant_id)
    first = Person(person.name).first_name
    if body.channel == "sms":
        if not person.phone:
            raise conflict(f"{person.name} has no phone number; add one first")
        if person.sms_state == "opted_out":
            raise conflict(
                f"{person.name} opted out of SMS (see their consent log); nothing is sent "
                "until they text START"
            )
        if person.sms_paused(now):
            until = person.paused_until.isoformat() if person.paused_until else ""
            raise conflict(f"{person.name} paused SMS until {until}; nothing is sent till then")
        message = OutgoingMessage(
            None, "sms", person.phone, clean_for_sms(body.text or TEST_SMS.format(name=first))
        )
    else:
        if not person.email:
            raise conflict(f"{person.name} has no email address; add one first")
        if person.email_unsubscribed:
            raise conflict(
                f"{person.name} unsubscribed from email (see their consent log); "
                "nothing is sent to them by email"
            )
        message = OutgoingMessage(
            None,
            "email",
            person.email,
            body.text or TEST_EMAIL.format(name=first),
            subject="Tend test message",
            unsubscribe_url=unsubscribe_link(
                runtime.settings.public_base, runtime.secret, person.id
            ),
        )
    channel = runtime.channels.get(body.channel)
    if channel is None:
        raise conflict(f"no {body.channel} channel is configured")
    try:
        receipt = channel.send(message)
    except ChannelError as exc:
        if exc.opted_out:  # the carrier knows of an opt-out Tend has not heard of yet
            raise conflict(f"the {body.channel} provider refused: {exc}") from None
        raise HTTPException(
            status_code=502, detail=f"the {body.channel} channel did not send it: {exc}"
        ) from None
    return TestMessageOut(
        participant=person.id,
        channel=body.channel,
        to=message.to,
        provider_id=receipt.provider_id,
        segments=receipt.segments,
    )


@router.get(
    "/participants/{participant_id}/consent",
    response_model=ConsentPage,
    tags=["consent"],
    summary="The participant's consent log",
    responses=_responses(404),
)
def participant_consent(
    participant_id: ParticipantId, runtime: RuntimeDep, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """Opt-outs, opt-ins, pauses and resumes, oldest first."""
    with reading(runtime.engine) as conn, _found():
        repo.get_participant(conn, participant_id)
        return _consent_page(conn, participant_id, limit, offset)


@router.get("/consent", response_model=ConsentPage, tags=["consent"], summary="The consent log")
def list_consent(
    runtime: RuntimeDep,
    participant: ParticipantFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """Every participant's opt-outs, opt-ins, pauses and resumes, oldest first."""
    with reading(runtime.engine) as conn:
        return _consent_page(conn, participant, limit, offset)


def _consent_page(conn: Connection, participant_id: str | None, limit: int, offset: int) -> Any:
    query = select(consent_log).order_by(consent_log.c.at, consent_log.c.id)
    if participant_id is not None:
        query = query.where(consent_log.c.participant_id == participant_id)
    rows, total = _page_of(conn, query, limit, offset)
    items = [
        ConsentOut(
            id=r["id"],
            participant=r["participant_id"],
            channel=r["channel"],
            action=r["action"],
            source=r["source"],
            detail=r["detail"],
            at=r["at"],
        )
        for r in rows
    ]
    return ConsentPage(items=items, total=total, limit=limit, offset=offset)


# --- enrollments ---------------------------------------------------------------------


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
    query = select(enrollments).order_by(enrollments.c.created_at, enrollments.c.id)
    if participant is not None:
        query = query.where(enrollments.c.participant_id == participant)
    if plan is not None:
        query = query.where(enrollments.c.plan_id == plan)
    if status is not None:
        query = query.where(enrollments.c.status == status)
    with reading(runtime.engine) as conn:
        rows, total = _page_of(conn, query, limit, offset)
        found = [repo.enrollment_from_row(r) for r in rows]
        items = _enrollments_out(conn, found)
    return EnrollmentPage(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/enrollments",
    response_model=EnrollmentOut,
    status_code=201,
    tags=["enrollments"],
    summary="Enroll a participant in a plan",
    responses=_responses(400, 404, 409),
)
def create_enrollment(body: EnrollmentCreate, runtime: RuntimeDep) -> Any:
    """As `tend enroll`. 409 when the participant is already in the plan (active or
    paused): cancel that enrollment first to start again."""
    plan = _plan(runtime, body.plan)
    now = runtime.clock.now()
    with reading(runtime.engine) as conn, _found():
        person = repo.get_participant(conn, body.participant)
        current = repo.list_enrollments(
            conn, participant_id=person.id, plan_id=plan.id, statuses=("active", "paused")
        )
    if current:
        raise conflict(
            f"{person.name} is already enrolled in {plan.id} ({current[0].id}, "
            f"{current[0].status}); cancel that enrollment first to start again"
        )
    today = now.astimezone(ZoneInfo(person.timezone)).date()
    start = today if body.start == "today" else date.fromisoformat(body.start)
    if not today - START_PAST <= start <= today + START_FUTURE:
        raise bad_request(
            f"start {start.isoformat()} is too far from today ({today.isoformat()}); "
            "an enrollment starts at most a year before today and two years after"
        )
    try:
        resolve_plan_variables(plan, variables_for(plan, person, body.variables))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    try:
        with _found():
            made = enroll(runtime, person.id, plan, start, dict(body.variables))
    except EnrollmentError as exc:  # enrolled meanwhile
        raise conflict(str(exc)) from None
    with reading(runtime.engine) as conn:
        return _enrollments_out(conn, [made])[0]


@router.get(
    "/enrollments/{enrollment_id}",
    response_model=EnrollmentOut,
    tags=["enrollments"],
    summary="Read an enrollment",
    responses=_responses(404),
)
def get_enrollment(enrollment_id: EnrollmentId, runtime: RuntimeDep) -> Any:
    with reading(runtime.engine) as conn, _found():
        return _enrollments_out(conn, [repo.get_enrollment(conn, enrollment_id)])[0]


def _set_status(runtime: Runtime, enrollment_id: str, status: str, verb: str) -> Any:
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn, _found():
        current = repo.get_enrollment(conn, enrollment_id)
        if current.status == status:  # asked twice: nothing to do
            return _enrollments_out(conn, [current])[0]
        try:
            updated = repo.set_enrollment_status(conn, enrollment_id, status, now=now)
        except ValueError:
            raise conflict(
                f"enrollment {enrollment_id} is {current.status}; it cannot be {verb}"
            ) from None
        if status == "active":
            plan = runtime.plans.get(updated.plan_id, updated.plan_hash)
            if plan is not None:
                person = repo.get_participant(conn, updated.participant_id)
                try:
                    refresh(conn, updated, person, plan, now)
                except ValueError as exc:
                    raise conflict(
                        f"enrollment {enrollment_id} cannot resume: {exc}; it stays paused"
                    ) from None
        return _enrollments_out(conn, [repo.get_enrollment(conn, enrollment_id)])[0]


_STATUS_ERRORS = _responses(404, 409)


@router.post(
    "/enrollments/{enrollment_id}/pause",
    response_model=EnrollmentOut,
    tags=["enrollments"],
    summary="Pause an enrollment",
    responses=_STATUS_ERRORS,
)
def pause_enrollment(enrollment_id: EnrollmentId, runtime: RuntimeDep) -> Any:
    """No reminders until resumed. 409 unless active (pausing a paused one changes nothing)."""
    return _set_status(runtime, enrollment_id, "paused", "paused")


@router.post(
    "/enrollments/{enrollment_id}/resume",
    response_model=EnrollmentOut,
    tags=["enrollments"],
    summary="Resume a paused enrollment",
    responses=_STATUS_ERRORS,
)
def resume_enrollment(enrollment_id: EnrollmentId, runtime: RuntimeDep) -> Any:
    """Reminders still ahead come back. 409 unless paused (or already active)."""
    return _set_status(runtime, enrollment_id, "active", "resumed")


@router.post(
    "/enrollments/{enrollment_id}/cancel",
    response_model=EnrollmentOut,
    tags=["enrollments"],
    summary="Cancel an enrollment",
    responses=_STATUS_ERRORS,
)
def cancel_enrollment(enrollment_id: EnrollmentId, runtime: RuntimeDep) -> Any:
    """Nothing more is sent. 409 for a finished enrollment."""
    return _set_status(runtime, enrollment_id, "cancelled", "cancelled")


# --- plans ---------------------------------------------------------------------------


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
    responses=_responses(404),
)
def get_plan(plan_id: PlanId, runtime: RuntimeDep) -> Any:
    return _plan_out(_plan(runtime, plan_id))


_VAR_PAIR = r"^[a-z_][a-z0-9_]{0,62}=[^\x00]{1,64}$"


@router.get(
    "/plans/{plan_id}/preview",
    response_model=PreviewOut,
    tags=["plans"],
    summary="Preview a plan, for a sample participant or a real one",
    responses=_responses(400, 404, 409),
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
    plan = _plan(runtime, plan_id)
    now = runtime.clock.now()
    person = SAMPLE_PERSON
    overrides: dict[str, str] = {}
    zone_name = tz
    first: date | None = start
    if participant is not None:
        with reading(runtime.engine) as conn, _found():
            someone = repo.get_participant(conn, participant)
            current = repo.list_enrollments(
                conn, participant_id=someone.id, plan_id=plan.id, statuses=("active", "paused")
            )
        person = Person(someone.name)
        overrides = variables_for(plan, someone, current[0].variables if current else {})
        zone_name = zone_name or someone.timezone
        if first is None and current:
            first = current[0].start_date
    if zone_name is None:
        raise bad_request("give a time zone (tz), or a participant whose zone to use")
    try:
        zone = ZoneInfo(_timezone(zone_name))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    first = first or now.astimezone(zone).date()
    if not PREVIEW_FIRST <= first <= PREVIEW_LAST:
        raise bad_request(
            f"start {first.isoformat()} is out of range; a preview starts between "
            f"{PREVIEW_FIRST.isoformat()} and {PREVIEW_LAST.isoformat()}"
        )
    for pair in var or []:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(VARIABLE_NAME, key.strip()) or not value.strip():
            raise bad_request(f"var takes NAME=VALUE, such as wake=06:30, not '{pair}'")
        overrides[key.strip()] = value.strip()
    check_in_url = f"{runtime.settings.public_base}/check-in/preview"
    try:
        preview = build_preview(
            plan, first, zone, overrides, runtime.catalog.renderer, check_in_url, person
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    except RenderError as exc:
        raise conflict(f"the plan's text cannot be rendered: {exc}") from None
    return as_json(preview)


# --- replies -------------------------------------------------------------------------


@router.get("/replies", response_model=ReplyPage, tags=["replies"], summary="List replies")
def list_replies(
    runtime: RuntimeDep,
    participant: ParticipantFilter = None,
    since: Annotated[
        datetime | None,
        Query(description="Only those received at or after this instant (UTC if no offset)."),
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Any:
    """Replies by SMS or check-in link, newest first, with what each was taken to mean."""
    query = (
        select(
            replies,
            occurrences.c.key.label("occurrence_key"),
            occurrences.c.practice_id.label("occurrence_practice"),
        )
        .select_from(replies.outerjoin(occurrences, occurrences.c.id == replies.c.occurrence_id))
        .order_by(replies.c.received_at.desc(), replies.c.id.desc())
    )
    if participant is not None:
        query = query.where(replies.c.participant_id == participant)
    if since is not None:
        query = query.where(replies.c.received_at >= _utc(since, "since"))
    with reading(runtime.engine) as conn:
        rows, total = _page_of(conn, query, limit, offset)
    items = [
        ReplyOut(
            id=r["id"],
            participant=r["participant_id"],
            channel=r["channel"],
            sender=r["sender"],
            body=r["body"],
            received_at=r["received_at"],
            handled_at=r["handled_at"],
            understood=r["understood"],
            occurrence=r["occurrence_key"],
            practice=r["occurrence_practice"],
            detail=r["detail"],
            answer=r["answer"],
        )
        for r in rows
    ]
    return ReplyPage(items=items, total=total, limit=limit, offset=offset)


# --- adherence -----------------------------------------------------------------------


@router.get(
    "/adherence",
    response_model=AdherenceOut,
    tags=["adherence"],
    summary="Adherence: the report's data",
    responses=_responses(404),
)
def adherence(
    runtime: RuntimeDep, participant: ParticipantFilter = None, plan: PlanFilter = None
) -> Any:
    """Exactly `tend report --format json`: per enrollment and practice, what was done,
    skipped and missed, streaks and habit strength."""
    if plan is not None and runtime.plans.get(plan) is None:
        with reading(runtime.engine) as conn:
            if not repo.list_enrollments(conn, plan_id=plan):
                raise not_found(
                    f"no plan '{plan}' in the schedules folder and no enrollments in it"
                )
    with _found():
        found = report.build(runtime, participant_id=participant, plan_id=plan)
    return found.as_json()


__all__ = ["router"]
