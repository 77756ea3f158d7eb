"""Every route of the app, found by walking the app itself rather than a list, so that a
new route is in every test that walks them (the security and scoping tests)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount, Route


@dataclass(frozen=True, order=True)
class Endpoint:
    method: str
    path: str  # the route's path template, prefixes included

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def dashboard(self) -> bool:
        return self.path == "/dashboard" or self.path.startswith("/dashboard/")

    @property
    def writes(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


def served(app: FastAPI) -> list[Endpoint]:
    """Every method and path the app serves."""
    found: list[Endpoint] = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = str(context.path)
        if isinstance(route, Mount):  # a mounted app answers any method under its path
            found.extend(Endpoint(m, f"{path}/{{rest}}") for m in ("GET", "POST"))
        elif isinstance(route, APIRoute | Route):
            found.extend(Endpoint(method, path) for method in sorted(context.methods or ()))
        else:
            raise AssertionError(f"a route of a kind these tests do not know: {route!r}")
    return sorted(set(found))
