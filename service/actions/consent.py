"""Recording what a participant said about being contacted, from any source: a text
(STOP, START, PAUSE, RESUME), a carrier that refused a send because the number opted
out (Twilio's 21610), an email's unsubscribe link or header.

The SMS steps run inside the caller's transaction (an inbound text is handled in one,
with the sender's row locked); each is idempotent: saying it again changes nothing and
logs nothing. `carrier_opt_out` and `unsubscribe_email` are whole actions, for callers
that hold no transaction.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection

from service.actions.errors import NotFound, action
from service.core.records import Participant
from service.core.states import Channel, ConsentAction, SmsState
from service.runtime import Runtime
from service.storage import participants as participant_rows
from service.storage import suppressed
from service.storage.db import transaction

log = structlog.get_logger("tend.consent")


def opt_out_sms(conn: Connection, participant: Participant, *, source: str, now: datetime) -> bool:
    """Opt the participant out of texts; every unsent text is cancelled. False when they
    had opted out already."""
    if participant.sms_state == SmsState.OPTED_OUT:
        return False
    cancelled = participant_rows.opt_out_sms(conn, participant.id, source=source, now=now)
    log.info("sms opt-out recorded", participant=participant.id, source=source,
             cancelled=cancelled)  # fmt: skip
    return True


def added_by_coach(
    conn: Connection, participant: Participant, actor: Any, *, source: str, now: datetime
) -> None:
    """Record that the participant is to be texted on the word of a coach, an admin or the
    operator (`actor`, None: the command line) who says they agreed: `source` is how
    they were added (cli, api, dashboard, import:FILE), the detail who added them."""
    who = "operator" if actor is None else str(actor.id)
    participant_rows.log_consent(
        conn, participant.id, channel=Channel.SMS, action=ConsentAction.CONSENT,
        source=source[:64], now=now, detail=f"added by {who}",
    )  # fmt: skip


def number_digest(secret: bytes, phone: str) -> str:
    """The keyed digest an opted-out number is kept as once its person is erased (HMAC-SHA256
    under the installation's secret: without the key, it cannot be checked against a
    list of numbers)."""
    return hmac.new(secret, f"suppressed-number:{phone}".encode(), hashlib.sha256).hexdigest()


def suppress_number(conn: Connection, secret: bytes, phone: str, now: datetime) -> None:
    """Remember that `phone` opted out, as its digest only (before erasing its person)."""
    suppressed.add_digest(conn, number_digest(secret, phone), now)


def number_suppressed(conn: Connection, secret: bytes, phone: str) -> bool:
    """Whether `phone` opted out before its person was erased."""
    return suppressed.is_suppressed(conn, number_digest(secret, phone))


def keep_opted_out(
    conn: Connection, secret: bytes, participant: Participant, *, now: datetime
) -> bool:
    """A participant given a number that opted out before its person was erased starts
    opted out (the consent log says why). True when so."""
    phone = participant.phone
    if not phone or participant.sms_state == SmsState.OPTED_OUT:
        return False
    if not suppressed.is_suppressed(conn, number_digest(secret, phone)):
        return False
    participant_rows.opt_out_sms(conn, participant.id, source="suppressed", now=now)
    log.info("number opted out before: kept opted out", participant=participant.id)
    return True


def opt_in_sms(conn: Connection, participant: Participant, *, source: str, now: datetime) -> bool:
    """Opt back in; texts still ahead that the opt-out stopped come back. False when they
    were not opted out."""
    if participant.sms_state != SmsState.OPTED_OUT:
        return False
    participant_rows.opt_in_sms(conn, participant.id, source=source, now=now)
    log.info("sms opt-in recorded", participant=participant.id, source=source)
    return True


def pause_sms(
    conn: Connection, participant: Participant, until: datetime, *, source: str, now: datetime
) -> None:
    """No texts until `until` (a new pause replaces the old one)."""
    participant_rows.set_sms_pause(conn, participant.id, until, source=source, now=now)


def resume_sms(conn: Connection, participant: Participant, *, source: str, now: datetime) -> bool:
    """End a pause; False when there was none."""
    if not participant.sms_paused(now):
        return False
    participant_rows.set_sms_pause(conn, participant.id, None, source=source, now=now)
    return True


@action
def unsubscribe_email(
    runtime: Runtime, participant_id: str, *, source: str, detail: str | None = None
) -> int:
    """No more email (an unsubscribe link or a mail client's one-click request): unsent
    reminder emails are cancelled, and the count returned. Logged once: asking again
    changes nothing. NotFound for a participant who does not exist."""
    with transaction(runtime.engine) as conn:
        already = participant_rows.email_unsubscribed(conn, participant_id)
        if already is None:
            raise NotFound(f"no participant {participant_id}")
        cancelled = participant_rows.unsubscribe_email(
            conn, participant_id, source=source, now=runtime.clock.now(), detail=detail
        )
    if not already:
        log.info("email unsubscribe recorded", participant=participant_id, source=source)
    return cancelled


def carrier_opt_out(runtime: Runtime, participant_id: str, code: int | str | None) -> None:
    """The SMS provider refused a send because the number opted out at the carrier (a
    STOP Tend never saw): record it as the participant's opt-out."""
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        participant = participant_rows.get_participant(conn, participant_id, lock=True)
        opt_out_sms(conn, participant, source=f"provider:{code}", now=now)
