"""The sign-up page of a cohort: `/join/{token}`, for anyone the coach shares it with.

GET shows the plan, who runs it, how often it texts, and a form: name, mobile number,
email (optional), time zone (guessed by the browser, shown to confirm) and the times
the plan asks about. POST checks the form (a mistake is shown beside what was typed,
nothing lost) and answers every well-formed sign-up with the same words: what Tend
knows of the number is never told (`actions.signups`). Tend then texts the number
asking YES; nobody is enrolled before it comes back.

The token is random (the cohort's `signup_token`); an unknown one, or a cohort with no
plan, is a 404. Sign-ups are limited per address (429), and a form from another site
is refused (403).
"""

from __future__ import annotations

import secrets
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from service.actions import signups
from service.actions.errors import Invalid, NotFound
from service.runtime import Runtime
from service.web.auth import address_of
from service.web.dashboard import _sentence as sentence
from service.web.forms import TooLarge, read_capped, without_control
from service.web.pages import PRIVATE_HEADERS, render, zone_names
from service.web.session import same_site

router = APIRouter(tags=["sign-up"])

MAX_FORM = 8 * 1024
TOKEN_LENGTH = 64  # at most, of a token in a path


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def _headers(nonce: str) -> dict[str, str]:
    """The private pages' headers, with the one small script (the time zone guess) let
    in, and the referrer kept to this site: with none at all, a browser posts the form
    with `Origin: null`, which the check against other sites' forms must refuse."""
    policy = PRIVATE_HEADERS["Content-Security-Policy"] + f"; script-src 'nonce-{nonce}'"
    return {**PRIVATE_HEADERS, "Content-Security-Policy": policy,
            "Referrer-Policy": "same-origin"}  # fmt: skip


def _not_found() -> HTMLResponse:
    return render(
        "message.html", 404, title="No such sign-up page",
        text="This sign-up page does not exist, or it is closed. Ask the person who shared "
        "it for a new link.",
    )  # fmt: skip


def _page(
    runtime: Runtime,
    token: str,
    status_code: int = 200,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    done: str | None = None,
) -> HTMLResponse:
    try:
        found = signups.page(runtime, token)
    except NotFound:
        return _not_found()
    nonce = secrets.token_urlsafe(12)
    public = urlsplit(runtime.settings.public_base)
    return render(
        "join.html",
        status_code,
        headers=_headers(nonce),
        title=f"Join {found.plan.title}",
        page=found,
        error=error,
        form={k: without_control(v)[:400] for k, v in (form or {}).items()},  # shown back
        done=done,
        zones=zone_names(),
        languages=signups.LANGUAGES,
        nonce=nonce,
        site=public.netloc,
    )


@router.get("/join/{token}", response_class=HTMLResponse, include_in_schema=False)
def join_page(token: str, request: Request) -> HTMLResponse:
    if len(token) > TOKEN_LENGTH:
        return _not_found()
    return _page(_runtime(request), token)


@router.post("/join/{token}", response_class=HTMLResponse, include_in_schema=False)
async def join(token: str, request: Request) -> HTMLResponse:
    """Sign up: checked, limited per address, answered alike for every number."""
    runtime = _runtime(request)
    if len(token) > TOKEN_LENGTH:
        return _not_found()
    if not same_site(request):
        return render("message.html", 403, title="Refused",
                      text="That sign-up came from another site.")  # fmt: skip
    try:
        body = await read_capped(request, MAX_FORM)
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except TooLarge:
        return render("message.html", 413, title="Too large", text="That form was too large.")
    except UnicodeDecodeError:
        return render("message.html", 400, title="Not understood",
                      text="The form could not be read.")  # fmt: skip
    return await run_in_threadpool(_sign_up, runtime, token, form, address_of(request))


def _sign_up(runtime: Runtime, token: str, form: dict[str, str], address: str | None) -> Any:
    times = {k.removeprefix("var_"): v for k, v in form.items() if k.startswith("var_")}
    try:
        said = signups.sign_up(
            runtime, token, name=form.get("name", ""), phone=form.get("phone", ""),
            email=form.get("email", ""), timezone=form.get("timezone", ""), variables=times,
            language=form.get("language", ""), address=address,
        )  # fmt: skip
    except NotFound:
        return _not_found()
    except signups.Throttled as exc:
        return _page(runtime, token, 429, error=sentence(exc.message), form=form)
    except Invalid as exc:
        return _page(runtime, token, 400, error=sentence(exc.message), form=form)
    return _page(runtime, token, done=said)
