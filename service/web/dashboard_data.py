"""What the coach dashboard shows, read from the database; and what its buttons do.

Reads go through the adherence report (`tracking.report.build`) and the storage
functions (the heatmaps' occurrences with their result at a moment are
`storage.checkins.heatmap_rows`). Nothing here renders HTML: the pages are in
`service.web.dashboard` and its templates.

"This week", on the dashboard, is the 7 days up to now, and the weeks before it are
the 7 days before that, and so on: at any moment the overview compares like with like
(the coach's weekly digest, by contrast, looks at the calendar week that just ended).
Someone has slipped, as in the digest (`core.digest.slip_reason`), when in the past 7
days they opted out of texts, did nothing or under half of at least three decided
occurrences, or fell by 25 points or more from the week before.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from service import report
from service.actions import links
from service.actions.plans import Effect, SyncLine
from service.catalog import version_renderer
from service.channels.outbox import OutboxChannel
from service.core import language as languages
from service.core import quiet
from service.core.digest import CohortEntry, Week, slip_reason
from service.core.plan import Plan
from service.core.preview import Preview, build_preview
from service.core.records import Participant
from service.core.render import Renderer
from service.core.timeexpr import VariableError
from service.report import EnrollmentReport, PracticeLine
from service.runtime import Runtime
from service.storage import checkins
from service.storage import enrollments as enrollment_rows
from service.storage import outbox as outbox_rows
from service.storage import participants as participant_rows
from service.storage import replies as reply_rows
from service.storage.db import Connection, reading, transaction
from service.storage.plan_versions import PlanVersion
from service.web.charts import Cell

log = structlog.get_logger("tend.dashboard")

WEEK = timedelta(days=7)
SPARK_WEEKS = 4
SPARK_LABELS = ("3 weeks ago", "2 weeks ago", "last week", "past 7 days")
HEATMAP_WEEKS = 26  # a heatmap shows at most this many weeks back
REPLIES_SHOWN = 100
CHUNK = 500


# --- the overview --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CohortRow:
    """One enrollment on the overview (or a participant with none)."""

    participant: Participant
    entry: EnrollmentReport | None
    plan_title: str
    week: int | None  # the plan week now; None before the start, or not enrolled
    week_text: str
    rate: float | None  # done / decided, all practices together, over the whole plan
    strength: float | None  # the mean of the practices' habit strength
    weeks: tuple[Week, ...]  # SPARK_WEEKS weeks, oldest first
    slip: str | None  # why they slipped this week, or None

    @property
    def rates(self) -> list[float | None]:
        return [w.rate for w in self.weeks]

    @property
    def status(self) -> str:
        return self.entry.status if self.entry else "not enrolled"

    @property
    def sms(self) -> str:
        return self.entry.sms if self.entry else "-"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_today(participant: Participant, now: datetime) -> date:
    return now.astimezone(_zone(participant.timezone)).date()


def plan_week(plan: Plan | None, start: date, today: date) -> tuple[int | None, str]:
    """The plan week `today` falls in, and how to say it."""
    days = (today - start).days
    if days < 0:
        return None, f"starts {start.day} {start:%b}"
    week = days // 7 + 1
    if plan is None:
        return week, f"week {week}"
    if week > plan.weeks:
        return None, "ended"
    return week, f"{week} of {plan.weeks}"


def _overall(entry: EnrollmentReport) -> tuple[float | None, float | None]:
    done = sum(p.adherence.done for p in entry.practices)
    decided = sum(p.adherence.done + p.adherence.skipped + p.adherence.missed
                  for p in entry.practices)  # fmt: skip
    rate = done / decided if decided else None
    strengths = [p.adherence.strength for p in entry.practices]
    strength = sum(strengths) / len(strengths) if strengths else None
    return rate, strength


def _weekly(
    conn: Connection, enrollment_ids: Sequence[str], now: datetime
) -> dict[str, list[Week]]:
    """Done and decided occurrences per enrollment in each of the last SPARK_WEEKS
    7-day spans up to `now`, oldest first. Excused and pending ones are left out."""
    since = now - SPARK_WEEKS * WEEK
    counts: dict[str, list[list[int]]] = defaultdict(lambda: [[0, 0] for _ in range(SPARK_WEEKS)])
    for start in range(0, len(enrollment_ids), CHUNK):
        chunk = list(enrollment_ids[start : start + CHUNK])
        for row in checkins.outcomes(conn, chunk, now=now, since=since):
            if row.result not in ("done", "skipped", "missed"):
                continue
            back = min(int((now - row.instant) / WEEK), SPARK_WEEKS - 1)
            bucket = counts[row.enrollment_id][SPARK_WEEKS - 1 - back]
            bucket[1] += 1
            if row.result == "done":
                bucket[0] += 1
    return {key: [Week(done, decided) for done, decided in value] for key, value in counts.items()}


def cohort(
    runtime: Runtime,
    now: datetime,
    *,
    plan_id: str | None = None,
    coach_id: str | None = None,
    cohort_id: str | None = None,
) -> list[CohortRow]:
    """Every enrollment with its figures (of one plan, with `plan_id`; of one coach's
    participants, with `coach_id`; of one cohort's members, with `cohort_id`); without a
    plan, also the participants enrolled in nothing."""
    built = report.build(runtime, plan_id=plan_id, now=now, coach_id=coach_id,
                         cohort_id=cohort_id)  # fmt: skip
    ids = [e.enrollment for e in built.entries]
    with transaction(runtime.engine) as conn:
        weekly = _weekly(conn, ids, now)
        stopped = participant_rows.opted_out_between(conn, now - WEEK, now, coach_id=coach_id)
        everyone = (
            participant_rows.list_participants(conn, coach_id=coach_id) if plan_id is None else []
        )
    rows = []
    for entry in built.entries:
        plan = runtime.plans.get(entry.plan)
        week, week_text = plan_week(plan, entry.start, local_today(entry.participant, now))
        if entry.status in ("finished", "cancelled"):
            week, week_text = None, entry.status
        weeks = tuple(weekly.get(entry.enrollment, [Week(0, 0)] * SPARK_WEEKS))
        rate, strength = _overall(entry)
        slip = None
        if entry.status == "active":
            sms = entry.sms
            if entry.participant.id in stopped:
                sms = "opted_out"  # a slip is what happened this week: an old STOP is not
            elif sms == "opted_out":
                sms = "subscribed"
            best = max((p.adherence.current_streak for p in entry.practices), default=0)
            slip = slip_reason(
                CohortEntry(
                    entry.participant.id, entry.participant.name, entry.plan, sms,
                    weeks[-1], weeks[-2], best,
                )
            )  # fmt: skip
        rows.append(
            CohortRow(
                participant=entry.participant,
                entry=entry,
                plan_title=plan.title if plan else entry.plan,
                week=week,
                week_text=week_text,
                rate=rate,
                strength=strength,
                weeks=weeks,
                slip=slip,
            )
        )
    enrolled = {e.participant.id for e in built.entries}
    for person in everyone:
        if person.id not in enrolled and cohort_id in (None, person.cohort_id):
            empty = tuple([Week(0, 0)] * SPARK_WEEKS)
            rows.append(CohortRow(person, None, "-", None, "-", None, None, empty, None))
    return rows


SORTS: dict[str, Callable[[CohortRow], Any]] = {
    "name": lambda r: r.participant.name.casefold(),
    "plan": lambda r: r.plan_title.casefold(),
    "week": lambda r: r.week,
    "rate": lambda r: r.rate,
    "strength": lambda r: r.strength,
    "status": lambda r: r.status,
    "slipped": lambda r: r.slip is not None,
}


def sort_rows(rows: Sequence[CohortRow], key: str, descending: bool) -> list[CohortRow]:
    """By `key` (one of SORTS), rows without a value last in either direction, then by
    name."""
    by = SORTS.get(key, SORTS["name"])
    by_name = sorted(rows, key=lambda r: (r.participant.name.casefold(), r.participant.id))
    present = [r for r in by_name if by(r) is not None]
    missing = [r for r in by_name if by(r) is None]
    return sorted(present, key=by, reverse=descending) + missing


# --- one participant -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PracticeView:
    line: PracticeLine
    cells: tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class EnrollmentView:
    entry: EnrollmentReport
    plan: Plan | None
    plan_title: str
    week_text: str
    practices: tuple[PracticeView, ...]
    cut: date | None  # heatmaps start here when the enrollment is longer than they show


QUIET_SHOWN = 20  # the reminders quiet hours held or stopped that a person's page lists
# The languages a form offers ("": the deployment's, TEND_DEFAULT_LANGUAGE); a tag
# given elsewhere (an import, the API, the command line) is kept and shown as it is.
LANGUAGES = {"en": "English (en)", "es": "Spanish (es)"}
DISCREET_HINT = "texts never name the practice: for a phone others may see"


def language_choices(default: str) -> dict[str, str]:
    """A language select's options: the deployment's default first, then LANGUAGES."""
    name = languages.NAMES.get(languages.base(default))
    return {"": f"Default: {name} ({default})" if name else f"Default ({default})", **LANGUAGES}


def quiet_hint(default: str | None) -> str:
    """What a blank quiet hours field means, in this deployment."""
    ruled = f"the deployment's, {default}" if default else "the deployment's: none"
    return f"Local time, such as {quiet.QUIET_EXAMPLE}. Blank: {ruled}. off: none at all."


@dataclass(frozen=True, slots=True)
class QuietReminder:
    """A reminder (or nudge, or repeat) that quiet hours touched. `how`: "held" (waiting
    for them to end, at `due_at`), "sending" (being sent now they ended), "sent" (after
    them), "not_sent" (inside them, the check-in window closed first: `note` says so) or
    "ended" (held, then not sent for another reason: `note`, or the state)."""

    how: str
    practice: str  # the practice's title (its id when its plan is not loaded)
    plan: str
    channel: str
    kind: str
    first_due: datetime  # when it was due before quiet hours held it
    due_at: datetime
    sent_at: datetime | None
    note: str | None
    state: str


@dataclass(frozen=True, slots=True)
class OwnSettings:
    """A participant's own settings and what they follow where they set none."""

    language: str | None  # their own tag (None: the deployment's)
    default_language: str
    discreet: bool
    quiet_hours: str | None  # their own: "22:00-07:00", "off", or None (the deployment's)
    default_quiet: str | None  # the deployment's (None: none)

    @property
    def language_text(self) -> str:
        chosen = self.language or self.default_language
        name = languages.NAMES.get(languages.base(chosen))
        shown = f"{name} ({chosen})" if name else chosen
        return shown if self.language else f"{shown}, the default"

    @property
    def quiet_text(self) -> str:
        if self.quiet_hours == quiet.OFF:
            return "none (turned off)"
        if self.quiet_hours:
            return self.quiet_hours
        return f"{self.default_quiet}, the default" if self.default_quiet else "none (the default)"

    @property
    def choices(self) -> dict[str, str]:
        return language_choices(self.default_language)

    @property
    def quiet_hint(self) -> str:
        return quiet_hint(self.default_quiet)

    @property
    def quiet_typed(self) -> str:
        """Their quiet hours as the form shows them (blank: the deployment's)."""
        return self.quiet_hours or ""


@dataclass(frozen=True, slots=True)
class ParticipantView:
    participant: Participant
    sms: str
    zone: ZoneInfo
    today: date
    enrollments: tuple[EnrollmentView, ...]
    replies: tuple[dict[str, Any], ...]
    consent: tuple[dict[str, Any], ...]
    feed_url: str
    webcal_url: str
    settings: OwnSettings | None = None
    quiet: tuple[QuietReminder, ...] = ()


def _quiet_reminder(row: dict[str, Any], plans: Callable[[str], Plan | None]) -> QuietReminder:
    state = str(row["state"])
    held = row["held_from"] is not None
    if not held:
        how = "not_sent"
    elif state == "pending":
        how = "held"
    elif state in ("claimed", "sending"):
        how = "sending"
    elif state in ("sent", "delivered"):
        how = "sent"
    else:
        how = "not_sent" if str(row["last_error"] or "").startswith(quiet.QUIET_NOTE) else "ended"
    plan = plans(str(row["plan_id"]))
    titles = {p.id: p.title for p in plan.practices} if plan else {}
    return QuietReminder(
        how=how,
        practice=titles.get(row["practice_id"], str(row["practice_id"])),
        plan=plan.title if plan else str(row["plan_id"]),
        channel=str(row["channel"]),
        kind=str(row["kind"]),
        first_due=row["held_from"] or row["due_at"],
        due_at=row["due_at"],
        sent_at=row["sent_at"],
        note=row["last_error"],
        state=state,
    )


def _note(row: Any) -> str | None:
    if row.result != "done":
        return None
    if row.check_in_value is not None:
        value = row.check_in_value
        shown = str(int(value)) if float(value).is_integer() else f"{value:g}"
        if row.check_in_kind == "rating":
            return f"rating {shown}"
        return f"{shown} {row.check_in_unit}" if row.check_in_unit else shown
    if row.check_in_text:
        text = " ".join(str(row.check_in_text).split())
        return f"\u201c{text[:60]}\u2026\u201d" if len(text) > 60 else f"\u201c{text}\u201d"
    return None


def _cells(
    conn: Connection, enrollment_ids: Sequence[str], now: datetime, first: date
) -> dict[tuple[str, str], list[Cell]]:
    """Heatmap cells by (enrollment, practice): every scheduled occurrence from `first`
    (a local date) on, with its state at `now`."""
    if not enrollment_ids:
        return {}
    found: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    for row in checkins.heatmap_rows(conn, enrollment_ids, now=now, first=first):
        if row.instant > now:
            state = "upcoming"
        elif row.result is None:
            state = "pending"
        else:
            state = str(row.result)
        found[(row.enrollment_id, row.practice_id)].append(Cell(row.local_date, state, _note(row)))
    return found


def participant_view(
    runtime: Runtime, participant_id: str, now: datetime, *, coach_id: str | None = None
) -> ParticipantView:
    """Raises NotFound for a participant that does not exist, or (with `coach_id`) is
    not that coach's: the same NotFound."""
    built = report.build(runtime, participant_id=participant_id, now=now, coach_id=coach_id)
    with transaction(runtime.engine) as conn:
        person = participant_rows.get_participant(conn, participant_id, coach_id=coach_id)
        today = local_today(person, now)
        first = today - timedelta(days=today.weekday()) - (HEATMAP_WEEKS - 1) * WEEK
        cells = _cells(conn, [e.enrollment for e in built.entries], now, first)
        replies = reply_rows.list_replies(
            conn, participant_id=participant_id, limit=REPLIES_SHOWN, coach_id=coach_id
        )
        consent = participant_rows.consent_history(conn, participant_id, coach_id=coach_id)
        quiet_rows = participant_rows.quiet_hours_deliveries(
            conn, participant_id, limit=QUIET_SHOWN
        )
    views = []
    for entry in built.entries:
        plan = runtime.plans.get(entry.plan)
        _, week_text = plan_week(plan, entry.start, today)
        if entry.status in ("finished", "cancelled"):
            week_text = entry.status
        practices = tuple(
            PracticeView(line, tuple(cells.get((entry.enrollment, line.practice), ())))
            for line in entry.practices
        )
        views.append(
            EnrollmentView(
                entry, plan, plan.title if plan else entry.plan, week_text, practices,
                first if entry.start < first else None,
            )
        )  # fmt: skip
    feed = links.feed_link(runtime, person.id, person.feed_version)
    quiet_plans = {pid: runtime.plans.get(pid) for pid in {str(r["plan_id"]) for r in quiet_rows}}
    return ParticipantView(
        participant=person,
        sms=person.sms_status(now),
        zone=_zone(person.timezone),
        today=today,
        enrollments=tuple(views),
        replies=tuple(replies),
        consent=tuple(reversed(consent)),  # newest first, like the replies
        feed_url=feed,
        webcal_url=links.webcal_link(feed),
        settings=OwnSettings(
            language=person.language,
            default_language=runtime.settings.default_language,
            discreet=person.discreet,
            quiet_hours=person.quiet_hours,
            default_quiet=runtime.settings.quiet_hours,
        ),
        quiet=tuple(_quiet_reminder(row, quiet_plans.get) for row in quiet_rows),
    )


# --- plans -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanSummary:
    id: str
    title: str
    weeks: int | None
    practices: int | None
    counts: dict[str, int] = field(default_factory=dict)  # enrollments by status
    loaded: bool = True
    version: int | None = None  # the newest published version


def plans_overview(runtime: Runtime, *, coach_id: str | None = None) -> list[PlanSummary]:
    """Every published plan (its newest version), and any plan enrollments name that has
    no published version, with their enrollments (of `coach_id`'s participants, when
    given) counted by status."""
    plans = runtime.plans.refresh()
    with transaction(runtime.engine) as conn:
        counts = enrollment_rows.status_counts_by_plan(conn, coach_id=coach_id)
    found = [
        PlanSummary(p.id, p.title, p.weeks, len(p.practices), counts.get(p.id, {}), True, p.version)
        for p in plans.values()
    ]
    found += [
        PlanSummary(plan_id, plan_id, None, None, by_status, loaded=False)
        for plan_id, by_status in counts.items()
        if plan_id not in plans
    ]
    return sorted(found, key=lambda s: s.title.casefold())


@dataclass(frozen=True, slots=True)
class ClockChange:
    """A day whose UTC offset differs from the day before's (a daylight saving change)."""

    day: date
    before: str  # "UTC+01:00"
    after: str

    @property
    def text(self) -> str:
        return f"times are {self.after} from here (were {self.before})"


@dataclass(frozen=True, slots=True)
class PreviewRow:
    item: Any  # a PreviewItem
    change: ClockChange | None = None  # the first reminder on or after a clock change


@dataclass(frozen=True, slots=True)
class PlanPreview:
    preview: Preview | None
    error: str | None
    weeks: tuple[tuple[int, tuple[PreviewRow, ...]], ...]  # (week, rows) in order
    changes: tuple[ClockChange, ...] = ()


def _offset(zone: ZoneInfo, day: date) -> str:
    offset = datetime.combine(day, time(12), zone).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def clock_changes(start: date, days: int, zone: ZoneInfo) -> tuple[ClockChange, ...]:
    """The days from `start` on whose UTC offset (at noon) differs from the day before's."""
    found: list[ClockChange] = []
    before = _offset(zone, start - timedelta(days=1))
    for n in range(max(days, 0) + 1):
        current = start + timedelta(days=n)
        now = _offset(zone, current)
        if now != before:
            found.append(ClockChange(current, before, now))
        before = now
    return tuple(found)


def plan_preview(
    runtime: Runtime,
    plan: Plan,
    start: date,
    zone: ZoneInfo,
    renderer: Renderer | None = None,
) -> PlanPreview:
    """The plan expanded for the sample participant, as `tend plans preview` does, with
    the days the clocks change in `zone` marked. `renderer`: for a text not published
    yet (the editor's), the templates it would be published with."""
    check_in_url = f"{runtime.settings.public_base}/check-in/preview"
    try:
        renders = renderer if renderer is not None else runtime.plans.renderer(plan)
        preview = build_preview(plan, start, zone, {}, renders, check_in_url)
    except (VariableError, ValueError) as exc:
        return PlanPreview(None, str(exc), ())
    except Exception as exc:  # a template that fails to render: say so on the page
        log.warning("plan preview failed", plan=plan.id, error=str(exc))
        return PlanPreview(None, f"the preview could not be made: {exc}", ())
    changes = clock_changes(start, plan.days, zone)
    waiting = list(changes)
    by_week: dict[int, list[PreviewRow]] = defaultdict(list)
    for item in preview.items:
        change = None
        local_day = item.occurrence.utc.astimezone(zone).date()
        while waiting and waiting[0].day <= local_day:
            change = waiting.pop(0)  # two changes before one reminder: the later one
        by_week[item.occurrence.week].append(PreviewRow(item, change))
    weeks = tuple((week, tuple(rows)) for week, rows in sorted(by_week.items()))
    return PlanPreview(preview, None, weeks, changes)


def draft_preview(runtime: Runtime, text: str, start: date, zone: ZoneInfo) -> PlanPreview:
    """The preview of a plan's text as the editor has it (checked already: a text with
    errors has no preview), with the templates it would be published with."""
    loaded, bundle = runtime.catalog.compile_version(text, "plan")
    if loaded.plan is None or bundle is None:
        return PlanPreview(None, "the plan has errors: check it first", ())
    return plan_preview(runtime, loaded.plan, start, zone, version_renderer(bundle.templates))


# --- the plan workspace: versions, diffs, a publish's effect -----------------------------


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: str  # "add", "del", "hunk", "same", "file"
    text: str


@dataclass(frozen=True, slots=True)
class DiffFile:
    name: str
    lines: tuple[DiffLine, ...]  # empty: the same in both


def _diff_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return "same"


def diff_texts(before: str, after: str, name_a: str, name_b: str) -> tuple[DiffLine, ...]:
    """A unified diff (difflib), line by line with what each line is."""
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), name_a, name_b, n=3, lineterm=""
    )
    return tuple(DiffLine(_diff_kind(line), line) for line in lines)


def diff_versions(a: PlanVersion, b: PlanVersion) -> list[DiffFile]:
    """The plan's text and each template's, from version `a` to version `b`."""
    files = [
        DiffFile(
            "plan",
            diff_texts(a.yaml, b.yaml, f"version {a.version}", f"version {b.version}"),
        )
    ]
    for name in sorted(set(a.templates) | set(b.templates)):
        files.append(
            DiffFile(
                f"template {name}",
                diff_texts(
                    a.templates.get(name, ""),
                    b.templates.get(name, ""),
                    f"version {a.version}" if name in a.templates else "(not used)",
                    f"version {b.version}" if name in b.templates else "(not used)",
                ),
            )
        )
    return files


@dataclass(frozen=True, slots=True)
class EffectRow:
    """One enrollment a publish changes (or would), for the coach to read."""

    enrollment_id: str
    participant_id: str
    name: str
    added: int
    moved: int
    cancelled: int
    error: str | None


def effect_rows(
    runtime: Runtime, lines: Sequence[SyncLine], *, coach_id: str | None = None
) -> list[EffectRow]:
    """What a publish does to each enrollment (only those of `coach_id`'s participants,
    when given)."""
    with reading(runtime.engine) as conn:
        people = participant_rows.list_participants(conn, coach_id=coach_id)
    names = {p.id: p.name for p in people}
    lines = [line for line in lines if line.participant_id in names]
    rows = [
        EffectRow(
            line.enrollment_id,
            line.participant_id,
            names[line.participant_id],
            len(line.changes.added),
            len(line.changes.moved),
            len(line.changes.cancelled),
            line.error,
        )
        for line in lines
        if line.changes or line.error
    ]
    return sorted(rows, key=lambda r: (r.error is None, r.name.casefold()))


def scoped_effect(
    runtime: Runtime, lines: Sequence[SyncLine], *, coach_id: str | None = None
) -> Effect:
    """A publish's effect in counts, on `coach_id`'s participants only (when given)."""
    if coach_id is None:
        return Effect.of(lines)
    with reading(runtime.engine) as conn:
        theirs = {p.id for p in participant_rows.list_participants(conn, coach_id=coach_id)}
    return Effect.of([line for line in lines if line.participant_id in theirs])


_PLAN_LINE = re.compile(r"^(plan[ \t]*:[ \t]*)([^#\n]*?)([ \t]*(?:#.*)?)$", re.MULTILINE)


def plan_id_line(text: str) -> int:
    """The line of the top-level `plan:` key (1 when there is none)."""
    found = _PLAN_LINE.search(text)
    return text.count("\n", 0, found.start()) + 1 if found else 1


def with_plan_id(text: str, new_id: str) -> str:
    """The text with its top-level `plan:` id replaced (comments kept); or, with none,
    a `plan:` line first."""
    found = _PLAN_LINE.search(text)
    if found is None:
        return f"plan: {new_id}\n{text}"
    return text[: found.start(2)] + new_id + text[found.end(2) :]


# --- the outbox ------------------------------------------------------------------------


def outbox_in_use(runtime: Runtime) -> bool:
    """Whether some channel writes to the development outbox."""
    return any(isinstance(c, OutboxChannel) for c in runtime.channels.values())


def outbox_messages(
    runtime: Runtime, limit: int = 100, *, coach_id: str | None = None
) -> list[dict[str, Any]]:
    """The newest messages (only those to `coach_id`'s participants, when given)."""
    with transaction(runtime.engine) as conn:
        return outbox_rows.outbox_list(conn, limit=limit, coach_id=coach_id)


def outbox_count(runtime: Runtime, *, coach_id: str | None = None) -> int:
    with transaction(runtime.engine) as conn:
        return outbox_rows.outbox_count(conn, coach_id=coach_id)


def enrollment_owner(runtime: Runtime, enrollment_id: str, *, coach_id: str | None = None) -> str:
    """The id of the participant an enrollment belongs to (NotFound, with `coach_id`,
    when that is not one of the coach's participants)."""
    with reading(runtime.engine) as conn:
        return enrollment_rows.get_enrollment(conn, enrollment_id, coach_id=coach_id).participant_id
