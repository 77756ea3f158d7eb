"""Check-ins: the kinds stored before the upgrade put right, a calendar practice counted
as reached only while its invitation stands, and a number that is not a number refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service.actions.links import check_in_link
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.storage.tables import occurrences
from service.web.app import create_app
from tests.support.engine import Folders, Harness

PLAN = """
    plan: evening
    title: Evening
    weeks: 1
    practices:
      - id: wind-down
        category: sleep
        title: Wind down
        at: "21:00"
        channels: [sms, calendar]
      - id: lights
        category: sleep
        title: Lights out
        at: "22:30"
        check_in: none
      - id: minutes
        category: movement
        title: Walk
        at: "18:00"
        check_in: {kind: number, unit: minutes}
"""
MONDAY = date(2026, 3, 2)
WIND_DOWN = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)  # 21:00 in New York (EST)


def rows(h: Harness) -> dict[str, dict[str, object]]:
    with transaction(h.runtime.engine) as conn:
        found = conn.execute(select(occurrences)).mappings()
        return {r["key"]: dict(r) for r in found}


def test_kinds_stored_before_the_upgrade_are_put_right_by_the_scheduler(
    folders: Folders, harness: Harness
) -> None:
    folders.write_plan("evening", PLAN)
    harness.enroll(harness.participant(), "evening", MONDAY)
    with transaction(harness.runtime.engine) as conn:  # as migration 0004 left them
        conn.execute(update(occurrences).values(check_in_kind="done"))
    harness.maintain()
    kinds = {key.split(":")[0]: row["check_in_kind"] for key, row in rows(harness).items()}
    assert kinds == {"wind-down": "done", "lights": "none", "minutes": "number"}


def test_a_calendar_practice_with_no_invitation_is_excused_not_missed(
    folders: Folders, harness: Harness
) -> None:
    """Paused texts, no email (so no invitation): the wind-down never reached them."""
    folders.write_plan("evening", PLAN)
    rae = harness.participant(email=None)
    harness.enroll(rae, "evening", MONDAY)
    with transaction(harness.runtime.engine) as conn:
        participant_rows.set_sms_pause(
            conn, rae, WIND_DOWN + timedelta(days=3), source="test", now=harness.clock.now()
        )
    harness.at(WIND_DOWN)
    harness.clock.set(WIND_DOWN + timedelta(hours=13))
    harness.maintain()
    assert rows(harness)["wind-down:2026-03-02"]["check_in"] == "excused"


def test_a_link_refuses_a_number_that_is_not_finite(folders: Folders, harness: Harness) -> None:
    folders.write_plan("evening", PLAN)
    harness.enroll(harness.participant(), "evening", MONDAY)
    walk = rows(harness)["minutes:2026-03-02"]
    link = check_in_link(harness.runtime, int(walk["id"]), walk["window_end"])  # type: ignore[arg-type]
    harness.clock.set(walk["instant"] + timedelta(minutes=5))  # type: ignore[operator]
    client = TestClient(create_app(harness.runtime))
    path = link.removeprefix("https://tend.test")
    for raw in ("nan", "inf", "-inf", "1e999"):
        response = client.post(
            path,
            content=f"outcome=number&number={raw}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400, raw
    assert rows(harness)["minutes:2026-03-02"]["check_in"] is None
    big = client.post(
        path,
        content=b"x",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "99999"},
    )
    assert big.status_code == 413
