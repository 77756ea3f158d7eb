"""Recording a check-in, wherever it came from (an SMS reply, a check-in link), and the
few figures an answer quotes back ("Logged. 4 days in a row.")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from service.actions import wording
from service.actions.errors import NotFound, action
from service.core.adherence import Outcome as AdherenceOutcome
from service.core.adherence import result_of, summarise
from service.core.plan import CheckIn, Plan, Practice
from service.core.replies import Interpretation
from service.core.states import CheckInResult, EnrollmentStatus
from service.runtime import Runtime
from service.storage import checkins
from service.storage import replies as reply_rows
from service.storage.checkins import CheckInTarget
from service.storage.db import transaction


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
    """The practice as texts to this participant name it (their language; neutral for a
    discreet participant)."""
    practice = practice_of(runtime, target)
    return wording.title_for(
        runtime, target.participant, practice, target.practice_id, target.instant
    )


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


LINK = "link"  # the reply log's channel, and the check-in's source, for a check-in link


def is_open(target: CheckInTarget, now: datetime) -> bool:
    """Whether a check-in counts now, as for a text reply: due, window open, a check-in
    asked, the enrollment active."""
    return (
        target.enrollment_status == EnrollmentStatus.ACTIVE
        and target.check_in_kind != "none"
        and target.instant <= now < target.window_end
        and target.check_in in (None, *checkins.ANSWERED)
    )


def number_text(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def said(found: Interpretation) -> str:
    """A check-in in a few words, as the reply log shows it."""
    if found.outcome == "rating":
        return f"rating {found.rating}"
    if found.outcome == "number":
        unit = f" {found.unit}" if found.unit else ""
        return f"{number_text(found.number)}{unit}"
    if found.outcome == "text":
        return found.text or ""
    return found.outcome


@dataclass(frozen=True, slots=True)
class LinkCheckIn:
    target: CheckInTarget  # as it stands after the check-in
    title: str
    updated: bool  # it changed an earlier answer
    progress: Progress | None  # None: the window closed (or the enrollment paused) first


@action
def check_in_by_link(runtime: Runtime, occurrence_id: int, found: Interpretation) -> LinkCheckIn:
    """Record what a check-in link's form said, in one transaction with its line in the
    reply log. A window that closed between the page and the button counts nothing, and
    the log says so."""
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        target = checkins.check_in_target(conn, occurrence_id)
        if target is None:
            raise NotFound(f"no occurrence {occurrence_id}")
        title = title_of(runtime, target)
        if not is_open(target, now):
            return LinkCheckIn(target, title, updated=False, progress=None)
        stored = reply_rows.store_reply(
            conn, channel=LINK, body=said(found), now=now, participant_id=target.participant.id
        )
        reply_rows.claim_reply(conn, stored.id, now=now)
        recorded = record(conn, target, found, source=LINK, now=now)
        done = progress(conn, target, now=now) if recorded else None
        reply_rows.finish_reply(
            conn,
            stored.id,
            understood=found.outcome if recorded else "no_window",
            detail=(
                f"checked in by link: {said(found)} for {title}"
                if recorded  # else the window closed between the page and the button
                else f"checked in by link after the window of {title} closed; not counted"
            ),
            answer=None,
            occurrence_id=target.occurrence_id,
        )
        updated = target.check_in is not None
        target = checkins.check_in_target(conn, target.occurrence_id) or target
    return LinkCheckIn(target, title, updated, done)
