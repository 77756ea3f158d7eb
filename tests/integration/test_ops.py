"""`/readyz`, `/metrics` and request ids."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient

from service.web.app import create_app
from tests.support.engine import START, Folders, Harness, published_runtime, settings_for
from tests.support.services import free_port

PLAN = """
    plan: mornings
    title: Mornings
    weeks: 1
    practices:
      - id: rise
        category: sleep
        title: Rise
        at: "07:00"
"""


def test_ready_when_the_database_answers(harness: Harness) -> None:
    client = TestClient(create_app(harness.runtime))
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"database": "ok", "broker": "ok"})


def test_not_ready_when_redis_does_not_answer(db_url: str, folders: Folders) -> None:
    settings = settings_for(db_url, folders, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    runtime = published_runtime(settings)
    try:
        response = TestClient(create_app(runtime)).get("/readyz")
    finally:
        runtime.close()
    assert response.status_code == 503
    assert response.json()["database"] == "ok"
    assert response.json()["broker"].startswith("unreachable")


def test_metrics_count_what_every_process_did(folders: Folders, harness: Harness) -> None:
    folders.write_plan("mornings", PLAN)
    harness.enroll(harness.participant(), "mornings", date(2026, 3, 2))
    second = START + timedelta(days=1)  # Tuesday 07:00 in New York (Monday's was past)
    harness.at(second + timedelta(seconds=3))
    text = TestClient(create_app(harness.runtime)).get("/metrics").text
    lines = text.splitlines()
    assert 'tend_deliveries{channel="sms",kind="reminder",state="sent"} 1.0' in lines
    assert 'tend_deliveries{channel="sms",kind="reminder",state="pending"} 5.0' in lines
    assert 'tend_send_lateness_seconds_bucket{channel="sms",le="5.0"} 1.0' in lines
    assert 'tend_send_lateness_seconds_bucket{channel="sms",le="2.5"} 0.0' in lines
    assert 'tend_send_lateness_seconds_count{channel="sms"} 1.0' in lines
    assert "# TYPE tend_queue_depth gauge" in lines


def test_every_response_carries_a_request_id(harness: Harness) -> None:
    client = TestClient(create_app(harness.runtime))
    mine = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    made = client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    assert made.headers["x-request-id"] != client.get("/healthz").headers["x-request-id"]


def test_webhook_latency_is_timed(harness: Harness) -> None:
    client = TestClient(create_app(harness.runtime))
    assert client.post("/twilio/status", content="x=1").status_code == 403
    text = client.get("/metrics").text
    assert 'tend_webhook_seconds_count{route="/twilio/status",status="403"} 1.0' in text
