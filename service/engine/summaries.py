"""Weekly messages: each participant's summary (when their plan asks for one) and the
coaches' digests: each coach account's, about their own participants, to their email;
and TEND_COACH_EMAIL's (when set), about the participants with no coach (none, or a
disabled account), as it was before there were accounts.

The scheduler's maintenance makes the rows that fall due (`plan_weekly`) and claims
them (`claim`); a worker sends each one (`send`), with the same care as a reminder:
consent checked at the moment of sending, one attempt at a time, a transient error
retried after a backoff, nothing sent twice, and nothing sent late. A summary not sent
within `SEND_WITHIN` of its moment is dropped as expired: a Sunday evening note that
arrives at 3 a.m. on Monday does more harm than good.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import structlog

from service import report
from service.actions import consent, wording
from service.actions.enrollments import variables_for
from service.channels.base import ChannelError, OutgoingMessage
from service.channels.email import unsubscribe_link
from service.core import confirmation
from service.core.adherence import PracticeAdherence
from service.core.backoff import Backoff
from service.core.consent import send_refusal
from service.core.digest import CohortEntry, Week, digest_context
from service.core.expand import resolve_plan_variables
from service.core.language import local
from service.core.records import Participant
from service.core.render import LANGUAGE, Person, RenderError
from service.core.sms import clean_for_sms
from service.core.states import (
    LIVE_STATUSES,
    Channel,
    EnrollmentStatus,
    SmsState,
    SmsStatus,
    SummaryKind,
    SummaryState,
)
from service.core.summary import last_summary_moment, summary_context, summary_period
from service.runtime import Runtime
from service.storage import coaches as coach_rows
from service.storage import cohorts as cohort_rows
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage import signups as signup_rows
from service.storage import summaries as store
from service.storage.db import NotFound as MissingRow
from service.storage.db import transaction

log = structlog.get_logger("tend.summaries")

SEND_WITHIN = timedelta(hours=3)
CLAIM_LEASE = timedelta(minutes=2)
SEND_LEASE = timedelta(minutes=3)
MAX_ATTEMPTS = 5
SUMMARY_BACKOFF = Backoff(first=timedelta(seconds=30), ceiling=timedelta(minutes=10))
MIN_DAYS = 4  # a participant's first summary waits until it covers this many plan days
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ACTIVE = (EnrollmentStatus.ACTIVE,)
# A digest row's subject: "coach:<id>" for a coach account's, else the fallback address.
COACH_SUBJECT = "coach:"


# --- making the rows -------------------------------------------------------------------


def plan_weekly(runtime: Runtime) -> int:
    """Make the rows of every summary and digest due now and not made yet."""
    now = runtime.clock.now()
    wanted = [*_welcomes(runtime, now), *_participant_summaries(runtime, now),
              *_digests(runtime, now)]  # fmt: skip
    if not wanted:
        return 0
    with transaction(runtime.engine) as conn:
        made = store.add(conn, wanted, now=now)
    if made:
        log.info("weekly messages due", count=made)
    return made


def _welcomes(runtime: Runtime, now: datetime) -> list[store.Wanted]:
    """The confirmation SMS of each participant in a plan who has not had theirs: now,
    or, when it is night where they are, at WELCOME_FROM their time (a coach importing a
    cohort at their desk must not wake someone on the other side of the world), unless
    their plan texts them before then: then just before that first text."""
    with transaction(runtime.engine) as conn:
        found = store.participants_to_welcome(conn)
    wanted = []
    for pid, zone, first_text in found:
        due = welcome_moment(now, ZoneInfo(zone), first_text)
        wanted.append(store.Wanted(SummaryKind.WELCOME, pid, due.date(), Channel.SMS, due))
    return wanted


WELCOME_FROM = time(8, 0)  # a confirmation goes between 08:00
WELCOME_UNTIL = time(21, 0)  # and 21:00, the participant's time


WELCOME_AHEAD = timedelta(minutes=2)  # before a first text the plan sends at night


def welcome_moment(now: datetime, zone: ZoneInfo, first_text: datetime | None = None) -> datetime:
    """When a confirmation due now may go: now, in the day; at night the next 08:00
    there, or just before the first text the plan itself sends earlier than that (a
    bedtime reminder the person chose: the confirmation comes with it, not hours later)."""
    local = now.astimezone(zone)
    if WELCOME_FROM <= local.time() < WELCOME_UNTIL:
        return now
    day = local.date() + timedelta(days=1 if local.time() >= WELCOME_UNTIL else 0)
    morning = datetime.combine(day, WELCOME_FROM, zone).astimezone(UTC)
    if first_text is not None and first_text < morning:
        return max(now, first_text - WELCOME_AHEAD)
    return morning


def _participant_summaries(runtime: Runtime, now: datetime) -> list[store.Wanted]:
    plans = {pid: plan for pid, plan in runtime.plans.all().items() if plan.weekly_summary}
    if not plans:
        return []
    since = (now - timedelta(days=9)).date()
    with transaction(runtime.engine) as conn:
        made = store.existing(conn, SummaryKind.PARTICIPANT, since)
        enrolled = [
            (e, participant_rows.get_participant(conn, e.participant_id))
            for plan_id in plans
            for e in enrollment_rows.list_enrollments(conn, plan_id=plan_id, statuses=_ACTIVE)
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
                wanted.append(
                    store.Wanted(SummaryKind.PARTICIPANT, enrollment.id, end, channel, moment)
                )
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
    """A digest for each enabled account that owns participants; and one to each
    TEND_COACH_EMAIL address, unless every participant has a coach (with none at all, as
    before accounts, it goes out)."""
    moment = digest_moment(runtime, now)
    if now - moment > SEND_WITHIN:
        return []
    zone = ZoneInfo(runtime.settings.digest_timezone)
    end = moment.astimezone(zone).date() - timedelta(days=1)  # the week before the digest
    with transaction(runtime.engine) as conn:
        owning, orphans = participant_rows.owners(conn)
        made = store.existing(conn, SummaryKind.COACH, end)
    subjects = [f"{COACH_SUBJECT}{coach_id}" for coach_id in sorted(owning)]
    if orphans or not owning:
        subjects += runtime.settings.coach_addresses
    return [
        store.Wanted(SummaryKind.COACH, subject, end, Channel.EMAIL, moment)
        for subject in subjects
        if (subject, end, Channel.EMAIL) not in made
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
            problem = f"not sent within {SEND_WITHIN} of its time"
            return _finish(runtime, job, SummaryState.EXPIRED, problem)
        composed: tuple[OutgoingMessage, Participant | None] | str | _Held
        if job.kind == SummaryKind.COACH:
            composed = _digest_message(runtime, job)
        elif job.kind == SummaryKind.WELCOME:
            composed = _welcome_message(runtime, job)
        elif job.kind == SummaryKind.JOIN:
            composed = _join_message(runtime, job)
        else:
            composed = _participant_message(runtime, job)
        if isinstance(composed, str):
            return _finish(runtime, job, SummaryState.CANCELLED, composed)
        if isinstance(composed, _Held):
            with transaction(runtime.engine) as conn:
                store.hold(conn, job, now=now, until=composed.until)
            log.info("weekly message held for quiet hours", summary=job.id)
            return "held"
        message, participant = composed
    except RenderError as exc:
        return _finish(runtime, job, SummaryState.FAILED, f"could not render: {exc}")
    except Exception as exc:  # before the send: nothing went out
        log.exception("weekly message failed before sending", summary=job.id)
        return _retry_or_fail(runtime, job, f"{type(exc).__name__}: {exc}")
    try:
        receipt = runtime.channels[job.channel].send(message)
    except ChannelError as exc:
        if exc.opted_out and participant is not None:
            consent.carrier_opt_out(runtime, participant.id, exc.code)
        if exc.permanent or exc.uncertain:
            return _finish(runtime, job, SummaryState.FAILED, str(exc))
        return _retry_or_fail(runtime, job, str(exc))
    except Exception as exc:  # the channel broke its contract: it may have sent
        log.exception("channel raised an unexpected error", summary=job.id)
        problem = f"{type(exc).__name__}: {exc}; not sent again"
        return _finish(runtime, job, SummaryState.FAILED, problem)
    log.info("weekly message sent", summary=job.id, kind=job.kind, channel=job.channel)
    return _finish(runtime, job, SummaryState.SENT, None, receipt.provider_id)


# --- the confirmation SMS ------------------------------------------------------------------


def _welcome_message(
    runtime: Runtime, job: store.SummaryJob
) -> tuple[OutgoingMessage, Participant] | str | _Held:
    """A participant's confirmation SMS, or why it must not go. A pause does not hold it
    (it is what every later text waits for); an opt-out does."""
    with transaction(runtime.engine) as conn:
        participant = participant_rows.get_participant(conn, job.subject)
        live = enrollment_rows.list_enrollments(
            conn, participant_id=participant.id, statuses=LIVE_STATUSES
        )
        coach = coach_rows.get_coach(conn, participant.coach_id) if participant.coach_id else None
    if participant.welcomed_at is not None:
        return "sent already"
    if participant.sms_state == SmsState.OPTED_OUT or not participant.phone:
        return "opted out" if participant.phone else "no phone number"
    plans = [p for e in live if (p := runtime.plans.get(e.plan_id, e.plan_hash)) is not None]
    if not plans:
        return "in no plan"
    hours = wording.quiet_of(runtime, participant)
    now = runtime.clock.now()
    quiet_end = hours.end_after(now, ZoneInfo(participant.timezone)) if hours else None
    if quiet_end is not None:  # their reminders wait for it, and it for the quiet hours
        return _Held(quiet_end)
    language = wording.language_of(runtime, participant)
    program = " & ".join(dict.fromkeys(local(p.title, language) or p.title for p in plans))
    if participant.discreet:  # the brand, not what the program is about
        program = "Tend"
    context = confirmation.context(program, confirmation.most_per_day(plans),
                                   coach.name if coach else None)  # fmt: skip
    context[LANGUAGE] = language
    text = clean_for_sms(runtime.catalog.renderer.confirmation(confirmation.WELCOME, context))
    return OutgoingMessage(None, Channel.SMS, participant.phone, text), participant


def _join_message(runtime: Runtime, job: store.SummaryJob) -> tuple[OutgoingMessage, None] | str:
    """The text asking a person who signed up to answer YES, or why it must not go."""
    with transaction(runtime.engine) as conn:
        try:
            signup = signup_rows.get_signup(conn, job.subject)
        except MissingRow:
            return "the sign-up is gone"
        cohort = cohort_rows.get_cohort(conn, signup.cohort_id)
        coach = coach_rows.get_coach(conn, cohort.coach_id) if cohort.coach_id else None
    if signup.asked_at is not None:
        return "sent already"
    plan = runtime.plans.get(cohort.plan_id) if cohort.plan_id else None
    if plan is None:
        return "the cohort has no plan to join"
    language = signup.language or runtime.settings.default_language
    context = confirmation.context(local(plan.title, language) or plan.title,
                                   confirmation.most_per_day([plan]),
                                   coach.name if coach else None)  # fmt: skip
    context[LANGUAGE] = language
    text = clean_for_sms(runtime.catalog.renderer.confirmation(confirmation.JOIN, context))
    return OutgoingMessage(None, Channel.SMS, signup.phone, text), None


def _confirmation_sent(runtime: Runtime, job: store.SummaryJob, now: datetime) -> None:
    """Record that the confirmation went: a participant may now be texted; a sign-up
    waits for its YES."""
    with transaction(runtime.engine) as conn:
        if job.kind == SummaryKind.WELCOME:
            participant_rows.welcomed(conn, job.subject, now)
        else:
            signup_rows.mark_asked(conn, job.subject, now)


def _participant_message(
    runtime: Runtime, job: store.SummaryJob
) -> tuple[OutgoingMessage, Participant] | str | _Held:
    """The summary to send, or why it must not go."""
    with transaction(runtime.engine) as conn:
        enrollment = enrollment_rows.get_enrollment(conn, job.subject)
        participant = participant_rows.get_participant(conn, enrollment.participant_id)
    now = runtime.clock.now()
    if enrollment.status != EnrollmentStatus.ACTIVE:
        return f"enrollment {enrollment.status}"
    refusal = send_refusal(participant, job.channel, now)
    if refusal is not None:
        return refusal.value
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
    hours = wording.quiet_of(runtime, participant)
    quiet_end = hours.end_after(now, zone) if hours is not None else None
    if quiet_end is not None:
        return _Held(quiet_end)
    plan_week = min(max((end - enrollment.start_date).days // 7 + 1, 1), plan.weeks)
    context = summary_context(
        Person(participant.name),
        plan,
        plan_week,
        (start, end),
        figures,
        language=wording.language_of(runtime, participant),
        titles=wording.discreet_titles(runtime, plan, participant, enrollment.variables)
        if participant.discreet
        else None,
    )
    renderer = runtime.plans.renderer(plan)
    if job.channel == Channel.SMS:
        text = clean_for_sms(renderer.summary_sms(context))
        return OutgoingMessage(None, Channel.SMS, participant.phone or "", text), participant
    email = renderer.summary_email(context)
    link = unsubscribe_link(runtime.settings.public_base, runtime.secret, participant.id)
    message = OutgoingMessage(
        None,
        Channel.EMAIL,
        participant.email or "",
        email.text,
        email.subject,
        email.html,
        unsubscribe_url=link,
    )
    return message, participant


@dataclass(frozen=True, slots=True)
class _Held:
    """Not now: inside the participant's quiet hours, which end `until`."""

    until: datetime


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


def _digest_message(runtime: Runtime, job: store.SummaryJob) -> tuple[OutgoingMessage, None] | str:
    """A coach account's digest (about their own participants, to their email), or the
    fallback's (about those with no enabled coach, to TEND_COACH_EMAIL's address); or
    why it must not go."""
    coach_id: str | None = None
    recipient = job.subject
    with transaction(runtime.engine) as conn:
        if job.subject.startswith(COACH_SUBJECT):
            coach_id = job.subject.removeprefix(COACH_SUBJECT)
            try:
                account = coach_rows.get_coach(conn, coach_id)
            except LookupError:
                return "the coach's account is gone"
            if account.disabled:
                return "the coach's account is disabled"
            recipient = account.email
            keep = None
        else:
            keep = participant_rows.owners(conn)[1]
    zone = ZoneInfo(runtime.settings.digest_timezone)
    start, end = summary_period(job.period_end)
    since = datetime.combine(start, time(), zone).astimezone(UTC)
    until = datetime.combine(end + timedelta(days=1), time(), zone).astimezone(UTC)
    now = runtime.clock.now()
    active = _ACTIVE
    scope = partial(report.build, runtime, statuses=active, now=now, coach_id=coach_id)
    week = scope(since=since, until=until)
    before = scope(since=since - timedelta(days=7), until=since)
    overall = scope()
    week_entries = [e for e in week.entries if keep is None or e.participant.id in keep]
    previous = {e.enrollment: e for e in before.entries}
    with transaction(runtime.engine) as conn:
        stopped = participant_rows.opted_out_between(conn, since, until)
        groups = {c.id: c.name for c in cohort_rows.list_cohorts(conn)}
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
            sms=SmsStatus.OPTED_OUT if e.participant.id in stopped else _not_stopped(e.sms),
            this_week=_week(e),
            last_week=_week(previous.get(e.enrollment)),
            streak=streaks.get(e.enrollment, 0),
            cohort=groups.get(e.participant.cohort_id or ""),
        )
        for e in week_entries
    ]
    context = digest_context(entries, (start, end), f"{runtime.settings.public_base}/dashboard")
    email = runtime.catalog.renderer.digest_email(context)
    message = OutgoingMessage(None, Channel.EMAIL, recipient, email.text, email.subject, email.html)
    return message, None


def _not_stopped(sms: str) -> str:
    return SmsStatus.SUBSCRIBED if sms == SmsStatus.OPTED_OUT else sms


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
    state: SummaryState,
    error: str | None,
    provider_id: str | None = None,
) -> str:
    with transaction(runtime.engine) as conn:
        store.finish(
            conn, job, state, now=runtime.clock.now(), error=error, provider_id=provider_id
        )
    if state == SummaryState.SENT and job.kind in (SummaryKind.WELCOME, SummaryKind.JOIN):
        _confirmation_sent(runtime, job, runtime.clock.now())
    if state in (SummaryState.FAILED, SummaryState.EXPIRED):
        log.warning("weekly message not sent", summary=job.id, state=state, error=error)
    return state


def _retry_or_fail(runtime: Runtime, job: store.SummaryJob, error: str) -> str:
    now = runtime.clock.now()
    delay = SUMMARY_BACKOFF.after(job.attempts)
    if job.attempts >= MAX_ATTEMPTS or now + delay > job.due_at + SEND_WITHIN:
        problem = f"gave up after {job.attempts} attempts: {error}"
        return _finish(runtime, job, SummaryState.FAILED, problem)
    with transaction(runtime.engine) as conn:
        store.finish(conn, job, SummaryState.CLAIMED, now=now, error=error, retry_at=now + delay)
    log.info("weekly message will be retried", summary=job.id, error=error, delay=str(delay))
    return "retry"
