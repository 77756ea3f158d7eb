"""The coach dashboard: `/dashboard`, server-rendered pages behind a login.

Coaches and admins sign in with their account's email and password (`actions.coaches`:
throttled, one message for every refusal); an account's password is first set through
the one-time link `tend coaches add` prints (`/dashboard/set-password/{secret}`, public:
the link's secret is the credential). The operator signs in with the admin token
(TEND_ADMIN_TOKEN, compared in constant time); with none configured (development on a
laptop), only this machine (loopback) may, and only this machine may use that session.
Logging out ends an account's every session (its session version moves on).

A coach's session sees and acts on only their own participants, everywhere: the
overview, participant and plan pages, the outbox, every action (another coach's
participant or enrollment is the same 404 as a missing one). Admins and the operator
see everyone, and have the accounts and audit-log pages (a coach gets a 404 there).
Every sign-in, every page read and every POST is on the audit log.

The session cookie, the CSRF tokens and the message shown once after a POST are
`service.web.session`'s. Every form that changes something is a POST carrying the CSRF
token, and is refused when the browser says it comes from another site. After a POST
the browser is redirected (303) to a page that shows what was done, once. Pages are
rendered by the one environment of `service.web.pages`, are never cached and load
nothing from elsewhere: the only script is the small one served by
`/dashboard/static/dashboard.js` (copy buttons, a confirmation before rotating a feed or
ending an enrollment, the plan editor's line numbers, a guess of the time zone); everything
works without it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.actions import coaches as accounts
from service.actions import enrollments as enrolling
from service.actions import messages
from service.actions import participants as people
from service.actions import plans as publishing
from service.actions.errors import ActionError, Conflict
from service.core.diagnostics import Diagnostic
from service.logging import mask
from service.runtime import Runtime
from service.storage.db import NotFound
from service.web import dashboard_data as data
from service.web.auth import from_loopback, host_allowed, token_valid
from service.web.forms import TooLarge, read_capped
from service.web.pages import PRIVATE_HEADERS, render
from service.web.session import (
    Session,
    clear_flash,
    csrf_valid,
    end_session,
    read_flash,
    read_session,
    same_site,
    set_flash,
    start_session,
)

router = APIRouter(prefix="/dashboard", include_in_schema=False)

MAX_FORM = 4 * 1024
# The editor's form: a plan's text (at most publishing.MAX_PLAN_BYTES) form-encoded.
MAX_PLAN_FORM = 4 * publishing.MAX_PLAN_BYTES
SCRIPT_PATH = "/dashboard/static/dashboard.js"
RECENT_REPLIES = 20  # on a participant's page; older ones are folded away

HEADERS = {
    **PRIVATE_HEADERS,
    # Not no-referrer: under it, browsers send `Origin: null` with a form, which could
    # not be told from another site's. Nothing secret is in a dashboard URL, and the
    # referrer still never leaves this site.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


# Ids in paths: what Tend makes (p_..., e_..., plan ids); anything else is refused
# before it reaches a database (PostgreSQL refuses a NUL in text with an error).
Id = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


def _safe_next(target: str | None, default: str = "/dashboard") -> str:
    """Only a path of the dashboard itself: never another site."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or target.startswith("//"):
        return default
    if parts.path != "/dashboard" and not parts.path.startswith("/dashboard/"):
        return default
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        return default
    return target


# --- responses --------------------------------------------------------------------------


def _redirect(
    request: Request, target: str, text: str | None = None, kind: str = "ok"
) -> RedirectResponse:
    """303 to `target`, with a message to show there once."""
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    if text:
        set_flash(response, _runtime(request), text, kind)
    return response


def _to_login(request: Request, then: str | None = None) -> RedirectResponse:
    """To the login page, and back to this page (or `then`) after it."""
    here = then or request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(
        f"/dashboard/login?{urlencode({'next': _safe_next(here)})}",
        status_code=303,
        headers={"Cache-Control": "no-store"},
    )


def _render(
    request: Request,
    name: str,
    session: Session | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    runtime = _runtime(request)
    response = render(
        name,
        status_code,
        headers=HEADERS,
        session=session,
        csrf=session.csrf if session else "",
        flash=read_flash(request),
        outbox=session is not None and data.outbox_in_use(runtime),
        script=SCRIPT_PATH,
        section=context.pop("section", ""),
        **context,
    )
    clear_flash(request, response)
    return response


def _message(
    request: Request, session: Session | None, title: str, text: str, status_code: int
) -> HTMLResponse:
    return _render(request, "dashboard/message.html", session, status_code,
                   title=title, text=text)  # fmt: skip


def _viewer(request: Request) -> Session | None:
    """The session of a request for a page, put on the audit log (what was read, and the
    id it is about), or None: then the page sends the browser to sign in."""
    session = read_session(request)
    if session is not None:
        _audit(request, session)
    return session


def _stale_form(request: Request, session: Session) -> HTMLResponse:
    """The answer to a form whose CSRF token is missing or not this session's (403)."""
    return _message(
        request,
        session,
        "Refused",
        "The form was out of date or did not come from this dashboard. Go back, "
        "reload the page and try again.",
        403,
    )


async def _posted(
    request: Request, limit: int = MAX_FORM, *, audit: bool = True
) -> tuple[Session, dict[str, str]] | Response:
    """The session and form of a POST that may change something, or the response that
    refuses it: another site's request (403), no session (to the login page), a missing
    or wrong CSRF token (403). The POST goes on the audit log, unless `audit` is False
    (the action it calls writes its own, more telling entry)."""
    if not same_site(request):
        return _message(request, None, "Refused", "That request came from another site.", 403)
    session = await run_in_threadpool(read_session, request)
    if session is None:  # expired, say: log in again, then start from the overview
        return _to_login(request, "/dashboard")
    try:
        body = await read_capped(request, limit)
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except TooLarge:
        return _message(request, session, "Too large", "That form was too large.", 413)
    except UnicodeDecodeError:
        return _message(request, session, "Not understood", "The form could not be read.", 400)
    if not csrf_valid(session, form.get("csrf", "")):
        return _stale_form(request, session)
    if audit:
        await run_in_threadpool(_audit, request, session)
    return session, form


# --- logging in and out -----------------------------------------------------------------


def _sentence(text: str) -> str:
    """An action's message ("that email ...") as a sentence on a page."""
    return f"{text[:1].upper()}{text[1:]}."


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _audit(
    request: Request,
    session: Session,
    what: str | None = None,
    target_kind: str | None = None,
    target_id: str | None = None,
    detail: str | None = None,
) -> None:
    """Put what the session's holder did on the audit log: by default the route as
    written and the id it is about (`POST /dashboard/enrollments/{enrollment_id}/...`)."""
    if what is None:
        route = request.scope.get("route")
        what = f"{request.method} {getattr(route, 'path', request.url.path)}"
        found = next(
            ((k, str(v)) for k, v in request.path_params.items() if k.endswith("_id")), None
        )
        if found is not None and target_kind is None:
            target_kind, target_id = found[0].removesuffix("_id"), found[1]
    accounts.record(
        _runtime(request),
        session.actor,
        what[:64],
        target_kind[:32] if target_kind else None,
        target_id[:64] if target_id else None,
        detail,
    )


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/dashboard", email: str = "") -> Response:
    if read_session(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login(request, _safe_next(next), email=email.strip()[:320])


def _login(
    request: Request,
    target: str,
    error: str | None = None,
    status_code: int = 200,
    *,
    token_error: str | None = None,
    email: str = "",
) -> HTMLResponse:
    runtime = _runtime(request)
    return _render(
        request,
        "dashboard/login.html",
        None,
        status_code,
        title="Sign in",
        target=target,
        error=error,
        token_error=token_error,
        email=email,
        token_set=runtime.settings.admin_token is not None,
        loopback=from_loopback(request),
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Signing in: by email and password (an account), or with the admin token (the
    operator; with none configured, from this machine only). Every attempt is on the
    audit log."""
    runtime = _runtime(request)
    if not same_site(request):
        return _message(request, None, "Refused", "That request came from another site.", 403)
    try:
        body = await read_capped(request, MAX_FORM)
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (TooLarge, UnicodeDecodeError):
        return _login(request, "/dashboard", "The form could not be read.", 400)
    target = _safe_next(form.get("next"))
    address = _address(request)
    if "email" in form:
        email = form.get("email", "").strip()[:320]
        try:
            coach = await run_in_threadpool(
                accounts.sign_in, runtime, email, form.get("password", ""), address
            )
        except accounts.SignInRefused as refused:
            status = 429 if isinstance(refused, accounts.SignInThrottled) else 401
            return _login(request, target, _sentence(refused.message), status, email=email)
        response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
        start_session(response, runtime, (coach.id, coach.session_version))
        return response
    given = form.get("token", "").strip()
    if runtime.settings.admin_token is not None:
        allowed = token_valid(runtime, given)
        refusal = "That is not the admin token."
    else:
        allowed = from_loopback(request) and host_allowed(request) and given == ""
        refusal = (
            "No admin token is configured (TEND_ADMIN_TOKEN): leave the field empty."
            if from_loopback(request)
            else "No admin token is configured (TEND_ADMIN_TOKEN): only this machine may log in."
        )
    try:
        await run_in_threadpool(accounts.operator_sign_in, runtime, allowed, address)
    except accounts.SignInThrottled as throttled:
        return _login(request, target, None, 429, token_error=_sentence(throttled.message))
    except accounts.SignInRefused:
        return _login(request, target, None, 401, token_error=refusal)
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    await run_in_threadpool(start_session, response, runtime)
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    """Signing out ends the session for good: an account's every session (its session
    version moves on, so even a copied cookie stops working), and the cookie goes."""
    posted = await _posted(request, audit=False)  # sign_out is on the audit log
    if isinstance(posted, Response):
        return posted
    session, _ = posted
    runtime = _runtime(request)
    if session.is_account:
        await run_in_threadpool(
            accounts.sign_out_everywhere, runtime, session.actor.id, _address(request)
        )
    else:
        await run_in_threadpool(accounts.operator_sign_out, runtime, _address(request))
    response = _redirect(request, "/dashboard/login", "You are logged out.")
    end_session(response, runtime)
    return response


# --- setting a password through a one-time link -------------------------------------------


def _link_gone(request: Request) -> HTMLResponse:
    return _message(
        request,
        None,
        "This link no longer works",
        "This link to set a password has been used or has expired (a link works once, "
        f"for {int(accounts.LINK_LIFETIME.total_seconds() // 3600)} hours, and a newer "
        "one replaces it). Ask an admin for a new one, or sign in if your password is set.",
        410,
    )


def _set_password_form(
    request: Request, secret: str, coach: Any, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    return _render(
        request,
        "dashboard/set_password.html",
        None,
        status_code,
        title="Set your password",
        account=coach,
        action=f"/dashboard/set-password/{quote(secret, safe='')}",
        error=error,
        min_length=accounts.MIN_PASSWORD,
        max_length=accounts.MAX_PASSWORD,
    )


@router.get("/set-password/{secret}", response_class=HTMLResponse)
def set_password_page(request: Request, secret: str) -> Response:
    """Public by design: the link's secret is the credential (one use, a few days)."""
    coach = accounts.link_account(_runtime(request), secret)
    if coach is None:
        return _link_gone(request)
    return _set_password_form(request, secret, coach)


@router.post("/set-password/{secret}", response_class=HTMLResponse)
async def set_password(request: Request, secret: str) -> Response:
    if not same_site(request):
        return _message(request, None, "Refused", "That request came from another site.", 403)
    runtime = _runtime(request)
    coach = await run_in_threadpool(accounts.link_account, runtime, secret)
    if coach is None:
        return _link_gone(request)
    try:
        body = await read_capped(request, MAX_FORM)
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (TooLarge, UnicodeDecodeError):
        return _set_password_form(request, secret, coach, "The form could not be read.", 400)
    password = form.get("password", "")
    if password != form.get("again", ""):
        return _set_password_form(
            request, secret, coach, "The two passwords are not the same: type them again.", 400
        )
    try:
        await run_in_threadpool(accounts.set_password, runtime, secret, password, _address(request))
    except ActionError as exc:
        if await run_in_threadpool(accounts.link_account, runtime, secret) is None:
            return _link_gone(request)
        return _set_password_form(request, secret, coach, _sentence(exc.message), 400)
    return _redirect(
        request,
        f"/dashboard/login?{urlencode({'email': coach.email})}",
        "Your password is set. Sign in with your email and your new password.",
    )


# --- the script ---------------------------------------------------------------------------

SCRIPT = """\
"use strict";
// Tend dashboard: small conveniences; every page works without them.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field || !navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(field.value).then(function () {
        button.textContent = "Copied";
      });
    });
  });
  document.querySelectorAll("input[data-select]").forEach(function (field) {
    field.addEventListener("focus", function () { field.select(); });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  var editor = document.querySelector("[data-editor]");
  if (editor) {
    var area = editor.querySelector("textarea");
    var gutter = editor.querySelector("[data-gutter]");
    // The gutter numbers every line as the text grows or shrinks; marks stay on their line.
    area.addEventListener("input", function () {
      var lines = area.value.split("\\n").length;
      for (var n = gutter.children.length + 1; n <= lines; n++) {
        var number = document.createElement("span");
        number.id = "line-" + n;
        number.textContent = String(n);
        gutter.appendChild(number);
      }
      while (gutter.children.length > lines && !gutter.lastElementChild.className) {
        gutter.removeChild(gutter.lastElementChild);
      }
      editor.style.setProperty("--lines", String(gutter.children.length));
    });
    // An error in the list takes the cursor to its line and column.
    document.querySelectorAll("a[data-goto]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var place = link.getAttribute("data-goto").split(":");
        var line = parseInt(place[0], 10), column = parseInt(place[1], 10);
        var lines = area.value.split("\\n"), at = 0;
        for (var i = 0; i < line - 1 && i < lines.length; i++) { at += lines[i].length + 1; }
        at += Math.max(0, Math.min(column - 1, (lines[line - 1] || "").length));
        area.focus();
        area.setSelectionRange(at, at);
        var row = document.getElementById("line-" + line);
        if (row) { row.scrollIntoView({block: "center"}); }
      });
    });
  }
  // An empty time zone field gets this browser's zone, and a note saying so.
  document.querySelectorAll("input[data-zone-guess]").forEach(function (field) {
    if (field.value) { return; }
    try {
      var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      var note = document.getElementById(field.getAttribute("data-zone-guess"));
      if (zone) { field.value = zone; if (note) { note.hidden = false; } }
    } catch (e) {}
  });
  var focus = document.querySelector("[data-focus]");
  if (focus) { focus.focus(); }
});
"""


@router.get("/static/dashboard.js")
def script() -> Response:
    return Response(
        SCRIPT,
        media_type="text/javascript",
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# --- pages ------------------------------------------------------------------------------

COLUMNS = (
    ("name", "Participant"),
    ("plan", "Plan"),
    ("week", "Week"),
    ("status", "Status"),
    ("rate", "Completion"),
    ("strength", "Strength"),
    ("", "Last 4 weeks"),
)


@router.get("", response_class=HTMLResponse)
def overview(request: Request, sort: str = "name", dir: str = "asc", cohort: str = "") -> Response:
    from service.actions import cohorts as groups

    session = _viewer(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    now = runtime.clock.now()
    key = sort if sort in data.SORTS else "name"
    descending = dir == "desc"
    chosen = None  # the cohort the overview is narrowed to (another coach's: 404)
    if cohort:
        try:
            chosen = groups.get(runtime, groups.cohort_ref(cohort), actor=session.actor)
        except NotFound:
            return _not_found(request, session, "cohort")
    rows = data.sort_rows(
        data.cohort(runtime, now, coach_id=session.actor.coach_id,
                    cohort_id=chosen.id if chosen else None),
        key,
        descending,
    )  # fmt: skip
    narrowed = {"cohort": chosen.id} if chosen else {}
    columns = []
    for column, label in COLUMNS:
        if not column:
            columns.append({"key": "", "label": label, "href": "", "aria": None, "arrow": ""})
            continue
        current = column == key
        flip = "asc" if current and descending else ("desc" if current else "asc")
        columns.append(
            {
                "key": column,
                "label": label,
                "href": f"/dashboard?{urlencode({'sort': column, 'dir': flip, **narrowed})}",
                "aria": ("descending" if descending else "ascending") if current else None,
                "arrow": (" \u2193" if descending else " \u2191") if current else "",
            }
        )
    slipped = sorted(
        (r for r in rows if r.slip), key=lambda r: (r.weeks[-1].rate or 0.0, r.participant.name)
    )
    people = {r.participant.id for r in rows}
    active = sum(1 for r in rows if r.status == "active")
    return _render(
        request,
        "dashboard/overview.html",
        session,
        title="Overview",
        section="overview",
        rows=rows,
        columns=columns,
        slipped=slipped,
        people=len(people),
        active=active,
        now=now,
        cohorts=groups.cohorts(runtime, actor=session.actor),
        chosen=chosen,
    )


@router.get("/participants/{participant_id}", response_class=HTMLResponse)
def participant_page(request: Request, participant_id: Id) -> Response:
    session = _viewer(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    now = runtime.clock.now()
    try:
        view = data.participant_view(runtime, participant_id, now, coach_id=session.actor.coach_id)
    except NotFound:
        return _not_found(request, session, "participant")
    return _render(
        request,
        "dashboard/participant.html",
        session,
        title=view.participant.name,
        section="overview",
        view=view,
        person=view.participant,
        now=now,
        here=f"/dashboard/participants/{quote(participant_id)}",
        channels=[c for c in ("sms", "email") if c in runtime.channels],
        recent=RECENT_REPLIES,
    )


@router.get("/plans", response_class=HTMLResponse)
def plans_page(request: Request) -> Response:
    session = _viewer(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    return _render(
        request,
        "dashboard/plans.html",
        session,
        title="Plans",
        section="plans",
        plans=data.plans_overview(runtime, coach_id=session.actor.coach_id),
    )


def _preview_options(
    runtime: Runtime, now: Any, start: str | None, tz: str | None
) -> tuple[date, ZoneInfo, str, str | None]:
    """The preview's start date and zone from the form (today, the digest's zone by
    default), and what was wrong with them."""
    error = None
    zone_name = (tz or "").strip() or runtime.settings.digest_timezone
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # 'America' is a folder
        error = f"'{zone_name}' is not a time zone (try Europe/London or America/New_York)."
        zone = ZoneInfo("UTC")
        zone_name = "UTC"
    first = now.astimezone(zone).date()
    if start and start.strip():
        try:
            first = date.fromisoformat(start.strip())
        except ValueError:
            error = f"'{start}' is not a date (YYYY-MM-DD)."
    return first, zone, zone_name, error


def _versions(runtime: Runtime, plan_id: str) -> list[Any]:
    try:
        return list(reversed(publishing.versions(runtime, plan_id)))  # newest first
    except NotFound:
        return []


@router.get("/plans/{plan_id}", response_class=HTMLResponse)
def plan_page(
    request: Request, plan_id: Id, start: str | None = None, tz: str | None = None
) -> Response:
    session = _viewer(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    now = runtime.clock.now()
    plan = runtime.plans.get(plan_id)
    try:
        rows = data.cohort(runtime, now, plan_id=plan_id, coach_id=session.actor.coach_id)
    except NotFound:  # neither running nor with an enrollment
        return _not_found(request, session, "plan")
    first, zone, zone_name, error = _preview_options(runtime, now, start, tz)
    preview = data.plan_preview(runtime, plan, first, zone) if plan is not None else None
    versions = _versions(runtime, plan_id)
    return _render(
        request,
        "dashboard/plan.html",
        session,
        status_code=400 if error else 200,
        title=plan.title if plan else plan_id,
        section="plans",
        plan=plan,
        plan_id=plan_id,
        rows=data.sort_rows(rows, "name", False),
        preview=preview,
        start=first,
        zone=zone,
        zone_name=zone_name,
        error=error,
        versions=versions,
        templates=sorted(runtime.plans.templates(plan)) if plan else [],
    )


@router.get("/plans/{plan_id}/versions/{number}", response_class=HTMLResponse)
def version_page(request: Request, plan_id: Id, number: int) -> Response:
    session = _viewer(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    try:
        found = publishing.version(runtime, plan_id, number)
    except NotFound:
        return _not_found(request, session, "version")
    newest = runtime.plans.get(plan_id)
    return _render(
        request,
        "dashboard/plan_version.html",
        session,
        title=f"{found.title}, version {found.version}",
        section="plans",
        plan_id=plan_id,
        found=found,
        newest=newest.version if newest else None,
        lines=found.yaml.split("\n"),
    )


@router.get("/plans/{plan_id}/diff", response_class=HTMLResponse)
def diff_page(
    request: Request, plan_id: Id, a: int | None = None, b: int | None = None
) -> Response:
    session = _viewer(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    versions = _versions(runtime, plan_id)
    if not versions:
        return _not_found(request, session, "plan")
    newest = versions[0].version
    b = newest if b is None else b
    a = max(b - 1, 1) if a is None else a
    try:
        old = publishing.version(runtime, plan_id, a)
        new = publishing.version(runtime, plan_id, b)
    except NotFound:
        return _not_found(request, session, "version")
    return _render(
        request,
        "dashboard/plan_diff.html",
        session,
        title=f"{new.title}: version {a} to {b}",
        section="plans",
        plan_id=plan_id,
        old=old,
        new=new,
        versions=versions,
        files=data.diff_versions(old, new),
    )


# --- the editor: check, preview, review, publish ------------------------------------------


@dataclass
class Draft:
    """What the editor shows: the text as the coach has it, and what was found."""

    text: str
    plan_id: str | None  # None: a new plan (from a copy)
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    note: str = ""
    notice: str | None = None  # said above the editor (what the text is, what was done)
    checked: str | None = None  # "No errors" and what publishing would do
    preview: data.PlanPreview | None = None
    review: publishing.Published | None = None
    effect: list[data.EffectRow] = field(default_factory=list)
    effect_text: str = ""  # the effect in counts (a coach's: on their own participants)
    # "HASH:N": the hash of the text reviewed, which a publish must match, and the
    # newest version then, which must still be the newest when it is published.
    reviewed: str = ""

    @property
    def marks(self) -> dict[int, dict[str, Any]]:
        """Per line: the worst severity there and every message, for the gutter."""
        found: dict[int, dict[str, Any]] = {}
        for d in [*self.errors, *self.warnings]:
            mark = found.setdefault(d.line, {"severity": d.severity, "messages": []})
            if d.severity == "error":
                mark["severity"] = "error"
            mark["messages"].append(f"column {d.column}: {d.message}")
        return found

    @property
    def line_count(self) -> int:
        return max(self.text.count("\n") + 1, max(self.marks, default=1))


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _editor(
    request: Request,
    session: Session,
    draft: Draft,
    *,
    status_code: int = 200,
    start: date,
    zone_name: str,
    copied_from: str | None = None,
) -> HTMLResponse:
    runtime = _runtime(request)
    plan = runtime.plans.get(draft.plan_id) if draft.plan_id else None
    if draft.plan_id:
        action = f"/dashboard/plans/{quote(draft.plan_id)}/edit"
        title = f"Edit {plan.title if plan else draft.plan_id}"
    else:
        action = "/dashboard/new-plan"
        title = "New plan"
    source = runtime.plans.get(copied_from) if copied_from else plan
    return _render(
        request,
        "dashboard/plan_edit.html",
        session,
        status_code,
        title=title,
        section="plans",
        draft=draft,
        plan=plan,
        action=action,
        start=start,
        zone_name=zone_name,
        copied_from=copied_from,
        templates=sorted(runtime.plans.templates(source)) if source else [],
        template_source=source,
    )


@router.get("/plans/{plan_id}/edit", response_class=HTMLResponse)
def edit_page(request: Request, plan_id: Id, version: int | None = None) -> Response:
    session = _viewer(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    plan = runtime.plans.get(plan_id)
    if plan is None:
        return _not_found(request, session, "published plan")
    number = version if version is not None else plan.version
    try:
        found = publishing.version(runtime, plan_id, number)
    except NotFound:
        return _not_found(request, session, "version")
    notice = (
        f"The text of version {number}, to publish again as a new version (a rollback)."
        if number != plan.version
        else f"The text of version {number}, the newest."
    )
    draft = Draft(found.yaml, plan_id, notice=notice)
    first, _, zone_name, _ = _preview_options(runtime, runtime.clock.now(), None, None)
    return _editor(request, session, draft, start=first, zone_name=zone_name)


@router.get("/new-plan", response_class=HTMLResponse)
def new_plan_page(request: Request, copy: str = "", id: str = "") -> Response:
    """A new plan from a copy of another: its text with the `plan:` id the coach gave."""
    session = _viewer(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    source = runtime.plans.get(copy) if copy else None
    if source is None or not id.strip():
        return _render(
            request,
            "dashboard/plan_new.html",
            session,
            status_code=404 if copy and not source else 200,
            title="New plan",
            section="plans",
            plans=sorted(runtime.plans.all().values(), key=lambda p: p.title.casefold()),
            copy=copy,
            new_id=id,
            error=f"There is no published plan '{copy}' to copy." if copy and not source else None,
        )
    found = publishing.version(runtime, source.id, source.version)
    new_id = id.strip()
    text = data.with_plan_id(found.yaml, new_id)
    notice = (
        f"A copy of {source.title} (version {source.version}) as plan '{new_id}'. Publishing "
        "it makes version 1 of the new plan; the original is not changed."
    )
    draft = Draft(text, None, notice=notice)
    first, _, zone_name, _ = _preview_options(runtime, runtime.clock.now(), None, None)
    return _editor(request, session, draft, start=first, zone_name=zone_name, copied_from=source.id)


@router.post("/plans/{plan_id}/edit", response_class=HTMLResponse)
async def edit_plan(request: Request, plan_id: Id) -> Response:
    return await _edited(request, plan_id)


@router.post("/new-plan", response_class=HTMLResponse)
async def new_plan(request: Request) -> Response:
    return await _edited(request, None)


def _taken(runtime: Runtime, text: str) -> Diagnostic | None:
    """For a new plan: an error at its `plan:` line when a plan has that id already."""
    declared = runtime.catalog.compile_version(text, "plan")[0].declared_id
    if not declared or not _versions(runtime, declared):
        return None
    return Diagnostic(
        "plan",
        data.plan_id_line(text),
        1,
        "error",
        f"a plan '{declared}' exists already: give this copy a new id, or edit "
        f"'{declared}' from its own page",
    )


async def _effect_text(runtime: Runtime, session: Session, published: Any) -> str:
    """What a publish does, in counts: everyone's for an admin, a coach's own participants'
    for a coach (other coaches' enrollments follow too, unseen)."""
    coach_id = session.actor.coach_id
    if coach_id is None:
        return str(published.effect.summary())
    found = await run_in_threadpool(
        lambda: data.scoped_effect(runtime, published.lines, coach_id=coach_id)
    )
    return f"for your participants, {found.summary()}"


async def _edited(request: Request, plan_id: str | None) -> Response:
    """The editor's buttons: check, preview, review (a dry run), publish. A text with
    errors comes back in the editor as it was typed, with its errors."""
    posted = await _posted(request, MAX_PLAN_FORM)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    runtime = _runtime(request)
    text = form.get("text", "").replace("\r\n", "\n").replace("\r", "\n")
    note = form.get("note", "").strip()
    action = form.get("action", "check")
    copied_from = form.get("copied_from") or None
    first, zone, zone_name, zone_error = _preview_options(
        runtime, runtime.clock.now(), form.get("start"), form.get("tz")
    )
    draft = Draft(text, plan_id, note=note, reviewed=form.get("reviewed", ""))

    def again(status_code: int = 200) -> HTMLResponse:
        return _editor(request, session, draft, status_code=status_code, start=first,
                       zone_name=zone_name, copied_from=copied_from)  # fmt: skip

    reviewed_hash, _, base = draft.reviewed.partition(":")
    if action == "publish" and (reviewed_hash != _text_hash(text) or not base.isdigit()):
        action = "review"
        draft.notice = "The text changed since it was reviewed: review what it does again."
    # Publishing what was reviewed: only if no one published since (a new plan: only if
    # no plan has its id), checked in the transaction that stores it.
    expect = int(base) if action == "publish" else None
    taken = None  # a new plan must have an id no plan has
    if plan_id is None:
        taken = await run_in_threadpool(_taken, runtime, text)
    try:
        published = await run_in_threadpool(
            lambda: publishing.publish(
                runtime, text, by="dashboard", note=note or None, plan_id=plan_id,
                dry_run=action != "publish" or taken is not None, expect_version=expect,
            )
        )  # fmt: skip
    except Conflict as conflict:  # published by someone else since the review
        draft.notice = f"Nothing was published: {conflict.message}."
        draft.reviewed = ""
        return again(409)
    except publishing.PlanRejected as rejected:
        found = [*rejected.errors, *([taken] if taken else [])]
        draft.errors = sorted(found, key=lambda d: (d.line, d.column))
        draft.warnings = rejected.warnings
        draft.reviewed = ""
        return again(422)
    draft.warnings = list(published.warnings)
    if taken is not None:
        draft.errors = [taken]
        draft.reviewed = ""
        return again(422)
    effect = await _effect_text(runtime, session, published)
    draft.effect_text = effect
    if action == "publish":
        target = f"/dashboard/plans/{quote(published.plan.id)}"
        if not published.created:
            return _redirect(request, target, f"Nothing published: version "
                             f"{published.version} has this text already.")  # fmt: skip
        return _redirect(request, target, f"Version {published.version} published: {effect}.")
    if action == "preview":
        if zone_error:
            draft.notice = zone_error
            return again(400)
        draft.preview = await run_in_threadpool(data.draft_preview, runtime, text, first, zone)
    elif action == "review":
        draft.review = published
        draft.effect = await run_in_threadpool(
            lambda: data.effect_rows(runtime, published.lines, coach_id=session.actor.coach_id)
        )
        draft.reviewed = f"{_text_hash(text)}:{published.version - 1}" if published.created else ""
    else:
        count = len(draft.warnings)
        said = f"{count} warning{'s' if count != 1 else ''}" if count else "no warnings"
        draft.checked = (
            f"No errors, {said}. Publishing would make version {published.version} ({effect})."
            if published.created
            else f"No errors, {said}. This is the text of version {published.version}."
        )
    return again()


@router.get("/outbox", response_class=HTMLResponse)
def outbox_page(request: Request) -> Response:
    session = _viewer(request)
    if session is None:
        return _to_login(request)
    runtime = _runtime(request)
    unconfigured = runtime.settings.unconfigured_channels
    return _render(
        request,
        "dashboard/outbox.html",
        session,
        title="Development outbox",
        section="outbox",
        messages=data.outbox_messages(runtime, coach_id=session.actor.coach_id),
        unconfigured=unconfigured,
    )


# --- accounts and the audit log (admins and the operator) --------------------------------


@dataclass(frozen=True, slots=True)
class Shown:
    """A secret shown once, on the page that made it: a set-password link or a token."""

    title: str
    value: str
    note: str


def _admin_session(request: Request, session: Session | None) -> Response | None:
    """None when `session` may use the admin pages; else the answer: to the login page,
    or for a coach the same 404 as a page that does not exist."""
    if session is None:
        return _to_login(request)
    if not session.sees_all:
        return _not_found(request, session, "page")
    return None


def _accounts_page(
    request: Request, session: Session, shown: Shown | None = None, error: str | None = None,
    status_code: int = 200, form: dict[str, str] | None = None,
) -> HTMLResponse:  # fmt: skip
    runtime = _runtime(request)
    found = accounts.accounts(runtime)
    tokens = {a.id: accounts.tokens(runtime, session.actor, a.email) for a in found}
    return _render(
        request,
        "dashboard/accounts.html",
        session,
        status_code,
        title="Accounts",
        section="accounts",
        accounts=found,
        tokens=tokens,
        shown=shown,
        error=error,
        form=form or {},
        roles=accounts.ROLES,
    )


def _account_by_id(runtime: Runtime, coach_id: str) -> Any:
    return next((a for a in accounts.accounts(runtime) if a.id == coach_id), None)


@router.get("/accounts", response_class=HTMLResponse)
def accounts_page(request: Request) -> Response:
    session = _viewer(request)
    refused = _admin_session(request, session)
    if refused is not None or session is None:
        return refused or _to_login(request)
    return _accounts_page(request, session)


async def _admin_posted(request: Request) -> tuple[Session, dict[str, str]] | Response:
    """An admin's form: each one's action puts what it did on the audit log."""
    posted = await _posted(request, audit=False)
    if isinstance(posted, Response):
        return posted
    if not posted[0].sees_all:
        return _not_found(request, posted[0], "page")
    return posted


@router.post("/accounts", response_class=HTMLResponse)
async def add_account(request: Request) -> Response:
    posted = await _admin_posted(request)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    runtime = _runtime(request)
    try:
        made = await run_in_threadpool(
            lambda: accounts.add(
                runtime, session.actor, email=form.get("email", ""), name=form.get("name", ""),
                role=form.get("role", "coach"),
            )
        )  # fmt: skip
    except ActionError as exc:
        return await run_in_threadpool(
            _accounts_page, request, session, None, f"No account added: {exc.message}.", 400,
            form,
        )  # fmt: skip
    shown = Shown(
        f"Account added: {made.coach.name} ({made.coach.role})",
        made.link,
        f"Send this link to {made.coach.email}: it sets the password, works once and "
        f"expires in {int(accounts.LINK_LIFETIME.total_seconds() // 3600)} hours. It is "
        "shown only now.",
    )
    return await run_in_threadpool(_accounts_page, request, session, shown)


async def _account_posted(
    request: Request,
) -> tuple[Session, dict[str, str], Any] | Response:
    """An admin's form about one account (its id in the form's `account` field)."""
    posted = await _admin_posted(request)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    account = await run_in_threadpool(_account_by_id, _runtime(request), form.get("account", ""))
    if account is None:
        return _not_found(request, session, "account")
    return session, form, account


def _hours(span: Any) -> int:
    return int(span.total_seconds() // 3600)


@router.post("/accounts/link", response_class=HTMLResponse)
async def account_link(request: Request) -> Response:
    """A new one-time link to set the account's password (older ones stop working)."""
    posted = await _account_posted(request)
    if isinstance(posted, Response):
        return posted
    session, _, account = posted
    runtime = _runtime(request)
    try:
        link = await run_in_threadpool(accounts.new_link, runtime, session.actor, account.email)
    except ActionError as exc:
        return _redirect(request, "/dashboard/accounts", f"Nothing changed: {exc.message}.",
                         "error")  # fmt: skip
    shown = Shown(
        f"A new set-password link for {account.name}",
        link,
        f"Send it to {account.email}. Earlier links no longer work; this one works once, "
        f"for {_hours(accounts.LINK_LIFETIME)} hours. It is shown only now.",
    )
    return await run_in_threadpool(_accounts_page, request, session, shown)


@router.post("/accounts/token", response_class=HTMLResponse)
async def account_token(request: Request) -> Response:
    """A new API token for the account, with the form's `label`: shown once."""
    posted = await _account_posted(request)
    if isinstance(posted, Response):
        return posted
    session, form, account = posted
    runtime = _runtime(request)
    try:
        made = await run_in_threadpool(
            accounts.create_token, runtime, session.actor, account.email, form.get("label", "")
        )
    except ActionError as exc:
        return _redirect(request, "/dashboard/accounts", f"No token made: {exc.message}.",
                         "error")  # fmt: skip
    shown = Shown(
        f"A new API token for {account.name}: {made.token.label}",
        made.secret,
        "Use it as Authorization: Bearer <token>. It is shown only now: copy it somewhere "
        "safe. Revoke it below when it is no longer needed.",
    )
    return await run_in_threadpool(_accounts_page, request, session, shown)


@router.post("/accounts/disable", response_class=HTMLResponse)
async def account_disable(request: Request) -> Response:
    posted = await _account_posted(request)
    if isinstance(posted, Response):
        return posted
    session, _, account = posted
    try:
        await run_in_threadpool(accounts.disable, _runtime(request), session.actor, account.email)
    except ActionError as exc:
        return _redirect(request, "/dashboard/accounts", f"Nothing changed: {exc.message}.",
                         "error")  # fmt: skip
    return _redirect(
        request,
        "/dashboard/accounts",
        f"{account.name}'s account is disabled: it can no longer sign in or use its tokens, "
        "and its sessions have ended.",
    )


@router.post("/accounts/revoke", response_class=HTMLResponse)
async def account_revoke(request: Request) -> Response:
    """Revoke one of the account's API tokens (the form's `token_id`)."""
    posted = await _account_posted(request)
    if isinstance(posted, Response):
        return posted
    session, form, account = posted
    token_id = form.get("token_id", "")[:64]
    try:
        await run_in_threadpool(
            accounts.revoke_token, _runtime(request), session.actor, account.email, token_id
        )
    except ActionError:
        return _not_found(request, session, "token")
    return _redirect(request, "/dashboard/accounts", f"The token is revoked: it no longer "
                     f"works for {account.name}.")  # fmt: skip


AUDIT_ACTIONS = (
    "sign_in", "sign_in.refused", "sign_in.throttled", "sign_out", "account.add",
    "account.link", "account.set_password", "account.disable", "token.create",
    "token.revoke",
)  # fmt: skip
AUDIT_LIMIT = 200


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, account: str = "", action: str = "", since: str = "") -> Response:
    session = _viewer(request)
    refused = _admin_session(request, session)
    if refused is not None or session is None:
        return refused or _to_login(request)
    runtime = _runtime(request)
    found = accounts.accounts(runtime)
    names = {a.id: a for a in found}
    error = None
    start = None
    if since.strip():
        try:
            start = datetime.combine(date.fromisoformat(since.strip()), time(0), UTC)
        except ValueError:
            error = f"'{since[:40]}' is not a date (YYYY-MM-DD)."
    email = account.strip().lower()
    if email and not any(a.email == email for a in found):
        error = f"There is no account with the email {email[:320]}."
    entries = []
    if error is None:
        entries = accounts.audit(
            runtime, coach_email=email or None, since=start,
            action_name=action.strip()[:64] or None, limit=AUDIT_LIMIT,
        )  # fmt: skip
    return _render(
        request,
        "dashboard/audit.html",
        session,
        400 if error else 200,
        title="Audit log",
        section="audit",
        entries=entries,
        names=names,
        accounts=found,
        account=email,
        action=action.strip()[:64],
        since=since.strip()[:40],
        actions=AUDIT_ACTIONS,
        error=error,
        limit=AUDIT_LIMIT,
    )


# --- actions ----------------------------------------------------------------------------


def _back(form: dict[str, str], default: str) -> str:
    return _safe_next(form.get("next"), default)


# Each button's action, what is said when it changed something, and when it did not.
_ENROLLMENT_ACTIONS = {
    "pause": (
        enrolling.pause,
        "Paused {plan}: no reminders are sent until it is resumed.",
        "{plan} was paused already.",
    ),
    "resume": (
        enrolling.resume,
        "Resumed {plan}: reminders still ahead will be sent.",
        "{plan} was running already.",
    ),
    "cancel": (
        enrolling.cancel,
        "Ended {plan}: nothing more is sent.",
        "{plan} had ended already.",
    ),
}


def _not_found(request: Request, session: Any, what: str) -> Response:
    return _message(request, session, "Not found", f"There is no such {what}.", 404)


@router.post("/enrollments/{enrollment_id}/{action}", response_class=HTMLResponse)
async def enrollment_action(request: Request, enrollment_id: Id, action: Id) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    runtime = _runtime(request)
    if action not in _ENROLLMENT_ACTIONS:
        return _not_found(request, session, "action")
    act, done, unchanged = _ENROLLMENT_ACTIONS[action]
    try:
        change = await run_in_threadpool(lambda: act(runtime, enrollment_id, actor=session.actor))
    except NotFound:
        return _not_found(request, session, "enrollment")
    except ActionError as exc:
        owner = await run_in_threadpool(
            lambda: data.enrollment_owner(runtime, enrollment_id, coach_id=session.actor.coach_id)
        )
        back = _back(form, f"/dashboard/participants/{quote(owner)}")
        return _redirect(request, back, f"Nothing changed: {exc}.", "error")
    enrollment = change.enrollment
    back = _back(form, f"/dashboard/participants/{quote(enrollment.participant_id)}")
    said = (done if change.changed else unchanged).format(plan=enrollment.plan_id)
    return _redirect(request, back, said)


@router.post("/participants/{participant_id}/rotate-feed", response_class=HTMLResponse)
async def rotate_feed(request: Request, participant_id: Id) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    try:
        await run_in_threadpool(
            lambda: people.rotate_feed(_runtime(request), participant_id, actor=session.actor)
        )
    except NotFound:
        return _not_found(request, session, "participant")
    back = _back(form, f"/dashboard/participants/{quote(participant_id)}")
    return _redirect(
        request,
        back,
        "The calendar feed has a new URL; the old one no longer works. Send the new one "
        "to the participant.",
    )


@router.post("/participants/{participant_id}/test-message", response_class=HTMLResponse)
async def test_message(request: Request, participant_id: Id) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    back = _back(form, f"/dashboard/participants/{quote(participant_id)}")
    try:
        sent = await run_in_threadpool(
            lambda: messages.send_test(
                _runtime(request), participant_id, form.get("channel", ""), actor=session.actor
            )
        )
    except NotFound:
        return _not_found(request, session, "participant")
    except ActionError as exc:
        return _redirect(request, back, f"Not sent: {exc}.", "error")
    kind = "text" if sent.channel == "sms" else "email"
    where = " (to the development outbox)" if sent.to_outbox else ""
    return _redirect(request, back, f"Test {kind} sent to {mask(sent.to)}{where}.")


# --- a participant's data: export and erasure ------------------------------------------


@router.get("/participants/{participant_id}/export")
def export_participant(request: Request, participant_id: Id) -> Response:
    """Everything Tend holds about the participant, as a JSON file to download. The
    action puts the export on the audit log."""
    import json

    from service.actions import data_rights

    session = read_session(request)
    if session is None:
        return _to_login(request)
    try:
        document = data_rights.export(_runtime(request), participant_id, actor=session.actor)
    except NotFound:
        _audit(request, session)
        return _not_found(request, session, "participant")
    return Response(
        json.dumps(document, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={
            **HEADERS,
            "Content-Disposition": f'attachment; filename="tend-{participant_id}.json"',
        },
    )


@router.post("/participants/{participant_id}/erase", response_class=HTMLResponse)
async def erase_participant(request: Request, participant_id: Id) -> Response:
    """Erase the participant, once their name is typed to confirm; then to the overview.
    A done erasure is on the audit log by the action, a refused one as the POST."""
    from service.actions import data_rights

    posted = await _posted(request, audit=False)
    if isinstance(posted, Response):
        return posted
    session, form = posted
    here = f"/dashboard/participants/{quote(participant_id)}"
    try:
        erased = await run_in_threadpool(
            lambda: data_rights.erase(
                _runtime(request),
                participant_id,
                actor=session.actor,
                confirm_name=form.get("confirm", ""),
            )
        )
    except NotFound:
        await run_in_threadpool(_audit, request, session)
        return _not_found(request, session, "participant")
    except ActionError as exc:
        await run_in_threadpool(_audit, request, session)
        return _redirect(request, here, _sentence(str(exc)), "error")
    return _redirect(request, "/dashboard", _sentence(erased.text))
