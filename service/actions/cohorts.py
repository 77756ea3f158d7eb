"""Cohorts: named groups of a coach's participants. Making one, renaming it, giving it a
plan people join (by its sign-up page or by texting `JOIN <keyword>`), putting people
in it, and enrolling a whole cohort in a plan in one action.

A coach sees and changes only their own cohorts; another coach's answers as a missing
one does (`no cohort 'h_x'`). Admins and the operator see every cohort.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Connection

from service.actions.access import coach_of, visible_participant
from service.actions.coaches import Actor
from service.actions.enrollments import Start, enroll_in, running_plan
from service.actions.errors import Conflict, Invalid, NotFound, action
from service.core import validate
from service.core.replies import KEYWORDS
from service.runtime import Runtime
from service.storage import cohorts as cohort_rows
from service.storage import enrollments as enrollment_rows
from service.storage.cohorts import Cohort
from service.storage.db import NotFound as MissingRow
from service.storage.db import reading, transaction

log = structlog.get_logger("tend.cohorts")

MAX_COHORT_NAME = 100
KEYWORD = re.compile(r"^[A-Z0-9]{2,20}$")
# Words a JOIN keyword may not be: every reply keyword, and JOIN itself.
RESERVED = frozenset({*(k.upper() for k in KEYWORDS), "JOIN", "DONE", "SKIP", "YES", "NO"})


def cohort_name(text: str) -> str:
    """A cohort's name: 1 to 100 characters, spaces collapsed."""
    cleaned = " ".join(str(text).split())
    if not cleaned:
        raise Invalid("a cohort's name cannot be empty")
    if len(cleaned) > MAX_COHORT_NAME:
        raise Invalid(f"a cohort's name has at most {MAX_COHORT_NAME} characters")
    try:
        validate.text(cleaned)
    except validate.Invalid as exc:
        raise Invalid(str(exc)) from None
    return cleaned


def join_keyword(text: str) -> str:
    """A JOIN keyword: 2 to 20 letters or digits, kept in upper case, not a reply keyword."""
    word = str(text).strip().upper()
    if not KEYWORD.match(word):
        raise Invalid(
            f"a join keyword is 2 to 20 letters or digits with no spaces (like SLEEP); "
            f"'{str(text).strip()[:30]}' is not"
        )
    if word in RESERVED:
        raise Invalid(f"'{word}' is a word participants already text for something else")
    return word


ID_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def cohort_ref(text: str) -> str:
    """`text` when it could be a cohort's id; NotFound, as for a missing one, when not
    (text from a URL's query, say, never reaches the database otherwise)."""
    if not ID_SHAPE.match(text):
        raise NotFound(f"no cohort '{text[:64]}'")
    return text


def visible_cohort(conn: Connection, actor: Actor | None, cohort_id: str) -> Cohort:
    """The cohort, when `actor` may see it; NotFound, as for a missing one, when not."""
    try:
        return cohort_rows.get_cohort(conn, cohort_id, coach_id=coach_of(actor))
    except MissingRow as exc:
        raise NotFound(str(exc)) from None


def _owner(actor: Actor | None, coach: str | None) -> str | None:
    if actor is not None and not actor.sees_all:
        return actor.id
    return coach


def _plan_id(runtime: Runtime, plan: str | None) -> str | None:
    if plan is None or plan == "":
        return None
    return running_plan(runtime, plan).id


def _taken(name: str, keyword: str | None) -> Conflict:
    what = f"the name '{name}'" + (f" or the keyword {keyword}" if keyword else "")
    return Conflict(f"another cohort has {what} already")


@action
def create(
    runtime: Runtime,
    *,
    name: str,
    plan: str | None = None,
    keyword: str | None = None,
    signup: bool = False,
    actor: Actor | None = None,
    coach: str | None = None,
) -> Cohort:
    """A new cohort, the actor's own (an admin or the operator may name its `coach`).
    With `plan`, people can join it (a sign-up page when `signup`, JOIN `keyword` by SMS)."""
    checked = cohort_name(name)
    word = join_keyword(keyword) if keyword else None
    plan_id = _plan_id(runtime, plan)
    if (word or signup) and plan_id is None:
        raise Invalid("people can join a cohort only when it has a plan: give one")
    with transaction(runtime.engine) as conn:
        owner = _owner(actor, coach)
        # The table's unique name is per coach and exact; this is also case-insensitive
        # and holds for the operator's own (a NULL coach, which SQL does not compare).
        if cohort_rows.find_cohort(conn, coach_id=owner, name=checked) is not None:
            raise _taken(checked, None)
        try:
            with conn.begin_nested():
                cohort = cohort_rows.add_cohort(
                    conn, name=checked, coach_id=owner, now=runtime.clock.now(),
                    plan_id=plan_id, keyword=word,
                    signup_token=secrets.token_urlsafe(12) if signup else None,
                )  # fmt: skip
        except cohort_rows.CohortTaken:
            raise _taken(checked, word) from None
    log.info("cohort added", cohort=cohort.id)
    return cohort


def named(
    conn: Connection, runtime: Runtime, actor: Actor | None, name: str, *, create: bool = True
) -> Cohort:
    """The actor's cohort of that name (case ignored), made when there is none and
    `create`; for use inside the caller's transaction (an import)."""
    checked = cohort_name(name)
    owner = _owner(actor, None)
    found = cohort_rows.find_cohort(conn, coach_id=owner, name=checked)
    if found is not None:
        return found
    if not create:
        raise NotFound(f"no cohort '{checked}'")
    try:
        with conn.begin_nested():
            return cohort_rows.add_cohort(
                conn, name=checked, coach_id=owner, now=runtime.clock.now()
            )
    except cohort_rows.CohortTaken:
        raise _taken(checked, None) from None


@action
def find(runtime: Runtime, ref: str, *, actor: Actor | None = None) -> Cohort:
    """The cohort `ref` names: its id, or its name (case ignored) among the cohorts the
    actor sees: their own first, then, for an admin or the operator, anyone's when only
    one has that name. NotFound otherwise (several of that name: give the id)."""
    text = str(ref).strip()
    with reading(runtime.engine) as conn:
        try:
            return visible_cohort(conn, actor, text)
        except NotFound:
            pass
        own = cohort_rows.find_cohort(conn, coach_id=_owner(actor, None), name=text)
        if own is not None:
            return own
        wanted = text.casefold()
        seen = [c for c in cohort_rows.list_cohorts(conn, coach_id=coach_of(actor))
                if c.name.casefold() == wanted]  # fmt: skip
    if len(seen) == 1:
        return seen[0]
    if len(seen) > 1:
        raise NotFound(f"{len(seen)} cohorts are called '{text[:100]}'; give the id")
    raise NotFound(f"no cohort '{text[:100]}'")


def cohorts(runtime: Runtime, *, actor: Actor | None = None) -> list[Cohort]:
    """The cohorts the actor sees, by name, with how many people each has."""
    with reading(runtime.engine) as conn:
        return cohort_rows.list_cohorts(conn, coach_id=coach_of(actor))


@action
def get(runtime: Runtime, cohort_id: str, *, actor: Actor | None = None) -> Cohort:
    with reading(runtime.engine) as conn:
        return visible_cohort(conn, actor, cohort_id)


UNSET: Any = object()


@action
def change(
    runtime: Runtime,
    cohort_id: str,
    *,
    name: str | None = None,
    plan: str | None = UNSET,
    keyword: str | None = UNSET,
    signup: bool | None = None,
    actor: Actor | None = None,
) -> Cohort:
    """Change the name, the plan people join (None: none), the JOIN keyword (None:
    none) or whether it has a sign-up page (`signup=True` also makes a new page address,
    so an old link shared too widely stops working)."""
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = cohort_name(name)
    if plan is not UNSET:
        values["plan_id"] = _plan_id(runtime, plan)
    if keyword is not UNSET:
        values["keyword"] = join_keyword(keyword) if keyword else None
    if signup is not None:
        values["signup_token"] = secrets.token_urlsafe(12) if signup else None
    with transaction(runtime.engine) as conn:
        before = visible_cohort(conn, actor, cohort_id)
        if "name" in values:
            same = cohort_rows.find_cohort(conn, coach_id=before.coach_id, name=values["name"])
            if same is not None and same.id != before.id:
                raise _taken(values["name"], None)
        plan_id = values.get("plan_id", before.plan_id)
        joinable = values.get("keyword", before.keyword) or values.get(
            "signup_token", before.signup_token
        )
        if joinable and plan_id is None:
            raise Invalid("people can join a cohort only when it has a plan: give one")
        if values:
            try:
                cohort_rows.update_cohort(conn, cohort_id, **values)
            except cohort_rows.CohortTaken:
                raise _taken(values.get("name", before.name), values.get("keyword")) from None
        return cohort_rows.get_cohort(conn, cohort_id)


@action
def add_members(
    runtime: Runtime, cohort_id: str, participant_ids: Sequence[str], *, actor: Actor | None = None
) -> int:
    """Put the participants in the cohort (out of any other); each must be the actor's
    to see, or nothing changes (NotFound names the first that is not). How many."""
    with transaction(runtime.engine) as conn:
        cohort = visible_cohort(conn, actor, cohort_id)
        for pid in participant_ids:
            person = visible_participant(conn, actor, pid)
            if cohort.coach_id is not None and person.coach_id not in (None, cohort.coach_id):
                raise Conflict(f"{person.name} is another coach's participant")
        return cohort_rows.set_cohort(conn, list(dict.fromkeys(participant_ids)), cohort.id)


@dataclass(frozen=True, slots=True)
class CohortEnrolled:
    cohort: Cohort
    plan: str
    enrolled: list[str] = field(default_factory=list)  # enrollment ids
    already: list[str] = field(default_factory=list)  # participant ids already in the plan

    @property
    def summary(self) -> str:
        text = f"{len(self.enrolled)} enrolled in {self.plan}"
        if self.already:
            text += f"; {len(self.already)} already in it, left as they are"
        return text


@action
def enroll(
    runtime: Runtime,
    cohort_id: str,
    plan: str,
    start: Start,
    *,
    actor: Actor | None = None,
) -> CohortEnrolled:
    """Enroll everyone in the cohort in `plan`, from `start`: a date shared by all, or
    "today", each person's own today in their time zone. People already in the plan
    (active or paused) are left as they are and listed. All or nothing, in one
    transaction: a person the plan cannot take (a variable it needs is missing, say)
    stops the whole, and the error names them."""
    chosen = running_plan(runtime, plan)
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        cohort = visible_cohort(conn, actor, cohort_id)
        members = cohort_rows.member_ids(conn, cohort.id)
        if not members:
            raise Invalid(f"cohort '{cohort.name}' has nobody in it yet")
        live = enrollment_rows.live_participants(conn, chosen.id, members)
        done: list[str] = []
        for pid in members:
            if pid in live:
                continue
            person = visible_participant(conn, actor, pid, lock=True)
            try:
                made = enroll_in(conn, runtime, person, chosen, start, {}, now)
            except (Invalid, Conflict) as exc:
                raise type(exc)(f"{person.name} ({person.id}): {exc.message}; nobody was "
                                "enrolled") from None  # fmt: skip
            done.append(made.id)
    log.info("cohort enrolled", cohort=cohort.id, plan=chosen.id, count=len(done))
    return CohortEnrolled(cohort, chosen.id, done, sorted(live))
