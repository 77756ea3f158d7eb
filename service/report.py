"""The adherence report: `tend report`, and later the JSON API and the dashboard.

One entry per enrollment, with its participant, and per practice the figures of
`core.adherence.summarise` at the moment the report is made. Practices that ask for no
check-in are left out (there is nothing to adhere to), and so are excused occurrences:
those whose reminder never reached the participant (paused, opted out, or a delivery
that failed or expired), which are Tend's or the pause's doing, not theirs.

`as_json` is exactly the contract's shape; `rows` adds the rating and number summaries
for the table and CSV.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from service.core.adherence import Outcome, PracticeAdherence, frequencies, result_of, summarise
from service.core.plan import Plan
from service.core.records import Participant
from service.core.states import CheckInResult, EnrollmentStatus
from service.runtime import Runtime
from service.storage import checkins
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import NotFound, transaction

CHUNK = 500  # enrollments per query


@dataclass(frozen=True, slots=True)
class PracticeLine:
    practice: str
    title: str
    check_in: str  # the check-in kind
    unit: str | None
    scale: tuple[int, int] | None
    adherence: PracticeAdherence


@dataclass(frozen=True, slots=True)
class EnrollmentReport:
    participant: Participant
    enrollment: str
    plan: str
    status: EnrollmentStatus
    sms: str  # a SmsStatus
    start: date
    practices: tuple[PracticeLine, ...]
    plan_version: int | None = None  # the version it follows now
    # Each plan week so far, and the published versions its occurrences were planned
    # from (a week that spans a publish has two); weeks from before versions: none.
    week_versions: tuple[tuple[int, tuple[int, ...]], ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "participant": self.participant.id,
            "name": self.participant.name,
            "enrollment": self.enrollment,
            "plan": self.plan,
            "status": self.status,
            "sms": self.sms,
            "practices": [_contract(line.practice, line.adherence) for line in self.practices],
        }

    def versions_text(self) -> str:
        """Which version each week ran on: "v1 weeks 1-2, v2 weeks 2-4" ("-": none)."""
        weeks: dict[int, list[int]] = defaultdict(list)
        for week, found in self.week_versions:
            for version in found:
                weeks[version].append(week)
        parts = []
        for version, ran in sorted(weeks.items()):
            span = f"week {ran[0]}" if len(ran) == 1 else f"weeks {ran[0]}-{ran[-1]}"
            parts.append(f"v{version} {span}")
        return ", ".join(parts) or "-"


@dataclass(frozen=True, slots=True)
class Report:
    generated: datetime
    entries: tuple[EnrollmentReport, ...]

    def as_json(self) -> dict[str, Any]:
        return {"participants": [entry.as_json() for entry in self.entries]}

    def rows(self) -> Iterator[dict[str, Any]]:
        """One flat row per enrollment and practice, with the value summaries."""
        for entry in self.entries:
            for line in entry.practices:
                a = line.adherence
                yield {
                    "participant": entry.participant.id,
                    "name": entry.participant.name,
                    "enrollment": entry.enrollment,
                    "plan": entry.plan,
                    "status": entry.status,
                    "sms": entry.sms,
                    **_contract(line.practice, a),
                    "rating_count": a.rating.count if a.rating else None,
                    "rating_mean": round(a.rating.mean, 2) if a.rating else None,
                    "number_count": a.number.count if a.number else None,
                    "number_mean": round(a.number.mean, 2) if a.number else None,
                    "number_unit": line.unit if a.number else None,
                }


CSV_COLUMNS = (
    "participant", "name", "enrollment", "plan", "status", "sms", "practice",
    "scheduled", "done", "skipped", "missed", "pending", "completion_rate",
    "current_streak", "longest_streak", "strength",
    "rating_count", "rating_mean", "number_count", "number_mean", "number_unit",
)  # fmt: skip


def _contract(practice: str, adherence: PracticeAdherence) -> dict[str, Any]:
    """The contract's keys only, in its order."""
    full = adherence.as_json(practice)
    return {key: full[key] for key in _CONTRACT_KEYS}


_CONTRACT_KEYS = (
    "practice", "scheduled", "done", "skipped", "missed", "pending", "completion_rate",
    "current_streak", "longest_streak", "strength",
)  # fmt: skip


def build(
    runtime: Runtime,
    *,
    participant_id: str | None = None,
    plan_id: str | None = None,
    enrollment_id: str | None = None,
    statuses: tuple[str, ...] | None = None,
    now: datetime | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    coach_id: str | None = None,
    cohort_id: str | None = None,
) -> Report:
    """The report at `now` (default: the runtime's clock), of the occurrences due in
    [since, until) when those are given (a week, for summaries and digests). Raises
    NotFound for a participant that does not exist, and for a plan that neither runs
    nor has an enrollment. With `coach_id`, only that coach's participants: another
    coach's participant (or a plan only they are in) is NotFound as a missing one. With
    `cohort_id`, only the members of that cohort (the caller checks it may see it)."""
    now = now or runtime.clock.now()
    with transaction(runtime.engine) as conn:
        enrolled = checkins.report_enrollments(
            conn,
            participant_id=participant_id,
            plan_id=plan_id,
            enrollment_id=enrollment_id,
            statuses=statuses,
            coach_id=coach_id,
            cohort_id=cohort_id,
        )
        # A plan that cannot be read still has its history; one never heard of is not.
        if (
            plan_id is not None
            and not enrolled
            and runtime.plans.get(plan_id) is None
            and not enrollment_rows.list_enrollments(conn, plan_id=plan_id, coach_id=coach_id)
        ):
            raise NotFound(f"no plan '{plan_id}' is published and no enrollments are in it")
        people = {p.id: p for p in _participants(conn, {e["participant_id"] for e in enrolled})}
        by_enrollment: dict[str, list[checkins.OutcomeRow]] = defaultdict(list)
        ids = [e["enrollment_id"] for e in enrolled]
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            for row in checkins.outcomes(conn, chunk, now=now, since=since, until=until):
                by_enrollment[row.enrollment_id].append(row)
    plans: dict[tuple[str, str], Plan | None] = {}
    entries = []
    for e in enrolled:
        key = (e["plan_id"], e["plan_hash"])
        if key not in plans:
            plans[key] = runtime.plans.get(*key)
        person = people[e["participant_id"]]
        rows = by_enrollment[e["enrollment_id"]]
        lines = _practices(plans[key], e["start_date"], rows, now)
        entries.append(
            EnrollmentReport(
                participant=person,
                enrollment=e["enrollment_id"],
                plan=e["plan_id"],
                status=EnrollmentStatus(e["status"]),
                sms=person.sms_status(now),
                start=e["start_date"],
                practices=tuple(lines),
                plan_version=e["plan_version"],
                week_versions=_week_versions(rows),
            )
        )
    return Report(now, tuple(entries))


def _week_versions(rows: Sequence[checkins.OutcomeRow]) -> tuple[tuple[int, tuple[int, ...]], ...]:
    weeks: dict[int, set[int]] = defaultdict(set)
    for row in rows:
        if row.plan_version is not None:
            weeks[row.week].add(row.plan_version)
    return tuple((week, tuple(sorted(found))) for week, found in sorted(weeks.items()))


def _participants(conn: Any, ids: set[str]) -> list[Participant]:
    if len(ids) <= 10:
        return [participant_rows.get_participant(conn, pid) for pid in sorted(ids)]
    # One query for many.
    return [p for p in participant_rows.list_participants(conn) if p.id in ids]


def _practices(
    plan: Plan | None, start: date, rows: Sequence[checkins.OutcomeRow], now: datetime
) -> list[PracticeLine]:
    by_practice: dict[str, list[checkins.OutcomeRow]] = defaultdict(list)
    for row in rows:
        by_practice[row.practice_id].append(row)
    lines = []
    if plan is not None:
        per_day = _frequencies(plan, start)
        for practice in plan.practices:
            if not practice.check_in.asks:
                continue
            lines.append(
                PracticeLine(
                    practice=practice.id,
                    title=practice.title,
                    check_in=practice.check_in.kind,
                    unit=practice.check_in.unit,
                    scale=practice.check_in.scale,
                    adherence=_summary(by_practice.pop(practice.id, []), now, per_day[practice.id]),
                )
            )
    # Practices a plan no longer has (or a plan that cannot be loaded any more): their
    # history still counts, taken as daily.
    for practice_id, left in by_practice.items():
        kind = left[-1].check_in_kind
        if kind == "none":
            continue
        lines.append(
            PracticeLine(practice_id, practice_id, kind, None, None, _summary(left, now, 1.0))
        )
    return lines


_FREQUENCIES: dict[tuple[str, str, date], dict[str, float]] = {}


def _frequencies(plan: Plan, start: date) -> dict[str, float]:
    """`frequencies`, kept per plan version and start date: cohorts share both."""
    key = (plan.id, plan.content_hash, start)
    found = _FREQUENCIES.get(key)
    if found is None:
        if len(_FREQUENCIES) > 4096:
            _FREQUENCIES.clear()
        found = _FREQUENCIES[key] = frequencies(plan, start)
    return found


def _summary(
    rows: Sequence[checkins.OutcomeRow], now: datetime, per_day: float
) -> PracticeAdherence:
    outcomes = []
    for row in rows:
        if row.result == CheckInResult.EXCUSED:
            continue
        result = result_of(row.result)
        value = row.value if result == "done" else None
        outcomes.append(
            Outcome(
                instant=row.instant,
                window_end=row.window_end,
                result=result,
                rating=value if row.check_in_kind == "rating" else None,
                number=value if row.check_in_kind == "number" else None,
            )
        )
    return summarise(outcomes, now, per_day)


# --- formats -------------------------------------------------------------------------


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows():
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def table_rows(report: Report) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Headers and rows for a terminal table."""
    headers = (
        "participant", "plan", "status", "sms", "practice", "sched", "done", "skip",
        "miss", "pend", "rate", "streak", "best", "strength", "values", "versions",
    )  # fmt: skip
    rows: list[tuple[str, ...]] = []
    for entry in report.entries:
        for line in entry.practices:
            a = line.adherence
            rows.append(
                (
                    entry.participant.name,
                    entry.plan,
                    entry.status,
                    entry.sms,
                    line.practice,
                    str(a.scheduled),
                    str(a.done),
                    str(a.skipped),
                    str(a.missed),
                    str(a.pending),
                    "-" if a.completion_rate is None else f"{a.completion_rate:.0%}",
                    str(a.current_streak),
                    str(a.longest_streak),
                    f"{a.strength:.2f}",
                    _values(line),
                    entry.versions_text(),
                )
            )
        if not entry.practices:
            rows.append((entry.participant.name, entry.plan, entry.status, entry.sms, "-",
                         *("",) * 10, entry.versions_text()))  # fmt: skip
    return headers, rows


def _values(line: PracticeLine) -> str:
    a = line.adherence
    if a.rating is not None:
        high = (line.scale or (1, 5))[1]
        return f"avg {a.rating.mean:.1f}/{high} (n={a.rating.count})"
    if a.number is not None:
        unit = f" {line.unit}" if line.unit else ""
        return f"avg {a.number.mean:.3g}{unit} (n={a.number.count})"
    return ""
