"""The dashboard's cohorts: `/dashboard/cohorts` (the list, and a form to add one) and
`/dashboard/cohorts/{id}` (its members; putting people in it; enrolling everyone in a
plan at once; its plan, JOIN keyword and sign-up page, whose link is shown with a copy
button and a QR code drawn as inline SVG).

Sessions, CSRF, the audit log and the pages are `service.web.dashboard`'s, reused here.
Every page and form is scoped like the rest: a coach sees and changes only their own
cohorts, and another coach's is the same 404 page as a missing one. What each form
does is an action of `service.actions.cohorts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal
from urllib.parse import quote

import segno
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from service.actions import cohorts as groups
from service.actions.coaches import Actor
from service.actions.errors import ActionError
from service.core.records import Participant
from service.runtime import Runtime
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.cohorts import Cohort
from service.storage.db import NotFound, reading
from service.web.dashboard import (
    Id,
    _not_found,
    _posted,
    _redirect,
    _render,
    _runtime,
    _sentence,
    _to_login,
    _viewer,
)

router = APIRouter(prefix="/dashboard", include_in_schema=False)

# The members form has a checkbox per person who could join: room for a few thousand.
MAX_MEMBERS_FORM = 256 * 1024
MEMBER_FIELD = "member:"


def signup_url(runtime: Runtime, cohort: Cohort) -> str | None:
    token = cohort.signup_token
    return f"{runtime.settings.public_base}/join/{token}" if token else None


def qr_svg(url: str) -> Markup:
    """The URL as a QR code: an inline SVG that scales (a viewBox, no fixed size)."""
    code = segno.make(url, error="m")
    svg = code.svg_inline(
        scale=1, border=2, omitsize=True, svgclass="qr", dark="#1f2d28", light="#fff",
        title=f"QR code of {url}",
    )  # fmt: skip
    return Markup(svg)  # segno's own markup; it escapes the URL in the title


@dataclass(frozen=True, slots=True)
class Member:
    participant: Participant
    plans: str  # "calm (active), sleep (paused)" or "-"


def _members(runtime: Runtime, actor: Actor, cohort: Cohort) -> tuple[list[Member], list[Any]]:
    """The cohort's members with their enrollments, and the actor's people not in it."""
    with reading(runtime.engine) as conn:
        everyone = participant_rows.list_participants(conn, coach_id=actor.coach_id)
        inside = [p for p in everyone if p.cohort_id == cohort.id]
        briefs = enrollment_rows.enrollment_briefs(conn, [p.id for p in inside])
    plans: dict[str, list[str]] = {}
    for row in briefs:
        plans.setdefault(row.participant_id, []).append(f"{row.plan_id} ({row.status})")
    inside.sort(key=lambda p: (p.name.casefold(), p.id))
    members = [Member(p, ", ".join(plans.get(p.id, [])) or "-") for p in inside]
    outside = sorted((p for p in everyone if p.cohort_id != cohort.id),
                     key=lambda p: (p.name.casefold(), p.id))  # fmt: skip
    return members, outside


# --- pages -----------------------------------------------------------------------------


@router.get("/cohorts", response_class=HTMLResponse)
def cohorts_page(request: Request) -> Response:
    session = _viewer(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    found = groups.cohorts(runtime, actor=session.actor)
    return _render(
        request,
        "dashboard/cohorts.html",
        session,
        title="Cohorts",
        section="cohorts",
        cohorts=found,
        links={c.id: signup_url(runtime, c) for c in found},
        plans=sorted(runtime.plans.all().values(), key=lambda p: p.title.casefold()),
    )


@router.get("/cohorts/{cohort_id}", response_class=HTMLResponse)
def cohort_page(request: Request, cohort_id: Id) -> Response:
    session = _viewer(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    try:
        cohort = groups.get(runtime, cohort_id, actor=session.actor)
    except NotFound:
        return _not_found(request, session, "cohort")
    members, outside = _members(runtime, session.actor, cohort)
    link = signup_url(runtime, cohort)
    return _render(
        request,
        "dashboard/cohort.html",
        session,
        title=cohort.name,
        section="cohorts",
        cohort=cohort,
        members=members,
        outside=outside,
        link=link,
        qr=qr_svg(link) if link else None,
        plans=sorted(runtime.plans.all().values(), key=lambda p: p.title.casefold()),
        here=f"/dashboard/cohorts/{quote(cohort.id)}",
        today=runtime.clock.now().date().isoformat(),
    )


# --- forms -----------------------------------------------------------------------------


def _plan(text: str | None) -> str | None:
    return (text or "").strip() or None


@router.post("/cohorts", response_class=HTMLResponse)
async def add_cohort(request: Request) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    runtime = _runtime(request)
    try:
        made = await run_in_threadpool(
            lambda: groups.create(
                runtime,
                name=form.get("name", ""),
                plan=_plan(form.get("plan")),
                keyword=_plan(form.get("keyword")),
                signup=form.get("signup") == "on",
                actor=session.actor,
            )
        )
    except ActionError as exc:
        return _redirect(request, "/dashboard/cohorts", f"Not added: {exc}.", "error")
    return _redirect(request, f"/dashboard/cohorts/{quote(made.id)}", f"Added {made.name}.")


@router.post("/cohorts/{cohort_id}/settings", response_class=HTMLResponse)
async def cohort_settings(request: Request, cohort_id: Id) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    runtime = _runtime(request)
    here = f"/dashboard/cohorts/{quote(cohort_id)}"

    def change() -> Cohort:
        before = groups.get(runtime, cohort_id, actor=session.actor)
        wanted = form.get("signup") == "on"
        new_address = form.get("new_address") == "on"
        # Saving the form as it was keeps the sign-up page's address; a new one on asking.
        signup = wanted if wanted != bool(before.signup_token) or new_address else None
        return groups.change(
            runtime,
            cohort_id,
            name=form.get("name") or None,
            plan=_plan(form.get("plan")),
            keyword=_plan(form.get("keyword")),
            signup=signup,
            actor=session.actor,
        )

    try:
        after = await run_in_threadpool(change)
    except NotFound as exc:
        if str(exc).startswith("no cohort"):
            return _not_found(request, session, "cohort")
        return _redirect(request, here, f"Nothing changed: {exc}.", "error")  # a plan
    except ActionError as exc:
        return _redirect(request, here, f"Nothing changed: {exc}.", "error")
    return _redirect(request, here, f"Saved {after.name}.")


@router.post("/cohorts/{cohort_id}/members", response_class=HTMLResponse)
async def cohort_members(request: Request, cohort_id: Id) -> Response:
    posted = await _posted(request, MAX_MEMBERS_FORM)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    runtime = _runtime(request)
    here = f"/dashboard/cohorts/{quote(cohort_id)}"
    chosen = [key.removeprefix(MEMBER_FIELD) for key in form if key.startswith(MEMBER_FIELD)]
    try:
        if not chosen:
            await run_in_threadpool(lambda: groups.get(runtime, cohort_id, actor=session.actor))
            return _redirect(request, here, "Nobody was chosen: tick the people to add.", "error")
        count = await run_in_threadpool(
            lambda: groups.add_members(runtime, cohort_id, chosen, actor=session.actor)
        )
    except NotFound as exc:
        if not str(exc).startswith("no cohort"):  # a person the coach may not see
            return _redirect(request, here, f"Nobody was added: {exc}.", "error")
        return _not_found(request, session, "cohort")
    except ActionError as exc:
        return _redirect(request, here, f"Nobody was added: {exc}.", "error")
    return _redirect(request, here, f"Added {count} {'person' if count == 1 else 'people'}.")


@router.post("/cohorts/{cohort_id}/enroll", response_class=HTMLResponse)
async def cohort_enroll(request: Request, cohort_id: Id) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    runtime = _runtime(request)
    here = f"/dashboard/cohorts/{quote(cohort_id)}"
    start: date | Literal["today"] = "today"
    if form.get("when") == "date":
        try:
            start = date.fromisoformat(form.get("start", ""))
        except ValueError:
            return _redirect(request, here, "Nobody was enrolled: choose a start date.", "error")
    try:
        done = await run_in_threadpool(
            lambda: groups.enroll(runtime, cohort_id, form.get("plan", ""), start,
                                  actor=session.actor)
        )  # fmt: skip
    except NotFound as exc:
        if str(exc).startswith("no cohort"):
            return _not_found(request, session, "cohort")
        return _redirect(request, here, f"Nobody was enrolled: {exc}.", "error")
    except ActionError as exc:
        return _redirect(request, here, f"Nobody was enrolled: {exc}.", "error")
    return _redirect(request, here, _sentence(done.summary))
