"""What an enrollment should have stored: planned occurrences, and how to reconcile them.

Pure functions: the engine hands in the plan, the enrollment's facts and `now`, and
stores what comes back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

from service.core.expand import Occurrence, expand
from service.core.plan import Plan
from service.core.states import Channel, DeliveryKind, OccurrenceState

HORIZON_DAYS = 14
# Channels that get one delivery per occurrence. Calendar practices reach people
# through their feed and invitations instead.
DELIVERY_CHANNELS = tuple(Channel)


@dataclass(frozen=True, slots=True)
class Planned:
    """An occurrence as the storage layer keeps it."""

    key: str
    practice_id: str
    local_date: date
    week: int
    seq: int
    instant: datetime
    duration_minutes: int
    window_end: datetime
    channels: tuple[str, ...]
    item: str | None
    fingerprint: str
    check_in_kind: str = "done"
    nudge_minutes: int | None = None  # a follow-up SMS this long after the instant

    @property
    def delivery_channels(self) -> tuple[str, ...]:
        return tuple(c for c in self.channels if c in DELIVERY_CHANNELS)

    def deliveries(self) -> dict[tuple[str, DeliveryKind], datetime]:
        """Every delivery the occurrence should have, as (channel, kind) -> due time: a
        reminder on each delivery channel at the instant, and the nudge by SMS when the
        practice has one."""
        wanted = {
            (channel, DeliveryKind.REMINDER): self.instant for channel in self.delivery_channels
        }
        if self.nudge_minutes is not None:
            nudge_at = self.instant + timedelta(minutes=self.nudge_minutes)
            wanted[Channel.SMS, DeliveryKind.NUDGE] = nudge_at
        return wanted


def fingerprint(occurrence: Occurrence) -> str:
    """A digest of everything that makes a reminder what it is: when, how long, where,
    and the text it is rendered from. A plan edit that changes it moves the occurrence."""
    practice, variant = occurrence.practice, occurrence.variant
    parts: tuple[str, ...] = (
        occurrence.utc.isoformat(),
        str(variant.duration_minutes),
        ",".join(practice.channels),
        practice.title,
        variant.message or "",
        variant.template or "",
        occurrence.item or "",
        practice.check_in.kind,
        str(practice.window_minutes),
        occurrence.window_end.isoformat(),
    )
    if practice.nudge is not None:  # only then, so that plans without one keep their digests
        parts += (str(practice.nudge.after_minutes), practice.nudge.message)
    if practice.location is not None or practice.url is not None:  # likewise
        # Where a session is, and its link, are part of its calendar event: a change
        # updates the stored occurrence, as a new time does.
        parts += ("where", practice.location or "", practice.url or "")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def planned(occurrence: Occurrence) -> Planned:
    return Planned(
        key=occurrence.key,
        practice_id=occurrence.practice.id,
        local_date=occurrence.date,
        week=occurrence.week,
        seq=occurrence.index,
        instant=occurrence.utc,
        duration_minutes=occurrence.variant.duration_minutes,
        window_end=occurrence.window_end,
        channels=occurrence.practice.channels,
        item=occurrence.item,
        fingerprint=fingerprint(occurrence),
        check_in_kind=occurrence.practice.check_in.kind,
        nudge_minutes=(
            occurrence.practice.nudge.after_minutes if occurrence.practice.nudge else None
        ),
    )


def horizon_for(plan: Plan, start: date, today: date, days: int = HORIZON_DAYS) -> date:
    """The first local date not yet to be materialised: `days` ahead, never past the end."""
    return min(start + timedelta(days=plan.days), max(start, today) + timedelta(days=days))


def plan_end(plan: Plan, start: date) -> date:
    return start + timedelta(days=plan.days)


def desired(
    plan: Plan,
    start: date,
    zone: tzinfo,
    variables: Mapping[str, str],
    until: date,
    not_before: datetime,
) -> list[Planned]:
    """The occurrences an enrollment should have for local dates before `until`, none
    earlier than `not_before` (when it was enrolled: no reminder for a time already past)."""
    return [
        planned(o)
        for o in expand(plan, start, zone, variables)
        if o.date < until and o.utc >= not_before
    ]


@dataclass(frozen=True, slots=True)
class Stored:
    """What the engine needs to know of a stored occurrence to reconcile it."""

    id: int
    key: str
    instant: datetime
    fingerprint: str
    state: OccurrenceState
    touched: bool  # a delivery of it was sent or is being sent: it is history now


@dataclass(slots=True)
class Changes:
    added: list[Planned] = field(default_factory=list)
    moved: list[tuple[Stored, Planned]] = field(default_factory=list)
    cancelled: list[Stored] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.moved or self.cancelled)

    def summary(self) -> str:
        added, moved, cancelled = len(self.added), len(self.moved), len(self.cancelled)
        return f"+{added} added, ~{moved} changed, -{cancelled} cancelled"


def reconcile(stored: Iterable[Stored], wanted: Sequence[Planned], now: datetime) -> Changes:
    """Bring stored occurrences in line with a (new) plan; the past and anything sent stay.

    Only occurrences still ahead (instant after `now`, on both sides) and untouched
    change: added when new, changed when their fingerprint differs, cancelled when the
    plan no longer has them.
    """
    changes = Changes()
    by_key = {s.key: s for s in stored}
    for item in wanted:
        current = by_key.pop(item.key, None)
        if current is None:
            if item.instant > now:
                changes.added.append(item)
            continue
        if current.touched or current.instant <= now or item.instant <= now:
            continue
        if current.state == OccurrenceState.CANCELLED or current.fingerprint != item.fingerprint:
            changes.moved.append((current, item))
    for current in by_key.values():
        if (
            current.state != OccurrenceState.CANCELLED
            and not current.touched
            and current.instant > now
        ):
            changes.cancelled.append(current)
    return changes
