"""Signing a webhook as Twilio does: the X-Twilio-Signature of form parameters posted
to a URL, computed by the twilio library's own validator (repeated keys included)."""

from __future__ import annotations

from collections.abc import Iterable

from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]


class _Form(dict[str, list[str]]):
    """Form parameters as Twilio's validator reads them: every value of a key."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def twilio_signature(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """What Twilio sends as X-Twilio-Signature for `params` posted to `url`."""
    form = _Form()
    for key, value in params:
        form.setdefault(key, []).append(value)
    return str(RequestValidator(token).compute_signature(url, form))
