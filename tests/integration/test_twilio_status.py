"""`POST /twilio/status`: signed delivery reports move deliveries forward, never back;
unsigned or tampered ones are refused; unknown messages still get 200."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from service.clock import ManualClock
from service.runtime import Runtime
from service.web.app import create_app
from tests.support.engine import Folders, Harness, RecordingChannel, published_runtime, settings_for
from tests.support.twilio_signing import twilio_signature

TOKEN = "twilio-auth-token"
URL = "https://tend.test/twilio/status"
NY_9AM = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
PLAN = """
    plan: morning
    title: Morning
    weeks: 1
    practices:
      - id: rise
        category: sleep
        title: Rise
        at: "09:00"
"""


@pytest.fixture
def runtime(db_url: str, folders: Folders) -> Iterator[Runtime]:
    folders.write_plan("morning", PLAN)
    settings = settings_for(
        db_url,
        folders,
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=TOKEN,
        twilio_from="+15005550006",
    )
    channels = {"sms": RecordingChannel("sms"), "email": RecordingChannel("email")}
    built = published_runtime(settings, clock=ManualClock(datetime(2026, 3, 2, 12, tzinfo=UTC)),
                          channels=channels)  # fmt: skip
    yield built
    built.close()


def signed(params: list[tuple[str, str]], url: str = URL) -> dict[str, str]:
    signature = twilio_signature(TOKEN, url, params)
    return {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def post(client: TestClient, params: list[tuple[str, str]], headers: dict[str, str]) -> int:
    return client.post("/twilio/status", content=urlencode(params), headers=headers).status_code


@pytest.fixture
def sent(runtime: Runtime) -> Iterator[tuple[Harness, str]]:
    """A reminder sent at 09:00, and its provider id."""
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    harness = Harness(runtime, clock, runtime.channels["sms"], runtime.channels["email"])  # type: ignore[arg-type]
    try:
        harness.enroll(harness.participant(), "morning", date(2026, 3, 2))
        harness.at(NY_9AM)
        (row,) = [d for d in harness.deliveries() if d["state"] == "sent"]
        yield harness, str(row["provider_id"])
    finally:
        harness.worker.stop()
        harness.broker.close()


def test_reports_move_a_delivery_forward_and_never_back(
    runtime: Runtime, sent: tuple[Harness, str]
) -> None:
    harness, sid = sent
    client = TestClient(create_app(runtime))
    delivered = [("MessageSid", sid), ("MessageStatus", "delivered"), ("To", "+14155550123")]
    assert post(client, delivered, signed(delivered)) == 200
    late = [("MessageSid", sid), ("MessageStatus", "sent")]
    assert post(client, late, signed(late)) == 200  # out of order: changes nothing
    row = harness.deliveries()[0]
    assert row["state"] == "delivered"


def test_a_failure_report_keeps_twilios_error_code(
    runtime: Runtime, sent: tuple[Harness, str]
) -> None:
    harness, sid = sent
    client = TestClient(create_app(runtime))
    failed = [("MessageSid", sid), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")]
    assert post(client, failed, signed(failed)) == 200
    row = harness.deliveries()[0]
    assert (row["state"], row["last_error"]) == ("failed", "Twilio error 30003")


def test_unsigned_tampered_and_foreign_reports_are_refused(
    runtime: Runtime, sent: tuple[Harness, str]
) -> None:
    harness, sid = sent
    client = TestClient(create_app(runtime))
    report = [("MessageSid", sid), ("MessageStatus", "delivered")]
    assert post(client, report, {"Content-Type": "application/x-www-form-urlencoded"}) == 403
    tampered = [("MessageSid", sid), ("MessageStatus", "failed")]
    assert post(client, tampered, signed(report)) == 403
    extra = [*report, ("Extra", "1")]
    assert post(client, extra, signed(report)) == 403
    elsewhere = signed(report, url="https://attacker.test/twilio/status")
    assert post(client, report, elsewhere) == 403
    assert harness.deliveries()[0]["state"] == "sent"
    # Repeated keys are part of what Twilio signs.
    repeated = [*report, ("Tag", "a"), ("Tag", "b")]
    assert post(client, repeated, signed(repeated)) == 200
    assert harness.deliveries()[0]["state"] == "delivered"


def test_an_unknown_message_still_gets_200(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime))
    report = [("MessageSid", "SM" + "f" * 32), ("MessageStatus", "delivered")]
    assert post(client, report, signed(report)) == 200
