"""May Tend send this participant something on this channel now?

One function answers it for every message Tend sends: reminders and nudges (the
worker, just before sending), weekly summaries, and test messages a coach sends from
the dashboard or the API. A refusal's value is the note stored on a delivery it stops,
so the words in the database, the logs and the coach's answer are the same.
"""

from __future__ import annotations

import enum
from datetime import datetime

from service.core.records import Participant
from service.core.states import Channel, SmsState


class Refusal(enum.StrEnum):
    """Why nothing may be sent; the value is the note recorded on a stopped delivery."""

    OPTED_OUT = "participant opted out of SMS"
    SMS_PAUSED = "participant paused SMS reminders"
    NO_PHONE = "participant has no phone number"
    UNSUBSCRIBED = "participant unsubscribed from email"
    NO_EMAIL = "participant has no email address"

    def said_of(self, name: str, paused_until: str | None = None) -> str:
        """The refusal in a sentence about the person, for a coach."""
        return {
            Refusal.OPTED_OUT: f"{name} opted out of text messages (see their consent log); "
            "nothing is sent until they text START",
            Refusal.SMS_PAUSED: f"{name} paused text messages until {paused_until}; "
            "nothing is sent till then",
            Refusal.NO_PHONE: f"{name} has no phone number; add one first",
            Refusal.UNSUBSCRIBED: f"{name} unsubscribed from email (see their consent log); "
            "nothing is sent to them by email",
            Refusal.NO_EMAIL: f"{name} has no email address; add one first",
        }[self]


def send_refusal(participant: Participant, channel: str, now: datetime) -> Refusal | None:
    """Why `participant` must not be sent anything on `channel` at `now`, or None when
    they may be. Consent comes first: an opted-out participant's missing number is not
    the reason nothing goes. Channels other than SMS and email (a calendar feed) are
    never sent to, so never refused here."""
    if channel == Channel.SMS:
        if participant.sms_state == SmsState.OPTED_OUT:
            return Refusal.OPTED_OUT
        if participant.sms_paused(now):
            return Refusal.SMS_PAUSED
        if not participant.phone:
            return Refusal.NO_PHONE
    elif channel == Channel.EMAIL:
        if participant.email_unsubscribed:
            return Refusal.UNSUBSCRIBED
        if not participant.email:
            return Refusal.NO_EMAIL
    return None
