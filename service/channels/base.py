"""The channel interface: send a rendered message, return a receipt, or raise a
ChannelError that says whether trying again could help."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message ready to go. `delivery_id` doubles as the idempotency key."""

    delivery_id: int | None
    channel: str  # sms or email
    to: str
    body: str  # the SMS text, or the email's plain text
    subject: str | None = None
    html: str | None = None
    # Email only: the participant's one-click unsubscribe link (List-Unsubscribe).
    unsubscribe_url: str | None = None
    # Email only: a calendar invitation (iMIP, RFC 6047), the iCalendar object as bytes,
    # and its METHOD (REQUEST or CANCEL).
    calendar: bytes | None = None
    calendar_method: str | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    provider_id: str | None
    segments: int | None = None


class ChannelError(Exception):
    """A send that did not happen. `permanent` errors are never retried."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: str | None = None,
        opted_out: bool = False,
        retry_after: float | None = None,
        uncertain: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.opted_out = opted_out
        self.retry_after = retry_after
        # The message may have gone out (the server took it, then the answer was lost):
        # the engine asks `already_sent` before anything is sent again.
        self.uncertain = uncertain


class Channel:
    """Base class; subclasses override `send`, and `already_sent` where they can tell."""

    name = "channel"

    def send(self, message: OutgoingMessage) -> Receipt:
        raise NotImplementedError

    def already_sent(self, delivery_id: int) -> bool | None:
        """After a worker died while sending: True or False when the channel knows
        whether that delivery went out, None when it cannot know."""
        return None

    def provider_id(self, delivery_id: int) -> str | None:
        """The provider's id of a message `already_sent` found, when the channel knows
        it (so that the provider's later status reports still find the delivery)."""
        return None

    def close(self) -> None:
        """Release connections; the default holds none."""
