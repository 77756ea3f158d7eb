"""The broker and the actor. The actor is thin: it takes a delivery id and calls
`delivery.deliver`, which is idempotent. Only ids travel through the broker."""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from service.engine.delivery import MAX_ATTEMPTS, Outcome, deliver
from service.engine.runtime import Runtime

log = structlog.get_logger("tend.tasks")

QUEUE = "deliveries"
ACTOR = "deliver"


def middleware() -> list[dramatiq.Middleware]:
    """dramatiq's defaults, with retries that fit reminders: seconds to minutes, not days."""
    return [
        AgeLimit(),
        TimeLimit(time_limit=5 * 60 * 1000),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=MAX_ATTEMPTS + 2, min_backoff=5_000, max_backoff=60_000),
    ]


def make_broker(redis_url: str | None, **redis_options: Any) -> dramatiq.Broker:
    """dramatiq's Redis broker when a URL is given; otherwise an in-process broker."""
    if redis_url:
        options = {"heartbeat_timeout": 15_000, "dead_message_ttl": 86_400_000}
        options.update(redis_options)
        return RedisBroker(url=redis_url, middleware=middleware(), **options)  # type: ignore[no-untyped-call]
    return StubBroker(middleware=middleware())


def declare(broker: dramatiq.Broker, runtime: Runtime) -> dramatiq.Actor[[int], None]:
    """Bind the deliver actor to `broker`, delivering with `runtime`."""

    def deliver_reminder(delivery_id: int) -> None:
        result = deliver(runtime, delivery_id)
        if result.outcome is Outcome.RETRY and result.retry_in is not None:
            raise dramatiq.Retry(
                message=result.detail or "transient channel error",
                delay=int(result.retry_in.total_seconds() * 1000),
            )

    decorate = dramatiq.actor(actor_name=ACTOR, queue_name=QUEUE, broker=broker)
    return decorate(deliver_reminder)
