"""Delivering one reminder: storage -> render -> channel -> storage.

`deliver` is what the dramatiq actor calls. It is idempotent: it starts by moving the
delivery from claimed to sending with a conditional update, and does nothing when that
finds the delivery in any other state (sent already, expired, cancelled, or taken by
another worker).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from service.actions import consent, wording
from service.actions.enrollments import variables_for
from service.actions.links import check_in_link
from service.channels.base import Channel, ChannelError, OutgoingMessage, Receipt
from service.channels.email import unsubscribe_link
from service.clock import clock_span
from service.core.backoff import Backoff
from service.core.consent import send_refusal
from service.core.expand import Occurrence, resolve_plan_variables
from service.core.language import repeat_mark
from service.core.plan import Plan
from service.core.quiet import HELD_NOTE, QUIET_NOTE
from service.core.records import DeliveryJob
from service.core.render import Person, RenderError
from service.core.sms import clean_for_sms
from service.core.states import Channel as ChannelName
from service.core.states import DeliveryKind, DeliveryState, EnrollmentStatus, OccurrenceState
from service.runtime import Runtime
from service.storage import deliveries as delivery_rows
from service.storage.checkins import CHECKED_IN_NOTE, WINDOW_CLOSED_NOTE
from service.storage.db import Run, statements

log = structlog.get_logger("tend.delivery")

SEND_LEASE = timedelta(minutes=3)  # longer than any channel's timeouts added up
MAX_ATTEMPTS = 6
# 10 s, 20 s, 40 s ... at most 4 minutes: retries that fit a 15-minute grace.
REMINDER_BACKOFF = Backoff(first=timedelta(seconds=10), ceiling=timedelta(minutes=4))
RECORD_WAITS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)  # real seconds between tries to record a send
pause = time.sleep  # tests put a stand-in here


class Outcome(enum.StrEnum):
    SKIPPED = "skipped"  # not ours to send (no longer claimed)
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    HELD = "held"  # quiet hours: pending again, due when they end
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    retry_in: timedelta | None = None
    detail: str | None = None


def deliver(runtime: Runtime, delivery_id: int) -> Result:
    return deliver_many(runtime, [delivery_id])[0]


OnRetry = Callable[[int, timedelta], None]


def deliver_many(
    runtime: Runtime, delivery_ids: Sequence[int], on_retry: OnRetry | None = None
) -> list[Result]:
    """Deliver each of `delivery_ids` in turn, on one database connection.

    Each delivery stands alone: an unexpected error in one is recorded for that one
    (retried later, or marked uncertain when its send may have gone out) and the rest
    go on. `on_retry` is told at once of each delivery to try again, and when.
    """
    results = []
    with statements(runtime.engine) as run:
        for delivery_id in delivery_ids:
            try:
                result = _deliver_one(runtime, run, delivery_id)
            except Exception:
                # The database itself failed: the delivery keeps its lease, and the
                # scheduler takes it up again when the lease runs out.
                log.exception("delivery could not be handled", delivery=delivery_id)
                result = Result(Outcome.SKIPPED, detail="error; left to its lease")
            if result.outcome is Outcome.RETRY and result.retry_in is not None and on_retry:
                on_retry(delivery_id, result.retry_in)
            results.append(result)
    return results


def _deliver_one(runtime: Runtime, run: Run[Any], delivery_id: int) -> Result:
    now = runtime.clock.now()
    grace = timedelta(minutes=runtime.settings.grace_minutes)
    job = run(
        lambda conn: delivery_rows.start_sending(conn, delivery_id, now=now, lease=SEND_LEASE)
    )
    if job is None:
        return Result(Outcome.SKIPPED)
    try:
        blocked = _blocked(job, now, grace)
        if blocked is not None:
            outcome, reason = blocked
            log.info("delivery not sent", delivery=job.id, outcome=outcome.value, reason=reason)
            return _finish(runtime, run, job, outcome, reason)
        held = _quiet_hours(runtime, run, job, now)
        if held is not None:
            return held
        if job.channel == ChannelName.SMS and job.participant.welcomed_at is None:
            return _wait_for_welcome(runtime, run, job, now, grace)
        plan = runtime.plans.get(job.plan_id, job.plan_hash)
        if plan is None or job.practice_id not in plan.practice_index:
            problem = f"plan '{job.plan_id}' cannot be loaded"
            return _retry_or_fail(runtime, run, job, problem)
        try:
            message = compose(runtime, plan, job)
        except (RenderError, ValueError) as exc:
            problem = f"could not render the message: {exc}"
            return _finish(runtime, run, job, Outcome.FAILED, problem)
        channel = runtime.channels[job.channel]
        if job.uncertain:
            # A worker stopped while sending this: send again only if it surely did not go.
            why = "the worker stopped while sending and the channel cannot tell whether it went out"
            settled = _settle_uncertain(runtime, run, job, channel, why)
            if settled is not None:
                return settled
    except Exception as exc:  # before the send: nothing went out, try again later
        log.exception("delivery failed before sending", delivery=job.id)
        return _retry_or_fail(runtime, run, job, f"{type(exc).__name__}: {exc}")
    try:
        receipt = channel.send(message)
    except ChannelError as exc:
        if exc.opted_out:
            consent.carrier_opt_out(runtime, job.participant.id, exc.code)
        if exc.permanent:
            return _finish(runtime, run, job, Outcome.FAILED, str(exc))
        if exc.uncertain:
            settled = _settle_uncertain(runtime, run, job, channel, str(exc))
            if settled is not None:
                return settled
        return _retry_or_fail(runtime, run, job, str(exc), exc.retry_after)
    except Exception as exc:  # the channel broke its contract: it may or may not have sent
        log.exception("channel raised an unexpected error", delivery=job.id)
        problem = f"{type(exc).__name__}: {exc}"
        return _retry_or_fail(runtime, run, job, problem, uncertain=True)
    log.info(
        "delivery sent",
        delivery=job.id,
        channel=job.channel,
        occurrence=job.occurrence_key,
        provider_id=receipt.provider_id,
    )
    return _record_sent(runtime, run, job, receipt)


def _record_sent(runtime: Runtime, run: Run[Any], job: DeliveryJob, receipt: Receipt) -> Result:
    """The message went out: its record is worth waiting for. A database that is away
    for a moment (restarting, failing over) gets a few more tries over about half a
    minute; only then is the delivery left to its lease, where it becomes uncertain and
    the channel is asked whether it went (an email cannot tell, and is failed)."""
    waits = iter(RECORD_WAITS)
    while True:
        try:
            return _finish(runtime, run, job, Outcome.SENT, None, receipt)
        except Exception:
            wait = next(waits, None)
            if wait is None:
                raise
            log.warning(
                "could not record a sent delivery; trying again", delivery=job.id, wait=wait
            )
            pause(wait)


def _settle_uncertain(
    runtime: Runtime, run: Run[Any], job: DeliveryJob, channel: Channel, why: str
) -> Result | None:
    """A send that may have gone out: only the channel can say. Sent when it knows it
    went, failed when it cannot tell (rather than risk a duplicate), and None when it
    surely did not, so that the caller may send or retry."""
    known = channel.already_sent(job.id)
    if known:
        found = channel.provider_id(job.id)
        log.info("delivery had gone out before", delivery=job.id, provider_id=found)
        receipt = Receipt(provider_id=found) if found is not None else None
        return _finish(runtime, run, job, Outcome.SENT, None, receipt)
    if known is None:
        return _finish(
            runtime, run, job, Outcome.FAILED, f"{why}; not sent again, to avoid a duplicate"
        )
    return None


WELCOME_WAIT = timedelta(seconds=30)
NOT_WELCOMED = "the confirmation SMS had not gone to this number yet"


def _wait_for_welcome(
    runtime: Runtime, run: Run[Any], job: DeliveryJob, now: datetime, grace: timedelta
) -> Result:
    """Nothing is texted to a number before its confirmation SMS (the scheduler's upkeep
    sends it within a minute of the enrollment): the reminder waits for it, within its
    grace. It stays claimed with a short lease and no message queued: when the lease runs
    out, the scheduler claims it again (no worker sits waiting)."""
    if now + WELCOME_WAIT > job.due_at + grace:
        log.info("delivery not sent", delivery=job.id, outcome="expired", reason=NOT_WELCOMED)
        return _finish(runtime, run, job, Outcome.EXPIRED, NOT_WELCOMED)
    run(
        lambda conn: delivery_rows.retry_later(
            conn, job.id, now=now, attempt=job.attempts, error=NOT_WELCOMED,
            lease_until=now + WELCOME_WAIT, uncertain=job.uncertain,
        )
    )  # fmt: skip
    return Result(Outcome.RETRY, detail=NOT_WELCOMED)


def _quiet_hours(runtime: Runtime, run: Run[Any], job: DeliveryJob, now: datetime) -> Result | None:
    """Nothing Tend sends on its own goes inside the participant's quiet hours: a
    delivery due in them waits for their end while its check-in window is still open
    then, and is not sent otherwise (its occurrence is then excused when the window
    closes: no reminder reached the person). None when it may go now."""
    hours = wording.quiet_of(runtime, job.participant)
    zone = ZoneInfo(job.participant.timezone)
    end = hours.end_after(now, zone) if hours is not None else None
    if hours is None or end is None:
        return None
    if end < job.window_end:
        local_end = end.astimezone(zone)
        note = f"{HELD_NOTE} ({hours.text}) until {local_end:%H:%M}"
        run(
            lambda conn: delivery_rows.hold(
                conn, job.id, now=now, attempt=job.attempts, until=end, note=note
            )
        )
        log.info("delivery held for quiet hours", delivery=job.id, until=end.isoformat())
        return Result(Outcome.HELD, detail=note)
    note = f"{QUIET_NOTE} ({hours.text}); the check-in window closed before they ended"
    log.info("delivery not sent", delivery=job.id, outcome="cancelled", reason=QUIET_NOTE)
    return _finish(runtime, run, job, Outcome.CANCELLED, note)


def _blocked(job: DeliveryJob, now: datetime, grace: timedelta) -> tuple[Outcome, str] | None:
    """Why this delivery must not go out now, if it must not."""
    if now > job.due_at + grace:
        return Outcome.EXPIRED, f"not sent within the grace period ({grace})"
    if job.enrollment_status != EnrollmentStatus.ACTIVE:
        return Outcome.CANCELLED, f"enrollment {job.enrollment_status}"
    if job.occurrence_state != OccurrenceState.SCHEDULED:
        return Outcome.CANCELLED, "occurrence cancelled"
    # A nudge is an SMS whatever the practice's channels; a plan edit cancels it directly.
    if job.kind == DeliveryKind.REMINDER and job.channel not in job.occurrence_channels:
        return Outcome.CANCELLED, "channel removed from the plan"
    if job.kind == DeliveryKind.NUDGE or job.kind.is_repeat:
        if job.check_in is not None:
            return Outcome.CANCELLED, CHECKED_IN_NOTE
        if now >= job.window_end:
            return Outcome.CANCELLED, WINDOW_CLOSED_NOTE
    refusal = send_refusal(job.participant, job.channel, now)
    if refusal is not None:
        return Outcome.CANCELLED, refusal.value
    return None


def occurrence_of(plan: Plan, job: DeliveryJob) -> Occurrence:
    practice = plan.practice(job.practice_id)
    return Occurrence(
        practice=practice,
        date=job.local_date,
        week=job.week,
        index=job.seq,
        utc=job.instant,
        zone=ZoneInfo(job.participant.timezone),
        variant=practice.variant(job.week),
        item=job.item,
        window_end=job.window_end,
    )


def check_in_url(runtime: Runtime, job: DeliveryJob) -> str:
    return check_in_link(runtime, job.occurrence_id, job.window_end)


def compose(runtime: Runtime, plan: Plan, job: DeliveryJob) -> OutgoingMessage:
    """Render the delivery's message; raises RenderError."""
    occurrence = occurrence_of(plan, job)
    variables = resolve_plan_variables(
        plan, variables_for(plan, job.participant, job.enrollment_variables)
    )
    renderer = runtime.plans.renderer(plan)
    language = wording.language_of(runtime, job.participant)
    context = renderer.context(
        plan,
        occurrence,
        Person(job.participant.name),
        variables,
        check_in_url(runtime, job),
        language=language,
        discreet=job.participant.discreet,
    )
    if job.kind == DeliveryKind.NUDGE:
        text = clean_for_sms(renderer.nudge(occurrence.practice, context))
        return OutgoingMessage(job.id, ChannelName.SMS, job.participant.phone or "", text)
    if job.channel == ChannelName.SMS:
        text = clean_for_sms(renderer.sms(occurrence.variant, occurrence.practice, context))
        if job.kind.is_repeat:  # LATER: the same reminder, marked as a repeat
            text = repeat_mark(language) + text
        return OutgoingMessage(job.id, ChannelName.SMS, job.participant.phone or "", text)
    email = renderer.email(occurrence.variant, occurrence.practice, context)
    return OutgoingMessage(
        job.id,
        ChannelName.EMAIL,
        job.participant.email or "",
        email.text,
        email.subject,
        email.html,
        unsubscribe_url=unsubscribe_link(
            runtime.settings.public_base, runtime.secret, job.participant.id
        ),
    )


def _finish(
    runtime: Runtime,
    run: Run[Any],
    job: DeliveryJob,
    outcome: Outcome,
    error: str | None,
    receipt: Receipt | None = None,
) -> Result:
    now = runtime.clock.now()
    run(
        lambda conn: delivery_rows.finish(
            conn,
            job.id,
            DeliveryState(outcome.value),
            now=now,
            attempt=job.attempts,
            error=error,
            provider_id=receipt.provider_id if receipt else None,
            segments=receipt.segments if receipt else None,
        )
    )
    if outcome is Outcome.FAILED:
        log.warning("delivery failed", delivery=job.id, channel=job.channel, error=error)
    return Result(outcome, detail=error)


def _retry_or_fail(
    runtime: Runtime,
    run: Run[Any],
    job: DeliveryJob,
    error: str,
    retry_after: float | None = None,
    *,
    uncertain: bool = False,
) -> Result:
    now = runtime.clock.now()
    delay = REMINDER_BACKOFF.after(job.attempts)
    if retry_after is not None:  # the provider's wait is real time
        delay = max(delay, clock_span(runtime.clock, retry_after))
    grace = timedelta(minutes=runtime.settings.grace_minutes)
    if job.attempts >= MAX_ATTEMPTS or now + delay > job.due_at + grace:
        problem = f"gave up after {job.attempts} attempts: {error}"
        return _finish(runtime, run, job, Outcome.FAILED, problem)
    run(
        lambda conn: delivery_rows.retry_later(
            conn,
            job.id,
            now=now,
            attempt=job.attempts,
            error=error,
            lease_until=now + delay + SEND_LEASE,
            uncertain=uncertain,
        )
    )
    log.info("delivery will be retried", delivery=job.id, error=error, delay=str(delay))
    return Result(Outcome.RETRY, retry_in=delay, detail=error)
