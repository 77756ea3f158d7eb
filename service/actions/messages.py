"""A test message: a coach checks that texts or email reach a participant.

Sent at once through the channel's real sender, under the same consent rule as every
reminder (`core.consent.send_refusal`); a carrier that refuses because the number opted
out is recorded as the participant's opt-out, as the delivery path records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import structlog

from service.actions import consent
from service.actions.access import visible_participant
from service.actions.coaches import Actor
from service.actions.errors import Conflict, Invalid, Unavailable, action
from service.channels.base import ChannelError, OutgoingMessage
from service.channels.email import unsubscribe_link
from service.channels.outbox import OutboxChannel
from service.core.consent import Refusal, send_refusal
from service.core.render import Person
from service.core.sms import clean_for_sms
from service.core.states import Channel
from service.runtime import Runtime
from service.storage.db import reading

log = structlog.get_logger("tend.messages")

TEST_SMS = (
    "Tend test message for {first}: your coach is checking that texts reach you. "
    "No reply needed. Reply STOP to opt out."
)
TEST_EMAIL_SUBJECT = "A test message from Tend"
TEST_EMAIL = (
    "Hello {first},\n\nThis is a test message: your coach is checking that email from "
    "Tend reaches you. There is nothing to do.\n\nTo stop these emails: {unsubscribe}\n"
)


@dataclass(frozen=True, slots=True)
class TestSent:
    participant_id: str
    channel: Channel
    to: str
    provider_id: str | None
    segments: int | None
    to_outbox: bool  # kept in the development outbox, not sent


@action
def send_test(
    runtime: Runtime,
    participant_id: str,
    channel: str,
    text: str | None = None,
    *,
    actor: Actor | None = None,
) -> TestSent:
    """Send a test message by `channel` ("sms" or "email"), `text` or a standard one.
    A coach (`actor`) sends only to their own participants (another's: NotFound)."""
    now = runtime.clock.now()
    with reading(runtime.engine) as conn:
        person = visible_participant(conn, actor, participant_id)
    try:
        chosen = Channel(channel)
    except ValueError:
        raise Invalid(f"there is no channel '{channel}'; choose sms or email") from None
    refusal = send_refusal(person, chosen, now)
    if refusal is not None:
        until = None
        if refusal is Refusal.SMS_PAUSED and person.paused_until is not None:
            local = person.paused_until.astimezone(ZoneInfo(person.timezone))
            until = f"{local:%a} {local.day} {local:%b %Y %H:%M} ({person.timezone})"
        raise Conflict(refusal.said_of(person.name, until))
    if chosen is Channel.SMS and person.phone and person.welcomed_at is None:
        raise Conflict(
            f"{person.name} has not had the confirmation SMS yet (it names the program and "
            "says how to stop, and goes first, once they are in a plan): nothing else can "
            "be texted to them before it"
        )
    first = Person(person.name).first_name
    if chosen is Channel.SMS:
        message = OutgoingMessage(
            None, "sms", person.phone or "", clean_for_sms(text or TEST_SMS.format(first=first))
        )
    else:
        link = unsubscribe_link(runtime.settings.public_base, runtime.secret, person.id)
        message = OutgoingMessage(
            None,
            "email",
            person.email or "",
            text or TEST_EMAIL.format(first=first, unsubscribe=link),
            subject=TEST_EMAIL_SUBJECT,
            unsubscribe_url=link,
        )
    sender = runtime.channels.get(chosen)
    if sender is None:
        raise Conflict(f"no {chosen} channel is configured")
    try:
        receipt = sender.send(message)
    except ChannelError as exc:
        log.warning("test message not sent", participant=person.id, channel=chosen,
                    error=str(exc))  # fmt: skip
        if exc.opted_out:  # the carrier knows of an opt-out Tend had not heard of
            consent.carrier_opt_out(runtime, person.id, exc.code)
            raise Conflict(
                f"the {chosen} provider refused: {exc}; {person.name} is now recorded as opted out"
            ) from None
        raise Unavailable(f"the {chosen} channel did not send it: {exc}") from None
    log.info("test message sent", participant=person.id, channel=chosen)
    return TestSent(
        participant_id=person.id,
        channel=chosen,
        to=message.to,
        provider_id=receipt.provider_id,
        segments=receipt.segments,
        to_outbox=isinstance(sender, OutboxChannel),
    )
