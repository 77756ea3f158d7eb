"""`/api/cohorts`: named groups of a coach's participants. List, add, read and change
them, put people in one, and enroll a whole cohort in a plan at once (all or nobody).

Every route is an action of `service.actions.cohorts`. A coach's token sees only their
own cohorts: another coach's is a 404 with the very words a missing one gets.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from service.actions import cohorts as groups
from service.core.plan import ID_PATTERN
from service.runtime import Runtime
from service.storage.cohorts import Cohort
from service.web.api.common import (
    ID_TEXT,
    ActorDep,
    Limit,
    Offset,
    RuntimeDep,
    answering,
    responses,
)
from service.web.api.schemas import Page, StartText

router = APIRouter(tags=["cohorts"])

CohortId = Annotated[
    str, Path(pattern=ID_TEXT, description="A cohort's id, such as h_k3m9x2q7hv4d.")
]
CohortName = Annotated[
    str,
    Field(min_length=1, max_length=groups.MAX_COHORT_NAME, description="The cohort's name.",
          examples=["Spring sleep group"]),
]  # fmt: skip
PlanRef = Annotated[
    str,
    Field(pattern=ID_PATTERN, description="The plan people who join are enrolled in.",
          examples=["sleep-hygiene"]),
]  # fmt: skip
Keyword = Annotated[
    str,
    Field(min_length=1, max_length=30, examples=["SLEEP"],
          description="People join by texting JOIN and this word (2 to 20 letters or "
          "digits; not a word participants text for something else, like STOP)."),
]  # fmt: skip


class CohortCreate(BaseModel):
    """A new cohort (as `tend cohorts add`). With a `plan`, people can join it: by its
    sign-up page (`signup`) or by texting JOIN `keyword`."""

    model_config = ConfigDict(extra="forbid")

    name: CohortName
    plan: PlanRef | None = None
    keyword: Keyword | None = None
    signup: bool = Field(False, description="Give it a sign-up page.")


class CohortUpdate(BaseModel):
    """Changes to a cohort: only the fields given change. `plan` or `keyword` null
    removes it; `signup` true gives it a sign-up page at a new address (an old link
    stops working), false takes it away."""

    model_config = ConfigDict(extra="forbid")

    name: CohortName | SkipJsonSchema[None] = None
    plan: PlanRef | None = None
    keyword: Keyword | None = None
    signup: bool | SkipJsonSchema[None] = None


class CohortMembers(BaseModel):
    """People to put in the cohort (out of any other they were in)."""

    model_config = ConfigDict(extra="forbid")

    participants: list[Annotated[str, Field(pattern=ID_TEXT)]] = Field(
        min_length=1, max_length=2000, description="Participant ids.",
        examples=[["p_k3m9x2q7hv4d"]],
    )  # fmt: skip


class CohortEnroll(BaseModel):
    """Enroll everyone in the cohort in a plan (as `tend cohorts enroll`)."""

    model_config = ConfigDict(extra="forbid")

    plan: str = Field(pattern=ID_PATTERN, description="The plan's id.", examples=["sleep-hygiene"])
    start: StartText = Field(
        "today",
        description="The first day for everyone (YYYY-MM-DD), or `today`: each person's "
        "own today in their time zone.",
    )


class CohortOut(BaseModel):
    id: str
    name: str
    coach: str | None = Field(description="The id of the coach who owns it (null: none).")
    members: int = Field(description="How many participants are in it.")
    plan: str | None = Field(description="The plan people who join are enrolled in.")
    keyword: str | None = Field(description="JOIN and this word, texted to Tend, joins it.")
    signup_url: str | None = Field(description="Its sign-up page (null: none).")
    created_at: datetime


class CohortPage(Page[CohortOut]):
    total: int = Field(description="How many cohorts there are, over all pages.")


class CohortEnrolledOut(BaseModel):
    cohort: str
    plan: str
    enrolled: list[str] = Field(description="The ids of the new enrollments.")
    already: list[str] = Field(
        description="The ids of the participants already in the plan (left as they were)."
    )


def cohort_out(runtime: Runtime, cohort: Cohort) -> CohortOut:
    token = cohort.signup_token
    return CohortOut(
        id=cohort.id,
        name=cohort.name,
        coach=cohort.coach_id,
        members=cohort.members,
        plan=cohort.plan_id,
        keyword=cohort.keyword,
        signup_url=f"{runtime.settings.public_base}/join/{token}" if token else None,
        created_at=cohort.created_at,
    )


@router.get("/cohorts", response_model=CohortPage, summary="List cohorts")
def list_cohorts(
    runtime: RuntimeDep, actor: ActorDep, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """The cohorts the token's account sees (a coach's own; an admin's: all), by name,
    with how many people each has."""
    found = groups.cohorts(runtime, actor=actor)
    items = [cohort_out(runtime, c) for c in found[offset : offset + limit]]
    return CohortPage(items=items, total=len(found), limit=limit, offset=offset)


@router.post(
    "/cohorts",
    response_model=CohortOut,
    status_code=201,
    summary="Add a cohort",
    responses=responses(400, 404, 409),
)
def create_cohort(body: CohortCreate, runtime: RuntimeDep, actor: ActorDep) -> Any:
    """As `tend cohorts add`: the token's account owns it. 409 when the account has a
    cohort of that name or another has the keyword; 404 for a plan that is not published."""
    with answering():
        made = groups.create(
            runtime,
            name=body.name,
            plan=body.plan,
            keyword=body.keyword,
            signup=body.signup,
            actor=actor,
        )
    return cohort_out(runtime, made)


@router.get(
    "/cohorts/{cohort_id}",
    response_model=CohortOut,
    summary="Read a cohort",
    responses=responses(404),
)
def get_cohort(cohort_id: CohortId, runtime: RuntimeDep, actor: ActorDep) -> Any:
    with answering():
        return cohort_out(runtime, groups.get(runtime, cohort_id, actor=actor))


@router.patch(
    "/cohorts/{cohort_id}",
    response_model=CohortOut,
    summary="Change a cohort",
    responses=responses(400, 404, 409),
)
def update_cohort(
    cohort_id: CohortId, body: CohortUpdate, runtime: RuntimeDep, actor: ActorDep
) -> Any:
    """Only the fields given change (as `tend cohorts set`)."""
    given = body.model_fields_set
    keep = ("plan", "keyword")
    changes: dict[str, Any] = {key: getattr(body, key) for key in keep if key in given}
    with answering():
        changed = groups.change(
            runtime, cohort_id, name=body.name, signup=body.signup, actor=actor, **changes
        )
    return cohort_out(runtime, changed)


@router.post(
    "/cohorts/{cohort_id}/members",
    response_model=CohortOut,
    summary="Put participants in a cohort",
    responses=responses(404, 409),
)
def add_members(
    cohort_id: CohortId, body: CohortMembers, runtime: RuntimeDep, actor: ActorDep
) -> Any:
    """Each must be the token's account's to see, or nobody moves (404 names the first
    that is not)."""
    with answering():
        groups.add_members(runtime, cohort_id, body.participants, actor=actor)
        return cohort_out(runtime, groups.get(runtime, cohort_id, actor=actor))


def parse_start(text: str) -> date | Literal["today"]:
    return "today" if text == "today" else date.fromisoformat(text)


@router.post(
    "/cohorts/{cohort_id}/enroll",
    response_model=CohortEnrolledOut,
    summary="Enroll a whole cohort in a plan",
    responses=responses(400, 404, 409),
)
def enroll_cohort(
    cohort_id: CohortId, body: CohortEnroll, runtime: RuntimeDep, actor: ActorDep
) -> Any:
    """Everyone in the cohort, in one transaction: one person the plan cannot take (a
    variable it needs is missing, say) and nobody is enrolled (400, naming them).
    People already in the plan are left as they are and listed in `already`."""
    with answering():
        done = groups.enroll(runtime, cohort_id, body.plan, parse_start(body.start), actor=actor)
    return CohortEnrolledOut(
        cohort=done.cohort.id, plan=done.plan, enrolled=done.enrolled, already=done.already
    )
