"""A participant's own say over when texts come: their times (`WAKE 6:30`, `TIMES`) and
their quiet hours (`QUIET 22:00-07:00`, `QUIET OFF`).

Each runs in the caller's transaction (the inbound text's) and returns what its answer
says. A time is the participant's: it is set on them (and taken off any enrollment that
had its own value), and every live enrollment whose plan uses it moves its reminders
still to come, as a change made by a coach would (`replan_participant`): sent ones stay
where they were, calendar feeds and invitations follow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Connection

from service.actions import wording
from service.actions.enrollments import replan_participant
from service.actions.errors import ActionError
from service.core import language as languages
from service.core.quiet import clock_text, parse_quiet
from service.core.records import Participant
from service.core.states import LIVE_STATUSES
from service.runtime import Runtime
from service.storage import enrollments as enrollment_rows
from service.storage import occurrences as occurrence_rows
from service.storage import participants as participant_rows

log = structlog.get_logger("tend.own_times")

UPCOMING = 60  # occurrences read per enrollment to find the next one using the time


def set_time(
    runtime: Runtime,
    conn: Connection,
    participant: Participant,
    name: str,
    minutes: int,
    now: datetime,
) -> dict[str, Any]:
    """Set the participant's variable `name` to `minutes` after midnight and move what
    uses it. The answer's context: the time, the next reminder using it, and whether
    that falls in their quiet hours. Refused (nothing changes) when a plan cannot take
    the new value: then the answer is "not understood", saying why."""
    value = clock_text(minutes)
    savepoint = conn.begin_nested()
    try:
        participant_rows.update_participant(
            conn, participant.id, variables={**participant.variables, name: value}
        )
        for enrollment in enrollment_rows.list_enrollments(
            conn, participant_id=participant.id, statuses=LIVE_STATUSES
        ):
            if name in enrollment.variables:  # the participant's time now, not this one's
                kept = {k: v for k, v in enrollment.variables.items() if k != name}
                enrollment_rows.set_variables(conn, enrollment.id, kept, now=now)
        after = participant_rows.get_participant(conn, participant.id)
        replan_participant(runtime, conn, after, now)
    except ActionError as exc:
        savepoint.rollback()
        log.info("a time set by text was refused", participant=participant.id, variable=name)
        return {"answer": "not_understood", "reason": str(exc), "title": None}
    savepoint.commit()
    log.info("time set by text", participant=participant.id, variable=name)
    return {"at": _clock(runtime, after, minutes, now), **_next_using(runtime, conn, after, name)}


def _next_using(
    runtime: Runtime, conn: Connection, participant: Participant, name: str
) -> dict[str, Any]:
    """The participant's next reminder whose time is written with `name`."""
    best: tuple[datetime, str, str] | None = None
    for enrollment in enrollment_rows.list_enrollments(
        conn, participant_id=participant.id, statuses=LIVE_STATUSES
    ):
        plan = runtime.plans.get(enrollment.plan_id, enrollment.plan_hash)
        if plan is None:
            continue
        using = {p.id for p in plan.practices if any(v.at.variable == name for v in p.variants())}
        for row in occurrence_rows.upcoming(conn, enrollment.id, limit=UPCOMING):
            if row["practice_id"] in using and (best is None or row["instant"] < best[0]):
                practice = plan.practice_index.get(row["practice_id"])
                title = wording.title_for(
                    runtime, participant, practice, row["practice_id"], row["instant"]
                )
                best = (row["instant"], row["practice_id"], title)
                break
    if best is None:
        return {"next_title": None, "next_at": None, "quiet": False, "quiet_until": None}
    instant, _, title = best
    hours = wording.quiet_of(runtime, participant)
    end = hours.end_after(instant, ZoneInfo(participant.timezone)) if hours else None
    return {
        "next_title": title,
        "next_at": wording.moment_text(runtime, participant, instant),
        "quiet": end is not None,
        "quiet_until": wording.time_text(runtime, participant, end) if end else None,
    }


def listed(
    runtime: Runtime, participant: Participant, times: dict[str, int], now: datetime
) -> dict[str, Any]:
    """TIMES: the participant's times, as their answer lists them."""
    shown = [
        {"name": name.upper(), "at": _clock(runtime, participant, minutes, now)}
        for name, minutes in sorted(times.items(), key=lambda item: item[1])
    ]
    example = None
    if times:
        name, minutes = min(times.items(), key=lambda item: item[1])
        example = f"{name.upper()} {clock_text((minutes + 15) % (24 * 60))}"
    return {"times": shown, "example": example}


def set_quiet(
    runtime: Runtime, conn: Connection, participant: Participant, span: str | None, now: datetime
) -> dict[str, Any]:
    """QUIET: the participant's quiet hours ("off" for none)."""
    participant_rows.update_participant(conn, participant.id, quiet_hours=span or "off")
    log.info("quiet hours set by text", participant=participant.id)
    hours = parse_quiet(span) if span and span != "off" else None
    if hours is None:
        return {"off": True, "start": None, "end": None}
    return {
        "off": False,
        "start": _clock(runtime, participant, hours.start, now),
        "end": _clock(runtime, participant, hours.end, now),
    }


def _clock(runtime: Runtime, participant: Participant, minutes: int, now: datetime) -> str:
    """A time of day written the participant's language's way (6:30 AM, 6:30)."""
    local = now.astimezone(ZoneInfo(participant.timezone)).replace(
        hour=minutes // 60, minute=minutes % 60, second=0, microsecond=0
    )
    return languages.time_text(local, wording.language_of(runtime, participant))
