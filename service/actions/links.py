"""Personal links: the check-in link of an occurrence (in emails, calendar invitations and
feeds) and the calendar feed's URL. Both are HMACs of the secret key: nothing is
stored, nothing can be guessed, and the same inputs always give the same link."""

from __future__ import annotations

from datetime import datetime, timedelta

from service.core.tokens import check_in_token, feed_token
from service.runtime import Runtime

CHECK_IN_LINK_DAYS = 7  # a check-in link works this long after its window closes


def check_in_link(runtime: Runtime, occurrence_id: int, window_end: datetime) -> str:
    expires = window_end + timedelta(days=CHECK_IN_LINK_DAYS)
    token = check_in_token(runtime.secret, occurrence_id, expires)
    return f"{runtime.settings.public_base}/check-in/{token}"


def feed_link(runtime: Runtime, participant_id: str, feed_version: int) -> str:
    """The https URL of the participant's calendar feed (`webcal_link` for the other)."""
    token = feed_token(runtime.secret, participant_id, feed_version)
    return f"{runtime.settings.public_base}/calendar/{token}.ics"


def webcal_link(https_link: str) -> str:
    """The same feed as a webcal:// link, which calendar apps open as a subscription."""
    return "webcal://" + https_link.split("://", 1)[1]
