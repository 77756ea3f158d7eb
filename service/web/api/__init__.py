"""The JSON API under `/api`: what the coach's dashboard does, for other programs.

Any account's API token (`tend coaches token`) or TEND_ADMIN_TOKEN, as a bearer token
(`auth.require_actor`). A coach's token sees and acts on only that coach's participants
and what hangs off them: lists, filters and totals leave the others out, and another
coach's participant or enrollment is a 404 with the very words a missing one gets
(`service.actions.access`). Admin accounts and the operator see everyone; publishing a
plan (it moves every coach's enrollments) and handing a participant to a coach are
theirs only (403 for a coach).

Participants (create, read, update, list with filters; their calendar feed URL, a new
one, a test message, their consent log), enrollments (create, pause, resume, cancel),
plans (list, read, preview), replies, the consent log and adherence (the report's JSON,
exactly as `tend report --format json` prints it). One module per resource; the models
are in `schemas`, what they share in `common`.

Every body is a pydantic model that refuses unknown keys; every answer has a
response model, so that `/openapi.json` describes what the API really does. Input the
schema cannot express (a phone number, a time zone, a variable's time) is checked by
the models and refused with 422, like any other shape error; ids that name nothing get
404; a request that the current state forbids (a second enrollment in the same plan,
pausing a cancelled enrollment, a test SMS to someone who opted out) gets 409; other
bad values 400. Errors other than 422 are `{"detail": "..."}`, written for a person.
A channel that fails to send a test message gets 502: that is not the caller's fault.

Routes only parse and present: what they do is an action (`service.actions`), whose
refusal becomes the answer's status (`common.answering`). They are plain functions
(`def`), so that FastAPI runs their database work in its thread pool.
"""

from __future__ import annotations

from fastapi import APIRouter

from service.web.api import (
    cohorts,
    data_rights,
    enrollments,
    imports,
    participants,
    plans,
    records,
)
from service.web.api.common import DEPENDENCIES, UNAUTHORISED

RESOURCES = (
    imports.router,  # first: /participants/import before /participants/{participant_id}
    participants.router,
    enrollments.router,
    plans.router,
    records.router,
    data_rights.router,
    cohorts.router,
)

router = APIRouter(prefix="/api", dependencies=DEPENDENCIES, responses=UNAUTHORISED)
for resource in RESOURCES:
    router.include_router(resource)

__all__ = ["RESOURCES", "router"]
