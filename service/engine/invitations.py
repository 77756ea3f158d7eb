"""Calendar invitations: an enrollment's calendar practices as recurring events in the
participant's own calendar (iMIP, RFC 6047, sent through the email channel).

A maintenance chore. For each enrollment whose participant has an email address (and
has not unsubscribed from email) and whose plan has calendar practices, it works out
the invitation that should stand in their calendar and sends it when it differs from
the one last sent:

- active or paused: METHOD:REQUEST with the current series. A plan edit gives a new
  version: the same UIDs, one more SEQUENCE. Series the new version no longer has
  (a phase removed, say) are cancelled first, in a CANCEL of their own.
- cancelled, or finished before its last event: METHOD:CANCEL of what was sent, if
  anything was.

Invitations are rare (one at enrollment, one per plan edit), so they go out
synchronously in the maintenance pass. Each enrollment is its own step, guarded by a
conditional move of its `invitations` row (pending -> sending with a lease; recorded as
sent only if this attempt still holds it), so two schedulers never both send one
version. A transient channel error leaves it pending, retried after a backoff; a
permanent one marks it failed until what is wanted changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parseaddr
from zoneinfo import ZoneInfo

import structlog
from babel.dates import format_date

from service.actions import wording
from service.actions.enrollments import variables_for
from service.channels.base import ChannelError, OutgoingMessage
from service.channels.email import unsubscribe_link
from service.clock import clock_span
from service.core.backoff import Backoff
from service.core.expand import resolve_plan_variables
from service.core.invitation import (
    CANCEL,
    REQUEST,
    Series,
    calendar_practices,
    invitation,
    invitation_hash,
    series,
)
from service.core.language import base as base_language
from service.core.plan import Plan
from service.core.records import Enrollment, InvitationCandidate, InvitationState, Participant
from service.core.render import Names, Person, RenderError
from service.core.states import Channel, EnrollmentStatus, InvitationStatus
from service.runtime import Runtime
from service.storage import invitations as invitation_rows
from service.storage.db import transaction

log = structlog.get_logger("tend.invitations")

# How long a send may take before another scheduler may take the row over and send
# again: real time (SMTP's timeouts are), so that a clock running faster than real time
# (the load tests') does not shrink it below one send and send the invitation twice.
SEND_LEASE = timedelta(minutes=3)
INVITATION_BACKOFF = Backoff(first=timedelta(seconds=30), ceiling=timedelta(hours=1))
PAGE = 200
# Invitations go out from the scheduler's maintenance pass, between claims: a handful
# per pass keeps a burst of new enrollments from holding up reminders that are due.
MAX_ATTEMPTS_PER_PASS = 10
MAX_STEPS = 3  # sends per enrollment in one pass: a CANCEL of dropped series, a REQUEST


@dataclass(frozen=True, slots=True)
class Wanted:
    """One message to send: its method, events and what stands in the calendar after."""

    method: str
    items: list[Series]
    cancelled_keys: list[str] = field(default_factory=list)
    keys_after: list[str] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)
    content_hash: str = ""
    to: str | None = None  # another address than the participant's: where it stood before


@dataclass
class Summary:
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    errors: int = 0


def sync_invitations(runtime: Runtime) -> Summary:
    """Send the invitations (and cancellations) that are due; returns what happened."""
    plans = {
        plan_id: plan for plan_id, plan in runtime.plans.all().items() if calendar_practices(plan)
    }
    summary = Summary()
    if not plans:
        return summary
    after: str | None = None
    while True:
        with transaction(runtime.engine) as conn:
            page = invitation_rows.invitation_candidates(
                conn, plan_ids=plans, after=after, limit=PAGE
            )
        for candidate in page:
            if summary.sent + summary.failed + summary.retrying >= MAX_ATTEMPTS_PER_PASS:
                return summary  # the rest in the next pass
            try:
                _sync_one(runtime, plans[candidate.enrollment.plan_id], candidate, summary)
            except Exception:
                summary.errors += 1
                log.exception(
                    "invitation could not be handled; trying again later",
                    enrollment=candidate.enrollment.id,
                )
        if len(page) < PAGE:
            return summary
        after = page[-1].enrollment.id


def _inputs_key(runtime: Runtime, plan: Plan, candidate: InvitationCandidate) -> str:
    """Everything the invitation is made from that the rows say, without expanding."""
    e, p = candidate.enrollment, candidate.participant
    parts = (
        plan.content_hash,
        e.status,
        e.start_date.isoformat(),
        e.not_before.isoformat(),
        e.updated_at.isoformat() if e.status == EnrollmentStatus.FINISHED else "",
        repr(sorted(variables_for(plan, p, e.variables).items())),
        p.name,
        p.email or "",
        p.timezone,
        str(p.email_unsubscribed),
        p.language or "",
        str(p.discreet),
        runtime.settings.email_from,
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _sync_one(
    runtime: Runtime, plan: Plan, candidate: InvitationCandidate, summary: Summary
) -> None:
    participant = candidate.participant
    if not participant.email:
        return
    key = _inputs_key(runtime, plan, candidate)
    state = candidate.invitation
    if state is not None and state.state == InvitationStatus.IDLE and state.checked_key == key:
        return
    enrollment = candidate.enrollment
    plan = wording.plan_for(runtime, plan, participant, enrollment.variables)
    for _ in range(MAX_STEPS):
        wanted = desired(runtime, plan, enrollment, participant, state)
        now = runtime.clock.now()
        if wanted is None or (state is not None and wanted.content_hash == state.sent_hash):
            with transaction(runtime.engine) as conn:
                invitation_rows.invitation_checked(conn, enrollment.id, key, now)
            return
        if not _send(runtime, plan, enrollment, participant, state, wanted, key, summary):
            return
        with transaction(runtime.engine) as conn:
            state = invitation_rows.get_invitation(conn, enrollment.id)


def desired(
    runtime: Runtime,
    plan: Plan,
    enrollment: Enrollment,
    participant: Participant,
    state: InvitationState | None,
) -> Wanted | None:
    """The next message this enrollment's calendar needs, or None."""
    standing = list(state.sent_keys) if state is not None and state.method_sent == REQUEST else []
    zone = ZoneInfo(participant.timezone)
    variables = variables_for(plan, participant, enrollment.variables)
    items = series(plan, enrollment.start_date, zone, variables, not_before=enrollment.not_before)
    current = [item.key for item in items]
    moved_from = state.sent_to if state is not None else None
    if standing and moved_from and moved_from != participant.email:
        # The participant's address changed: the events leave the old mailbox's calendar
        # first (it may be someone else's now); the next step invites the new address.
        kept = [item for item in items if item.key in standing]
        gone = [k for k in standing if k not in current]
        wanted = Wanted(CANCEL, kept, gone, [], to=moved_from)
    elif enrollment.status == EnrollmentStatus.ACTIVE and not participant.email_unsubscribed:
        dropped = [k for k in standing if k not in current]
        if dropped:
            # Cancel what the new version no longer has, first: one METHOD a message.
            wanted = Wanted(CANCEL, [], dropped, [k for k in standing if k in current])
        elif items:
            wanted = Wanted(REQUEST, items, [], current)
        else:
            return None
    else:
        # Paused, cancelled, finished early, or unsubscribed from email: a CANCEL takes the
        # events (and their alarms) out of the calendar, so that it shows only what Tend
        # reminds about; resuming invites again.
        early = (
            participant.email_unsubscribed
            or enrollment.status in (EnrollmentStatus.PAUSED, EnrollmentStatus.CANCELLED)
            or (
                enrollment.status == EnrollmentStatus.FINISHED
                and any(item.until > enrollment.updated_at for item in items)
            )
        )
        if not (early and standing):
            return None
        kept = [item for item in items if item.key in standing]
        gone = [k for k in standing if k not in current]
        wanted = Wanted(CANCEL, kept, gone, [])
    descriptions = _descriptions(runtime, plan, participant, variables, wanted.items)
    content = invitation_hash(
        plan, enrollment.id, participant.name, wanted.to or participant.email or "",
        organizer(runtime), wanted.items, wanted.method, descriptions,
        cancelled_keys=wanted.cancelled_keys,
    )  # fmt: skip
    return Wanted(
        wanted.method, wanted.items, wanted.cancelled_keys, wanted.keys_after, descriptions,
        content, wanted.to,
    )  # fmt: skip


def organizer(runtime: Runtime) -> str:
    return parseaddr(runtime.settings.email_from)[1] or "tend@localhost"


def check_in_note(series_item: Series) -> str | None:
    """How to check in, for a practice that asks: per-occurrence links cannot ride on
    a recurring event, so the description points at the reminders that carry them."""
    practice = series_item.practice
    if not practice.check_in.asks:
        return None
    if Channel.SMS in practice.channels:
        return "To check in, reply to the reminder text you get at this time."
    if Channel.EMAIL in practice.channels:
        return "To check in, use the link in the reminder email you get at this time."
    return None


def _descriptions(
    runtime: Runtime,
    plan: Plan,
    participant: Participant,
    variables: dict[str, str],
    items: list[Series],
) -> dict[str, str]:
    """Each series' calendar text, rendered for its first occurrence without the
    check-in link (that link is per occurrence), plus how to check in."""
    renderer = runtime.plans.renderer(plan)
    resolved = resolve_plan_variables(plan, variables)
    person = Person(participant.name)
    out = {}
    for item in items:
        context = renderer.context(
            plan,
            item.first,
            person,
            resolved,
            "",
            language=wording.language_of(runtime, participant),
            discreet=participant.discreet,
        )
        context["check_in"] = Names("check_in", {**context["check_in"], "kind": "none"})
        context["item"] = None  # a rotating line belongs to one occurrence, not the series
        try:
            text = renderer.calendar(item.variant, item.practice, context)
        except RenderError as exc:
            log.warning("calendar text could not be rendered", practice=item.practice.id,
                        error=str(exc))  # fmt: skip
            text = ""
        note = check_in_note(item)
        out[item.key] = "\n\n".join(part for part in (text.strip(), note) if part)
    return out


def _send(
    runtime: Runtime,
    plan: Plan,
    enrollment: Enrollment,
    participant: Participant,
    state: InvitationState | None,
    wanted: Wanted,
    key: str,
    summary: Summary,
) -> bool:
    """Send one version, guarded by the row; True when it went out."""
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        invitation_rows.invitation_want(conn, enrollment.id, wanted.content_hash, now)
        attempt = invitation_rows.invitation_start(
            conn,
            enrollment.id,
            wanted.content_hash,
            now=now,
            lease=clock_span(runtime.clock, SEND_LEASE.total_seconds()),
        )
        current = invitation_rows.get_invitation(conn, enrollment.id)
    if attempt is None or current is None:
        return False  # another scheduler has it, it failed for good, or waits to retry
    sequence = current.next_sequence
    recipient = wanted.to or participant.email or ""
    data = invitation(
        plan, enrollment.id, participant.name, recipient, organizer(runtime),
        wanted.items, wanted.method, sequence, now, wanted.descriptions,
        cancelled_keys=wanted.cancelled_keys,
    )  # fmt: skip
    message = OutgoingMessage(
        delivery_id=None,
        channel=Channel.EMAIL,
        to=recipient,
        body=_text(plan, wanted, wording.language_of(runtime, participant)),
        subject=_subject(plan, wanted, wording.language_of(runtime, participant)),
        unsubscribe_url=unsubscribe_link(
            runtime.settings.public_base, runtime.secret, participant.id
        ),
        calendar=data,
        calendar_method=wanted.method,
    )
    try:
        runtime.channels[Channel.EMAIL].send(message)
    except ChannelError as exc:
        retry_at = None if exc.permanent else now + INVITATION_BACKOFF.after(attempt)
        with transaction(runtime.engine) as conn:
            invitation_rows.invitation_not_sent(
                conn, enrollment.id, attempt=attempt, wanted_hash=wanted.content_hash,
                error=str(exc), retry_at=retry_at, now=runtime.clock.now(),
            )  # fmt: skip
        if exc.permanent:
            summary.failed += 1
            log.warning("invitation failed", enrollment=enrollment.id, error=str(exc))
        else:
            summary.retrying += 1
            log.info("invitation will be retried", enrollment=enrollment.id, error=str(exc))
        return False
    with transaction(runtime.engine) as conn:
        invitation_rows.invitation_sent(
            conn, enrollment.id, attempt=attempt, sent_hash=wanted.content_hash,
            sequence=sequence, method=REQUEST if wanted.keys_after else CANCEL,
            keys=wanted.keys_after, checked_key=key if wanted.method == REQUEST else None,
            now=runtime.clock.now(), sent_to=recipient,
        )  # fmt: skip
    summary.sent += 1
    log.info("invitation sent", enrollment=enrollment.id, method=wanted.method,
             sequence=sequence, events=len(wanted.items) + len(wanted.cancelled_keys))  # fmt: skip
    return True


def _subject(plan: Plan, wanted: Wanted, language: str) -> str:
    spanish = base_language(language) == "es"
    if wanted.method == REQUEST:
        return f"{'Calendario' if spanish else 'Calendar'}: {plan.title}"
    return f"{'Cancelado' if spanish else 'Cancelled'}: {plan.title}"


def _text(plan: Plan, wanted: Wanted, language: str = "en") -> str:
    """The email's words around the invitation, in English or Spanish."""
    if base_language(language) == "es":
        return _spanish_text(plan, wanted)
    return _english_text(plan, wanted)


def _spanish_text(plan: Plan, wanted: Wanted) -> str:
    if wanted.method == REQUEST:
        lines = [
            f"Tus prácticas de {plan.title} van adjuntas como eventos de calendario; acepta "
            "la invitación para añadirlas a tu calendario.",
            "",
        ]
        for item in wanted.items:
            when = f"{item.wall_time:%H:%M}"
            first = format_date(item.dates[0], "d MMM", locale="es")
            last = format_date(item.dates[-1], "d MMM y", locale="es")
            span = f"del {first} al {last}" if len(item.dates) > 1 else last
            lines.append(f"- {item.practice.title}: {when}, {span}")
        lines += ["", "Una invitación más reciente sustituye a esta en tu calendario."]
        return "\n".join(lines)
    if wanted.keys_after:
        return (
            f"Algunos eventos de {plan.title} ya no están en el plan; este mensaje los "
            "cancela. Después llega una invitación actualizada para los demás."
        )
    return (
        f"Tu inscripción en {plan.title} ha terminado, así que sus eventos se cancelan. "
        "Tu calendario los quita al leer este mensaje."
    )


def _english_text(plan: Plan, wanted: Wanted) -> str:
    if wanted.method == REQUEST:
        lines = [
            f"Your practices from {plan.title} are attached as calendar events; accept the "
            "invitation to add them to your calendar.",
            "",
        ]
        for item in wanted.items:
            when = f"{item.wall_time:%H:%M}"
            span = f"{item.dates[0]:%a %d %b} to {item.dates[-1]:%a %d %b %Y}"
            if len(item.dates) == 1:
                span = f"{item.dates[0]:%a %d %b %Y}"
            lines.append(f"- {item.practice.title}: {when}, {span}")
        lines += ["", "A newer invitation replaces this one in your calendar."]
        return "\n".join(lines)
    if wanted.keys_after:
        return (
            f"Some of the calendar events from {plan.title} are no longer in the plan; "
            "this cancels them. An updated invitation for the others follows."
        )
    return (
        f"Your enrollment in {plan.title} has ended, so its calendar events are cancelled. "
        "Your calendar removes them when it reads this message."
    )
