"""The plan format, version 1: the document as written (pydantic) and the compiled plan.

`PlanDocument` mirrors the YAML file and checks its structure: which keys exist and of
what type. It is also the source of `tend plans schema`. The loader then compiles a
document into a `Plan`, where times, durations, weeks and days are parsed and checked
against each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from service.core.days import DAY_NAMES, DAY_PATTERN, DAYS_TEXT_PATTERN, EVERY_WORD_PATTERN
from service.core.timeexpr import TimeExpr

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"

Category = Literal[
    "sleep", "movement", "affirmation", "mindfulness", "journaling", "connection", "other"
]
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]
Channel = Literal["sms", "email", "calendar"]
CHANNELS: tuple[str, ...] = Channel.__args__  # type: ignore[attr-defined]
CheckInKind = Literal["none", "done", "rating", "number", "text"]
CHECK_IN_KINDS: tuple[str, ...] = CheckInKind.__args__  # type: ignore[attr-defined]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SUMMARY_CHANNELS: tuple[str, ...] = ("sms", "email")  # a weekly summary has no calendar event
EVERY_KEYWORDS: dict[str, frozenset[int]] = {
    "day": frozenset(range(7)),
    "weekday": frozenset(range(5)),
    "weekend": frozenset({5, 6}),
}

_DURATION_RE = r"^\s*(\d+d)?\s*(\d+h)?\s*(\d+m)?\s*$"
_TIME_RE = r"^\s*(\d{1,2}:\d{2}|[a-z_][a-z0-9_]*(\s*[+-]\s*(\d+d)?(\d+h)?(\d+m)?)?)\s*$"
_WEEKS_ITEM: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": r"^\s*\d+\s*(-\s*\d+\s*)?$"},
    ]
}

Id = Annotated[str, Field(pattern=ID_PATTERN)]
DurationText = Annotated[
    str,
    WithJsonSchema({"type": "string", "pattern": _DURATION_RE, "examples": ["15m", "1h30m"]}),
]
TimeText = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "pattern": _TIME_RE, "examples": ["07:30", "wake", "bedtime - 1h"]}
    ),
]
WeeksText = Annotated[
    int | str | list[int | str],
    WithJsonSchema(
        {"anyOf": [*_WEEKS_ITEM["anyOf"], {"type": "array", "items": _WEEKS_ITEM, "minItems": 1}]}
    ),
]
# `every` and a day as coaches write them, in any case (`Sundays`, `[Mon, Wed]`,
# `"Mon, Wed"`): the enums offer the plain spellings for completion, the patterns accept
# the rest (service.core.days reads them all).
_DAY_SCHEMA: dict[str, Any] = {
    "anyOf": [{"enum": list(WEEKDAYS)}, {"type": "string", "pattern": DAY_PATTERN}]
}
EveryText = Annotated[
    str | list[str],
    WithJsonSchema(
        {
            "anyOf": [
                {"enum": [*EVERY_KEYWORDS, *DAY_NAMES]},
                {"type": "string", "pattern": EVERY_WORD_PATTERN},
                {"type": "string", "pattern": DAYS_TEXT_PATTERN},
                {"type": "array", "items": _DAY_SCHEMA, "minItems": 1, "uniqueItems": True},
            ]
        }
    ),
]


DayText = Annotated[str, WithJsonSchema(_DAY_SCHEMA)]
# Group sessions: a zone that fixes the instant for everyone, where it is, and a link.
ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
URL_PATTERN = r"^https?://[^\s/?#]+[^\s]*$"
MAX_LOCATION = 200  # characters of a location
MAX_URL = 2000  # characters of a url
ZoneText = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": ZONE_PATTERN,
            "examples": ["Europe/London", "America/New_York"],
        }
    ),
]
LocationText = Annotated[
    str, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_LOCATION})
]
UrlText = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": URL_PATTERN,
            "maxLength": MAX_URL,
            "examples": ["https://example.org/group-walk"],
        }
    ),
]
SummaryChannelText = Annotated[str, WithJsonSchema({"enum": list(SUMMARY_CHANNELS)})]
# Text a person reads, in the plan's language or per language: `{en: ..., es: ...}`.
LANGUAGE_KEY_PATTERN = r"^[a-z]{2,3}(-[a-z0-9]{2,4}){0,2}$"
LocalText = Annotated[
    str | dict[str, str],
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "propertyNames": {"pattern": LANGUAGE_KEY_PATTERN},
                    "additionalProperties": {"type": "string"},
                    "minProperties": 1,
                    "examples": [{"en": "Time for a walk.", "es": "Hora de caminar."}],
                },
            ]
        }
    ),
]
LocalLines = Annotated[
    list[str] | dict[str, list[str]],
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}},
                {
                    "type": "object",
                    "propertyNames": {"pattern": LANGUAGE_KEY_PATTERN},
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    "minProperties": 1,
                },
            ]
        }
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CheckInSpec(_Strict):
    """A check-in written as a mapping, for the kinds that take options."""

    kind: CheckInKind = Field(description="What the participant answers with.")
    scale: Annotated[list[int], Field(min_length=2, max_length=2)] | None = Field(
        None, description="Rating scale as [low, high]; default [1, 5]."
    )
    unit: str | None = Field(None, description="Unit of a number check-in, e.g. minutes.")
    question: LocalText | None = Field(
        None, description="The question asked with the reminder (or per language)."
    )


CheckInText = Annotated[
    str | CheckInSpec,
    WithJsonSchema(
        {
            "anyOf": [
                {"enum": list(CHECK_IN_KINDS)},
                CheckInSpec.model_json_schema(),  # inline: a $ref here would dangle
            ]
        }
    ),
]


class NudgeSpec(_Strict):
    """One follow-up SMS when no check-in came in time."""

    after: DurationText = Field(description="How long after the reminder, e.g. 90m.")
    message: LocalText = Field(description="Jinja2 text of the follow-up (or per language).")


class PhaseSpec(_Strict):
    """Overrides for some weeks of the plan (progression)."""

    weeks: WeeksText = Field(description='The weeks this phase covers: 3, "1-4" or a list.')
    at: TimeText | None = None
    duration: DurationText | None = None
    message: LocalText | None = None
    template: str | None = None
    rotate: LocalLines | None = None


class PracticeFields(_Strict):
    """Every practice key but `id`; also the shape of the plan's `defaults`."""

    category: Category | None = Field(None, description="What kind of practice this is.")
    title: LocalText | None = Field(
        None, description="Short name, shown in calendars and reports (or per language)."
    )
    at: TimeText | None = Field(
        None, description="Local time: 07:30, a variable, or a variable plus or minus a duration."
    )
    every: EveryText | None = Field(
        None,
        description=(
            "day (default), weekday, weekend, a day such as sunday, or a list of days "
            "such as [mon, wed, fri]; any case, full or abbreviated, singular or plural."
        ),
    )
    rrule: str | None = Field(
        None, description="Instead of every: an RFC 5545 RRULE body, FREQ at most DAILY."
    )
    weeks: WeeksText | None = Field(None, description="Active weeks; default all.")
    duration: DurationText | None = Field(None, description="Calendar length; default 15m.")
    channels: list[Channel] | None = Field(None, description="Default [sms].")
    message: LocalText | None = Field(
        None,
        description="Inline Jinja2 text of the reminder, or one per language: {en: ..., es: ...}.",
    )
    template: str | None = Field(
        None, description="Instead of message: a template name under templates/."
    )
    rotate: LocalLines | None = Field(
        None,
        description="Lines handed out in turn as {{ item }} (or per language, as many in each).",
    )
    discreet_message: LocalText | None = Field(
        None,
        description=(
            "What participants who asked for discreet texts get instead: it must not name "
            "the practice (default: a neutral wording from templates/discreet/)."
        ),
    )
    check_in: CheckInText | None = Field(None, description="What a check-in asks; default done.")
    window: DurationText | None = Field(
        None, description="How long after the reminder a check-in counts; default 12h."
    )
    nudge: NudgeSpec | None = None
    phases: list[PhaseSpec] | None = None
    timezone: ZoneText | None = Field(
        None,
        description=(
            "A group session: the IANA zone `at` is read in (Europe/London), the same "
            "instant for every participant, shown to each in their own zone."
        ),
    )
    location: LocationText | None = Field(
        None,
        description="Where it happens: the calendar event's LOCATION, {{ practice.location }}.",
    )
    url: UrlText | None = Field(
        None,
        description="An http(s) link for it: the calendar event's URL, {{ practice.url }}.",
    )


class PracticeSpec(PracticeFields):
    id: Id = Field(description="Unique in the plan: lower case letters, digits and -.")


class WeeklySummarySpec(_Strict):
    """A weekly note to each participant on how their week went; `{}` takes every default."""

    day: DayText | None = Field(None, description="The day it is sent: mon..sun; default sun.")
    at: TimeText | None = Field(
        None,
        description=(
            "Local time it is sent, written like a practice's at: 18:00, a variable, "
            "or a variable plus or minus a duration; default 18:00."
        ),
    )
    channels: list[SummaryChannelText] | None = Field(
        None, description="How it is sent: any of sms, email; default [email]."
    )


class PlanDocument(_Strict):
    """A Tend practice plan, format version 1."""

    model_config = ConfigDict(title="Tend practice plan")

    plan: Id = Field(description="The plan's id, unique across schedules/.")
    title: LocalText
    summary: LocalText | None = None
    language: Annotated[str, Field(pattern=LANGUAGE_KEY_PATTERN)] | None = Field(
        None,
        description="The language plain texts are written in (default en); others by key.",
    )
    weeks: int | None = Field(None, ge=1, le=520, description="Plan length in weeks.")
    days: int | None = Field(None, ge=1, le=3640, description="Plan length in days.")
    variables: dict[str, TimeText] | None = Field(
        None, description="Participant variables (times) and their defaults."
    )
    timezone: ZoneText | None = Field(
        None,
        description=(
            "Group sessions: every practice's `at` is read in this IANA zone, the same "
            "instant for every participant."
        ),
    )
    defaults: PracticeFields | None = Field(None, description="Defaults for any practice key.")
    practices: list[PracticeSpec] = Field(min_length=1)
    weekly_summary: WeeklySummarySpec | None = Field(
        None, description="Optional: a weekly note to each participant on how their week went."
    )


# --- the compiled plan -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckIn:
    kind: str = "done"
    scale: tuple[int, int] | None = None
    unit: str | None = None
    question: str | None = None

    @property
    def asks(self) -> bool:
        return self.kind != "none"


@dataclass(frozen=True, slots=True)
class Nudge:
    after_minutes: int
    message: str


@dataclass(frozen=True, slots=True)
class Variant:
    """What a phase may change: the practice as it stands in some weeks."""

    at: TimeExpr
    duration_minutes: int
    message: str | None
    template: str | None
    rotate: tuple[str, ...]  # LocalizedLines when translated


@dataclass(frozen=True, slots=True)
class Practice:
    id: str
    category: str
    title: str
    weekdays: frozenset[int] | None  # None when `rrule` decides the days
    rrule: str | None
    weeks: frozenset[int] | None  # None: every week of the plan
    channels: tuple[str, ...]
    check_in: CheckIn
    window_minutes: int
    nudge: Nudge | None
    base: Variant
    phases: tuple[tuple[frozenset[int], Variant], ...] = ()
    # A group session: `at` is wall time in this IANA zone for every participant (None:
    # in each participant's own zone). `location` and `url` reach calendars and texts.
    timezone: str | None = None
    location: str | None = None
    url: str | None = None
    # What a discreet participant gets instead of the message (None: templates/discreet/).
    discreet_message: str | None = None

    @property
    def zone(self) -> ZoneInfo | None:
        """The session's own zone, or None when the practice follows each participant's."""
        return ZoneInfo(self.timezone) if self.timezone else None

    def variant(self, week: int) -> Variant:
        for weeks, variant in self.phases:
            if week in weeks:
                return variant
        return self.base

    def variants(self) -> tuple[Variant, ...]:
        return (self.base, *(variant for _, variant in self.phases))


DEFAULT_SUMMARY_WEEKDAY = 6  # Sunday
DEFAULT_SUMMARY_AT = TimeExpr(None, 18 * 60)
DEFAULT_SUMMARY_CHANNELS: tuple[str, ...] = ("email",)


@dataclass(frozen=True, slots=True)
class WeeklySummary:
    """When and how a plan's weekly summary is sent: local `weekday` (0 is Monday) at `at`."""

    weekday: int = DEFAULT_SUMMARY_WEEKDAY
    at: TimeExpr = DEFAULT_SUMMARY_AT
    channels: tuple[str, ...] = DEFAULT_SUMMARY_CHANNELS


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    title: str
    summary: str | None
    days: int
    variables: dict[str, TimeExpr]
    practices: tuple[Practice, ...]
    source: str = ""
    content_hash: str = ""
    practice_index: dict[str, Practice] = field(default_factory=dict, compare=False)
    weekly_summary: WeeklySummary | None = None
    timezone: str | None = None  # the plan's own zone for group sessions (its practices')
    version: int = 0  # its published version (0: read from a file, not published)
    language: str = "en"  # the language its plain texts are in

    @property
    def weeks(self) -> int:
        return -(-self.days // 7)

    def practice(self, practice_id: str) -> Practice:
        return self.practice_index[practice_id]
