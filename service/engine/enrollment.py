"""The scheduler's upkeep of enrollments: keeping their occurrences materialised over a
rolling horizon, finishing those whose plan ended, and bringing them up to date when
their plan changes (each through `actions.enrollments.refresh`, as enrolling does)."""

from __future__ import annotations

from datetime import date, timedelta

import structlog

from service.actions.enrollments import refresh
from service.actions.plans import SyncLine, follow
from service.core.schedule import HORIZON_DAYS
from service.runtime import Runtime
from service.storage import enrollments as enrollment_rows
from service.storage import occurrences as occurrence_rows
from service.storage import participants as participant_rows
from service.storage.db import reading, transaction

log = structlog.get_logger("tend.enrollment")


def sync_plans(
    runtime: Runtime, *, dry_run: bool = False, plan_ids: set[str] | None = None
) -> list[SyncLine]:
    """Bring active and paused enrollments up to the newest published version of their
    plan: publishing moves them at once, and this catches up the rest (a version
    published while an enrollment was busy, or by a process that stopped midway). One
    that cannot follow is reported and left as it is. With `dry_run`, nothing is written.
    """
    plans = runtime.plans.refresh()
    with reading(runtime.engine) as conn:
        followed = enrollment_rows.plans_followed(conn)
    lines: list[SyncLine] = []
    for plan_id, pairs in sorted(followed.items()):
        plan = plans.get(plan_id)
        if plan is None or (plan_ids is not None and plan_id not in plan_ids):
            continue
        if pairs != {(plan.content_hash, plan.version or None)}:
            lines.extend(follow(runtime, plan, dry_run=dry_run))
    return lines


def finish_ended(runtime: Runtime) -> int:
    """Enrollments whose plan has ended (and whose last check-in window has closed)."""
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        return enrollment_rows.finish_ended(conn, now=now)


def extend_horizons(runtime: Runtime, page: int = 200) -> int:
    """Materialise the next days for active enrollments; returns how many were extended.

    An enrollment is extended once fewer than about 12 days are materialised, so that
    one just extended (to 14 days in its own zone) is not looked at again tomorrow's
    UTC date. Candidates are paged through in (horizon, id) order, each in its own
    transaction, so that none can hold up the others: not one whose plan is gone, not
    one whose refresh fails.
    """
    now = runtime.clock.now()
    before = now.date() + timedelta(days=HORIZON_DAYS - 2)
    loaded = set(runtime.plans.all())
    extended = 0
    after: tuple[date, str] | None = None
    while True:
        with transaction(runtime.engine) as conn:
            candidates = enrollment_rows.enrollments_to_extend(
                conn, before, plan_ids=loaded, after=after, limit=page
            )
        for enrollment in candidates:
            # Its own version: one that could not follow a newer one goes on with its own.
            plan = runtime.plans.get(enrollment.plan_id, enrollment.plan_hash)
            if plan is None:
                continue
            try:
                with transaction(runtime.engine) as conn:
                    participant = participant_rows.get_participant(conn, enrollment.participant_id)
                    refresh(conn, enrollment, participant, plan, now)
                extended += 1
            except ValueError as exc:
                log.error("enrollment cannot be extended", enrollment=enrollment.id, error=str(exc))
        if len(candidates) < page:
            return extended
        after = (candidates[-1].horizon, candidates[-1].id)


def align_check_in_kinds(runtime: Runtime) -> int:
    """Stored occurrences ask what their practice asks (once per scheduler start: rows
    from before Tend stored the kind, and any left behind, are put right)."""
    changed = 0
    with transaction(runtime.engine) as conn:
        versions = enrollment_rows.plan_hashes(conn)
    for plan_id, hashes in versions.items():
        for content_hash in hashes:
            plan = runtime.plans.get(plan_id, content_hash)
            if plan is None or plan.content_hash != content_hash:
                continue  # that version is gone: sync_plans moves its enrollments on
            kinds = {p.id: p.check_in.kind for p in plan.practices}
            with transaction(runtime.engine) as conn:
                changed += occurrence_rows.align_check_in_kinds(conn, plan_id, content_hash, kinds)
    if changed:
        log.info("check-in kinds aligned with the plans", occurrences=changed)
    return changed
