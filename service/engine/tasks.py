"""The broker and the actors. They are thin: `deliver` takes delivery ids and calls
`delivery.deliver_many`, `send_weekly` takes weekly-message ids and calls
`summaries.send`; both are idempotent. Only ids travel through the broker."""

from __future__ import annotations

from datetime import timedelta
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

from service.engine import summaries
from service.engine.delivery import MAX_ATTEMPTS, deliver_many
from service.runtime import Runtime

log = structlog.get_logger("tend.tasks")

QUEUE = "deliveries"
ACTOR = "deliver"
WEEKLY_ACTOR = "send_weekly"


def middleware() -> list[dramatiq.Middleware]:
    """dramatiq's defaults, with retries that fit reminders: seconds to minutes, not days."""
    return [
        AgeLimit(),
        # A message is a few deliveries, each bounded by its channel's timeouts and rate
        # limit; the time limit is only a last resort against a stuck thread.
        TimeLimit(time_limit=30 * 60 * 1000),
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


def declare(broker: dramatiq.Broker, runtime: Runtime) -> dramatiq.Actor[[list[int]], None]:
    """Bind the deliver actor to `broker`, delivering with `runtime`.

    A message carries a few delivery ids (one when little is due; up to
    `scheduler.MAX_CHUNK` in a burst), so that a burst costs fewer broker round trips.
    A delivery that meets a transient channel error comes back alone, after its backoff,
    through dramatiq's delay queue.
    """

    def retry(delivery_id: int, delay: timedelta) -> None:
        wait = runtime.clock.real_seconds(delay)
        actor.send_with_options(args=([delivery_id],), delay=max(int(wait * 1000), 0))

    def deliver_reminders(delivery_ids: list[int]) -> None:
        deliver_many(runtime, delivery_ids, on_retry=retry)

    decorate = dramatiq.actor(actor_name=ACTOR, queue_name=QUEUE, broker=broker)
    actor: dramatiq.Actor[[list[int]], None] = decorate(deliver_reminders)

    def send_weekly(summary_ids: list[int]) -> None:
        for summary_id in summary_ids:
            try:
                summaries.send(runtime, summary_id)
            except Exception:  # the database failed: the claim's lease recovers it
                log.exception("weekly message could not be handled", summary=summary_id)

    weekly = dramatiq.actor(actor_name=WEEKLY_ACTOR, queue_name=QUEUE, broker=broker)
    weekly(send_weekly)
    return actor


def weekly_sender(broker: dramatiq.Broker) -> Any:
    """The `send` of the weekly-messages actor that `declare` bound to `broker`."""
    return broker.get_actor(WEEKLY_ACTOR).send
