"""Participants, enrollments and deliveries as the rest of Tend sees them (plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from service.core.states import (
    Channel,
    CheckInResult,
    DeliveryKind,
    EnrollmentStatus,
    InvitationStatus,
    OccurrenceState,
    SmsState,
    SmsStatus,
)


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    name: str
    phone: str | None
    email: str | None
    timezone: str
    variables: dict[str, str] = field(default_factory=dict)
    sms_state: SmsState = SmsState.SUBSCRIBED
    paused_until: datetime | None = None
    email_unsubscribed: bool = False
    feed_version: int = 1
    created_at: datetime | None = None
    coach_id: str | None = None  # the coach who owns them (None: nobody's yet)
    cohort_id: str | None = None  # the cohort they are in (None: none)
    language: str | None = None  # a language tag (None: the deployment's default)
    # When the confirmation SMS went to `phone`; until then nothing else is texted.
    welcomed_at: datetime | None = None
    discreet: bool = False  # texts never name the practice
    # Their own quiet hours: None follows the deployment's, "off" for none, "22:00-07:00".
    quiet_hours: str | None = None

    def sms_paused(self, now: datetime) -> bool:
        return self.paused_until is not None and self.paused_until > now

    def sms_status(self, now: datetime) -> SmsStatus:
        """`subscribed`, `opted_out` or `paused`, as the report shows it."""
        if self.sms_state == SmsState.OPTED_OUT:
            return SmsStatus.OPTED_OUT
        return SmsStatus.PAUSED if self.sms_paused(now) else SmsStatus.SUBSCRIBED


@dataclass(frozen=True, slots=True)
class Enrollment:
    id: str
    participant_id: str
    plan_id: str
    plan_hash: str
    start_date: date
    variables: dict[str, str]
    status: EnrollmentStatus
    horizon: date
    end_date: date
    not_before: datetime
    created_at: datetime
    updated_at: datetime
    plan_version: int | None = None  # the published version it follows (None: from before)


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """Everything a worker needs to send one delivery, read in the transaction that
    moved it to `sending`."""

    id: int
    channel: Channel
    kind: DeliveryKind
    due_at: datetime
    attempts: int  # this attempt's number, from 1: the fencing token of its outcome
    uncertain: bool  # an earlier attempt may have gone out: ask the channel first
    occurrence_id: int
    occurrence_key: str
    occurrence_state: OccurrenceState
    occurrence_channels: tuple[str, ...]  # the practice's channels when it was stored
    check_in: CheckInResult | None  # None while nothing is recorded
    practice_id: str
    local_date: date
    week: int
    seq: int
    instant: datetime
    item: str | None
    window_end: datetime
    enrollment_id: str
    plan_id: str
    plan_hash: str
    enrollment_status: EnrollmentStatus
    enrollment_variables: dict[str, str]
    participant: Participant


@dataclass(frozen=True, slots=True)
class InvitationState:
    """What was last sent of an enrollment's calendar invitation, and what is under way."""

    enrollment_id: str
    sequence: int
    sent_hash: str | None
    method_sent: str | None
    sent_keys: tuple[str, ...]
    wanted_hash: str | None
    checked_key: str | None
    state: InvitationStatus
    attempts: int
    last_error: str | None
    lease_until: datetime | None
    sent_to: str | None = None

    @property
    def next_sequence(self) -> int:
        """SEQUENCE of the next version: 0 for the first, then one more each time."""
        return 0 if self.method_sent is None else self.sequence + 1


@dataclass(frozen=True, slots=True)
class InvitationCandidate:
    """An enrollment the invitation pass looks at, with its participant and its row."""

    enrollment: Enrollment
    participant: Participant
    invitation: InvitationState | None
