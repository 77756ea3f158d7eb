"""How an action says it was not done.

Every action raises an `ActionError` whose text is a sentence for a person (a coach at
the dashboard, an operator at the command line, a program reading the API) and whose
`failure` says what kind of no it is. Entry points only present it: the API as a status
code (`HTTP_STATUS`), the command line as its message and exit status 2, the dashboard
as a message on the page. So the same refusal reads the same everywhere.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

from service.storage.db import NotFound as MissingRow


class Failure(enum.StrEnum):
    INVALID = "invalid"  # what was asked for cannot be taken as given
    NOT_FOUND = "not_found"  # no such participant, enrollment or plan
    CONFLICT = "conflict"  # the present state does not allow it (consent included)
    UNAVAILABLE = "unavailable"  # a provider did not do its part; trying later may work
    FORBIDDEN = "forbidden"  # only an admin may do it (a coach asked)


HTTP_STATUS = {
    Failure.INVALID: 400,
    Failure.NOT_FOUND: 404,
    Failure.CONFLICT: 409,
    Failure.UNAVAILABLE: 502,
    Failure.FORBIDDEN: 403,
}


class ActionError(Exception):
    """An action that was not done, nothing changed, and why."""

    failure = Failure.CONFLICT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(ActionError):
    failure = Failure.INVALID


class NotFound(ActionError, MissingRow):
    """No such participant, enrollment or plan. Also a storage NotFound (a LookupError),
    so that one `except` serves a page that reads and acts."""

    failure = Failure.NOT_FOUND


class Conflict(ActionError):
    failure = Failure.CONFLICT


class Unavailable(ActionError):
    failure = Failure.UNAVAILABLE


class Forbidden(ActionError):
    """Admins only: a coach asked for what only an admin may do (on something the
    coach may see: what they may not see is NotFound)."""

    failure = Failure.FORBIDDEN


@contextmanager
def found() -> Iterator[None]:
    """A row the storage layer could not find becomes the action's NotFound."""
    try:
        yield
    except MissingRow as exc:
        raise NotFound(str(exc)) from None


P = ParamSpec("P")
R = TypeVar("R")


def action(func: Callable[P, R]) -> Callable[P, R]:
    """Marks an action: a missing row anywhere inside it is reported as NotFound."""

    @wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with found():
            return func(*args, **kwargs)

    return run
