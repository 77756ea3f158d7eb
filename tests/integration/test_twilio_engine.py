"""The engine with the real twilio client against the fake Twilio API: what a
participant's phone would get, and what a provider's opt-out does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from service.channels.ratelimit import Unlimited
from service.channels.sms import MemoryJournal, TwilioSMSChannel
from service.engine.delivery import Outcome, deliver
from service.storage import deliveries as delivery_rows
from service.storage import participants as participant_rows
from service.storage.db import transaction
from tests.support.engine import Folders, Harness, publish
from tests.support.fake_twilio import FakeTwilio

NY_9AM = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
PLAN = """
    plan: morning
    title: Morning
    weeks: 2
    practices:
      - id: rise
        category: sleep
        title: Rise
        at: "09:00"
        message: "Good morning, {{ participant.first_name }}. It’s time to rise."
"""


@pytest.fixture
def twilio(harness: Harness, folders: Folders) -> Iterator[FakeTwilio]:
    folders.write_plan("morning", PLAN)
    publish(harness.runtime)
    with FakeTwilio() as fake:
        channel = TwilioSMSChannel(
            account_sid=fake.account_sid,
            auth_token=fake.auth_token,
            from_="+15005550006",
            public_base="https://tend.test",
            api_base=fake.url,
            timeout=2.0,
            limiter=Unlimited(),
            journal=MemoryJournal(),
        )
        harness.runtime.channels["sms"] = channel
        yield fake
        channel.close()


def test_a_reminder_reaches_twilio_cleaned_and_with_its_status_callback(
    harness: Harness, twilio: FakeTwilio
) -> None:
    harness.enroll(harness.participant(), "morning", date(2026, 3, 2))
    harness.at(NY_9AM)
    (message,) = twilio.messages
    assert message.form is not None
    assert message.form["To"] == "+14155550123"
    assert message.form["Body"] == "Good morning, Rae. It's time to rise."  # plain apostrophe
    assert message.form["StatusCallback"] == "https://tend.test/twilio/status"
    row = harness.deliveries()[0]
    assert row["state"] == "sent"
    assert row["provider_id"] == message.resource["sid"]
    assert row["segments"] == 1


def test_a_twilio_opt_out_is_recorded_and_stops_every_sms(
    harness: Harness, twilio: FakeTwilio
) -> None:
    person = harness.participant()
    harness.enroll(person, "morning", date(2026, 3, 2))
    twilio.refuse_number("+14155550123", 21610)
    harness.at(NY_9AM)
    assert twilio.messages == []
    with transaction(harness.runtime.engine) as conn:
        assert participant_rows.get_participant(conn, person).sms_state == "opted_out"
        (entry,) = participant_rows.consent_history(conn, person)
    assert (entry["action"], entry["source"]) == ("opt_out", "provider:twilio-21610")
    assert harness.states() == {"failed": 1, "cancelled": 13}


def test_a_rate_limited_send_is_retried_after_twilios_retry_after(
    harness: Harness, twilio: FakeTwilio
) -> None:
    harness.enroll(harness.participant(), "morning", date(2026, 3, 2))
    twilio.rate_limit(retry_after="30")
    harness.clock.set(NY_9AM)
    with transaction(harness.runtime.engine) as conn:
        (delivery,) = delivery_rows.claim_due(conn, now=NY_9AM, limit=5, lease=timedelta(minutes=2))
    first = deliver(harness.runtime, delivery)
    assert first.outcome is Outcome.RETRY
    assert first.retry_in == timedelta(seconds=30)
    assert twilio.messages == []
    harness.clock.set(NY_9AM + timedelta(seconds=31))
    assert deliver(harness.runtime, delivery).outcome is Outcome.SENT
    assert len(twilio.messages) == 1
    assert harness.deliveries()[0]["attempts"] == 2
