"""`POST /api/participants/import`: the people of a CSV file (the body, as
`tend participants import` reads a file), added all or nothing (`actions.imports`).

Its models are here rather than in `schemas`: no other route uses them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, RootModel

from service.actions import imports
from service.actions.coaches import Actor
from service.core.csvimport import MAX_BYTES
from service.core.plan import ID_PATTERN
from service.runtime import Runtime
from service.web.api.common import ActorDep, Problem, RuntimeDep, answering, responses
from service.web.api.schemas import ShapeProblem
from service.web.forms import TooLarge, read_capped

router = APIRouter()

CSV_TYPES = ("text/csv", "text/plain")


class ImportProblem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: int = Field(description="The line of the file, from 1 (the header is line 1).")
    column: str | None = Field(
        description="The column as the file's header writes it; null: the row or the file "
        "as a whole."
    )
    message: str


class ImportRefusedOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    errors: list[ImportProblem] = Field(description="Every problem found; nothing was imported.")


class ImportRefused(RootModel[ImportRefusedOut | ShapeProblem]):
    """The import's 422: the file's problems, or (a parameter of the wrong shape) FastAPI's."""


class SkippedLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: int
    message: str = Field(description="Why it was left out: its phone number is in Tend already.")


class ImportOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    imported: int = Field(description="People added (in a dry run: who would be).")
    participants: list[str] = Field(description="Their ids, in the file's order (dry run: none).")
    skipped: list[SkippedLine] = Field(
        description="Lines left out: their phone number is in Tend already (not an error)."
    )
    dry_run: bool
    cohort: str | None = Field(description="The cohort they were put in (its id), if any.")
    plan: str | None = Field(description="The plan they were enrolled in, if any.")


_CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": "The CSV file (UTF-8): a header row with `name` and `timezone`, and "
        "optionally `phone`, `email`, `language`; any other column is a variable.",
        "content": {
            kind: {"schema": {"type": "string", "maxLength": MAX_BYTES}} for kind in CSV_TYPES
        },
    }
}


def _run(
    runtime: Runtime, body: bytes, actor: Actor, options: dict[str, Any]
) -> imports.Imported | JSONResponse:
    with answering():
        start = imports.parse_start(options.pop("start"))
        try:
            return imports.import_csv(runtime, body, start=start, actor=actor, **options)
        except imports.ImportRejected as rejected:
            content = ImportRefusedOut(
                errors=[
                    ImportProblem(line=e.line, column=e.column, message=e.message)
                    for e in rejected.errors
                ]
            )
            return JSONResponse(content.model_dump(), status_code=422)


@router.post(
    "/participants/import",
    response_model=ImportOut,
    tags=["participants"],
    summary="Import participants from a CSV file",
    responses={
        **responses(400, 404, 409),
        413: {"model": Problem, "description": "The body is larger than 5 MiB."},
        415: {"model": Problem, "description": "The body is not CSV or plain text."},
        422: {
            "model": ImportRefused,
            "description": "The file's problems, each at its line and column, or a parameter "
            "of the wrong shape; nothing was imported.",
        },
    },
    openapi_extra=_CSV_BODY,
)
async def import_participants(
    request: Request,
    runtime: RuntimeDep,
    actor: ActorDep,
    cohort: Annotated[
        str | None,
        Query(
            max_length=100,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="Put them in the cohort of this name (made when there is none).",
        ),
    ] = None,
    plan: Annotated[
        str | None,
        Query(pattern=ID_PATTERN, description="Enroll them in this plan; needs `start`."),
    ] = None,
    start: Annotated[
        str | None,
        Query(max_length=10, description="The enrollments' start: YYYY-MM-DD, or today."),
    ] = None,
    dry_run: Annotated[
        bool, Query(description="Check everything and say what would be done; store nothing.")
    ] = False,
    filename: Annotated[
        str,
        Query(
            max_length=255,
            pattern=r"^[^\x00-\x1f\x7f]*$",
            description="The file's name, for the consent log (import:FILE).",
        ),
    ] = "api.csv",
) -> Any:
    """Add the people of the CSV file, all or nothing: one bad row and nothing is
    imported (422, every problem at its line and column). A line whose phone number is
    in Tend already is left out and listed in `skipped`. A coach's token imports the
    coach's own people (and cohort)."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind not in CSV_TYPES:
        raise HTTPException(
            415, "send the CSV file as text/csv or text/plain, not " + (kind or "nothing")
        )
    try:
        body = await read_capped(request, MAX_BYTES)
    except TooLarge:
        raise HTTPException(
            413, f"a file to import may be at most {MAX_BYTES // (1024 * 1024)} MiB"
        ) from None
    options = {
        "filename": filename,
        "cohort": cohort,
        "plan": plan,
        "start": start,
        "dry_run": dry_run,
    }
    done = await run_in_threadpool(_run, runtime, body, actor, options)
    if isinstance(done, JSONResponse):
        return done
    return ImportOut(
        imported=done.count,
        participants=done.ids,
        skipped=[SkippedLine(line=s.line, message=s.message) for s in done.skipped],
        dry_run=done.dry_run,
        cohort=done.cohort.id if done.cohort else None,
        plan=done.plan,
    )
