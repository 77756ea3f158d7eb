"""Who may use the coach's side of Tend: the JSON API, the dashboard, the outbox page.

With TEND_ADMIN_TOKEN set (required in production), a request must carry it, as
`Authorization: Bearer <token>` (or, for the dashboard, a session made by logging in
with it). Without one (development on a laptop), only requests from this machine
(loopback) are let in. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import cast

from fastapi import HTTPException, Request

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


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def admin_allowed(request: Request) -> bool:
    """The bearer token, or, with no token configured, a request from this machine."""
    runtime = cast(Runtime, request.app.state.runtime)
    if runtime.settings.admin_token is not None:
        return token_valid(runtime, bearer(request))
    return from_loopback(request)


def require_admin(request: Request) -> None:
    """A FastAPI dependency: 401 unless `admin_allowed`."""
    if not admin_allowed(request):
        raise HTTPException(
            status_code=401,
            detail="an admin bearer token is required (Authorization: Bearer <TEND_ADMIN_TOKEN>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
