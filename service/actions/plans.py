"""Publishing plans: a checked plan's text and its templates become the next numbered
version in the database, and live enrollments move forward to it (sent occurrences
untouched), from any entry point: `tend plans push`, `PUT /api/plans/{id}`, the
dashboard's editor, `tend run` at start."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from sqlalchemy.exc import IntegrityError

from service.actions.enrollments import plan_changes, refresh
from service.actions.errors import Conflict, Invalid, NotFound, action
from service.catalog import plan_files, plan_text
from service.core.diagnostics import Diagnostic, did_you_mean
from service.core.plan import Plan
from service.core.schedule import Changes
from service.core.states import LIVE_STATUSES
from service.runtime import Runtime
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage import plan_versions
from service.storage.db import reading, transaction
from service.storage.plan_versions import PlanVersion, VersionBrief

log = structlog.get_logger("tend.plans")

MAX_PLAN_BYTES = 256 * 1024  # a plan is a page or two of YAML; this is a hundred pages
MAX_NOTE = 500


@dataclass(frozen=True, slots=True)
class SyncLine:
    """What a plan's version changed, or would change, for one enrollment."""

    plan_id: str
    enrollment_id: str
    participant_id: str
    changes: Changes
    error: str | None = None  # it cannot follow the version, and was left as it was


@dataclass(frozen=True, slots=True)
class Effect:
    """A version's effect on live enrollments, in counts."""

    enrollments: int = 0  # enrollments whose occurrences change
    added: int = 0
    moved: int = 0
    cancelled: int = 0
    refused: int = 0  # enrollments that cannot follow (left on their version)

    @classmethod
    def of(cls, lines: Iterable[SyncLine]) -> Effect:
        done = [line for line in lines if line.error is None]
        return cls(
            enrollments=sum(1 for line in done if line.changes),
            added=sum(len(line.changes.added) for line in done),
            moved=sum(len(line.changes.moved) for line in done),
            cancelled=sum(len(line.changes.cancelled) for line in done),
            refused=sum(1 for line in lines if line.error is not None),
        )

    def summary(self) -> str:
        if not (self.enrollments or self.refused):
            return "no live enrollment changes"
        words = [
            f"{self.enrollments} enrollment{'s' if self.enrollments != 1 else ''} change: "
            f"+{self.added} added, ~{self.moved} changed, -{self.cancelled} cancelled"
        ]
        if self.refused:
            words.append(f"{self.refused} cannot follow and stay on their version")
        return "; ".join(words)


@dataclass(frozen=True, slots=True)
class Published:
    """A plan published (or, on a dry run, what publishing it would do)."""

    plan: Plan
    version: int  # the new version; unchanged: the newest, which has this content
    created: bool  # False: the newest version already has this content
    lines: list[SyncLine]
    warnings: list[Diagnostic]
    dry_run: bool = False

    @property
    def effect(self) -> Effect:
        return Effect.of(self.lines)


class PlanRejected(Invalid):
    """The text is not a plan that can run: its errors, at their lines and columns."""

    def __init__(self, errors: Sequence[Diagnostic], warnings: Sequence[Diagnostic]) -> None:
        count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
        first = errors[0] if errors else None
        where = f"; line {first.line}, column {first.column}: {first.message}" if first else ""
        super().__init__(f"the plan has {count}{where}")
        self.errors = list(errors)
        self.warnings = list(warnings)


@action
def publish(
    runtime: Runtime,
    text: str | bytes,
    *,
    by: str,
    note: str | None = None,
    plan_id: str | None = None,
    dry_run: bool = False,
    shown: str = "plan",
    expect_version: int | None = None,
) -> Published:
    """Check the text; store it, with its templates as they are now, as the plan's next
    version, unless the newest version has the same content; then move the plan's live
    enrollments forward to it. `plan_id`: the id the text must declare (a PUT to a
    plan's address). With `dry_run`, nothing is written: the answer says what would be.
    Raises PlanRejected (nothing stored) when the text has errors."""
    if isinstance(text, bytes):
        if len(text) > MAX_PLAN_BYTES:
            raise PlanRejected([_whole(shown, _too_big(len(text)))], [])
        decoded = plan_text(text, shown)
        if isinstance(decoded, Diagnostic):
            raise PlanRejected([decoded], [])
        text = decoded
    elif len(text.encode()) > MAX_PLAN_BYTES:
        raise PlanRejected([_whole(shown, _too_big(len(text.encode())))], [])
    if note is not None and len(note) > MAX_NOTE:
        raise PlanRejected([_whole(shown, f"the note is longer than {MAX_NOTE} characters")], [])
    loaded, bundle = runtime.catalog.compile_version(text, shown)
    errors = list(loaded.errors)
    if plan_id is not None and loaded.declared_id is not None and loaded.declared_id != plan_id:
        line, column = loaded.id_position
        errors.append(
            Diagnostic(
                shown,
                line,
                column,
                "error",
                f"this text declares plan '{loaded.declared_id}', but it is sent to plan "
                f"'{plan_id}'; the two must be the same",
            )
        )
        errors.sort(key=lambda d: (d.line, d.column))
    if errors or loaded.plan is None or bundle is None:
        raise PlanRejected(errors, loaded.warnings)
    warnings = loaded.warnings
    plan = dataclasses.replace(loaded.plan, content_hash=bundle.content_hash)
    with reading(runtime.engine) as conn:
        newest = plan_versions.latest_version(conn, plan.id)
    _expected(plan.id, newest, expect_version)
    if newest is not None and newest.content_hash == bundle.content_hash:
        # The same plan again: nothing is stored; enrollments still behind it catch up.
        plan = dataclasses.replace(plan, version=newest.version)
        return Published(
            plan, newest.version, False, follow(runtime, plan, dry_run), warnings, dry_run
        )
    if dry_run:
        number = (newest.version if newest else 0) + 1
        plan = dataclasses.replace(plan, version=number)
        return Published(plan, number, True, follow(runtime, plan, dry_run=True), warnings, True)
    row = _store(runtime, plan, bundle.text, bundle.templates, by, note, expect_version)
    plan = dataclasses.replace(plan, version=row.version)
    runtime.plans.published(row, plan)
    log.info("plan published", plan=plan.id, version=row.version, by=by)
    return Published(plan, row.version, True, follow(runtime, plan), warnings)


def _store(
    runtime: Runtime,
    plan: Plan,
    text: str,
    templates: dict[str, str],
    by: str,
    note: str | None,
    expect_version: int | None,
) -> PlanVersion:
    """The next version; two publishers at once both get one (the loser tries again),
    unless one expected the other's version not to be there."""
    for attempt in range(5):
        try:
            with transaction(runtime.engine) as conn:
                if expect_version is not None:
                    _expected(plan.id, plan_versions.latest_version(conn, plan.id), expect_version)
                return plan_versions.add_version(
                    conn,
                    plan_id=plan.id,
                    title=plan.title,
                    yaml=text,
                    templates=templates,
                    content_hash=plan.content_hash,
                    published_by=by,
                    published_at=runtime.clock.now(),
                    note=note or None,
                )
        except IntegrityError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _expected(plan_id: str, newest: PlanVersion | None, expect_version: int | None) -> None:
    """Conflict when the plan's newest version is not the one the publisher saw."""
    current = newest.version if newest is not None else 0
    if expect_version is None or current == expect_version:
        return
    if expect_version == 0 and newest is not None:
        raise Conflict(
            f"a plan '{plan_id}' exists already (version {current}, published by "
            f"{newest.published_by}); give the new plan another id"
        )
    who = f" by {newest.published_by}" if newest is not None else ""
    raise Conflict(
        f"plan '{plan_id}' is at version {current} now{who}, not version {expect_version} "
        "as when you looked; look at what changed and try again"
    )


def follow(runtime: Runtime, plan: Plan, dry_run: bool = False) -> list[SyncLine]:
    """Move the plan's active and paused enrollments that are on another version to
    this one (or, with `dry_run`, say what that would change). Each enrollment is its
    own transaction: one that cannot follow (an override of a variable the plan no
    longer has, say) is reported and left as it is, and the others go on."""
    now = runtime.clock.now()
    with reading(runtime.engine) as conn:
        behind = [
            e
            for e in enrollment_rows.list_enrollments(conn, plan_id=plan.id, statuses=LIVE_STATUSES)
            if e.plan_hash != plan.content_hash or e.plan_version != plan.version
        ]
    lines: list[SyncLine] = []
    for enrollment in behind:
        try:
            with transaction(runtime.engine) as conn:
                participant = participant_rows.get_participant(conn, enrollment.participant_id)
                if dry_run:
                    changes, _ = plan_changes(conn, enrollment, participant, plan, now)
                    conn.rollback()
                else:
                    changes = refresh(conn, enrollment, participant, plan, now)
        except ValueError as exc:
            if not dry_run:
                log.error(
                    "enrollment cannot follow its plan's new version; left as it was",
                    plan=plan.id,
                    version=plan.version,
                    enrollment=enrollment.id,
                    error=str(exc),
                )
            lines.append(
                SyncLine(plan.id, enrollment.id, enrollment.participant_id, Changes(), str(exc))
            )
            continue
        if enrollment.plan_hash == plan.content_hash and not changes:
            continue  # the same content under a new number (a rollback): nothing to say
        lines.append(SyncLine(plan.id, enrollment.id, enrollment.participant_id, changes))
        if not dry_run and changes:
            log.info(
                "plan change applied",
                plan=plan.id,
                version=plan.version,
                enrollment=enrollment.id,
                changes=changes.summary(),
            )
    return lines


@dataclass(slots=True)
class PushResult:
    """`tend plans push`: per file, its plan's outcome or its errors."""

    published: list[Published] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def push(
    runtime: Runtime,
    paths: Iterable[Path] | None = None,
    *,
    by: str,
    note: str | None = None,
    keep_newer: bool = False,
    dry_run: bool = False,
) -> PushResult:
    """Publish plan files (default: the schedules folder). A file with errors is
    reported and the others are still published. With `keep_newer` (`tend run` at
    start), a file whose text an older version already has is left alone: the plan
    was published since (from the dashboard, say), and the file is not newer."""
    result = PushResult()
    owners: dict[str, Path] = {}
    targets = list(paths) if paths is not None else [runtime.catalog.schedules_dir]
    for path in plan_files(targets, result.diagnostics):
        shown = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            result.diagnostics.append(_whole(shown, f"cannot read the file: {exc.strerror}"))
            continue
        if keep_newer and _published_before(runtime, data):
            result.skipped.append((path, "a newer version was published since this file"))
            continue
        try:
            published = publish(runtime, data, by=by, note=note, shown=shown, dry_run=dry_run)
        except PlanRejected as rejected:
            result.diagnostics.extend([*rejected.errors, *rejected.warnings])
            continue
        first = owners.setdefault(published.plan.id, path)
        if first != path:
            result.diagnostics.append(
                _whole(shown, f"plan id '{published.plan.id}' is already used by {first}")
            )
            continue
        result.diagnostics.extend(published.warnings)
        result.published.append(published)
    return result


def publish_at_start(runtime: Runtime) -> PushResult:
    """`tend run`: publish the schedules folder, so that editing a file and starting
    again works as it always has. A file whose plan was published since from elsewhere
    (the dashboard) is left, and one with errors leaves its plan's last version running."""
    result = push(runtime, by="tend run", keep_newer=True)
    for published in result.published:
        log.info(
            "plan published at start" if published.created else "plan unchanged",
            plan=published.plan.id,
            version=published.version,
            effect=published.effect.summary(),
        )
    for path, why in result.skipped:
        log.warning("plan file not published", path=str(path), reason=why)
    for diagnostic in result.errors:
        log.error(
            "plan file has errors; its plan's last version keeps running", error=str(diagnostic)
        )
    return result


def _published_before(runtime: Runtime, data: bytes) -> bool:
    """Whether an older version of the file's plan (not the newest) has this very text."""
    text = plan_text(data, "")
    if isinstance(text, Diagnostic):
        return False
    loaded, bundle = runtime.catalog.compile_version(text, "")
    if loaded.plan is None or bundle is None:
        return False
    with reading(runtime.engine) as conn:
        newest = plan_versions.latest_version(conn, loaded.plan.id)
        same = plan_versions.find_by_hash(conn, loaded.plan.id, bundle.content_hash)
    return newest is not None and same is not None and newest.content_hash != bundle.content_hash


def versions(runtime: Runtime, plan_id: str) -> list[VersionBrief]:
    """The plan's published versions, oldest first."""
    with reading(runtime.engine) as conn:
        found = plan_versions.list_versions(conn, plan_id)
    if not found:
        raise NotFound(
            f"no plan '{plan_id}' was published{did_you_mean(plan_id, runtime.plans.all())}"
        )
    return found


@action
def version(runtime: Runtime, plan_id: str, number: int) -> PlanVersion:
    """One published version, with its text and its templates' texts."""
    with reading(runtime.engine) as conn:
        return plan_versions.get_version(conn, plan_id, number)


def _whole(shown: str, message: str) -> Diagnostic:
    return Diagnostic(shown, 1, 1, "error", message)


def _too_big(size: int) -> str:
    return f"the plan is {size:,} bytes; a plan may be at most {MAX_PLAN_BYTES:,}"
