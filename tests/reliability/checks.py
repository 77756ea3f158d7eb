"""What a run must come to, counted: every due reminder sent exactly once (one message
at the provider, the one its row names) or recorded as expired, failed or cancelled with
its reason; none twice; none early; none after an opt-out.

The provider's side is read from the fake Twilio (every message created through its
API) and the SMTP server (every message it accepted). Each reminder's text carries its
occurrence key (`[first:2026-03-02]`), so a message is matched to its delivery by
channel, recipient and key, whether or not the database knows of it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, text

from tests.support.fake_smtp import Received
from tests.support.fake_twilio import FakeTwilio

TERMINAL = ("sent", "failed", "expired", "cancelled")
KEY = re.compile(r"\[([a-z0-9-]+:\d{4}-\d{2}-\d{2})\]")
UNCERTAIN_EMAIL = "cannot tell whether it went out"
RULES = ("duplicates", "lost", "wrong_ref", "ref_unknown", "unexplained", "early", "after_opt_out")


def unsettled(engine: Engine, now: datetime) -> int:
    """Deliveries due by `now` that are still pending, claimed or being sent."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM deliveries WHERE due_at <= :now "
                    "AND state NOT IN ('sent', 'failed', 'expired', 'cancelled')"
                ),
                {"now": now},
            ).scalar_one()
        )


@dataclass
class Sent:
    """One message the provider has: `ref` is its SID (SMS) or Message-ID (email)."""

    channel: str
    to: str
    key: str | None
    ref: str


@dataclass
class Tally:
    due: int = 0
    states: Counter[str] = field(default_factory=Counter)
    messages: int = 0  # at the providers, for due reminders
    duplicates: int = 0  # messages beyond the first for one reminder
    lost: int = 0  # due but without an end, or "sent" with no message at the provider
    wrong_ref: int = 0  # "sent", but the row names another message than the one there
    ref_unknown: int = 0  # "sent" (found at the provider after a crash) without its id
    unexplained: int = 0  # failed, expired or cancelled without a reason
    went_anyway: int = 0  # recorded failed/expired/cancelled, yet the provider has it
    uncertain_email: int = 0  # of those: email a killed worker may have sent (SMTP can't tell)
    early: int = 0  # messages for reminders not yet due
    after_opt_out: int = 0  # SMS to someone after their opt-out was recorded
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # a few deliveries that broke a rule

    @property
    def sent_once(self) -> int:
        return self.states["sent"] - self.lost - self.wrong_ref

    def assert_clean(self) -> None:
        """The invariants every fault test ends with."""
        problems = {name: getattr(self, name) for name in RULES if getattr(self, name)}
        if self.went_anyway != self.uncertain_email:
            problems["went_anyway"] = self.went_anyway - self.uncertain_email
        ended = sum(self.states[s] for s in TERMINAL)
        if ended != self.due:
            problems["without_an_end"] = self.due - ended
        assert not problems, f"{problems} in {self}"

    def row(self) -> dict[str, int]:
        return {
            "due": self.due,
            "sent": self.states["sent"],
            "failed": self.states["failed"],
            "expired": self.states["expired"],
            "cancelled": self.states["cancelled"],
            "messages": self.messages,
            "duplicates": self.duplicates,
            "lost": self.lost,
            "after_opt_out": self.after_opt_out,
        }


def provider_messages(twilio: FakeTwilio, received: list[Received]) -> list[Sent]:
    out = []
    for message in twilio.accepted():
        body = str(message.resource["body"])
        found = KEY.search(body)
        out.append(Sent("sms", str(message.resource["to"]), found and found.group(1), message.sid))
    for mail in received:
        parsed = mail.message
        part = parsed.get_body(("plain",))
        body = part.get_content() if part is not None else ""
        found = KEY.search(body) or KEY.search(str(parsed["Subject"] or ""))
        for to in mail.rcpt_tos:
            ref = str(parsed["Message-ID"]).strip().strip("<>")
            out.append(Sent("email", to, found and found.group(1), ref))
    return out


_ROWS = text(
    """
    SELECT d.id, d.channel, d.kind, d.state, d.last_error, d.provider_id, d.due_at,
           o.key, p.id AS participant, p.phone, p.email
    FROM deliveries d
    JOIN occurrences o ON o.id = d.occurrence_id
    JOIN enrollments e ON e.id = o.enrollment_id
    JOIN participants p ON p.id = e.participant_id
    """
)
_OPT_OUTS = text(
    "SELECT participant_id, min(at) FROM consent_log "
    "WHERE channel = 'sms' AND action = 'opt_out' GROUP BY participant_id"
)


def tally(engine: Engine, now: datetime, sent: list[Sent]) -> Tally:
    """Count what happened to every delivery due by `now`, against what the providers
    hold. Run it once no process can send any more."""
    with engine.connect() as conn:
        rows = conn.execute(_ROWS).mappings().all()
        opted_out = dict(conn.execute(_OPT_OUTS).all())
    by_target: dict[tuple[str, str, str | None], list[Sent]] = {}
    for message in sent:
        by_target.setdefault((message.channel, message.to, message.key), []).append(message)
    result = Tally()
    matched: set[int] = set()
    for row in rows:
        recipient = row["phone"] if row["channel"] == "sms" else row["email"]
        messages = by_target.get((row["channel"], recipient, row["key"]), [])
        if row["kind"] != "reminder":
            continue
        matched.update(id(m) for m in messages)
        due = row["due_at"] <= now
        if not due:
            result.early += len(messages)
            continue
        result.due += 1
        result.states[row["state"]] += 1
        result.messages += len(messages)
        result.duplicates += max(len(messages) - 1, 0)
        if len(messages) > 1 and len(result.examples) < 10:
            result.examples.append(
                f"delivery {row['id']} ({row['channel']}, {row['key']}): {[m.ref for m in messages]}"
            )
        stopped = opted_out.get(row["participant"])
        if row["channel"] == "sms" and stopped is not None and stopped <= row["due_at"]:
            result.after_opt_out += len(messages)
        state = row["state"]
        if state == "sent":
            if not messages:
                result.lost += 1
            elif row["provider_id"] is None:
                result.ref_unknown += 1
            elif row["provider_id"] not in {m.ref[: len(row["provider_id"])] for m in messages}:
                result.wrong_ref += 1
        elif state in TERMINAL:
            reason = (row["last_error"] or "").strip()
            if not reason:
                result.unexplained += 1
            result.reasons[f"{state}: {_reason_kind(reason)}"] += 1
            if messages:
                result.went_anyway += 1
                if row["channel"] == "email" and UNCERTAIN_EMAIL in reason:
                    result.uncertain_email += 1
        else:
            result.lost += 1
    strays = [m for m in sent if id(m) not in matched]
    assert not strays, f"messages that match no reminder: {strays[:5]}"
    return result


def _reason_kind(reason: str) -> str:
    """A reason without its particulars (ids, numbers), for counting alike ones."""
    return re.sub(r"\d+", "N", reason)[:80]
