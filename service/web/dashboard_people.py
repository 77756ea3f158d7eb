"""The dashboard's form to add one person, `/dashboard/people/new`, and the form on a
person's page that changes their own settings, `/dashboard/participants/{id}/settings`.

A coach types a name, a mobile number (with its country code), an email if they like,
a time zone (the browser's guess fills an empty field: `/dashboard/static/dashboard.js`,
as the page's policy lets in no inline script), the language of their texts (or the
deployment's), whether their texts are discreet (they never name the practice), their
quiet hours (blank: the deployment's), one of the coach's cohorts, and, if they like, a
plan to enroll them in from a date or from each person's own today, with the plan's
variables as `name=HH:MM` lines.

The settings form is `actions.participants.update` with the language, discreet and
quiet hours: the person's page again, with what was saved or why nothing was.

What the form does is `actions.participants.create` (source "dashboard": the consent
log records the coach's word that the person agreed) and then, with a plan,
`actions.enrollments.enroll`, the same actions as the command line and the API. A
refusal comes back as the form with its message and everything typed (400; 409 when
the present state forbids it, such as a number already in Tend). When the person was
added but the enrollment was refused, the person's page says so: they are in Tend, in
no plan, and nothing is texted to them.

Sessions, CSRF, the same-site check, the audit log and the pages are
`service.web.dashboard`'s.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from service.actions import cohorts as groups
from service.actions import enrollments as enrolling
from service.actions import participants as people
from service.actions.enrollments import Start
from service.actions.errors import ActionError, Conflict
from service.core import quiet
from service.core.language import NAMES
from service.core.language import base as base_language
from service.core.plan import Plan
from service.core.records import Participant
from service.storage.db import NotFound
from service.web import dashboard_data as data
from service.web.dashboard import (
    Id,
    _back,
    _not_found,
    _posted,
    _redirect,
    _render,
    _runtime,
    _sentence,
    _to_login,
    _viewer,
)
from service.web.pages import zone_names
from service.web.session import Session

router = APIRouter(prefix="/dashboard", include_in_schema=False)

HERE = "/dashboard/people/new"
MAX_PEOPLE_FORM = 16 * 1024  # the variables' lines make it longer than most forms
FIELDS = ("name", "phone", "email", "timezone", "language", "discreet", "quiet_hours",
          "cohort", "plan", "when", "start", "variables")  # fmt: skip


def _settings(form: dict[str, str]) -> dict[str, Any]:
    """The language, discreet and quiet hours fields of a form, for the action (blank:
    the deployment's)."""
    return {
        "language": form.get("language", "").strip() or None,
        "discreet": form.get("discreet", "") not in ("", "off"),
        "quiet_hours": form.get("quiet_hours", "").strip() or None,
    }


# Control characters (NUL...) are never written back into a page; the rest of what was
# typed is, up to a length no field of the form needs.
_CONTROLS = dict.fromkeys(c for c in range(32) if chr(c) not in "\t\n\r")
MAX_SHOWN = 1000


def _shown(text: str, limit: int = MAX_SHOWN) -> str:
    return text[:limit].translate(_CONTROLS)


class _Unparsed(ValueError):
    """A field the form could not read as what it asks for (said to the coach)."""


def _variables(text: str) -> dict[str, str]:
    """`name=HH:MM` lines as a mapping (blank lines ignored); the action checks them."""
    found: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or not value.strip():
            shown = line.strip()[:40]
            raise _Unparsed(
                f"write the plan's variables one a line as name=HH:MM, such as wake=06:30, "
                f"not '{shown}'"
            )
        found[key.strip()] = value.strip()
    return found


def _start(form: dict[str, str]) -> Start:
    if form.get("when") != "date":
        return "today"
    try:
        return date.fromisoformat(form.get("start", "").strip())
    except ValueError:
        raise _Unparsed("choose a start date, or start on each person's own today") from None


def _defaults(plan: Plan) -> str:
    """The plan's variables and their defaults: "wake=07:00, bedtime=wake + 15h"."""
    return ", ".join(f"{name}={value}" for name, value in plan.variables.items())


def _page(
    request: Request,
    session: Session,
    status_code: int = 200,
    *,
    form: dict[str, str] | None = None,
    error: str | None = None,
) -> HTMLResponse:
    runtime = _runtime(request)
    plans = sorted(runtime.plans.all().values(), key=lambda p: p.title.casefold())
    # The cohorts a new person of this actor's can join: their own (for an admin, the
    # ones without a coach, as a person an admin adds has none).
    mine = [
        c
        for c in groups.cohorts(runtime, actor=session.actor)
        if c.coach_id == session.actor.coach_id
    ]
    typed = {
        key: _shown((form or {}).get(key, ""), MAX_PEOPLE_FORM if key == "variables" else MAX_SHOWN)
        for key in FIELDS
    }
    typed["discreet"] = "" if typed["discreet"] in ("", "off") else "on"
    typed["when"] = "date" if typed["when"] == "date" else "today"
    return _render(
        request,
        "dashboard/person_new.html",
        session,
        status_code,
        title="Add a person",
        section="overview",
        form=typed,
        error=_shown(error, MAX_PEOPLE_FORM) if error else None,
        zones=zone_names(),
        languages=data.language_choices(runtime.settings.default_language),
        discreet_hint=data.DISCREET_HINT,
        quiet_hint=data.quiet_hint(runtime.settings.quiet_hours),
        cohorts=mine,
        plans=plans,
        defaults={p.id: _defaults(p) for p in plans if p.variables},
        today=runtime.clock.now().date().isoformat(),
    )


@router.get("/people/new", response_class=HTMLResponse)
def new_person_page(request: Request) -> Response:
    session = _viewer(request)
    if session is None:
        return _to_login(request)
    return _page(request, session)


@router.post("/people/new", response_class=HTMLResponse)
async def add_person(request: Request) -> Response:
    posted = await _posted(request, MAX_PEOPLE_FORM)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    runtime = _runtime(request)

    def again(message: str, status_code: int = 400) -> HTMLResponse:
        return _page(request, session, status_code, form=form,
                     error=f"Nobody was added: {message}.")  # fmt: skip

    def perform() -> Response:
        plan_id = form.get("plan", "").strip()
        try:
            variables = _variables(form.get("variables", ""))
            start = _start(form) if plan_id else "today"
        except _Unparsed as exc:
            return again(str(exc))
        try:
            # The plan first: a plan that is not published adds nobody.
            plan = enrolling.running_plan(runtime, plan_id) if plan_id else None
            person = people.create(
                runtime,
                name=form.get("name", ""),
                timezone=form.get("timezone", ""),
                phone=form.get("phone", "").strip() or None,
                email=form.get("email", "").strip() or None,
                variables=variables,
                actor=session.actor,
                source="dashboard",
                cohort=form.get("cohort", "").strip() or None,
                **_settings(form),
            )
        except ActionError as exc:
            return again(exc.message, 409 if isinstance(exc, Conflict) else 400)
        page = f"/dashboard/participants/{quote(person.id)}"
        if plan is None:
            return _redirect(
                request, page, f"Added {person.name}. They are in no plan yet: nothing is "
                "sent to them until they are.",
            )  # fmt: skip
        try:
            enrollment = enrolling.enroll(runtime, person.id, plan, start, {},
                                          actor=session.actor)  # fmt: skip
        except ActionError as exc:
            return _redirect(
                request,
                page,
                f"Added, but not enrolled in {plan.title}: {_sentence(exc.message)} They "
                "are in Tend, in no plan, and nothing is sent to them until they are.",
                "error",
            )
        begins = enrollment.start_date.isoformat()
        return _redirect(
            request,
            page,
            f"Added {person.name} and enrolled them in {plan.title} from {begins}. Their "
            "first text is the confirmation; the reminders follow it.",
        )

    return await run_in_threadpool(perform)


# --- a person's own settings, on their page ----------------------------------------------


def _saved(person: Participant, runtime_default: str, default_quiet: str | None) -> str:
    """What the settings are now, said once they were saved."""

    def named(tag: str) -> str:
        found = NAMES.get(base_language(tag))
        return f"{found} ({tag})" if found else tag

    language = (
        named(person.language) if person.language else f"the default, {named(runtime_default)}"
    )
    if person.quiet_hours == quiet.OFF:
        hours = "no quiet hours"
    elif person.quiet_hours:
        hours = f"quiet hours {person.quiet_hours}"
    else:
        hours = f"the default quiet hours ({default_quiet or 'none'})"
    discreet = "discreet texts" if person.discreet else "texts that name the practice"
    return f"Saved {person.name}'s settings: texts in {language}, {discreet}, {hours}."


@router.post("/participants/{participant_id}/settings", response_class=HTMLResponse)
async def change_settings(request: Request, participant_id: Id) -> Response:
    """The person's language, discreet texts and quiet hours, as the form has them."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    runtime = _runtime(request)
    back = _back(form, f"/dashboard/participants/{quote(participant_id)}")
    try:
        person = await run_in_threadpool(
            lambda: people.update(runtime, participant_id, _settings(form), actor=session.actor)
        )
    except NotFound:
        return _not_found(request, session, "participant")
    except ActionError as exc:
        return _redirect(request, back, f"Nothing changed: {exc}.", "error")
    current = runtime.settings
    return _redirect(request, back, _saved(person, current.default_language, current.quiet_hours))
