"""A delivery's attempts: an unexpected error in one spares the rest of the batch, a
worker whose lease ran out cannot overwrite the next attempt, and an uncertain send is
retried only when the channel can tell that it did not go."""

from __future__ import annotations

from datetime import date, timedelta

from service.channels.base import OutgoingMessage
from service.engine.delivery import Outcome, deliver, deliver_many
from service.storage import deliveries as delivery_rows
from service.storage.db import transaction
from tests.support.engine import (
    NY_9AM,
    Folders,
    Harness,
    plan_text,
    publish,
)


def test_an_unexpected_error_in_one_delivery_spares_the_rest_of_the_batch(
    harness: Harness, folders: Folders
) -> None:
    folders.write_plan("m", plan_text("m"))
    publish(harness.runtime)
    for i in range(3):
        harness.enroll(harness.participant(name=f"P{i}", phone=f"+1415555098{i}"), "m",
                       date(2026, 3, 2))  # fmt: skip
    harness.clock.set(NY_9AM)
    with transaction(harness.runtime.engine) as conn:
        ids = delivery_rows.claim_due(conn, now=NY_9AM, limit=10, lease=timedelta(minutes=2))
    calls: list[int | None] = []

    def boom(message: OutgoingMessage) -> None:
        calls.append(message.delivery_id)
        if len(calls) == 2:
            raise TimeoutError("read timed out")  # not a ChannelError: a channel's bug

    harness.sms.before_send = boom
    retried: list[int] = []
    results = deliver_many(harness.runtime, ids, on_retry=lambda i, _delay: retried.append(i))
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.RETRY, Outcome.SENT]
    assert retried == [ids[1]]
    with transaction(harness.runtime.engine) as conn:
        middle = delivery_rows.get_delivery(conn, ids[1])
    assert (middle["state"], middle["uncertain"]) == ("claimed", True)


def test_a_worker_whose_lease_ran_out_cannot_overwrite_the_next_attempt(
    harness: Harness, folders: Folders
) -> None:
    folders.write_plan("m", plan_text("m"))
    publish(harness.runtime)
    harness.enroll(harness.participant(), "m", date(2026, 3, 2))
    harness.clock.set(NY_9AM)
    with transaction(harness.runtime.engine) as conn:
        (delivery,) = delivery_rows.claim_due(
            conn, now=NY_9AM, limit=10, lease=timedelta(minutes=2)
        )
        first = delivery_rows.start_sending(conn, delivery, now=NY_9AM, lease=timedelta(minutes=3))
        assert first is not None
        later = NY_9AM + timedelta(minutes=4)
        delivery_rows.claim_due(conn, now=later, limit=10, lease=timedelta(minutes=2))
        second = delivery_rows.start_sending(conn, delivery, now=later, lease=timedelta(minutes=3))
        assert second is not None
        assert not delivery_rows.finish(conn, delivery, "failed", now=later, attempt=first.attempts,
                               error="late")  # fmt: skip
        assert delivery_rows.finish(conn, delivery, "sent", now=later, attempt=second.attempts)
        assert delivery_rows.get_delivery(conn, delivery)["state"] == "sent"


def test_an_uncertain_send_is_failed_when_the_channel_cannot_tell(
    harness: Harness, folders: Folders
) -> None:
    from service.channels.base import ChannelError

    folders.write_plan("m", plan_text("m"))
    publish(harness.runtime)
    harness.enroll(harness.participant(), "m", date(2026, 3, 2))
    harness.sms.failures.append(ChannelError("answer lost", permanent=False, uncertain=True))
    harness.sms.already_sent = lambda _id: None  # type: ignore[method-assign]
    harness.at(NY_9AM)
    row = harness.deliveries()[0]
    assert row["state"] == "failed"
    assert "not sent again" in row["last_error"]
    assert harness.sms.sent == []


def test_an_uncertain_send_that_surely_did_not_go_is_retried(
    harness: Harness, folders: Folders
) -> None:
    from service.channels.base import ChannelError

    folders.write_plan("m", plan_text("m"))
    publish(harness.runtime)
    harness.enroll(harness.participant(), "m", date(2026, 3, 2))
    harness.sms.failures.append(ChannelError("answer lost", permanent=False, uncertain=True))
    harness.clock.set(NY_9AM)
    with transaction(harness.runtime.engine) as conn:
        (delivery,) = delivery_rows.claim_due(conn, now=NY_9AM, limit=5, lease=timedelta(minutes=2))
    assert deliver(harness.runtime, delivery).outcome is Outcome.RETRY  # it knows: not sent
    assert deliver(harness.runtime, delivery).outcome is Outcome.SENT
    assert len(harness.sms.sent) == 1
