"""The tables. SQLAlchemy Core: the repository writes its own statements.

States, and the only ways they move:

- participant.sms_state: subscribed <-> opted_out (every change is in consent_log)
- enrollment.status: active <-> paused; active|paused -> finished|cancelled
- occurrence.state: scheduled -> cancelled (a plan edit or a cancelled enrollment)
- occurrence.check_in: NULL (open, or not yet due) -> done | skipped (a reply or a
                    check-in link, which may change it while the window is open)
                    NULL -> missed (the window closed with no check-in after a reminder
                    reached the participant) | excused (nothing was asked, or no
                    reminder reached them: not counted in adherence)
- summary.state: pending -> claimed -> sending -> sent; claimed (lease ran out) -> claimed;
                 sending -> claimed (transient error, after a backoff); sending (lease ran
                 out: it may have gone) -> failed; unsent -> expired | cancelled | failed
- delivery.state: pending -> claimed -> sending -> sent -> delivered
                  sending -> claimed   (transient error: retried after a backoff)
                  claimed|sending -> claimed (a lease ran out: claimed again)
                  any unsent -> expired | cancelled | failed
- invitation.state: idle -> pending -> sending -> idle (sent) | pending (transient
                    error, retried after `lease_until`) | failed (permanent; tried again
                    only when what is wanted changes); sending -> sending (lease ran out)
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from service.core.states import (
    CheckInResult,
    DeliveryKind,
    DeliveryState,
    EnrollmentStatus,
    InvitationStatus,
    OccurrenceState,
    SmsState,
    SummaryState,
)
from service.storage.types import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# The CHECK constraints list every member, in the enum's order: a new member needs a
# migration (the constraints' text is in the migrations too).
SMS_STATES = tuple(SmsState)
ENROLLMENT_STATUSES = tuple(EnrollmentStatus)
OCCURRENCE_STATES = tuple(OccurrenceState)
DELIVERY_STATES = tuple(DeliveryState)
INVITATION_STATES = tuple(InvitationStatus)
CHECK_IN_RESULTS = tuple(CheckInResult)
SUMMARY_STATES = tuple(SummaryState)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


# Coach and admin accounts. A password is kept only as its argon2id hash; signing out
# everywhere, a new password and disabling the account each bump `session_version`,
# which every session cookie carries, so older sessions end.
coaches = Table(
    "coaches",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # lower case
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(200)),  # NULL until set through a one-time link
    Column("disabled", Boolean, nullable=False, default=False),
    Column("session_version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("role IN ('coach', 'admin')", name="role"),
)

# API tokens: shown once, kept as the SHA-256 of the token (256 random bits: a fast
# hash is enough for a secret nobody chose), with a label to tell them apart.
coach_tokens = Table(
    "coach_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("coach_id", ForeignKey("coaches.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime()),
    Column("revoked_at", UTCDateTime()),
    Index("ix_coach_tokens_coach_id", "coach_id"),
)

# One-time links to set a password (kept as the SHA-256 of the link's secret).
password_links = Table(
    "password_links",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("coach_id", ForeignKey("coaches.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime()),
)

# Failed sign-ins, for throttling per account and per address (old rows are deleted).
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject", String(400), nullable=False),  # account:<email> or address:<ip>
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_login_failures_subject_at", "subject", "at"),
)

# Append-only: every coach and admin action and every sign-in. Never updated or deleted
# by Tend. `detail` holds no participant's health data, phone or email.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(32), nullable=False),  # a coach id, or "operator"
    Column("actor_name", String(200), nullable=False),
    Column("address", String(64)),  # where the request came from; NULL: the command line
    Column("action", String(64), nullable=False),
    Column("target_kind", String(32)),
    Column("target_id", String(64)),
    Column("detail", Text),
    Index("ix_audit_log_actor_at", "actor", "at"),
    Index("ix_audit_log_at", "at"),
)

participants = Table(
    "participants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("phone", String(20), unique=True),
    Column("email", String(320)),
    Column("timezone", String(64), nullable=False),
    Column("variables", JSON, nullable=False, default=dict),
    Column("sms_state", String(16), nullable=False, default=SmsState.SUBSCRIBED),
    Column("paused_until", UTCDateTime()),
    Column("email_unsubscribed", Boolean, nullable=False, default=False),
    Column("feed_version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime(), nullable=False),
    # The coach who owns them (NULL: nobody's yet; admins and the operator see them).
    # No foreign key: adding one would make SQLite copy the table (and its cascades);
    # accounts are never deleted, only disabled.
    Column("coach_id", String(32), index=True),
    # The cohort they are in (NULL: none); no foreign key, for the same reason.
    Column("cohort_id", String(32), index=True),
    Column("language", String(16)),  # a language tag (NULL: the deployment's default)
    # When the confirmation SMS (program, frequency, HELP, STOP) went to the number in
    # `phone`: until then nothing else is texted to it. Changing the number clears it.
    Column("welcomed_at", UTCDateTime()),
    # Texts that never name the practice (a lock screen others may see).
    Column("discreet", Boolean, nullable=False, default=False, server_default=false()),
    # NULL: the deployment's TEND_QUIET_HOURS; "off": none; else "HH:MM-HH:MM" local.
    Column("quiet_hours", String(16)),
    CheckConstraint(_one_of("sms_state", SMS_STATES), name="sms_state"),
)

# Named groups of participants, owned by a coach. A cohort may have a plan people join
# through its sign-up page (`signup_token`, a random public id) or by texting
# `JOIN <keyword>`.
cohorts = Table(
    "cohorts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("coach_id", String(32), index=True),  # NULL: the operator's
    Column("name", String(100), nullable=False),
    Column("plan_id", String(64)),  # the plan people who join are enrolled in
    Column("keyword", String(32), unique=True),  # upper case, for JOIN <keyword>
    Column("signup_token", String(32), unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("coach_id", "name"),
)

# People who signed themselves up and have not answered YES yet. Deleted when they
# answer (they become a participant) or 48 hours on (nothing of them is kept).
signups = Table(
    "signups",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("cohort_id", ForeignKey("cohorts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("phone", String(20), nullable=False, unique=True),
    Column("email", String(320)),
    Column("timezone", String(64), nullable=False),
    Column("variables", JSON, nullable=False, default=dict),
    Column("language", String(16)),
    Column("source", String(64), nullable=False),  # signup:page, sms:JOIN <keyword>
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False, index=True),
    Column("asked_at", UTCDateTime()),  # when the confirmation asking YES went
)

# Numbers that opted out, kept after erasure only as an HMAC of the number under the
# installation's secret: a number added again stays opted out, and nothing else of the
# person is kept.
suppressed_numbers = Table(
    "suppressed_numbers",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
)

consent_log = Table(
    "consent_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("participant_id", ForeignKey("participants.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("action", String(16), nullable=False),  # opt_out, opt_in, pause, resume
    Column("source", String(64), nullable=False),  # sms:STOP, cli, api, twilio:21610, ...
    Column("detail", Text),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_consent_log_participant_at", "participant_id", "at"),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("participant_id", ForeignKey("participants.id", ondelete="CASCADE"), nullable=False),
    Column("plan_id", String(64), nullable=False),
    Column("plan_hash", String(64), nullable=False),
    Column("plan_version", Integer),  # the published version it follows (NULL: from before)
    Column("start_date", Date, nullable=False),
    Column("variables", JSON, nullable=False, default=dict),
    Column("status", String(16), nullable=False, default=EnrollmentStatus.ACTIVE),
    Column("horizon", Date, nullable=False),  # occurrences exist for local dates before this
    Column("end_date", Date, nullable=False),  # the day after the plan's last local date
    Column("not_before", UTCDateTime(), nullable=False),  # nothing is scheduled earlier
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint(_one_of("status", ENROLLMENT_STATUSES), name="status"),
    Index("ix_enrollments_plan_status", "plan_id", "status"),
    Index("ix_enrollments_participant", "participant_id"),
)

occurrences = Table(
    "occurrences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("enrollment_id", ForeignKey("enrollments.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(80), nullable=False),
    Column("practice_id", String(64), nullable=False),
    Column("local_date", Date, nullable=False),
    Column("week", Integer, nullable=False),
    Column("seq", Integer, nullable=False),  # the n-th occurrence of the practice, from 0
    Column("instant", UTCDateTime(), nullable=False),
    Column("duration_minutes", Integer, nullable=False),
    Column("window_end", UTCDateTime(), nullable=False),
    Column("channels", JSON, nullable=False),
    Column("item", Text),
    Column("fingerprint", String(64), nullable=False),  # what the reminder says and when
    Column("state", String(16), nullable=False, default=OccurrenceState.SCHEDULED),
    Column("sequence", Integer, nullable=False, default=0),  # iCalendar SEQUENCE
    Column("plan_version", Integer),  # the plan version it was last planned from
    Column("updated_at", UTCDateTime(), nullable=False),
    # What the practice asks (none, done, rating, number, text) and what came back.
    Column("check_in_kind", String(16), nullable=False, server_default="done"),
    Column("check_in", String(16)),
    Column("check_in_at", UTCDateTime()),
    Column("check_in_value", Float),  # a rating or a number
    Column("check_in_unit", String(32)),
    Column("check_in_text", Text),
    Column("check_in_source", String(16)),  # sms, link, api
    UniqueConstraint("enrollment_id", "key"),
    CheckConstraint(_one_of("state", OCCURRENCE_STATES), name="state"),
    CheckConstraint(_one_of("check_in", CHECK_IN_RESULTS), name="check_in"),
    Index("ix_occurrences_enrollment_instant", "enrollment_id", "instant"),
    # Closing windows reads the open ones by window end.
    Index("ix_occurrences_check_in_window_end", "check_in", "window_end"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("occurrence_id", ForeignKey("occurrences.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("kind", String(16), nullable=False, default=DeliveryKind.REMINDER),
    Column("state", String(16), nullable=False, default=DeliveryState.PENDING),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("lease_until", UTCDateTime()),
    Column("attempts", Integer, nullable=False, default=0),
    # Set when a lease ran out while sending: did the channel get it? Ask before resending.
    Column("uncertain", Boolean, nullable=False, default=False),
    Column("provider_id", String(64)),
    Column("segments", Integer),
    Column("last_error", Text),
    Column("sent_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Held for the participant's quiet hours: when it was first due (due_at: when they end).
    Column("held_from", UTCDateTime()),
    UniqueConstraint("occurrence_id", "channel", "kind"),
    CheckConstraint(_one_of("state", DELIVERY_STATES), name="state"),
    # The scheduler's claim reads pending rows by due time, and expired leases.
    Index("ix_deliveries_state_due_at", "state", "due_at"),
    Index("ix_deliveries_state_lease_until", "state", "lease_until"),
    Index("ix_deliveries_provider_id", "provider_id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", ForeignKey("deliveries.id", ondelete="SET NULL"), unique=True),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("subject", Text),
    Column("body", Text, nullable=False),
    Column("html", Text),
    Column("calendar", Text),  # an invitation's iCalendar text (text/calendar)
    Column("created_at", UTCDateTime(), nullable=False),
)

# One row per enrollment that has been sent (or is being sent) a calendar invitation.
invitations = Table(
    "invitations",
    metadata,
    Column(
        "enrollment_id",
        ForeignKey("enrollments.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("sequence", Integer, nullable=False, default=0),  # SEQUENCE of the last version sent
    Column("sent_hash", String(64)),  # content of the last version sent, DTSTAMP excluded
    Column("method_sent", String(8)),  # REQUEST while events stand in the calendar, or CANCEL
    Column("sent_keys", JSON, nullable=False, default=list),  # series keys standing there
    Column("sent_at", UTCDateTime()),
    Column("sent_to", String(320)),  # the attendee the last version went to
    Column("wanted_hash", String(64)),  # the version being sent, or the one that failed
    Column("checked_key", String(64)),  # the inputs last found up to date (a shortcut)
    Column("state", String(16), nullable=False, default=InvitationStatus.IDLE),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("lease_until", UTCDateTime()),  # sending: the lease; pending: not before
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint(_one_of("state", INVITATION_STATES), name="state"),
)

# Every inbound message, stored before anything is done with it, and what it was taken
# to mean. SMS are unique by the provider's id, so that a webhook Twilio retries is
# answered again and acted on once.
replies = Table(
    "replies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider_id", String(64), unique=True),  # Twilio's MessageSid
    Column("channel", String(16), nullable=False),  # sms, link
    Column("participant_id", ForeignKey("participants.id", ondelete="CASCADE")),
    Column("sender", String(320)),  # the number it came from (SMS)
    Column("body", Text, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("handled_at", UTCDateTime()),  # NULL until acted on
    Column("understood", String(32)),  # done, skipped, rating, opt_out, ask, no_window, ...
    Column("occurrence_id", ForeignKey("occurrences.id", ondelete="SET NULL")),
    Column("detail", Text),  # what happened, in words, for coaches
    Column("answer", Text),  # the text sent back (TwiML), None for none
    Column("context", JSON),  # for a question asked back: what it was about
    Index("ix_replies_participant_received_at", "participant_id", "received_at"),
)

# Weekly messages: the summary to a participant, the digest to a coach. One row per
# recipient, week and channel, so that each goes out once.
summaries = Table(
    "summaries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # a SummaryKind
    Column("subject", String(320), nullable=False),  # an enrollment id, or the coach's address
    Column("period_end", Date, nullable=False),  # the last local date the message covers
    Column("channel", String(16), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("state", String(16), nullable=False, default=SummaryState.PENDING),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_until", UTCDateTime()),
    Column("provider_id", String(64)),
    Column("last_error", Text),
    Column("sent_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("kind", "subject", "period_end", "channel"),
    CheckConstraint(_one_of("state", SUMMARY_STATES), name="state"),
    Index("ix_summaries_state_due_at", "state", "due_at"),
)

# A published plan: numbered per plan from 1, never changed once written. `templates`
# maps each template file the plan uses (with what they include) to its text.
plan_versions = Table(
    "plan_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # grows with each publish
    Column("plan_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("title", String(200), nullable=False),
    Column("yaml", Text, nullable=False),
    Column("templates", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("published_by", String(200), nullable=False),
    Column("published_at", UTCDateTime(), nullable=False),
    Column("note", Text),
    UniqueConstraint("plan_id", "version"),
)

app_state = Table(
    "app_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
