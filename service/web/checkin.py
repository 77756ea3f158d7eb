"""One-click check-ins from email and calendar: `/check-in/{token}`.

The token is signed, names one occurrence and expires a week after its window closes
(see `engine.delivery.check_in_url`). GET shows the occurrence and its choices and
changes nothing: mail scanners and link previews open every link they find. Only POST
records, and only while the check-in window is open; a second POST changes the answer
(someone tapped the wrong button), it never counts twice. Every POST is also stored
as a reply, so that the reply log shows link check-ins beside text messages.

A token this server did not sign, or whose occurrence is gone, gets 404; a genuine one
past its expiry gets 410.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, cast
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from service.actions import checkins as recording
from service.actions import wording
from service.actions.errors import NotFound
from service.core.conversation import logged_context
from service.core.plan import CheckIn
from service.core.render import LANGUAGE, Names, Person, RenderError
from service.core.replies import Interpretation, Reply, interpret
from service.core.states import CheckInResult
from service.core.tokens import read_check_in
from service.runtime import Runtime
from service.storage import checkins
from service.storage.checkins import CheckInTarget
from service.storage.db import transaction
from service.web.forms import TooLarge, read_capped, without_control
from service.web.pages import render

router = APIRouter(tags=["check-in"])

MAX_FORM = 8 * 1024
MAX_TEXT = 1000


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


@router.get("/check-in/{token}", response_class=HTMLResponse, include_in_schema=False)
def check_in_page(token: str, request: Request) -> HTMLResponse:
    """The occurrence and its choices; records nothing."""
    runtime = _runtime(request)
    found = _target(runtime, token)
    if isinstance(found, HTMLResponse):
        return found
    return _page(runtime, found, runtime.clock.now())


@router.post("/check-in/{token}", response_class=HTMLResponse, include_in_schema=False)
async def check_in(token: str, request: Request) -> HTMLResponse:
    """Record the choice sent by the page's form."""
    runtime = _runtime(request)
    try:
        body = await read_capped(request, MAX_FORM)
    except TooLarge:
        return _message("Too much text", "That was more than a check-in can hold.", 413)
    try:
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return _message("Not understood", "The form could not be read.", 400)
    return await run_in_threadpool(_record, runtime, token, form)


def _record(runtime: Runtime, token: str, form: dict[str, str]) -> HTMLResponse:
    found = _target(runtime, token)
    if isinstance(found, HTMLResponse):
        return found
    now = runtime.clock.now()
    spec = recording.check_in_spec(runtime, found)
    if not recording.is_open(found, now):
        return _page(runtime, found, now, status_code=409)
    reading = _reading(form, spec)
    if isinstance(reading, str):
        return _page(runtime, found, now, error=reading, status_code=400)
    try:
        result = recording.check_in_by_link(runtime, found.occurrence_id, reading)
    except NotFound:
        return _not_found()
    target, title, updated, done = result.target, result.title, result.updated, result.progress
    if done is None:
        return _page(runtime, target, now, status_code=409)
    logged = _confirmation(runtime, target, reading, title, updated, done)
    return _page(runtime, target, now, logged=logged)


def _target(runtime: Runtime, token: str) -> CheckInTarget | HTMLResponse:
    link = read_check_in(runtime.secret, token)
    if link is None:
        return _not_found()
    with transaction(runtime.engine) as conn:
        target = checkins.check_in_target(conn, link.occurrence_id)
    if target is None:
        return _not_found()
    if link.expired(runtime.clock.now()):
        return _message(
            "This link has expired",
            "Check-in links work for a week after the practice. Nothing was recorded.",
            410,
        )
    return target


def _reading(form: dict[str, str], spec: CheckIn) -> Interpretation | str:
    """What the form says, checked against what the practice asks; or what is wrong."""
    outcome = form.get("outcome", "")
    if "rating" in form and not outcome:
        outcome = "rating"
    reply: Reply
    if outcome == "done":
        reply = Reply("done")
    elif outcome == "skipped":
        reply = Reply("skipped")
    elif outcome in ("rating", "number"):
        raw = form.get(outcome, "").strip().replace(",", ".")
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            return "Please give a number." if raw == "" else f"'{raw[:40]}' is not a number."
        reply = Reply("number", number=number, text=raw)
    elif outcome == "text":
        text = without_control(form.get("text", "")).strip()
        if not text:
            return "Please write a few words, or choose 'I skipped it'."
        if len(text) > MAX_TEXT:
            return f"Please keep it under {MAX_TEXT} characters."
        reply = Reply("text", text=text)
    else:
        return "Please choose one of the buttons."
    if spec.kind == "none":
        return "This practice asks for no check-in."
    found = interpret(reply, spec.kind, spec.scale, spec.unit)
    if not found.applies:
        return f"That did not fit: {found.reason}."
    return found


def _current(target: CheckInTarget, spec: CheckIn) -> str | None:
    if target.check_in not in checkins.ANSWERED:
        return None
    if target.check_in == CheckInResult.SKIPPED:
        return "skipped"
    if target.check_in_value is not None and spec.kind == "rating":
        high = (spec.scale or (1, 5))[1]
        return f"done, {recording.number_text(target.check_in_value)} of {high}"
    if target.check_in_value is not None:
        unit = f" {target.check_in_unit}" if target.check_in_unit else ""
        return f"done, {recording.number_text(target.check_in_value)}{unit}"
    if target.check_in_text:
        return f"done: \u201c{target.check_in_text}\u201d"
    return "done"


def _confirmation(
    runtime: Runtime,
    target: CheckInTarget,
    found: Interpretation,
    title: str,
    updated: bool,
    done: recording.Progress,
) -> str:
    """The same words an SMS check-in gets back."""
    person = Person(target.participant.name)
    spec = recording.check_in_spec(runtime, target)
    context: dict[str, Any] = {
        **logged_context(found, title, spec.scale, updated=updated),
        "participant": Names("participant", {"name": person.name, "first_name": person.first_name}),
        "streak": done.streak,
        "done_total": done.done_total,
        LANGUAGE: wording.language_of(runtime, target.participant),
    }
    try:
        return runtime.catalog.renderer.answer("logged", context)
    except RenderError:
        return "Updated." if updated else "Logged. Thank you."


def _page(
    runtime: Runtime,
    target: CheckInTarget,
    now: datetime,
    *,
    error: str | None = None,
    logged: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    spec = recording.check_in_spec(runtime, target)
    zone = ZoneInfo(target.participant.timezone)
    state = (
        "open"
        if recording.is_open(target, now)
        else ("early" if now < target.instant else "closed")
    )
    return render(
        "check_in.html",
        status_code=status_code,
        title=recording.title_of(runtime, target),
        when=_when(target.instant, zone),
        kind=spec.kind,
        scale=list(spec.scale or (1, 5)),
        unit=spec.unit,
        question=spec.question,
        state=state,
        current=_current(target, spec),
        opens=f"at {_when(target.instant, zone)}",
        closes=f"at {_when(target.window_end, zone)}",
        error=error,
        logged=logged,
    )


def _when(instant: datetime, zone: ZoneInfo) -> str:
    local = instant.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B}, {local:%H:%M}"


def _message(title: str, text: str, status_code: int) -> HTMLResponse:
    return render("message.html", status_code=status_code, title=title, text=text)


def _not_found() -> HTMLResponse:
    return _message("Not found", "This link does not work.", 404)
