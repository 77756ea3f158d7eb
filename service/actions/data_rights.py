"""A participant's data rights, and how long Tend keeps what people wrote.

- `export`: everything Tend holds about one person, as one JSON-able document.
- `erase`: their personal data removed everywhere, in one transaction (name, number,
  address, variables, every message to them and every text from them). An opt-out
  outlives them only as a keyed digest of the number (`consent.suppress_number`), so
  that the number, added again, stays opted out.
- `apply_retention`: with TEND_RETENTION_DAYS, the texts of enrollments that ended that
  long ago are cleared (messages, replies, check-in texts), keeping every state and
  count the adherence report reads. The scheduler's upkeep runs it.

Export and erasure are on the audit log (ids and counts only). Like every action, a
coach reaches only their own participants: another coach's is NotFound, as a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import structlog

from service.actions import coaches, consent
from service.actions.access import visible_participant
from service.actions.coaches import Actor
from service.actions.errors import Invalid, action
from service.core.states import SmsState
from service.runtime import Runtime
from service.storage import data_rights as data_rows
from service.storage.db import reading, transaction

log = structlog.get_logger("tend.data_rights")

EXPORT_FORMAT = "tend.participant-export/1"


def _jsonable(value: Any) -> Any:
    """`value` with every datetime and date as ISO 8601 text (datetimes are UTC)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _by(rows: list[dict[str, Any]], key: str) -> dict[Any, list[dict[str, Any]]]:
    grouped: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row[key], []).append(row)
    return grouped


@action
def export(runtime: Runtime, participant_id: str, *, actor: Actor | None = None) -> dict[str, Any]:
    """Everything Tend holds about the participant: their details, consent log,
    enrollments (each with its occurrences and their check-ins and deliveries, its
    calendar invitation and weekly summaries), replies, the messages sent to them,
    unconfirmed sign-ups with their number or address, and their calendar feed's
    version. Datetimes as ISO 8601 text. On the audit log."""
    now = runtime.clock.now()
    with reading(runtime.engine) as conn:
        person = visible_participant(conn, actor, participant_id)
        held = data_rows.participant_data(conn, person.id, person.phone, person.email)
    deliveries = _by(held["deliveries"], "occurrence_id")
    occurrences = _by(
        [{**o, "deliveries": deliveries.get(o["id"], [])} for o in held["occurrences"]],
        "enrollment_id",
    )
    invitations = {row["enrollment_id"]: row for row in held["invitations"]}
    summaries = _by(held["summaries"], "subject")
    enrollments = [
        {
            **e,
            "occurrences": occurrences.get(e["id"], []),
            "invitation": invitations.get(e["id"]),
            "summaries": summaries.get(e["id"], []),
        }
        for e in held["enrollments"]
    ]
    document = {
        "format": EXPORT_FORMAT,
        "exported_at": now,
        "participant": held["participant"],
        "calendar_feed": {"version": person.feed_version},
        "consent_log": held["consent_log"],
        "enrollments": enrollments,
        "replies": held["replies"],
        "messages": held["outbox"],
        "signups": held["signups"],
    }
    coaches.record(
        runtime, actor or coaches.operator(), "participant.export", "participant", person.id
    )
    log.info("participant exported", participant=person.id)
    result: dict[str, Any] = _jsonable(document)
    return result


@dataclass(frozen=True, slots=True)
class Erased:
    """What an erasure removed: rows, by kind. `suppressed`: the number had opted out,
    and is kept as its keyed digest only."""

    participant_id: str
    suppressed: bool
    enrollments: int
    occurrences: int
    deliveries: int
    invitations: int
    consent_entries: int
    replies: int
    messages: int
    mentions: int  # messages to others (a coach's digest) with the name struck out
    summaries: int
    signups: int

    @property
    def text(self) -> str:
        """One line: what went."""
        counts = (
            (self.enrollments, "enrollment"),
            (self.occurrences, "occurrence"),
            (self.deliveries, "delivery"),
            (self.replies, "reply"),
            (self.messages, "message"),
            (self.summaries, "weekly summary"),
            (self.consent_entries, "consent entry"),
        )
        listed = ", ".join(f"{n} {_plural(word, n)}" for n, word in counts)
        kept = "; the opted-out number is kept only as a keyed digest" if self.suppressed else ""
        return f"erased participant {self.participant_id}: {listed}{kept}"


def _plural(word: str, n: int) -> str:
    if n == 1:
        return word
    if word.endswith("y") and not word.endswith("ey"):
        return word[:-1] + "ies"
    return word + "s"


def _plain(name: str) -> str:
    return " ".join(name.split()).casefold()


@action
def erase(
    runtime: Runtime,
    participant_id: str,
    *,
    actor: Actor | None = None,
    confirm_name: str | None = None,
) -> Erased:
    """Remove the participant's personal data everywhere, in one transaction: their row,
    enrollments, occurrences and check-ins, deliveries, invitations, consent log,
    replies (and texts from their number), messages to their number or address,
    weekly summaries and sign-ups. A number that had opted out is first kept as its
    keyed digest, so that it stays opted out if added again. `confirm_name` (the
    dashboard's confirmation): nothing is erased unless it is the participant's name.
    On the audit log, by id."""
    now = runtime.clock.now()
    secret = runtime.secret  # read before the transaction (in development it may write)
    with transaction(runtime.engine) as conn:
        person = visible_participant(conn, actor, participant_id, lock=True)
        if confirm_name is not None and _plain(confirm_name) != _plain(person.name):
            raise Invalid(
                "the name typed is not the participant's name as shown; nothing was erased"
            )
        suppressed = person.sms_state == SmsState.OPTED_OUT and bool(person.phone)
        if suppressed and person.phone:
            consent.suppress_number(conn, secret, person.phone, now)
        counts = data_rows.erase_participant(
            conn, person.id, name=person.name, phone=person.phone, email=person.email
        )
    erased = Erased(
        participant_id=person.id,
        suppressed=suppressed,
        enrollments=counts["enrollments"],
        occurrences=counts["occurrences"],
        deliveries=counts["deliveries"],
        invitations=counts["invitations"],
        consent_entries=counts["consent_log"],
        replies=counts["replies"],
        messages=counts["outbox"],
        mentions=counts["outbox_named"],
        summaries=counts["summaries"],
        signups=counts["signups"],
    )
    log.info("participant erased", participant=person.id, suppressed=suppressed, **counts)
    detail = " ".join(f"{table}={n}" for table, n in sorted(counts.items()))
    coaches.record(
        runtime,
        actor or coaches.operator(),
        "participant.erase",
        "participant",
        person.id,
        detail=f"{detail} suppressed={'yes' if suppressed else 'no'}",
    )
    return erased


def apply_retention(runtime: Runtime) -> int:
    """With TEND_RETENTION_DAYS set, clear the texts of enrollments that finished or were
    cancelled more than that many days ago, and of old replies from people no longer
    enrolled anywhere; returns how many rows were cleared. Unset: nothing is cleared.
    When nothing is due it only reads (one query); a second run changes nothing."""
    days = runtime.settings.retention_days
    if days is None:
        return 0
    cutoff = runtime.clock.now() - timedelta(days=days)
    with reading(runtime.engine) as conn:
        if not data_rows.texts_to_clear(conn, cutoff):
            return 0
    with transaction(runtime.engine) as conn:
        counts = data_rows.clear_old_texts(conn, cutoff)
    cleared = sum(counts.values())
    if cleared:
        log.info("old texts cleared", retention_days=days, **counts)
    return cleared
