"""`GET /outbox`: the development outbox as a page, newest first.

It shows messages to real people, so it is guarded: with TEND_ADMIN_TOKEN set, the
request must carry it (`Authorization: Bearer ...`); without one (development), only
requests from this machine (loopback) are answered.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from service.runtime import Runtime
from service.storage import repo
from service.storage.db import transaction
from service.web.auth import admin_allowed

router = APIRouter()

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tend: development outbox</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 1rem auto; max-width: 50rem;
       padding: 0 1rem; color: #222; }}
article {{ border-bottom: 1px solid #ddd; padding: .75rem 0; }}
.meta {{ color: #555; font-size: .9rem; }}
pre {{ white-space: pre-wrap; font: inherit; margin: .25rem 0 0; }}
</style></head>
<body><h1>Development outbox</h1>
<p>Messages Tend would have sent, kept here because {why}. Newest first.</p>
{items}
</body></html>
"""


def _allowed(request: Request, runtime: Runtime) -> bool:
    return admin_allowed(request)


def _item(row: dict[str, Any]) -> str:
    subject = f"<strong>{escape(row['subject'])}</strong><br>" if row["subject"] else ""
    calendar = row.get("calendar")
    invitation = (
        f"<details><summary>calendar invitation</summary><pre>{escape(calendar)}</pre></details>"
        if calendar
        else ""
    )
    return (
        f'<article><div class="meta">#{row["id"]} · {row["created_at"]:%Y-%m-%d %H:%M:%S} UTC'
        f" · {escape(row['channel'])} to {escape(row['recipient'])}</div>"
        f"{subject}<pre>{escape(row['body'])}</pre>{invitation}</article>"
    )


@router.get("/outbox", response_class=HTMLResponse, include_in_schema=False)
def outbox_page(request: Request, limit: int = 100) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    if not _allowed(request, runtime):
        raise HTTPException(status_code=404)
    with transaction(runtime.engine) as conn:
        rows = repo.outbox_list(conn, limit=max(1, min(limit, 500)))
    unconfigured = [
        name
        for name, configured in (
            ("SMS", runtime.settings.twilio_configured),
            ("email", runtime.settings.smtp_configured),
        )
        if not configured
    ]
    why = " and ".join(unconfigured) + " " + ("is" if len(unconfigured) == 1 else "are")
    why = f"{why} not configured" if unconfigured else "earlier runs used it"
    items = "\n".join(_item(row) for row in rows) or "<p>Nothing yet.</p>"
    return HTMLResponse(PAGE.format(why=escape(why), items=items))
