"""The scheduler's upkeep of enrollments: keeping their occurrences materialised over a
rolling horizon, finishing those whose plan ended, and bringing them up to date when
their plan changes (each through `actions.enrollments.refresh`, as enrolling does)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import structlog

from service.actions.enrollments import plan_changes, refresh
from service.core.schedule import HORIZON_DAYS, Changes
from service.core.states import LIVE_STATUSES
from service.runtime import Runtime
from service.storage import enrollments as enrollment_rows
from service.storage import occurrences as occurrence_rows
from service.storage import participants as participant_rows
from service.storage.db import transaction

log = structlog.get_logger("tend.enrollment")


@dataclass(frozen=True, slots=True)
class SyncLine:
    plan_id: str
    enrollment_id: str
    participant_id: str
    changes: Changes
    error: str | None = None


def sync_plans(
    runtime: Runtime, *, dry_run: bool = False, plan_ids: set[str] | None = None
) -> list[SyncLine]:
    """Bring active and paused enrollments whose plan file changed up to date.

    Each enrollment is its own transaction: one that cannot follow the new plan (an
    override of a variable the plan no longer has, say) is reported and left as it
    is, and the others go on. With `dry_run`, nothing is written.
    """
    plans = runtime.plans.refresh()
    now = runtime.clock.now()
    lines: list[SyncLine] = []
    with transaction(runtime.engine) as conn:
        hashes = enrollment_rows.plan_hashes(conn)
        stale = {
            plan_id: [
                e
                for e in enrollment_rows.list_enrollments(
                    conn, plan_id=plan_id, statuses=LIVE_STATUSES
                )
                if e.plan_hash != plans[plan_id].content_hash
            ]
            for plan_id, stored in sorted(hashes.items())
            if plan_id in plans
            and (plan_ids is None or plan_id in plan_ids)
            and stored != {plans[plan_id].content_hash}
        }
    for plan_id, enrollments in stale.items():
        plan = plans[plan_id]
        for enrollment in enrollments:
            try:
                with transaction(runtime.engine) as conn:
                    participant = participant_rows.get_participant(conn, enrollment.participant_id)
                    if dry_run:
                        changes, _ = plan_changes(conn, enrollment, participant, plan, now)
                        conn.rollback()
                    else:
                        changes = refresh(conn, enrollment, participant, plan, now)
            except ValueError as exc:
                log.error(
                    "enrollment cannot follow its plan's change; left as it was",
                    plan=plan_id,
                    enrollment=enrollment.id,
                    error=str(exc),
                )
                lines.append(SyncLine(plan_id, enrollment.id, enrollment.participant_id,
                                      Changes(), error=str(exc)))  # fmt: skip
                continue
            lines.append(SyncLine(plan_id, enrollment.id, participant.id, changes))
            if not dry_run and changes:
                log.info(
                    "plan change applied",
                    plan=plan_id,
                    enrollment=enrollment.id,
                    changes=changes.summary(),
                )
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
            plan = runtime.plans.get(enrollment.plan_id)
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
