"""The FastAPI application."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from service import __version__
from service.runtime import Runtime
from service.web import ops
from service.web.api import router as api_router
from service.web.calendar import router as calendar_router
from service.web.checkin import router as check_in_router
from service.web.dashboard import router as dashboard_router
from service.web.dashboard_cohorts import router as dashboard_cohorts_router
from service.web.dashboard_import import router as dashboard_import_router
from service.web.dashboard_people import router as dashboard_people_router
from service.web.join import router as join_router
from service.web.outbox import router as outbox_router
from service.web.twilio import router as twilio_router
from service.web.unsubscribe import router as unsubscribe_router


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="Tend", version=__version__, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    ops.install(app, runtime)
    app.include_router(ops.router)
    app.include_router(unsubscribe_router)
    app.include_router(outbox_router)
    app.include_router(twilio_router)
    app.include_router(check_in_router)
    app.include_router(join_router)
    app.include_router(calendar_router)
    app.include_router(dashboard_router)
    app.include_router(dashboard_cohorts_router)
    app.include_router(dashboard_import_router)
    app.include_router(dashboard_people_router)
    app.include_router(api_router)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, without echoing the input back: it may be huge, or not even
        encodable (a lone surrogate), and it is the client's own anyway."""
        errors = [
            {key: value for key, value in error.items() if key in ("type", "loc", "msg")}
            for error in exc.errors()
        ]
        body = json.dumps({"detail": errors}, ensure_ascii=True, default=str)
        return JSONResponse(content=json.loads(body), status_code=422)

    @app.get("/healthz", response_class=PlainTextResponse, tags=["operations"])
    def healthz() -> str:
        """Liveness: the process answers."""
        return "ok\n"

    return app
