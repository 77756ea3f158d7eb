"""The states Tend's rows move through, as enums.

Each is a `StrEnum`: a member is its own text, so it is stored, compared and printed as
the plain word the database and the contract use (`EnrollmentStatus.PAUSED == "paused"`).
How states may move is written beside the tables (`service/storage/tables.py`).
"""

from __future__ import annotations

import enum


class SmsState(enum.StrEnum):
    """A participant's standing consent to texts (a pause is separate: `paused_until`)."""

    SUBSCRIBED = "subscribed"
    OPTED_OUT = "opted_out"


class SmsStatus(enum.StrEnum):
    """What the report and the API show of texts: consent and a pause together."""

    SUBSCRIBED = "subscribed"
    OPTED_OUT = "opted_out"
    PAUSED = "paused"


class EnrollmentStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"


LIVE_STATUSES = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)  # reminders may follow


class OccurrenceState(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class CheckInResult(enum.StrEnum):
    DONE = "done"
    SKIPPED = "skipped"
    MISSED = "missed"
    EXCUSED = "excused"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


UNSENT_STATES = (DeliveryState.PENDING, DeliveryState.CLAIMED, DeliveryState.SENDING)
WAITING_STATES = (DeliveryState.PENDING, DeliveryState.CLAIMED)  # not yet being sent


class DeliveryKind(enum.StrEnum):
    REMINDER = "reminder"
    NUDGE = "nudge"
    # The reminder again, asked for by LATER: the first, second and third time (the
    # number is in the kind, so one occurrence has at most one row of each).
    REPEAT1 = "repeat1"
    REPEAT2 = "repeat2"
    REPEAT3 = "repeat3"

    @property
    def is_repeat(self) -> bool:
        return self in REPEAT_KINDS


REPEAT_KINDS = (DeliveryKind.REPEAT1, DeliveryKind.REPEAT2, DeliveryKind.REPEAT3)


class Channel(enum.StrEnum):
    """The ways a message reaches a person (a practice's `calendar` is a feed, not a send)."""

    SMS = "sms"
    EMAIL = "email"


class InvitationStatus(enum.StrEnum):
    """Where sending an enrollment's calendar invitation stands (records.InvitationState
    is the whole row)."""

    IDLE = "idle"
    PENDING = "pending"
    SENDING = "sending"
    FAILED = "failed"


class SummaryState(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class SummaryKind(enum.StrEnum):
    PARTICIPANT = "participant"
    COACH = "coach"
    # The confirmation SMS: WELCOME to a participant (their first text), JOIN to a person
    # who signed up, asking them to answer YES.
    WELCOME = "welcome"
    JOIN = "join"


class ConsentAction(enum.StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    PAUSE = "pause"
    RESUME = "resume"
    # How a person came to be texted: `consent` when added (on a coach's word, an import,
    # a sign-up asking YES), `confirm` when a person who signed up answered YES, and
    # `welcome` when the confirmation (program, frequency, HELP, STOP) went.
    CONSENT = "consent"
    CONFIRM = "confirm"
    WELCOME = "welcome"
