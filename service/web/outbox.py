"""`GET /outbox`: the development outbox as a page, newest first.

It shows messages to real people, so it is guarded: with TEND_ADMIN_TOKEN set, the
request must carry it (`Authorization: Bearer ...`); without one (development), only
requests from this machine (loopback) are answered. The page is templates/outbox.html.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from service.runtime import Runtime
from service.storage import outbox as outbox_rows
from service.storage.db import transaction
from service.web.auth import admin_allowed
from service.web.pages import render

router = APIRouter()


@router.get("/outbox", response_class=HTMLResponse, include_in_schema=False)
def outbox_page(request: Request, limit: int = 100) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    if not admin_allowed(request):
        raise HTTPException(status_code=404)
    with transaction(runtime.engine) as conn:
        rows = outbox_rows.outbox_list(conn, limit=max(1, min(limit, 500)))
    unconfigured = runtime.settings.unconfigured_channels
    why = " and ".join(unconfigured) + " " + ("is" if len(unconfigured) == 1 else "are")
    why = f"{why} not configured" if unconfigured else "earlier runs used it"
    return render("outbox.html", headers=None, why=why, rows=rows)
