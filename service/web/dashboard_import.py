"""The dashboard's CSV import: `/dashboard/import`.

A coach chooses a file (and, if they like, a cohort to put everyone in and a plan to
enroll them in), and first gets a dry run (`POST /dashboard/import/check`): every bad
row with its line and column in a table, and how many rows are fine; they fix the file
and upload it again. When nothing is wrong, the page says what the import will do and
offers "Import N people" (`POST /dashboard/import`), which does it: the same action
(`actions.imports.import_csv`) as the command line and the API, all or nothing.

Uploads are `multipart/form-data`, read with the standard library's `email` parser
(python-multipart is not a dependency): a file input works with no script, in every
browser. The confirming form carries the file back as base64 in a hidden field, so the
bytes imported are exactly the bytes checked (a file input cannot be filled in again
by a page), and the import checks them all again anyway. Both forms take
`application/x-www-form-urlencoded` too (a `csv` field with the text, or `data`).

Sessions, CSRF, the same-site check and the pages are `service.web.dashboard`'s.
"""

from __future__ import annotations

import base64
import binascii
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from service.actions import cohorts as groups
from service.actions import imports
from service.actions.enrollments import Start
from service.actions.errors import ActionError, Invalid
from service.core.csvimport import MAX_BYTES, MAX_ROWS
from service.web.dashboard import (
    _audit,
    _message,
    _redirect,
    _render,
    _runtime,
    _sentence,
    _stale_form,
    _to_login,
    _viewer,
)
from service.web.forms import TooLarge, read_capped
from service.web.session import Session, csrf_valid, read_session, same_site

router = APIRouter(prefix="/dashboard", include_in_schema=False)

HERE = "/dashboard/import"
# A form holding the file: the file as base64 (4/3 of it) and a few short fields.
MAX_IMPORT_FORM = MAX_BYTES * 4 // 3 + 64 * 1024
MAX_FIELD = 1000  # characters of a form's other fields (cohort, plan, start, file name)


class _Unreadable(ValueError):
    """A form that cannot be read (not multipart as it says, not UTF-8, bad base64)."""


# --- reading the forms ------------------------------------------------------------------


def _multipart(body: bytes, content_type: str) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """The fields of a multipart/form-data body, and its file (name, bytes) if one was
    chosen. The email parser reads MIME as RFC 7578 describes form data."""
    header = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = BytesParser(policy=HTTP, _class=EmailMessage).parsebytes(header + body)
    if not message.is_multipart():
        raise _Unreadable("not multipart")
    fields: dict[str, str] = {}
    upload: tuple[str, bytes] | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:  # a file input: empty when none was chosen
            if name == "file" and (filename or content):
                shown = filename.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                upload = (shown, content)
            continue
        try:
            fields[name] = content.decode("utf-8")
        except UnicodeDecodeError:
            raise _Unreadable("a field is not UTF-8") from None
    return fields, upload


def _read_form(body: bytes, content_type: str) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """The form's fields and its file: uploaded, or carried back as `data` (base64), or
    pasted as `csv` (text)."""
    kind = content_type.partition(";")[0].strip().lower()
    if kind == "multipart/form-data":
        fields, upload = _multipart(body, content_type)
    else:
        try:
            fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise _Unreadable("not UTF-8") from None
        upload = None
    name = fields.get("filename", "")[:MAX_FIELD]
    if upload is None and fields.get("data"):
        try:
            upload = (name, base64.b64decode(fields["data"], validate=True))
        except (binascii.Error, ValueError):
            raise _Unreadable("the file carried back is not base64") from None
    elif upload is None and fields.get("csv", "").strip():
        upload = (name or "pasted.csv", fields["csv"].encode("utf-8"))
    short = {k: v[:MAX_FIELD] for k, v in fields.items() if k not in ("data", "csv")}
    return short, upload


async def _posted_file(
    request: Request,
) -> tuple[Session, dict[str, str], tuple[str, bytes] | None] | Response:
    """As `dashboard._posted`, for a form that carries a file: the session, the fields
    and the file, or the response that refuses it (another site's request, no session,
    a wrong CSRF token, a body over the cap)."""
    if not same_site(request):
        return _message(request, None, "Refused", "That request came from another site.", 403)
    session = await run_in_threadpool(read_session, request)
    if session is None:
        return _to_login(request, HERE)
    try:
        body = await read_capped(request, MAX_IMPORT_FORM)
        fields, upload = _read_form(body, request.headers.get("content-type", ""))
    except TooLarge:
        mib = MAX_BYTES // (1024 * 1024)
        return _message(
            request, session, "Too large", f"That file is too large: at most {mib} MiB.", 413
        )
    except _Unreadable:
        return _message(request, session, "Not understood", "The form could not be read.", 400)
    if not csrf_valid(session, fields.get("csrf", "")):
        return _stale_form(request, session)
    return session, fields, upload


def _choices(fields: dict[str, str]) -> dict[str, str]:
    """What the coach chose, to show again and to carry to the next form."""
    return {
        "cohort": fields.get("cohort", "").strip(),
        "plan": fields.get("plan", "").strip(),
        "when": "date" if fields.get("when") == "date" else "today",
        "start": fields.get("start", "").strip(),
    }


def _options(choices: dict[str, str]) -> dict[str, Any]:
    """The action's options from the choices: a start only with a plan."""
    plan = choices["plan"] or None
    start: Start | None = None
    if plan is not None:
        start = "today" if choices["when"] == "today" else imports.parse_start(choices["start"])
        if start is None:
            raise Invalid("choose a start date, or start today")
    return {"cohort": choices["cohort"] or None, "plan": plan, "start": start}


# --- the page ----------------------------------------------------------------------------


def _page(
    request: Request,
    session: Session,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    runtime = _runtime(request)
    for key, value in (("choices", _choices({})), ("error", None), ("rejected", None),
                       ("result", None), ("filename", ""), ("data", "")):  # fmt: skip
        context.setdefault(key, value)
    return _render(
        request,
        "dashboard/import.html",
        session,
        status_code,
        title="Import people",
        section="overview",
        plans=sorted(runtime.plans.all().values(), key=lambda p: p.title.casefold()),
        cohorts=groups.cohorts(runtime, actor=session.actor),
        max_mib=MAX_BYTES // (1024 * 1024),
        max_rows=f"{MAX_ROWS:,}",
        today=runtime.clock.now().date().isoformat(),
        **context,
    )


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request) -> Response:
    session = _viewer(request)
    if session is None:
        return _to_login(request)
    return _page(request, session)


@router.post("/import/check", response_class=HTMLResponse)
async def import_check(request: Request) -> Response:
    """The dry run: what importing the file would do, or every problem in it."""
    posted = await _posted_file(request)
    if isinstance(posted, Response):
        return posted
    session, fields, upload = posted
    await run_in_threadpool(_audit, request, session)
    choices = _choices(fields)
    if upload is None:
        return await run_in_threadpool(
            lambda: _page(request, session, 400, choices=choices, error="Choose a CSV file first.")
        )
    filename, data = upload
    runtime = _runtime(request)

    def dry_run() -> HTMLResponse:
        try:
            result = imports.import_csv(
                runtime,
                data,
                filename=filename,
                dry_run=True,
                actor=session.actor,
                **_options(choices),
            )
        except imports.ImportRejected as rejected:
            return _page(
                request, session, 422, choices=choices, filename=filename, rejected=rejected
            )
        except ActionError as exc:
            return _page(request, session, 400, choices=choices, error=_sentence(exc.message))
        return _page(
            request,
            session,
            choices=choices,
            filename=filename,
            result=result,
            data=base64.b64encode(data).decode("ascii"),
        )

    return await run_in_threadpool(dry_run)


@router.post("/import", response_class=HTMLResponse)
async def import_people(request: Request) -> Response:
    """The import itself (the action writes its own entry on the audit log)."""
    posted = await _posted_file(request)
    if isinstance(posted, Response):
        return posted
    session, fields, upload = posted
    choices = _choices(fields)
    if upload is None:
        return await run_in_threadpool(
            lambda: _page(request, session, 400, choices=choices, error="Choose a CSV file first.")
        )
    filename, data = upload
    runtime = _runtime(request)

    def perform() -> Response:
        try:
            result = imports.import_csv(
                runtime, data, filename=filename, actor=session.actor, **_options(choices)
            )
        except imports.ImportRejected as rejected:
            return _page(
                request, session, 422, choices=choices, filename=filename, rejected=rejected
            )
        except ActionError as exc:
            return _page(request, session, 400, choices=choices, error=_sentence(exc.message))
        target = f"/dashboard/cohorts/{quote(result.cohort.id)}" if result.cohort else "/dashboard"
        return _redirect(request, target, _sentence(result.summary))

    return await run_in_threadpool(perform)
