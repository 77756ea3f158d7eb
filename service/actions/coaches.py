"""Coach and admin accounts: adding them, one-time links to set a password, signing in
(throttled per account and per address), API tokens, disabling; and the audit log that
records every one of these and every action a coach or admin takes.

Secrets never leave here in the clear except once, to the person they are for: a
password is kept as its argon2id hash (argon2-cffi's defaults, RFC 9106's second
recommended profile), a token or link as the SHA-256 of 256 random bits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection

from service.actions.errors import Conflict, Invalid, NotFound, action
from service.core import validate
from service.runtime import Runtime
from service.storage import app_state
from service.storage import audit as audit_rows
from service.storage import coaches as coach_rows
from service.storage.audit import AuditEntry
from service.storage.coaches import Coach, Token
from service.storage.db import reading, transaction

log = structlog.get_logger("tend.coaches")

ROLES = ("coach", "admin")
LINK_LIFETIME = timedelta(hours=72)
MIN_PASSWORD = 10
MAX_PASSWORD = 256
TOKEN_PREFIX = "tend_"
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_ACCOUNT_FAILURES = 5  # a window's failed passwords for one account
MAX_ADDRESS_FAILURES = 20  # and from one address, whatever the account
LAST_USED_EVERY = timedelta(minutes=1)  # a token's last use is written at most this often

_HASHER = PasswordHasher()
# Checked when the account does not exist, so that a miss takes as long as a hit.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class Actor:
    """Who does something: a coach, an admin, or the operator (TEND_ADMIN_TOKEN, the
    command line). `address` is where the request came from (None: the command line)."""

    id: str  # a coach id, or "operator"
    name: str
    role: str  # coach, admin
    address: str | None = None

    @property
    def sees_all(self) -> bool:
        return self.role == "admin"

    @property
    def coach_id(self) -> str | None:
        """The coach whose people this actor sees (None: everyone's)."""
        return None if self.sees_all else self.id

    @classmethod
    def of(cls, coach: Coach, address: str | None = None) -> Actor:
        return cls(coach.id, coach.name, coach.role, address)


def operator(address: str | None = None) -> Actor:
    """The operator: TEND_ADMIN_TOKEN, or the command line on the server."""
    return Actor("operator", "operator", "admin", address)


class SignInRefused(Invalid):
    """Wrong email or password, a disabled account, or too many attempts: one message
    for all, so that it tells nobody which accounts exist."""


class SignInThrottled(SignInRefused):
    """Too many failed attempts lately, from this address or for this account."""


THROTTLED = "too many attempts to sign in; wait a quarter of an hour and try again"


def record(
    runtime: Runtime,
    actor: Actor,
    what: str,
    target_kind: str | None = None,
    target_id: str | None = None,
    detail: str | None = None,
) -> None:
    """Append to the audit log. `detail` is for ids and counts, never a participant's
    message, phone or email."""
    with transaction(runtime.engine) as conn:
        audit_rows.append(
            conn,
            at=runtime.clock.now(),
            actor=actor.id,
            actor_name=actor.name,
            address=actor.address,
            action=what,
            target_kind=target_kind,
            target_id=target_id,
            detail=detail,
        )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _email(text: str) -> str:
    try:
        return validate.email(text).lower()
    except validate.Invalid as exc:
        raise Invalid(str(exc)) from None


def _account(conn: Connection, email: str) -> Coach:
    found = coach_rows.find_coach_by_email(conn, _email(email))
    if found is None:
        raise NotFound(f"no account with the email {email.strip()}")
    return found


# --- accounts ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewAccount:
    coach: Coach
    link: str  # where they set their password (once, within LINK_LIFETIME)


@action
def add(runtime: Runtime, by: Actor, *, email: str, name: str, role: str = "coach") -> NewAccount:
    """A new account, and the one-time link to set its password."""
    if not by.sees_all:
        raise NotFound("no such page")  # a coach cannot add accounts
    if role not in ROLES:
        raise Invalid(f"role must be coach or admin, not '{role}'")
    address = _email(email)
    try:
        shown = validate.name(name)
    except validate.Invalid as exc:
        raise Invalid(str(exc)) from None
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        if coach_rows.find_coach_by_email(conn, address) is not None:
            raise Conflict(f"an account with the email {address} exists already")
        coach = coach_rows.add_coach(conn, email=address, name=shown, role=role, now=now)
        link = _new_link(runtime, conn, coach.id, now)
    record(runtime, by, "account.add", "coach", coach.id, f"role={role}")
    return NewAccount(coach, link)


def _new_link(runtime: Runtime, conn: Connection, coach_id: str, now: datetime) -> str:
    secret = secrets.token_urlsafe(32)
    coach_rows.add_link(
        conn,
        coach_id=coach_id,
        token_hash=_digest(secret),
        now=now,
        expires=now + LINK_LIFETIME,
    )
    return f"{runtime.settings.public_base}/dashboard/set-password/{secret}"


@action
def new_link(runtime: Runtime, by: Actor, email: str) -> str:
    """A new one-time link to set the account's password (earlier ones stop working)."""
    if not by.sees_all:
        raise NotFound("no such page")
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        coach = _account(conn, email)
        link = _new_link(runtime, conn, coach.id, now)
    record(runtime, by, "account.link", "coach", coach.id)
    return link


def link_account(runtime: Runtime, secret: str) -> Coach | None:
    """The account a set-password link is for, while it can be used."""
    if not secret or len(secret) > 100:
        return None
    with reading(runtime.engine) as conn:
        coach_id = coach_rows.link_usable(conn, _digest(secret), runtime.clock.now())
        return coach_rows.get_coach(conn, coach_id) if coach_id else None


@action
def set_password(runtime: Runtime, secret: str, password: str, address: str | None) -> Coach:
    """Spend a one-time link: the account's password becomes `password`, and every
    session it had ends."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise Invalid(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters; a few words "
            "you will remember make a good one"
        )
    hashed = _HASHER.hash(password)
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        coach_id = coach_rows.use_link(conn, _digest(secret), now) if secret else None
        if coach_id is None:
            raise Invalid("this link has been used or has expired; ask an admin for a new one")
        coach = coach_rows.update_coach(
            conn, coach_id, now, password_hash=hashed, end_sessions=True
        )
    record(runtime, Actor.of(coach, address), "account.set_password", "coach", coach.id)
    return coach


@action
def disable(runtime: Runtime, by: Actor, email: str) -> Coach:
    """The account can no longer sign in or use its tokens; its sessions end."""
    if not by.sees_all:
        raise NotFound("no such page")
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        coach = _account(conn, email)
        coach = coach_rows.update_coach(conn, coach.id, now, disabled=True, end_sessions=True)
    record(runtime, by, "account.disable", "coach", coach.id)
    return coach


def accounts(runtime: Runtime) -> list[Coach]:
    with reading(runtime.engine) as conn:
        return coach_rows.list_coaches(conn)


# --- signing in ----------------------------------------------------------------------


def _subjects(email: str, address: str | None) -> list[str]:
    found = [f"account:{email}"]
    if address:
        found.append(f"address:{address}")
    return found


def sign_in(runtime: Runtime, email: str, password: str, address: str | None) -> Coach:
    """The account, when the email and password are right, it is not disabled, and
    neither it nor the address has failed too often lately. Every attempt is on the
    audit log; SignInRefused says the same whatever went wrong."""
    now = runtime.clock.now()
    address_key = (email or "").strip().lower()[:320]
    subjects = _subjects(address_key, address)
    since = now - THROTTLE_WINDOW
    with reading(runtime.engine) as conn:
        throttled = coach_rows.failures_since(conn, subjects[0], since) >= MAX_ACCOUNT_FAILURES or (
            address is not None
            and coach_rows.failures_since(conn, subjects[1], since) >= MAX_ADDRESS_FAILURES
        )
        found = coach_rows.find_coach_by_email(conn, address_key)
    if throttled:
        _failed(runtime, subjects, found, address, "throttled", now)
        raise SignInThrottled(THROTTLED)
    ok = _verify(found.password_hash if found else None, password[:MAX_PASSWORD])
    if found is None or not ok or found.disabled:
        _failed(runtime, subjects, found, address, "refused", now)
        raise SignInRefused("that email and password do not match an account that may sign in")
    with transaction(runtime.engine) as conn:
        coach_rows.forget_failures(conn, subjects[0])
        coach_rows.forget_failures(conn, before=now - THROTTLE_WINDOW)
        if _HASHER.check_needs_rehash(found.password_hash or ""):
            coach_rows.update_coach(conn, found.id, now, password_hash=_HASHER.hash(password))
    record(runtime, Actor.of(found, address), "sign_in", "coach", found.id)
    return found


OPERATOR_SESSIONS = "operator_session_version"


def operator_sign_in(runtime: Runtime, allowed: bool, address: str | None) -> Actor:
    """The operator signing in to the dashboard, `allowed` when they gave the admin token
    (or, with none configured, came from this machine): throttled per address like an
    account's sign-in (not per account, so that nobody can lock the operator out), and
    on the audit log either way."""
    now = runtime.clock.now()
    subjects = [f"address:{address}"] if address else []
    with reading(runtime.engine) as conn:
        throttled = bool(subjects) and (
            coach_rows.failures_since(conn, subjects[0], now - THROTTLE_WINDOW)
            >= MAX_ADDRESS_FAILURES
        )
    who = operator(address)
    if throttled or not allowed:
        why = "throttled" if throttled else "refused"
        with transaction(runtime.engine) as conn:
            coach_rows.add_failure(conn, subjects, now)
        record(runtime, Actor("unknown", "unknown", "coach", address), f"sign_in.{why}",
               None, None, "admin token")  # fmt: skip
        if throttled:
            raise SignInThrottled(THROTTLED)
        raise SignInRefused("that is not the admin token")
    record(runtime, who, "sign_in", None, None, "admin token")
    return who


def operator_session_version(runtime: Runtime) -> int:
    """The operator's session version: dashboard sessions signed in with the admin token
    carry it, and work only while it is current."""
    with reading(runtime.engine) as conn:
        return int(app_state.get_state(conn, OPERATOR_SESSIONS) or 0)


def operator_sign_out(runtime: Runtime, address: str | None) -> None:
    """End every operator session (they share one credential, so signing out is
    everywhere, as for an account)."""
    with transaction(runtime.engine) as conn:
        app_state.next_count(conn, OPERATOR_SESSIONS)
    record(runtime, operator(address), "sign_out", None, None, "admin token")


def _verify(hashed: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(hashed or _DUMMY_HASH, password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


def _failed(
    runtime: Runtime,
    subjects: list[str],
    found: Coach | None,
    address: str | None,
    why: str,
    now: datetime,
) -> None:
    with transaction(runtime.engine) as conn:
        coach_rows.add_failure(conn, subjects, now)
    who = Actor.of(found, address) if found else Actor("unknown", "unknown", "coach", address)
    record(runtime, who, f"sign_in.{why}", "coach", found.id if found else None)


@action
def sign_out_everywhere(runtime: Runtime, coach_id: str, address: str | None) -> None:
    """End every session of the account (signing out bumps its session version)."""
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        coach = coach_rows.update_coach(conn, coach_id, now, end_sessions=True)
    record(runtime, Actor.of(coach, address), "sign_out", "coach", coach.id)


def session_account(runtime: Runtime, coach_id: str, version: int) -> Coach | None:
    """The account a session cookie names, while that session may still be used."""
    with reading(runtime.engine) as conn:
        try:
            coach = coach_rows.get_coach(conn, coach_id)
        except LookupError:
            return None
    if coach.disabled or coach.session_version != version:
        return None
    return coach


# --- API tokens ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewToken:
    token: Token
    secret: str  # shown once


@action
def create_token(runtime: Runtime, by: Actor, email: str, label: str) -> NewToken:
    """A new API token for the account (an admin for anyone; a coach for themself)."""
    label = label.strip() or "API token"
    if len(label) > 100 or any(ord(c) < 32 or ord(c) == 127 for c in label):
        raise Invalid("a token's label is one line of at most 100 characters")
    now = runtime.clock.now()
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction(runtime.engine) as conn:
        coach = _account(conn, email)
        if not by.sees_all and coach.id != by.id:
            raise NotFound(f"no account with the email {email.strip()}")
        token = coach_rows.add_token(
            conn, coach_id=coach.id, label=label, token_hash=_digest(secret), now=now
        )
    record(runtime, by, "token.create", "token", token.id, f"for={coach.id}")
    return NewToken(token, secret)


def token_account(runtime: Runtime, secret: str) -> Coach | None:
    """The account a bearer token belongs to, when it is live and the account enabled."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        return None
    now = runtime.clock.now()
    with reading(runtime.engine) as conn:
        found = coach_rows.coach_by_token(conn, _digest(secret))
    if found is None or found[0].disabled:
        return None
    coach, token = found
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        with transaction(runtime.engine) as conn:
            coach_rows.token_used(conn, token.id, now)
    return coach


@action
def tokens(runtime: Runtime, by: Actor, email: str) -> list[Token]:
    with reading(runtime.engine) as conn:
        coach = _account(conn, email)
        if not by.sees_all and coach.id != by.id:
            raise NotFound(f"no account with the email {email.strip()}")
        return coach_rows.tokens_of(conn, coach.id)


@action
def revoke_token(runtime: Runtime, by: Actor, email: str, token_id: str) -> None:
    now = runtime.clock.now()
    with transaction(runtime.engine) as conn:
        coach = _account(conn, email)
        if not by.sees_all and coach.id != by.id:
            raise NotFound(f"no account with the email {email.strip()}")
        if not coach_rows.revoke_token(conn, coach.id, token_id, now):
            raise NotFound(f"no live token '{token_id}' for {coach.email}")
    record(runtime, by, "token.revoke", "token", token_id, f"for={coach.id}")


# --- the audit log -------------------------------------------------------------------


def audit(
    runtime: Runtime,
    *,
    coach_email: str | None = None,
    since: datetime | None = None,
    action_name: str | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    """The log, newest first (for admins and the operator)."""
    with reading(runtime.engine) as conn:
        actor = _account(conn, coach_email).id if coach_email else None
        return audit_rows.entries(conn, actor=actor, action=action_name, since=since, limit=limit)
