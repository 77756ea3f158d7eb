"""What an actor may see: a coach their own participants and what hangs off them, an
admin or the operator everyone.

Another coach's participant, enrollment or reply is refused exactly as one that does
not exist: the same `NotFound`, with the same words (`no participant 'p_x'`), so that
an id tells a coach nothing about people who are not theirs. Every entry point (the
API, the dashboard) asks here, or passes `actor.coach_id` to the storage reads, which
narrow the same way.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from service.actions.coaches import Actor
from service.actions.errors import NotFound
from service.core.records import Enrollment, Participant
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import NotFound as MissingRow
from service.storage.tables import participants, replies


def coach_of(actor: Actor | None) -> str | None:
    """The coach whose people `actor` sees; None (everyone) for an admin, the operator,
    or no actor at all (the command line, the scheduler)."""
    return None if actor is None else actor.coach_id


def visible_participant(
    conn: Connection, actor: Actor | None, participant_id: str, *, lock: bool = False
) -> Participant:
    """The participant, when `actor` may see them; NotFound, as for a missing one, when not."""
    try:
        return participant_rows.get_participant(
            conn, participant_id, lock=lock, coach_id=coach_of(actor)
        )
    except MissingRow as exc:
        raise NotFound(str(exc)) from None


def visible_enrollment(conn: Connection, actor: Actor | None, enrollment_id: str) -> Enrollment:
    """The enrollment, when `actor` may see its participant; NotFound, as for a missing
    one, when not."""
    try:
        return enrollment_rows.get_enrollment(conn, enrollment_id, coach_id=coach_of(actor))
    except MissingRow as exc:
        raise NotFound(str(exc)) from None


def visible_reply(conn: Connection, actor: Actor | None, reply_id: int) -> dict[str, Any]:
    """The stored reply, when `actor` may see who sent it (a reply from a number Tend
    does not know is for admins only); NotFound, as for a missing one, when not."""
    query = select(replies).where(replies.c.id == reply_id)
    coach_id = coach_of(actor)
    if coach_id is not None:
        theirs = select(participants.c.id).where(participants.c.coach_id == coach_id)
        query = query.where(replies.c.participant_id.in_(theirs))
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"no reply '{reply_id}'")
    return dict(row)
