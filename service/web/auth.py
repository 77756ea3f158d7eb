"""Who may use the coach's side of Tend: the JSON API, the dashboard, the outbox page.

With TEND_ADMIN_TOKEN set (required in production), a request must carry it, as
`Authorization: Bearer <token>` (or, for the dashboard, a session made by logging in
with it: `service.web.session`). Without one (development on a laptop), only requests
from this machine (loopback) are let in, and only for a loopback host name or
TEND_PUBLIC_URL's (a web page whose name was made to resolve to 127.0.0.1 must not read
the cohort: DNS rebinding), and never from another site's page (Origin). Tokens are
compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import cast
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from service.actions import coaches as accounts
from service.actions.coaches import Actor
from service.runtime import Runtime


def token_valid(runtime: Runtime, given: str) -> bool:
    """Whether `given` is the admin token (False when none is configured)."""
    token = runtime.settings.admin_token
    if token is None or not given:
        return False
    return hmac.compare_digest(given.encode(), token.get_secret_value().encode())


def from_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _known_host(runtime: Runtime, hostname: str | None) -> bool:
    public = urlsplit(runtime.settings.public_base).hostname
    return hostname is not None and (hostname in LOOPBACK_NAMES or hostname == public)


def origin_allowed(runtime: Runtime, origin: str) -> bool:
    """An Origin header naming this site: TEND_PUBLIC_URL's origin, or this machine."""
    public = urlsplit(runtime.settings.public_base)
    if origin == f"{public.scheme}://{public.netloc}":
        return True
    return urlsplit(origin).hostname in LOOPBACK_NAMES


def host_allowed(request: Request) -> bool:
    """The Host header names this machine or TEND_PUBLIC_URL's host."""
    runtime = cast(Runtime, request.app.state.runtime)
    host = request.headers.get("host", "")
    return _known_host(runtime, urlsplit(f"//{host}").hostname)


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def admin_allowed(request: Request) -> bool:
    """The bearer token, or, with no token configured, a request from this machine."""
    runtime = cast(Runtime, request.app.state.runtime)
    if runtime.settings.admin_token is not None:
        return token_valid(runtime, bearer(request))
    origin = request.headers.get("origin")
    return (
        from_loopback(request)
        and host_allowed(request)
        and (origin is None or origin_allowed(runtime, origin))
    )


def address_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def resolve_actor(request: Request) -> Actor | None:
    """Who sends the request: an account's API token (`tend_...`), the operator's
    TEND_ADMIN_TOKEN, or with no token configured a request from this machine (as
    the operator); None when it is none of these."""
    runtime = cast(Runtime, request.app.state.runtime)
    given = bearer(request)
    address = address_of(request)
    if given.startswith(accounts.TOKEN_PREFIX):
        coach = accounts.token_account(runtime, given)
        return accounts.Actor.of(coach, address) if coach is not None else None
    if admin_allowed(request):
        return accounts.operator(address)
    return None


def _audit_request(request: Request, actor: Actor) -> None:
    """The request on the audit log: its route as written, and the id it is about."""
    route = request.scope.get("route")
    template = getattr(route, "path", request.url.path)
    params = request.path_params
    target = next(((k, str(v)) for k, v in params.items() if k.endswith("_id")), None)
    accounts.record(
        cast(Runtime, request.app.state.runtime),
        actor,
        f"{request.method} {template}"[:64],
        target[0].removesuffix("_id") if target else None,
        target[1][:64] if target else None,
    )


def _request_actor(request: Request) -> Actor | None:
    """Who sends the request, worked out (and put on the audit log) once per request,
    however many dependencies ask."""
    known = getattr(request.state, "actor", None)
    if isinstance(known, Actor):
        return known
    actor = resolve_actor(request)
    if actor is not None:
        request.state.actor = actor
        _audit_request(request, actor)
    return actor


def require_admin(request: Request) -> Actor:
    """A FastAPI dependency: the operator or an admin account; 401 without a valid
    token, 403 for a coach's. The request goes on the audit log."""
    actor = _request_actor(request)
    if actor is None:
        raise HTTPException(
            status_code=401,
            detail="an admin bearer token is required (Authorization: Bearer <TEND_ADMIN_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not actor.sees_all:
        raise HTTPException(status_code=403, detail="only an admin can do this")
    return actor


def require_actor(request: Request) -> Actor:
    """A FastAPI dependency for routes that show each coach only their own people: any
    account's token, or the operator's, or 401. The request goes on the audit log."""
    actor = _request_actor(request)
    if actor is None:
        raise HTTPException(
            status_code=401,
            detail="a bearer token is required (Authorization: Bearer <token>): an "
            "account's API token, or the admin bearer token (TEND_ADMIN_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return actor
