"""A database that goes away for a moment: a message that went out is still recorded as
sent (the record is tried again), and the statements after a broken connection run on a
new one. The reliability suite restarts PostgreSQL under load; these pin the parts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from service.engine import delivery
from service.engine.delivery import RECORD_WAITS, Outcome, deliver
from service.storage import deliveries as delivery_rows
from service.storage.db import statements
from tests.support.engine import Folders, Harness

PLAN = """
    plan: morning
    title: Morning
    weeks: 1
    practices:
      - id: rise
        category: sleep
        title: Rise
        at: "09:00"
        channels: [sms]
"""
NINE_NY = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


@pytest.fixture
def due(harness: Harness, folders: Folders) -> int:
    """One SMS reminder, claimed and ready for a worker."""
    folders.write_plan("morning", PLAN)
    harness.clock.set(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    harness.enroll(harness.participant(), "morning", date(2026, 3, 2))
    harness.clock.set(NINE_NY)
    with harness.runtime.engine.begin() as conn:
        [delivery_id] = delivery_rows.claim_due(
            conn, now=NINE_NY, limit=10, lease=delivery.SEND_LEASE
        )
    return int(delivery_id)


def failing_finish(times: int, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """delivery_rows.finish fails `times` times as a lost connection does; returns the waits."""
    real = delivery_rows.finish
    calls = {"n": 0}
    waits: list[float] = []

    def finish(*args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        if calls["n"] <= times:
            raise OperationalError(
                "UPDATE deliveries", {}, Exception("server closed the connection")
            )
        return real(*args, **kwargs)

    monkeypatch.setattr(delivery_rows, "finish", finish)
    monkeypatch.setattr(delivery, "pause", waits.append)
    return waits


def test_a_sent_message_is_recorded_once_the_database_is_back(
    harness: Harness, due: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = failing_finish(2, monkeypatch)
    result = deliver(harness.runtime, due)
    assert result.outcome is Outcome.SENT
    assert waits == list(RECORD_WAITS[:2])
    assert len(harness.sms.sent) == 1  # sent once; only the record was tried again
    [row] = [d for d in harness.deliveries() if d["id"] == due]
    assert row["state"] == "sent"
    assert row["provider_id"] is not None


def test_a_database_away_too_long_leaves_the_send_to_its_lease(
    harness: Harness, due: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = failing_finish(len(RECORD_WAITS) + 1, monkeypatch)
    result = deliver(harness.runtime, due)
    assert result.outcome is Outcome.SKIPPED  # left to its lease, not sent again
    assert waits == list(RECORD_WAITS)
    assert len(harness.sms.sent) == 1
    [row] = [d for d in harness.deliveries() if d["id"] == due]
    assert row["state"] == "sending"  # the lease ends it; the channel is asked then


def test_statements_after_a_broken_connection_run_on_a_new_one(pg_url: str) -> None:
    from service.storage.db import make_engine

    engine = make_engine(pg_url)
    try:
        with statements(engine) as run:
            first = run(lambda conn: conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            with engine.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
                other.commit()
            with pytest.raises(OperationalError):
                run(lambda conn: conn.execute(text("SELECT 1")).scalar_one())
            second = run(lambda conn: conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        assert second != first
    finally:
        engine.dispose()
