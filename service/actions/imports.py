"""Importing people from a CSV file (`tend participants import`, the API's
`POST /api/participants/import`, the dashboard's import page): one action for all three.

All or nothing. The file is read and checked first (`core.csvimport`: every problem of
every row, at its line and column), and so is each person's fit to the plan they are
to be enrolled in (their variables); one problem, and nothing is stored
(`ImportRejected`, carrying them all). Otherwise, in one transaction: the people are
added (the actor's, as `tend participants add` makes them), each with a consent record
that says which file brought them and who imported it; they are put in the cohort, and
enrolled in the plan, when asked. A person whose phone number is already in Tend is
left out and reported (`skipped`), not added twice, and is no error; a coach is not
told whose number it is. A dry run does all of it and rolls it back, so it answers
exactly what the import would, and stores nothing.

Nothing is sent from here: the scheduler sends each new person with a phone number the
confirmation SMS (CONTRACT section 5.3) before anything else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import structlog
from sqlalchemy import Connection

from service.actions import coaches, consent
from service.actions.coaches import Actor
from service.actions.cohorts import named
from service.actions.enrollments import Start, enroll_in, running_plan, variables_for
from service.actions.errors import Conflict, Invalid, action
from service.actions.participants import _owner
from service.core import csvimport
from service.core.csvimport import Row, RowError
from service.core.diagnostics import one_line
from service.core.expand import resolve_plan_variables
from service.core.plan import Plan
from service.core.records import Participant
from service.core.timeexpr import VariableError
from service.runtime import Runtime
from service.storage import participants as participant_rows
from service.storage.cohorts import Cohort
from service.storage.db import transaction

log = structlog.get_logger("tend.imports")

SOURCE = "import:"  # the consent log's source: import:FILE
MAX_FILENAME = 64 - len(SOURCE)  # the consent log's source holds 64 characters
DEFAULT_FILENAME = "import.csv"
ALREADY = "this phone number is already in Tend"
SHOWN_LINES = 20  # lines left out, named in the summary


class ImportRejected(Invalid):
    """The file cannot be imported as it is: its problems, each at its line and column.
    Nothing was stored."""

    def __init__(self, errors: Sequence[RowError], people: int = 0) -> None:
        count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        first = errors[0] if errors else None
        where = ""
        if first is not None:
            column = f", column {first.column}" if first.column is not None else ""
            where = f"; line {first.line}{column}: {first.message}"
        super().__init__(f"the file has {count}{where}; nothing was imported")
        self.errors = list(errors)
        self.people = people  # rows of people in the file, good and bad

    @property
    def fine(self) -> int:
        """The rows of people with no problem."""
        return max(self.people - len({e.line for e in self.errors if e.line > 1}), 0)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A line left out, and why (its phone number is already in Tend)."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class Imported:
    """What an import did (or, in a dry run, would do)."""

    count: int  # people added (or who would be)
    ids: list[str] = field(
        default_factory=list
    )  # their ids, in the file's order (none in a dry run)
    skipped: list[Skipped] = field(default_factory=list)
    dry_run: bool = False
    filename: str = DEFAULT_FILENAME
    cohort: Cohort | None = None
    plan: str | None = None  # the plan's id, when they were enrolled
    plan_title: str | None = None
    start: Start | None = None

    @property
    def summary(self) -> str:
        """One line: `imported 498 participants (2 already in Tend: lines 7, 30)`, with
        the cohort and the plan."""
        verb = "would import" if self.dry_run else "imported"
        text = f"{verb} {self.count} participant{'s' if self.count != 1 else ''}"
        if self.skipped:
            many = len(self.skipped)
            lines = ", ".join(str(s.line) for s in self.skipped[:SHOWN_LINES])
            more = ", ..." if many > SHOWN_LINES else ""
            text += f" ({many} already in Tend: line{'s' if many != 1 else ''} {lines}{more})"
        if self.cohort is not None:
            text += f" into cohort {self.cohort.name}"
        if self.plan is not None:
            began = self.start.isoformat() if isinstance(self.start, date) else "today"
            text += f", enrolled in {self.plan_title or self.plan} from {began}"
        return text


class _DryRun(Exception):
    """Rolls a dry run's transaction back, carrying what it did."""

    def __init__(self, result: Imported) -> None:
        super().__init__("dry run")
        self.result = result


def parse_start(text: str | None) -> Start | None:
    """A start as a person writes it: YYYY-MM-DD or `today` (None or empty: none)."""
    if text is None or not text.strip():
        return None
    cleaned = text.strip()
    if cleaned.lower() == "today":
        return "today"
    try:
        return date.fromisoformat(cleaned)
    except ValueError:
        raise Invalid(
            f"start '{one_line(cleaned[:40])}' is not a date; write YYYY-MM-DD, such as "
            "2026-03-02, or today"
        ) from None


def clean_filename(name: str | None) -> str:
    """The file's name as the consent log keeps it: without folders or control
    characters, at most MAX_FILENAME characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = one_line(" ".join(base.split()))[:MAX_FILENAME].strip()
    return cleaned or DEFAULT_FILENAME


@action
def import_csv(
    runtime: Runtime,
    data: bytes,
    *,
    filename: str,
    cohort: str | None = None,
    plan: str | None = None,
    start: Start | None = None,
    dry_run: bool = False,
    actor: Actor | None = None,
) -> Imported:
    """Import the people of a CSV file (`core.csvimport` says its format), all or
    nothing: ImportRejected, with every problem, when there is one. `cohort`: put them
    in the actor's cohort of that name (made when there is none); `plan` and `start` (a
    date, or "today" in each person's zone): enroll them. A coach's import is theirs."""
    shown = clean_filename(filename)
    cohort = cohort.strip() if cohort and cohort.strip() else None
    plan = plan.strip() if plan and plan.strip() else None
    if plan is not None and start is None:
        raise Invalid("a plan needs a start: give a date (YYYY-MM-DD) or today")
    if start is not None and plan is None:
        raise Invalid("a start is for enrolling in a plan: give the plan too")
    chosen = running_plan(runtime, plan) if plan is not None else None
    found = csvimport.read(data)
    errors = found.errors or (_plan_problems(chosen, found.rows) if chosen else [])
    if errors:
        raise ImportRejected(errors, found.people)
    now = runtime.clock.now()
    secret = runtime.secret  # read before the transaction (in development it may write)
    try:
        with transaction(runtime.engine) as conn:
            taken = participant_rows.participants_by_phone(
                conn, [row.phone for row in found.rows if row.phone]
            )
            fresh = [row for row in found.rows if row.phone not in taken]
            skipped = [
                Skipped(row.line, _already(taken[row.phone], actor))
                for row in found.rows
                if row.phone in taken
            ]
            owner = _owner(conn, actor, None)
            group = named(conn, runtime, actor, cohort, create=True) if cohort else None
            people = participant_rows.add_participants(
                conn,
                [_values(row, owner, group.id if group else None) for row in fresh],
                now,
            )
            for person in people:
                consent.added_by_coach(conn, person, actor, source=SOURCE + shown, now=now)
                if person.phone:
                    consent.keep_opted_out(conn, secret, person, now=now)
            if chosen is not None and start is not None:
                _enroll(conn, runtime, people, chosen, start, now)
            result = Imported(
                count=len(people),
                ids=[] if dry_run else [p.id for p in people],
                skipped=skipped,
                dry_run=dry_run,
                filename=shown,
                cohort=group,
                plan=chosen.id if chosen else None,
                plan_title=chosen.title if chosen else None,
                start=start if chosen else None,
            )
            if dry_run:
                raise _DryRun(result)
    except _DryRun as rolled_back:
        return rolled_back.result
    except participant_rows.PhoneTaken:  # added meanwhile, by another request
        raise Conflict(
            "a phone number in the file was added to Tend while it was being imported; "
            "nothing was imported: import it again"
        ) from None
    detail = f"{result.count} from {shown}" + (f" into {result.plan}" if result.plan else "")
    coaches.record(
        runtime,
        actor or coaches.operator(),
        "participants.import",
        "cohort" if group else None,
        group.id if group else None,
        detail,
    )
    log.info(
        "participants imported",
        count=result.count,
        skipped=len(skipped),
        cohort=group.id if group else None,
        plan=result.plan,
    )
    return result


# --- internals ---------------------------------------------------------------------------


def _plan_problems(plan: Plan, rows: Sequence[Row]) -> list[RowError]:
    """Each row whose variables the plan cannot take (enrolling would refuse it)."""
    errors = []
    for row in rows:
        person = Participant(
            id="", name=row.name, phone=row.phone, email=row.email, timezone=row.timezone,
            variables=row.variables,
        )  # fmt: skip
        try:
            resolve_plan_variables(plan, variables_for(plan, person, {}))
        except VariableError as exc:
            column = row.columns.get(exc.name, exc.name)
            errors.append(RowError(row.line, column, f"plan {plan.id}: {exc}"))
        except ValueError as exc:
            errors.append(RowError(row.line, None, f"plan {plan.id}: {exc}"))
    return errors


def _already(other: Participant, actor: Actor | None) -> str:
    """Why a line was left out; a coach is not told whose number it is."""
    if actor is not None and not actor.sees_all:
        return ALREADY
    return f"{ALREADY} ({other.id})"


def _values(row: Row, owner: str | None, cohort_id: str | None) -> dict[str, object]:
    return {
        "name": row.name,
        "timezone": row.timezone,
        "phone": row.phone,
        "email": row.email,
        "language": row.language,
        "variables": row.variables,
        "coach_id": owner,
        "cohort_id": cohort_id,
    }


def _enroll(
    conn: Connection,
    runtime: Runtime,
    people: Sequence[Participant],
    plan: Plan,
    start: Start,
    now: datetime,
) -> None:
    """Enroll each new person, as `enrollments.enroll` does one. Their variables were
    checked against the plan already; what is left to refuse is the start."""
    for person in people:
        try:
            enroll_in(conn, runtime, person, plan, start, {}, now)
        except (Invalid, Conflict) as exc:
            raise Invalid(
                f"cannot enroll in {plan.id}: {exc.message}; nothing was imported"
            ) from None
