"""The dashboard's session: who is signed in, their CSRF token, the message to show them next.

The session is a cookie signed with the installation's secret (HMAC, see
`core.tokens`): its payload is the moment it expires (12 hours on) and a random
session id, and for an account (a coach or an admin, signed in by email and password)
the account's id and its `session_version`. It is HttpOnly, SameSite=Strict, limited
to /dashboard, and Secure when TEND_PUBLIC_URL is https.

An account's session is good only while the account is enabled and its session
version is the one the cookie carries: signing out (`accounts.sign_out_everywhere`), a
new password and disabling the account bump the version, so every older cookie of it
stops working, even one kept and replayed. The operator's session (signed in with
TEND_ADMIN_TOKEN) is signed over a digest of that token, so changing the token ends
every such session, and carries the operator's session version, which signing out
moves on (`accounts.operator_sign_out`); with no admin token configured, only this
machine (loopback) may use an operator session.

Every form that changes something carries a CSRF token derived from the session id (an
HMAC), and a request is refused when the browser says it comes from another site (an
`Origin` other than this one, or `Sec-Fetch-Site` other than same-origin): `same_site`
and `csrf_valid`.

After a POST, the page the browser is redirected to shows what was done, once: a
signed "flash" cookie (`set_flash`), read by the next page (`read_flash`), which
deletes it (`clear_flash`).

Who may log in (the admin token, or this machine) is `service.web.auth`'s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from fastapi import Request
from fastapi.responses import Response

from service.actions import coaches as accounts
from service.actions.coaches import Actor
from service.core.tokens import sign, verify
from service.runtime import Runtime
from service.web.auth import address_of, from_loopback, host_allowed, origin_allowed

SESSION_COOKIE = "tend_dashboard"
FLASH_COOKIE = "tend_dashboard_flash"
COOKIE_PATH = "/dashboard"
SESSION_LENGTH = timedelta(hours=12)
FLASH_LENGTH = 120  # seconds: enough to follow one redirect


ACCOUNT_PURPOSE = "dashboard-session:account"


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    expires: datetime
    csrf: str
    actor: Actor  # who is signed in: an account, or the operator

    @property
    def is_account(self) -> bool:
        return self.actor.id != "operator"

    @property
    def sees_all(self) -> bool:
        """An admin account or the operator: every participant, and the admin pages."""
        return self.actor.sees_all


def _runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def _secure(runtime: Runtime) -> bool:
    return runtime.settings.public_base.startswith("https://")


# --- the session cookie -------------------------------------------------------------------


def _purpose(runtime: Runtime) -> str:
    """What a session cookie is signed for: bound to the admin token as it is now."""
    token = runtime.settings.admin_token
    if token is None:
        return "dashboard-session:loopback"
    digest = hashlib.sha256(token.get_secret_value().encode()).hexdigest()[:16]
    return f"dashboard-session:{digest}"


def _csrf(runtime: Runtime, sid: str) -> str:
    return sign(runtime.secret, "dashboard-csrf", sid).rpartition(".")[2]


def new_session(runtime: Runtime, now: datetime, account: tuple[str, int] | None = None) -> str:
    """A session cookie's value, good for SESSION_LENGTH from `now`: the operator's, or
    with `account` (its id and session version) an account's."""
    expires = int((now + SESSION_LENGTH).timestamp())
    sid = secrets.token_urlsafe(16)
    if account is None:
        version = accounts.operator_session_version(runtime)
        return sign(runtime.secret, _purpose(runtime), f"{expires}.{sid}.{version}")
    coach_id, version = account
    return sign(runtime.secret, ACCOUNT_PURPOSE, f"{expires}.{sid}.{coach_id}.{version}")


def _expiry(stamp: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(stamp), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def read_session(request: Request) -> Session | None:
    """The request's session, when it has a valid, unexpired one it may use. For an
    account, this reads the database: the account must be enabled and the session
    version the cookie's."""
    runtime = _runtime(request)
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw or len(raw) > 400:
        return None
    now = runtime.clock.now()
    address = address_of(request)
    payload = verify(runtime.secret, _purpose(runtime), raw)
    if payload is not None:  # the operator's
        parts = payload.split(".")
        if len(parts) != 3 or not parts[1] or not parts[2].isdigit():
            return None
        stamp, sid, version = parts
        expires = _expiry(stamp)
        if expires is None or now >= expires:
            return None
        if runtime.settings.admin_token is None and not (
            from_loopback(request) and host_allowed(request)
        ):
            return None
        if int(version) != accounts.operator_session_version(runtime):  # signed out since
            return None
        return Session(sid, expires, _csrf(runtime, sid), accounts.operator(address))
    payload = verify(runtime.secret, ACCOUNT_PURPOSE, raw)
    if payload is None:
        return None
    parts = payload.split(".")
    if len(parts) != 4 or not parts[1] or not parts[2] or not parts[3].isdigit():
        return None
    stamp, sid, coach_id, version = parts
    expires = _expiry(stamp)
    if expires is None or now >= expires:
        return None
    coach = accounts.session_account(runtime, coach_id, int(version))
    if coach is None:  # disabled, signed out, a new password
        return None
    return Session(sid, expires, _csrf(runtime, sid), Actor.of(coach, address))


def start_session(
    response: Response, runtime: Runtime, account: tuple[str, int] | None = None
) -> None:
    """Log in: give `response` a new session cookie, from the runtime's clock (the
    operator's, or with `account`, its id and session version, an account's)."""
    response.set_cookie(
        SESSION_COOKIE,
        new_session(runtime, runtime.clock.now(), account),
        max_age=int(SESSION_LENGTH.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(runtime),
    )


def end_session(response: Response, runtime: Runtime) -> None:
    """Log out: `response` deletes the session cookie."""
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
        secure=_secure(runtime),
    )  # fmt: skip


# --- cross-site requests ------------------------------------------------------------------


def same_site(request: Request) -> bool:
    """False when the browser says the request comes from another site."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # an older browser, or not a browser: the CSRF token decides
    return origin_allowed(_runtime(request), origin)


def csrf_valid(session: Session, given: str) -> bool:
    """Whether a form's `csrf` field is the session's token (compared in constant time)."""
    return hmac.compare_digest(given.encode(), session.csrf.encode())


# --- the message shown once after a POST --------------------------------------------------


def _flash_value(runtime: Runtime, kind: str, text: str) -> str:
    raw = json.dumps({"kind": kind, "text": text[:500]}, separators=(",", ":")).encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return sign(runtime.secret, "dashboard-flash", payload)


def set_flash(response: Response, runtime: Runtime, text: str, kind: str = "ok") -> None:
    """Have the next page show `text` once; `kind` is "ok" or "error"."""
    response.set_cookie(
        FLASH_COOKIE,
        _flash_value(runtime, kind, text),
        max_age=FLASH_LENGTH,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(runtime),
    )


def read_flash(request: Request) -> dict[str, str] | None:
    """The message to show on this page (`kind` and `text`), if a valid one came."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    payload = verify(_runtime(request).secret, "dashboard-flash", raw)
    if payload is None:
        return None
    try:
        found = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(found, dict):
        return None
    kind = found.get("kind") if found.get("kind") in ("ok", "error") else "ok"
    return {"kind": str(kind), "text": str(found.get("text", ""))}


def clear_flash(request: Request, response: Response) -> None:
    """Once shown, the message goes: `response` deletes any flash cookie the request had."""
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(
            FLASH_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
            secure=_secure(_runtime(request)),
        )  # fmt: skip
