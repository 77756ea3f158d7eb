"""Signed tokens for links: calendar feeds and check-ins.

A token is `<payload>.<mac>` where mac is HMAC-SHA256 over a purpose and the payload,
truncated to 160 bits and base64url-encoded. Verification is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

MAC_BYTES = 20  # 160 bits


_PARTICIPANT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _mac(secret: bytes, purpose: str, payload: str) -> str:
    digest = hmac.new(secret, f"{purpose}\x1f{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:MAC_BYTES]).decode().rstrip("=")


def sign(secret: bytes, purpose: str, payload: str) -> str:
    return f"{payload}.{_mac(secret, purpose, payload)}"


def verify(secret: bytes, purpose: str, token: str) -> str | None:
    """The payload of a valid token, or None."""
    payload, sep, mac = token.rpartition(".")
    if not sep or not payload:
        return None
    if not hmac.compare_digest(mac.encode(), _mac(secret, purpose, payload).encode()):
        return None
    return payload


def feed_token(secret: bytes, participant_id: str, version: int) -> str:
    """The calendar feed token: the participant and an HMAC bound to the feed's version,
    so rotating the version revokes every earlier token."""
    mac = _mac(secret, "feed", f"{participant_id}:{version}")
    return f"{participant_id}.{mac}"


def feed_participant(token: str) -> str | None:
    """The participant a feed token names, when it has the form of an id (so that no
    stray byte of a guessed token reaches a query)."""
    participant_id, sep, _ = token.rpartition(".")
    return participant_id if sep and _PARTICIPANT_ID.fullmatch(participant_id) else None


def feed_token_valid(secret: bytes, token: str, participant_id: str, version: int) -> bool:
    return hmac.compare_digest(token.encode(), feed_token(secret, participant_id, version).encode())


def check_in_token(secret: bytes, occurrence_id: int, expires: datetime) -> str:
    return sign(secret, "check-in", f"{occurrence_id}.{int(expires.timestamp())}")


@dataclass(frozen=True, slots=True)
class CheckInLink:
    """A check-in token that verified: its occurrence and when it stops working."""

    occurrence_id: int
    expires: datetime

    def expired(self, now: datetime) -> bool:
        return now >= self.expires


def read_check_in(secret: bytes, token: str) -> CheckInLink | None:
    """The occurrence and expiry of a genuine check-in token, expired or not; None for a
    token this secret did not sign."""
    payload = verify(secret, "check-in", token)
    if payload is None:
        return None
    occurrence, _, expires = payload.partition(".")
    try:
        return CheckInLink(int(occurrence), datetime.fromtimestamp(int(expires), UTC))
    except (ValueError, OverflowError, OSError):
        return None
