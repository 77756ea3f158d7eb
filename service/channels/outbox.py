"""The development outbox: messages are stored and logged, never sent and never lost.

Used for SMS when Twilio is not configured and for email when SMTP is not. Storing is
idempotent on the delivery, so a retried delivery appears once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy import Engine

from service.channels.base import Channel, OutgoingMessage, Receipt
from service.core.sms import clean_for_sms, count_segments
from service.core.states import Channel as ChannelName
from service.storage import outbox as outbox_rows
from service.storage.db import transaction

log = structlog.get_logger("tend.outbox")


class OutboxChannel(Channel):
    def __init__(self, name: str, engine: Engine, now: Callable[[], datetime]) -> None:
        self.name = name
        self.engine = engine
        self.now = now

    def send(self, message: OutgoingMessage) -> Receipt:
        body = clean_for_sms(message.body) if self.name == ChannelName.SMS else message.body
        with transaction(self.engine) as conn:
            outbox_id = outbox_rows.outbox_put(
                conn,
                delivery_id=message.delivery_id,
                channel=self.name,
                recipient=message.to,
                subject=message.subject,
                body=body,
                html=message.html,
                calendar=(
                    message.calendar.decode("utf-8") if message.calendar is not None else None
                ),
                now=self.now(),
            )
        segments = count_segments(body).count if self.name == ChannelName.SMS else None
        shown = message.subject if message.subject else " ".join(body.split())
        log.info(
            f"outbox {self.name} to {message.to}: {shown}",
            delivery=message.delivery_id,
            outbox_id=outbox_id,
        )
        return Receipt(provider_id=f"outbox-{outbox_id}", segments=segments)

    def already_sent(self, delivery_id: int) -> bool | None:
        with transaction(self.engine) as conn:
            return outbox_rows.outbox_has(conn, delivery_id)
