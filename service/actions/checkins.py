"""Recording a check-in, wherever it came from (an SMS reply, a check-in link), and the
few figures an answer quotes back ("Logged. 4 days in a row.")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from service.core.adherence import Outcome as AdherenceOutcome
from service.core.adherence import result_of, summarise
from service.core.plan import CheckIn, Plan, Practice
from service.core.replies import Interpretation
from service.core.states import CheckInResult
from service.runtime import Runtime
from service.storage import checkins
from service.storage.checkins import CheckInTarget


@dataclass(frozen=True, slots=True)
class Progress:
    """A practice's run so far, for the answer to a check-in."""

    streak: int
    done_total: int


def practice_of(runtime: Runtime, target: CheckInTarget) -> Practice | None:
    """The plan's practice for a stored occurrence, as the enrollment's plan version has
    it; None when that plan cannot be loaded any more."""
    plan: Plan | None = runtime.plans.get(target.plan_id, target.plan_hash)
    if plan is None:
        return None
    return plan.practice_index.get(target.practice_id)


def title_of(runtime: Runtime, target: CheckInTarget) -> str:
    practice = practice_of(runtime, target)
    return practice.title if practice is not None else target.practice_id


def check_in_spec(runtime: Runtime, target: CheckInTarget) -> CheckIn:
    """What the occurrence asks; the stored kind when the plan cannot be loaded."""
    practice = practice_of(runtime, target)
    if practice is not None and practice.check_in.kind == target.check_in_kind:
        return practice.check_in
    return CheckIn(kind=target.check_in_kind)


def record(
    conn: Connection,
    target: CheckInTarget,
    found: Interpretation,
    *,
    source: str,
    now: datetime,
    nudge: bool = True,
) -> bool:
    """Record what a reply or a link meant for `target`; False when its window is not
    open. Done with a rating, a number or a text is done, with the value kept. `nudge`
    False says the practice has no nudge to cancel."""
    if not found.applies:
        raise ValueError(f"nothing to record: {found.reason}")
    value = found.rating if found.rating is not None else found.number
    return checkins.record_check_in(
        conn,
        target.occurrence_id,
        CheckInResult.SKIPPED if found.outcome == "skipped" else CheckInResult.DONE,
        now=now,
        source=source,
        value=float(value) if value is not None else None,
        unit=found.unit,
        text=found.text,
        nudge=nudge,
    )


def progress(conn: Connection, target: CheckInTarget, *, now: datetime) -> Progress:
    """The current streak and the number done, of the target's practice in its
    enrollment, counting the check-in just recorded."""
    rows = checkins.history(conn, target.enrollment_id, target.practice_id, now=now)
    if any(result is None and window_end <= now for _, window_end, result in rows):
        # Windows closed that the scheduler has not marked yet: mark them now, as it will.
        checkins.close_windows(conn, now=now, enrollment_id=target.enrollment_id)
        rows = checkins.history(conn, target.enrollment_id, target.practice_id, now=now)
    seen = [
        AdherenceOutcome(instant=instant, window_end=window_end, result=result_of(result))
        for instant, window_end, result in rows
        if result != CheckInResult.EXCUSED
    ]
    # The frequency only shapes the strength, which an answer does not quote.
    summary = summarise(seen, now, per_day=1.0)
    return Progress(streak=summary.current_streak, done_total=summary.done)
