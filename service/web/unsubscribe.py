"""Unsubscribing from reminder emails: the List-Unsubscribe link of every email.

`GET /unsubscribe/{token}` shows a page with a button and changes nothing, because mail
scanners and link previews fetch the links they find and must not unsubscribe anyone.
`POST /unsubscribe/{token}` unsubscribes: either the mail client's one-click request
(RFC 8058, body `List-Unsubscribe=One-Click`) or the page's button. The body is not
read: the signed token in the path is what authorises the request, and a client that
sends some other body, or none, still means "unsubscribe". Both answer 200 themselves,
never a redirect (RFC 8058 asks for that: redirected POSTs are not reliably followed),
and both answer 200 again for someone already unsubscribed. A token that is not valid,
or names no participant, gets the same bare 404 either way.

Unsubscribing is from email: reminder emails stop, and a calendar invitation already
accepted is withdrawn with one last METHOD:CANCEL. Text messages go on.
"""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from service.actions import consent
from service.actions.errors import NotFound
from service.channels.email import read_unsubscribe_token, unsubscribe_link
from service.runtime import Runtime
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.web.pages import render

SOURCE = "email:list-unsubscribe"

router = APIRouter(tags=["email"])

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token must not leak to other sites
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def unsubscribe_url(runtime: Runtime, participant_id: str) -> str:
    """The participant's unsubscribe link, for the List-Unsubscribe header."""
    return unsubscribe_link(runtime.settings.public_base, runtime.secret, participant_id)


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def _participant(runtime: Runtime, token: str) -> tuple[str, bool] | None:
    """The token's participant and whether they are unsubscribed already, or None."""
    participant_id = read_unsubscribe_token(runtime.secret, token)
    if participant_id is None:
        return None
    with transaction(runtime.engine) as conn:
        state = participant_rows.email_unsubscribed(conn, participant_id)
    return None if state is None else (participant_id, state)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
    """A page that asks; nothing changes until its button is pressed."""
    found = _participant(_runtime(request), token)
    if found is None:
        return _not_found()
    if found[1]:
        return _page("You are unsubscribed", "done")
    return _page("Stop reminder emails?", "ask")


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe(token: str, request: Request, via: str | None = None) -> HTMLResponse:
    """RFC 8058 one-click, or the page's button (which adds `?via=page`)."""
    runtime = _runtime(request)
    participant_id = read_unsubscribe_token(runtime.secret, token)
    if participant_id is None:
        return _not_found()
    try:
        consent.unsubscribe_email(
            runtime, participant_id, source=SOURCE, detail="page" if via == "page" else "one-click"
        )
    except NotFound:
        return _not_found()
    return _page("You are unsubscribed", "done")


def _page(title: str, page: str, status_code: int = 200) -> HTMLResponse:
    """templates/unsubscribe.html; `page` is "ask", "done" or "not_found"."""
    return render("unsubscribe.html", status_code, headers=_HEADERS, title=title, page=page)


def _not_found() -> HTMLResponse:
    return _page("Not found", "not_found", status_code=404)
