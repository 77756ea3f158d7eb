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

from html import escape
from typing import cast

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from service.channels.email import read_unsubscribe_token, unsubscribe_link
from service.runtime import Runtime
from service.storage import repo
from service.storage.db import transaction

UNSUBSCRIBED_NOTE = repo.UNSUBSCRIBED_NOTE
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
        state = repo.email_unsubscribed(conn, participant_id)
    return None if state is None else (participant_id, state)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
    """A page that asks; nothing changes until its button is pressed."""
    found = _participant(_runtime(request), token)
    if found is None:
        return _not_found()
    if found[1]:
        return _page("You are unsubscribed", _DONE)
    return _page("Stop reminder emails?", _ASK)


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe(token: str, request: Request, via: str | None = None) -> HTMLResponse:
    """RFC 8058 one-click, or the page's button (which adds `?via=page`)."""
    runtime = _runtime(request)
    participant_id = read_unsubscribe_token(runtime.secret, token)
    if participant_id is None:
        return _not_found()
    with transaction(runtime.engine) as conn:
        if repo.email_unsubscribed(conn, participant_id) is None:
            return _not_found()
        repo.unsubscribe_email(
            conn,
            participant_id,
            source=SOURCE,
            now=runtime.clock.now(),
            detail="page" if via == "page" else "one-click",
        )
    return _page("You are unsubscribed", _DONE)


_ASK = """<p>You will get no more reminder emails from Tend, and the practices Tend put in
your calendar are taken out of it (one last email does that). Text messages go on.</p>
<form method="post" action="?via=page">
<button type="submit" style="padding:12px 22px; background-color:#3f6b5c; color:#ffffff;
border:0; border-radius:6px; font-size:16px; cursor:pointer;">Stop reminder emails</button>
</form>"""

_DONE = """<p>You will get no more reminder emails from Tend. The practices Tend put in your
calendar are taken out of it with one last email. Text messages go on.</p>
<p>If this was a mistake, tell your coach.</p>"""


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{escape(title)}</title>
</head>
<body style="margin:0; background-color:#f5f3ee;">
<div style="max-width:560px; margin:0 auto; padding:28px 20px; font-family:Georgia, serif;
font-size:17px; line-height:1.6; color:#2e2e2e;">
<h1 style="font-size:22px; font-weight:normal;">{escape(title)}</h1>
{body}
</div>
</body>
</html>
"""
    return HTMLResponse(page, status_code=status_code, headers=_HEADERS)


def _not_found() -> HTMLResponse:
    return _page("Not found", "<p>This link does not work.</p>", status_code=404)
