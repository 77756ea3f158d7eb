"""What every resource of the JSON API shares: the error shape, the runtime, the admin
token, paging and id parameters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, HTTPException, Path, Query, Request, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from service.actions.coaches import Actor
from service.actions.errors import HTTP_STATUS, ActionError
from service.core.plan import ID_PATTERN
from service.runtime import Runtime
from service.storage.db import NotFound
from service.web.auth import require_actor, require_admin


class Problem(BaseModel):
    """What went wrong, in words."""

    detail: str = Field(description="What went wrong and, where it helps, what to do.")


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    words = {
        400: "A body that is not JSON, or a value that cannot be used (the message says why).",
        404: "No such participant, enrollment or plan.",
        403: "Admins only: a coach's token may not do this.",
        409: "The current state does not allow it (the message says why).",
        502: "The channel could not send the message.",
    }
    return {code: {"model": Problem, "description": words[code]} for code in codes}


def bad_request(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


def not_found(message: str) -> HTTPException:
    return HTTPException(status_code=404, detail=message)


@contextmanager
def answering() -> Iterator[None]:
    """An action's refusal, or a row that is not there, becomes the answer: its status
    (`actions.errors.HTTP_STATUS`) with its message as the detail."""
    try:
        yield
    except ActionError as exc:
        raise HTTPException(status_code=HTTP_STATUS[exc.failure], detail=exc.message) from None
    except NotFound as exc:
        raise not_found(str(exc)) from None


# Declares the bearer scheme in the OpenAPI document (it refuses nothing itself:
# `require_actor` and `require_admin` decide).
_bearer = HTTPBearer(
    scheme_name="AdminToken",
    description="A coach's or admin's API token (`tend coaches token`), or "
    "TEND_ADMIN_TOKEN, as `Authorization: Bearer <token>`. A coach's token sees and "
    "acts on only that coach's participants: another coach's are 404, like missing ones.",
    auto_error=False,
)


def _no_store(response: Response) -> None:
    """Answers hold people's health data: no cache keeps them."""
    response.headers["Cache-Control"] = "no-store"


DEPENDENCIES = [Depends(_bearer), Depends(require_actor), Depends(_no_store)]
UNAUTHORISED: dict[int | str, dict[str, Any]] = {
    401: {
        "model": Problem,
        "description": "No bearer token, or a wrong one (Authorization: Bearer ...).",
    }
}
# For the routes only an admin (or the operator) may use: a coach's token gets 403.
ADMIN_ONLY = [Depends(require_admin)]

# Who asks (set by the router's `require_actor`): a coach sees only their own people.
ActorDep = Annotated[Actor, Depends(require_actor)]


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


RuntimeDep = Annotated[Runtime, Depends(_runtime)]

ID_TEXT = r"^[A-Za-z0-9_-]{1,32}$"
ParticipantId = Annotated[
    str, Path(pattern=ID_TEXT, description="A participant's id, such as p_k3m9x2q7hv4d.")
]
EnrollmentId = Annotated[
    str, Path(pattern=ID_TEXT, description="An enrollment's id, such as e_k3m9x2q7hv4d.")
]
PlanId = Annotated[str, Path(pattern=ID_PATTERN, description="A plan's id, such as sleep-hygiene.")]
Limit = Annotated[int, Query(ge=1, le=500, description="At most this many items (1 to 500).")]
Offset = Annotated[
    int, Query(ge=0, le=1_000_000_000, description="Skip this many items first (for paging).")
]
ParticipantFilter = Annotated[
    str | None, Query(pattern=ID_TEXT, description="Only this participant's.")
]
PlanFilter = Annotated[str | None, Query(pattern=ID_PATTERN, description="Only this plan's.")]


Out = TypeVar("Out", bound=BaseModel)


def from_row(model: type[Out], row: Mapping[str, Any], **renamed: str) -> Out:
    """`model` from a row's columns: each field from the column of its name, or, for the
    fields in `renamed`, from the column named there (`participant="participant_id"`)."""
    return model.model_validate({**row, **{name: row[column] for name, column in renamed.items()}})


def utc(moment: datetime, what: str) -> datetime:
    try:
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except OverflowError:
        raise bad_request(f"{what} is out of range") from None
