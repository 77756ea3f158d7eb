"""What a participant's calendar feed shows: the same occurrence rows the scheduler
fires, those with `calendar` among their channels.

A feed holds the occurrences from `since` (30 days back) to the horizon: the past ones
whatever became of their enrollment (they are history, with their check-ins), the ones
ahead only while the enrollment is active (a paused or cancelled enrollment reminds
about nothing, and its calendar says so). `feed_state` is one cheap statement that
changes whenever what the feed would show changes: the ETag is made from it, so that
an unchanged feed is answered 304 without reading its events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import BindParameter, Boolean, Connection, Integer, String, bindparam, text

from service.storage.tables import enrollments, occurrences
from service.storage.types import UTCDateTime

CALENDAR_LIKE = '%"calendar"%'  # the JSON list of channels, as text

# Which occurrences a feed shows; the two statements below must agree on it.
_SHOWN = (
    "o.state = 'scheduled' AND o.instant >= :since "
    "AND CAST(o.channels AS TEXT) LIKE :calendar "
    "AND (o.instant <= :now OR e.status = 'active')"
)
_SHOWN_PARAMS: tuple[BindParameter[Any], ...] = (
    bindparam("since", type_=UTCDateTime()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("calendar", value=CALENDAR_LIKE),
)

_STATE = (
    text(
        "SELECT p.feed_version, p.name, p.timezone, CAST(p.variables AS TEXT) AS variables, "
        "p.language, p.discreet, "
        "s.shown, s.changed, s.checked, s.earliest, "
        "(SELECT MAX(e.updated_at) FROM enrollments AS e WHERE e.participant_id = p.id) "
        "AS enrolled "
        "FROM participants AS p, "
        "(SELECT COUNT(*) AS shown, MAX(o.updated_at) AS changed, "
        "MAX(o.check_in_at) AS checked, MIN(o.instant) AS earliest "
        "FROM enrollments AS e JOIN occurrences AS o ON o.enrollment_id = e.id "
        f"WHERE e.participant_id = :participant_id AND {_SHOWN}) AS s "
        "WHERE p.id = :participant_id"
    )
    .bindparams(*_SHOWN_PARAMS)
    .columns(
        feed_version=Integer(),
        name=String(),
        timezone=String(),
        variables=String(),
        language=String(),
        discreet=Boolean(),
        shown=Integer(),
        changed=UTCDateTime(),
        checked=UTCDateTime(),
        earliest=UTCDateTime(),
        enrolled=UTCDateTime(),
    )
)

_EVENTS = (
    text(
        'SELECT o.id, o."key", o.practice_id, o.local_date, o.week, o.seq, o.instant, '
        "o.duration_minutes, o.window_end, o.item, o.sequence, o.updated_at, "
        "o.check_in, o.check_in_at, o.fingerprint, "
        "e.id AS enrollment_id, e.plan_id, e.plan_hash, CAST(e.variables AS TEXT) "
        "FROM enrollments AS e JOIN occurrences AS o ON o.enrollment_id = e.id "
        f"WHERE e.participant_id = :participant_id AND {_SHOWN} "
        "ORDER BY o.instant, o.id"
    )
    .bindparams(*_SHOWN_PARAMS)
    .columns(
        occurrences.c.id,
        occurrences.c.key,
        occurrences.c.practice_id,
        occurrences.c.local_date,
        occurrences.c.week,
        occurrences.c.seq,
        occurrences.c.instant,
        occurrences.c.duration_minutes,
        occurrences.c.window_end,
        occurrences.c.item,
        occurrences.c.sequence,
        occurrences.c.updated_at,
        occurrences.c.check_in,
        occurrences.c.check_in_at,
        occurrences.c.fingerprint,
        enrollments.c.id.label("enrollment_id"),
        enrollments.c.plan_id,
        enrollments.c.plan_hash,
        variables=String(),
    )
)


@dataclass(frozen=True, slots=True)
class FeedState:
    """Everything whose change changes the feed, read in one statement."""

    feed_version: int
    name: str
    timezone: str
    variables: str  # as stored (JSON text): only compared
    language: str | None  # the feed's titles and descriptions are in their language
    discreet: bool  # and neutral for a discreet participant
    shown: int
    changed: datetime | None  # the latest change to an occurrence shown
    checked: datetime | None  # the latest check-in on one
    earliest: datetime | None  # moves when an event leaves the 30 days back
    enrolled: datetime | None  # the latest change to an enrollment

    @property
    def last_modified(self) -> datetime | None:
        found = [t for t in (self.changed, self.checked, self.enrolled) if t is not None]
        return max(found) if found else None

    def version(self) -> str:
        return "|".join(
            str(part)
            for part in (
                self.feed_version,
                self.name,
                self.timezone,
                self.variables,
                self.language,
                self.discreet,
                self.shown,
                self.changed,
                self.checked,
                self.earliest,
                self.enrolled,
            )
        )


def feed_state(
    conn: Connection, participant_id: str, *, since: datetime, now: datetime
) -> FeedState | None:
    row = conn.execute(
        _STATE, {"participant_id": participant_id, "since": since, "now": now}
    ).first()
    if row is None:
        return None
    return FeedState(
        int(row.feed_version),
        str(row.name),
        str(row.timezone),
        str(row.variables),
        row.language,
        bool(row.discreet),
        int(row.shown),
        row.changed,
        row.checked,
        row.earliest,
        row.enrolled,
    )


@dataclass(frozen=True, slots=True)
class FeedRow:
    occurrence_id: int
    key: str
    practice_id: str
    local_date: date
    week: int
    seq: int
    instant: datetime
    duration_minutes: int
    window_end: datetime
    item: str | None
    sequence: int
    updated_at: datetime
    check_in: str | None
    check_in_at: datetime | None
    fingerprint: str
    enrollment_id: str
    plan_id: str
    plan_hash: str
    variables: dict[str, str]


_make_row: Any = FeedRow


def feed_rows(
    conn: Connection, participant_id: str, *, since: datetime, now: datetime
) -> list[FeedRow]:
    rows = conn.execute(_EVENTS, {"participant_id": participant_id, "since": since, "now": now})
    decoded: dict[str, dict[str, str]] = {}  # an enrollment's variables, read once
    found = []
    for r in rows:
        enrollment_id, text_variables = r[15], r[18]
        variables = decoded.get(enrollment_id)
        if variables is None:
            variables = decoded[enrollment_id] = dict(json.loads(text_variables or "{}"))
        found.append(_make_row(*r[:18], variables))  # by position: 730 rows add up
    return found
