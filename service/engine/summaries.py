"""Weekly messages: each participant's summary (when their plan asks for one) and the
coach's digest (when TEND_COACH_EMAIL is set).

The scheduler's maintenance makes the rows that fall due (`plan_weekly`) and claims
them (`claim`); a worker sends each one (`send`), with the same care as a reminder:
consent checked at the moment of sending, one attempt at a time, a transient error
retried after a backoff, nothing sent twice, and nothing sent late. A summary not sent
within `SEND_WITHIN` of its moment is dropped as expired: a Sunday evening note that
arrives at 3 a.m. on Monday does more harm than good.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import structlog

from service.channels.base import ChannelError, OutgoingMessage
from service.channels.email import unsubscribe_link
from service.core.adherence import PracticeAdherence
from service.core.digest import CohortEntry, Week, digest_context
from service.core.expand import resolve_plan_variables
from service.core.records import Participant
from service.core.render import Person, RenderError
from service.core.sms import clean_for_sms
from service.core.summary import last_summary_moment, summary_context, summary_period
from service.engine.enrollment import variables_for
from service.runtime import Runtime
from service.storage import repo
from service.storage import summaries as store
from service.storage.db import transaction
from service.tracking import report

log = structlog.get_logger("tend.summaries")

SEND_WITHIN = timedelta(hours=3)
CLAIM_LEASE = timedelta(minutes=2)
SEND_LEASE = timedelta(minutes=3)
MAX_ATTEMPTS = 5
MIN_DAYS = 4  # a participant's first summary waits until it covers this many plan days
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# --- making the rows -------------------------------------------------------------------


def plan_weekly(runtime: Runtime) -> int:
    """Make the rows of every summary and digest due now and not made yet."""
    now = runtime.clock.now()
    wanted = [*_participant_summaries(runtime, now), *_digests(runtime, now)]
    if not wanted:
        return 0
    with transaction(runtime.engine) as conn:
        made = store.add(conn, wanted, now=now)
    if made:
        log.info("weekly messages due", count=made)
    return made


def _participant_summaries(runtime: Runtime, now: datetime) -> list[store.Wanted]:
    plans = {pid: plan for pid, plan in runtime.plans.all().items() if plan.weekly_summary}
    if not plans:
        return []
    since = (now - timedelta(days=9)).date()
    with transaction(runtime.engine) as conn:
        made = store.existing(conn, "participant", since)
        enrolled = [
            (e, repo.get_participant(conn, e.participant_id))
            for plan_id in plans
            for e in repo.list_enrollments(conn, plan_id=plan_id, statuses=("active",))
        ]
    wanted = []
    for enrollment, participant in enrolled:
        plan = plans[enrollment.plan_id]
        spec = plan.weekly_summary
        assert spec is not None
        zone = ZoneInfo(participant.timezone)
        try:
            variables = resolve_plan_variables(
                plan, variables_for(plan, participant, enrollment.variables)
            )
        except ValueError:
            continue  # the enrollment's variables no longer fit the plan: its reminders say so
        moment = last_summary_moment(spec, zone, variables, now)
        if now - moment > SEND_WITHIN or moment < enrollment.not_before:
            continue
        start, end = summary_period(moment.astimezone(zone).date())
        if (end - enrollment.start_date).days + 1 < MIN_DAYS or start >= enrollment.end_date:
            continue
        for channel in spec.channels:
            if (enrollment.id, end, channel) not in made:
                wanted.append(store.Wanted("participant", enrollment.id, end, channel, moment))
    return wanted


def digest_moment(runtime: Runtime, now: datetime) -> datetime:
    """The most recent digest moment at or before `now`."""
    settings = runtime.settings
    zone = ZoneInfo(settings.digest_timezone)
    hours, minutes = (int(part) for part in settings.digest_at.split(":"))
    today = now.astimezone(zone).date()
    weekday = WEEKDAYS.index(settings.digest_day)
    day = today - timedelta(days=(today.weekday() - weekday) % 7)
    for candidate in (day, day - timedelta(days=7)):
        moment = datetime.combine(candidate, time(hours, minutes), zone).astimezone(UTC)
        if moment <= now:
            return moment
    raise AssertionError("unreachable: a digest falls due once a week")


def _digests(runtime: Runtime, now: datetime) -> list[store.Wanted]:
    addresses = runtime.settings.coach_addresses
    if not addresses:
        return []
    moment = digest_moment(runtime, now)
    if now - moment > SEND_WITHIN:
        return []
    zone = ZoneInfo(runtime.settings.digest_timezone)
    end = moment.astimezone(zone).date() - timedelta(days=1)  # the week before the digest
    with transaction(runtime.engine) as conn:
        made = store.existing(conn, "coach", end)
    return [
        store.Wanted("coach", address, end, "email", moment)
        for address in addresses
        if (address, end, "email") not in made
    ]


def claim(runtime: Runtime) -> list[int]:
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        return store.claim_due(conn, now=now, lease=CLAIM_LEASE)


# --- sending ---------------------------------------------------------------------------


def send(runtime: Runtime, summary_id: int) -> str:
    """Send one claimed summary or digest; returns the state it ended in ("skipped" when
    it was not claimed any more)."""
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        job = store.start_sending(conn, summary_id, now=now, lease=SEND_LEASE)
    if job is None:
        return "skipped"
    try:
        if now > job.due_at + SEND_WITHIN:
            return _finish(runtime, job, "expired", f"not sent within {SEND_WITHIN} of its time")
        composed: tuple[OutgoingMessage, Participant | None] | str
        if job.kind == "coach":
            composed = _digest_message(runtime, job)
        else:
            composed = _participant_message(runtime, job)
        if isinstance(composed, str):
            return _finish(runtime, job, "cancelled", composed)
        message, participant = composed
    except RenderError as exc:
        return _finish(runtime, job, "failed", f"could not render: {exc}")
    except Exception as exc:  # before the send: nothing went out
        log.exception("weekly message failed before sending", summary=job.id)
        return _retry_or_fail(runtime, job, f"{type(exc).__name__}: {exc}")
    try:
        receipt = runtime.channels[job.channel].send(message)
    except ChannelError as exc:
        if exc.opted_out and participant is not None:
            with transaction(runtime.engine) as conn:
                repo.opt_out_sms(
                    conn, participant.id, source=f"provider:{exc.code}", now=runtime.clock.now()
                )
        if exc.permanent or exc.uncertain:
            return _finish(runtime, job, "failed", str(exc))
        return _retry_or_fail(runtime, job, str(exc))
    except Exception as exc:  # the channel broke its contract: it may have sent
        log.exception("channel raised an unexpected error", summary=job.id)
        return _finish(runtime, job, "failed", f"{type(exc).__name__}: {exc}; not sent again")
    log.info("weekly message sent", summary=job.id, kind=job.kind, channel=job.channel)
    return _finish(runtime, job, "sent", None, receipt.provider_id)


def _participant_message(
    runtime: Runtime, job: store.SummaryJob
) -> tuple[OutgoingMessage, Participant] | str:
    """The summary to send, or why it must not go."""
    with transaction(runtime.engine) as conn:
        enrollment = repo.get_enrollment(conn, job.subject)
        participant = repo.get_participant(conn, enrollment.participant_id)
    now = runtime.clock.now()
    if enrollment.status != "active":
        return f"enrollment {enrollment.status}"
    if job.channel == "sms":
        if participant.sms_state == "opted_out":
            return repo.OPTED_OUT_NOTE
        if participant.sms_paused(now):
            return "participant paused SMS reminders"
        if not participant.phone:
            return "participant has no phone number"
    elif participant.email_unsubscribed:
        return repo.UNSUBSCRIBED_NOTE
    elif not participant.email:
        return "participant has no email address"
    plan = runtime.plans.get(enrollment.plan_id, enrollment.plan_hash)
    if plan is None:
        raise LookupError(f"plan '{enrollment.plan_id}' cannot be loaded")
    zone = ZoneInfo(participant.timezone)
    start, end = summary_period(job.period_end)
    since = datetime.combine(start, time(), zone).astimezone(UTC)
    until = datetime.combine(end + timedelta(days=1), time(), zone).astimezone(UTC)
    week = report.build(runtime, enrollment_id=enrollment.id, since=since, until=until, now=now)
    overall = report.build(runtime, enrollment_id=enrollment.id, now=now)
    figures = _figures(week, overall)
    plan_week = min(max((end - enrollment.start_date).days // 7 + 1, 1), plan.weeks)
    context = summary_context(Person(participant.name), plan, plan_week, (start, end), figures)
    renderer = runtime.catalog.renderer
    if job.channel == "sms":
        text = clean_for_sms(renderer.summary_sms(context))
        return OutgoingMessage(None, "sms", participant.phone or "", text), participant
    email = renderer.summary_email(context)
    link = unsubscribe_link(runtime.settings.public_base, runtime.secret, participant.id)
    message = OutgoingMessage(
        None,
        "email",
        participant.email or "",
        email.text,
        email.subject,
        email.html,
        unsubscribe_url=link,
    )
    return message, participant


def _figures(week: report.Report, overall: report.Report) -> dict[str, PracticeAdherence]:
    """The week's counts, with streaks and strength as they stand overall."""
    if not week.entries or not overall.entries:
        return {}
    standing = {line.practice: line.adherence for line in overall.entries[0].practices}
    found = {}
    for line in week.entries[0].practices:
        if line.adherence.scheduled == 0:
            continue
        now = standing.get(line.practice, line.adherence)
        found[line.practice] = replace(
            line.adherence,
            current_streak=now.current_streak,
            longest_streak=now.longest_streak,
            strength=now.strength,
        )
    return found


def _digest_message(runtime: Runtime, job: store.SummaryJob) -> tuple[OutgoingMessage, None]:
    zone = ZoneInfo(runtime.settings.digest_timezone)
    start, end = summary_period(job.period_end)
    since = datetime.combine(start, time(), zone).astimezone(UTC)
    until = datetime.combine(end + timedelta(days=1), time(), zone).astimezone(UTC)
    now = runtime.clock.now()
    active = ("active",)
    week = report.build(runtime, statuses=active, since=since, until=until, now=now)
    before = report.build(
        runtime, statuses=active, since=since - timedelta(days=7), until=since, now=now
    )
    overall = report.build(runtime, statuses=active, now=now)
    previous = {e.enrollment: e for e in before.entries}
    with transaction(runtime.engine) as conn:
        stopped = repo.opted_out_between(conn, since, until)
    streaks = {
        e.enrollment: max((p.adherence.current_streak for p in e.practices), default=0)
        for e in overall.entries
    }
    entries = [
        CohortEntry(
            participant=e.participant.id,
            name=e.participant.name,
            plan=e.plan,
            # A slip is what happened this week: an opt-out of weeks ago is old news.
            sms="opted_out" if e.participant.id in stopped else _not_stopped(e.sms),
            this_week=_week(e),
            last_week=_week(previous.get(e.enrollment)),
            streak=streaks.get(e.enrollment, 0),
        )
        for e in week.entries
    ]
    context = digest_context(entries, (start, end), f"{runtime.settings.public_base}/dashboard")
    email = runtime.catalog.renderer.digest_email(context)
    return OutgoingMessage(None, "email", job.subject, email.text, email.subject, email.html), None


def _not_stopped(sms: str) -> str:
    return "subscribed" if sms == "opted_out" else sms


def _week(entry: report.EnrollmentReport | None) -> Week:
    if entry is None:
        return Week(0, 0)
    done = sum(p.adherence.done for p in entry.practices)
    decided = sum(
        p.adherence.done + p.adherence.skipped + p.adherence.missed for p in entry.practices
    )
    return Week(done, decided)


def _finish(
    runtime: Runtime,
    job: store.SummaryJob,
    state: str,
    error: str | None,
    provider_id: str | None = None,
) -> str:
    with transaction(runtime.engine) as conn:
        store.finish(
            conn, job, state, now=runtime.clock.now(), error=error, provider_id=provider_id
        )
    if state in ("failed", "expired"):
        log.warning("weekly message not sent", summary=job.id, state=state, error=error)
    return state


def _retry_or_fail(runtime: Runtime, job: store.SummaryJob, error: str) -> str:
    now = runtime.clock.now()
    delay = min(timedelta(seconds=30) * (2 ** (job.attempts - 1)), timedelta(minutes=10))
    if job.attempts >= MAX_ATTEMPTS or now + delay > job.due_at + SEND_WITHIN:
        return _finish(runtime, job, "failed", f"gave up after {job.attempts} attempts: {error}")
    with transaction(runtime.engine) as conn:
        store.finish(conn, job, "claimed", now=now, error=error, retry_at=now + delay)
    log.info("weekly message will be retried", summary=job.id, error=error, delay=str(delay))
    return "retry"
