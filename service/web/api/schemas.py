"""The JSON API's bodies and answers: pydantic models that refuse unknown keys, so that
`/openapi.json` describes what the API really takes and gives. People's details are
checked by `core.validate`, the same rules the command line applies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, model_validator
from pydantic.json_schema import SkipJsonSchema

from service.core import language, quiet, validate
from service.core.plan import ID_PATTERN
from service.web.api.common import ID_TEXT

EnrollmentStatus = Literal["active", "paused", "finished", "cancelled"]
SmsStatus = Literal["subscribed", "opted_out", "paused"]


def _start(value: str) -> str:
    if value != "today":
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"'{value}' is not a date; write YYYY-MM-DD, such as 2026-03-02, or today"
            ) from None
    return value


def _text(min_length: int, max_length: int, description: str, example: str) -> Any:
    """The field of one of a person's details (checked after by its `core.validate` rule)."""
    return Field(
        min_length=min_length, max_length=max_length, description=description, examples=[example]
    )


Name = Annotated[
    str,
    _text(1, validate.MAX_NAME, "Full name; the first word greets them.", "Rae Example"),
    AfterValidator(validate.name),
]
Phone = Annotated[
    str,
    _text(1, validate.MAX_PHONE, "Mobile number in E.164, such as +14155550123.", "+14155550123"),
    AfterValidator(validate.phone),
]
Email = Annotated[
    str,
    _text(3, validate.MAX_EMAIL, "Email address.", "rae@example.com"),
    AfterValidator(validate.email),
]
TimeZone = Annotated[
    str,
    _text(1, validate.MAX_ZONE, "IANA time zone, such as Europe/London.", "America/New_York"),
    AfterValidator(validate.zone),
]
VariableValue = Annotated[str, Field(min_length=1, max_length=validate.MAX_VARIABLE)]
Variables = Annotated[
    dict[str, VariableValue],
    Field(
        max_length=validate.MAX_VARIABLES,
        description=(
            "Plan variables by name (lower case letters, digits and _), each a time: "
            '"07:30", another variable, or one plus or minus a duration ("wake + 15h").'
        ),
        examples=[{"wake": "06:30"}],
        json_schema_extra={"propertyNames": {"pattern": validate.VARIABLE_NAME}},
    ),
    AfterValidator(validate.variables),
]


def _language(text: str) -> str:
    try:
        return language.tag(text)
    except language.NotATag as exc:
        raise ValueError(f"language: {exc}") from None


def _quiet_hours(text: str) -> str:
    try:
        return quiet.stored_form(text) or quiet.OFF
    except quiet.Unreadable as exc:
        raise ValueError(f"quiet hours: {exc}") from None


Language = Annotated[
    str,
    _text(
        1,
        language.MAX_TAG,
        "The language of their texts, a BCP 47 tag such as es or es-MX (null: the "
        "deployment's, TEND_DEFAULT_LANGUAGE).",
        "es",
    ),
    AfterValidator(_language),
]
QuietHours = Annotated[
    str,
    _text(
        1,
        32,
        f"Their quiet hours, in their local time: {quiet.QUIET_EXAMPLE}; `off` for none at "
        "all (null: the deployment's, TEND_QUIET_HOURS). Nothing Tend sends on its own goes "
        "inside them.",
        quiet.QUIET_EXAMPLE,
    ),
    AfterValidator(_quiet_hours),
]
Discreet = Annotated[
    bool,
    Field(strict=True, description="Texts that never name the practice (a phone others see)."),
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


Item = TypeVar("Item", bound=BaseModel)


class Page(BaseModel, Generic[Item]):
    # No docstring: each page model is named for its items, and described by its fields.
    items: list[Item]
    total: int
    limit: int
    offset: int


# --- bodies --------------------------------------------------------------------------


CoachId = Annotated[
    str, Field(pattern=ID_TEXT, description="A coach's id.", examples=["c_k3m9x2q7hv4d"])
]


class ParticipantCreate(BaseModel):
    """A new participant (as `tend participants add`)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    phone: Phone | None = None
    email: Email | None = None
    timezone: TimeZone
    variables: Variables = Field(default_factory=dict)
    coach: CoachId | None = Field(
        None,
        description="Admins only: the coach who owns the participant (a coach's own "
        "token always makes them that coach's).",
    )
    language: Language | None = None
    discreet: Discreet = False
    quiet_hours: QuietHours | None = None


class ParticipantUpdate(BaseModel):
    """Changes to a participant: only the fields given change. `phone` or `email` null
    removes it; `language` or `quiet_hours` null follows the deployment's. A new time
    zone or new variables move the participant's reminders still ahead (of active and
    paused enrollments) at once."""

    model_config = ConfigDict(extra="forbid")

    name: Name | SkipJsonSchema[None] = None
    phone: Phone | None = None
    email: Email | None = None
    timezone: TimeZone | SkipJsonSchema[None] = None
    variables: Variables | SkipJsonSchema[None] = Field(
        None, description="Replaces all of the participant's variables."
    )
    coach: CoachId | None = Field(
        None,
        description="Admins only (403 for a coach): hand the participant to this coach "
        "(a coach id; null: to no coach). An unknown or disabled coach is a 400.",
    )
    language: Language | None = None
    discreet: Discreet | SkipJsonSchema[None] = None
    quiet_hours: QuietHours | None = None

    @model_validator(mode="after")
    def _not_null(self) -> Self:
        for key in ("name", "timezone", "variables", "discreet"):
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
    text: (
        Annotated[str, Field(min_length=1, max_length=1600), AfterValidator(validate.text)] | None
    ) = Field(
        None,
        description="The message; a short standard one when left out.",
        examples=["Testing: does this reach you?"],
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
    coach: str | None = Field(description="The id of the coach who owns them (null: none).")
    cohort: str | None = Field(description="The id of the cohort they are in (null: none).")
    language: str | None = Field(
        description="The language of their texts (null: the deployment's, TEND_DEFAULT_LANGUAGE)."
    )
    discreet: bool = Field(description="Their texts never name the practice.")
    quiet_hours: str | None = Field(
        description=f"Their own quiet hours ({quiet.QUIET_EXAMPLE}), `off` for none, or null: "
        "the deployment's (TEND_QUIET_HOURS)."
    )
    enrollments: list[EnrollmentBrief]


class ParticipantPage(Page[ParticipantOut]):
    total: int = Field(description="How many match the filters, over all pages.")


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


class EnrollmentPage(Page[EnrollmentOut]):
    pass


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


class ConsentPage(Page[ConsentOut]):
    pass


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


class ReplyPage(Page[ReplyOut]):
    pass


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


class PlanPage(Page[PlanOut]):
    pass


class PlanProblem(BaseModel):
    line: int = Field(description="The line, from 1, as `tend plans check` gives it.")
    col: int = Field(description="The column, from 1, as `tend plans check` gives it.")
    message: str


class PlanChanges(BaseModel):
    enrollments: int = Field(description="Live enrollments whose reminders change.")
    added: int
    moved: int = Field(description="Unsent occurrences whose time, text or details change.")
    cancelled: int


class PublishOut(BaseModel):
    plan: str
    version: int = Field(description="The new version; unchanged: the newest, which has this text.")
    created: bool = Field(description="False: the newest version already had this content.")
    dry_run: bool = Field(description="True: nothing was stored; this is what would happen.")
    changes: PlanChanges
    cannot_follow: list[str] = Field(
        description="Enrollments that cannot follow the new version (they stay on theirs), "
        "each with the reason."
    )
    warnings: list[PlanProblem]


class PlanRejectedOut(BaseModel):
    errors: list[PlanProblem]
    warnings: list[PlanProblem]


class ShapeProblem(BaseModel):
    """A request whose parameters or body do not have the documented shape."""

    detail: list[dict[str, Any]]


class PutPlanRefused(RootModel[PlanRejectedOut | ShapeProblem]):
    """A PUT's 422: the plan's errors, or (a parameter of the wrong shape) FastAPI's."""


class VersionOut(BaseModel):
    plan: str
    version: int
    title: str
    content_hash: str
    published_by: str
    published_at: datetime
    note: str | None


class VersionPage(Page[VersionOut]):
    pass


class VersionText(VersionOut):
    yaml: str = Field(description="The plan as it was published, comments and all.")
    templates: dict[str, str] = Field(
        description="The text of each template file the version uses, by file name."
    )


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
