"""The database is the one truth about plans: processes started from folders whose
`schedules/` hold different texts (a stale checkout, a forgotten edit) all serve and
send the version that was published, and a version published while they run reaches
every one of them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from service.actions import plans as publishing
from tests.reliability.harness import ADMIN_TOKEN, Deployment
from tests.support.services import free_port, wait_for

pytestmark = [pytest.mark.services, pytest.mark.reliability, pytest.mark.timeout(300)]

ZONE = "America/New_York"
START = date(2026, 3, 2)
EIGHT = datetime(2026, 3, 2, 8, 0, tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


def plan(title: str, words: str) -> str:
    return f"""\
plan: shared
title: {title}
days: 3
practices:
  - id: breath
    category: mindfulness
    title: Breath
    at: "08:00"
    channels: [sms]
    message: "{words} [{{{{ occurrence.key }}}}]"
"""


def folder_with(root: Path, text: str) -> Path:
    schedules = root / "schedules"
    schedules.mkdir(parents=True)
    (schedules / "shared.yaml").write_text(text)
    return schedules


def served(base: str, path: str) -> dict[str, object]:
    answer = requests.get(
        f"{base}{path}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, object] = answer.json()
    return found


def test_processes_from_different_folders_serve_and_send_the_published_version(
    deploy: Callable[..., Deployment], tmp_path: Path
) -> None:
    deployment = deploy({"shared": plan("Version one", "One")})  # published as version 1
    deployment.clock.start(EIGHT - timedelta(minutes=30), rate=0)
    people = deployment.add_people(3, "shared", START, ZONE)
    second = publishing.publish(
        deployment.runtime, plan("Version two", "Two"), by="test", note="the words change"
    )
    assert (second.version, second.effect.enrollments) == (2, 3)

    # Each process reads a folder that disagrees with the database, and with the others.
    stale = folder_with(tmp_path / "stale", plan("Stale file", "Stale"))
    other = folder_with(tmp_path / "other", plan("Other file", "Other"))
    empty = tmp_path / "empty" / "schedules"
    empty.mkdir(parents=True)
    second_port = free_port()
    deployment.start("web", "web", TEND_SCHEDULES_DIR=str(stale))
    deployment.start(
        "web-2",
        "web",
        wait=False,
        TEND_SCHEDULES_DIR=str(other),
        TEND_HTTP_PORT=str(second_port),
    )
    second_base = f"http://127.0.0.1:{second_port}"
    wait_for(lambda: _healthy(second_base), 60, "the second web process to start", interval=0.1)
    deployment.start("scheduler", "scheduler", TEND_SCHEDULES_DIR=str(empty))
    deployment.start("worker", "worker", TEND_SCHEDULES_DIR=str(other))

    for base in (deployment.public_url, second_base):
        assert served(base, "/api/plans/shared")["title"] == "Version two"
        versions = served(base, "/api/plans/shared/versions")
        assert [v["version"] for v in versions["items"]] == [1, 2]  # type: ignore[index]

    # A version published while they run (through one web process) reaches the others.
    third = requests.put(
        f"{second_base}/api/plans/shared",
        data=plan("Version three", "Three").encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/yaml"},
        timeout=30,
    )
    assert third.status_code == 200, third.text
    assert third.json()["version"] == 3
    assert served(deployment.public_url, "/api/plans/shared")["title"] == "Version three"

    deployment.clock.start(EIGHT - timedelta(seconds=2), rate=10)
    wait_for(
        lambda: len(deployment.twilio.accepted()) >= len(people),
        120,
        "the 8:00 reminders to go out",
    )
    deployment.wait_settled(60)
    bodies = sorted(str(m.resource["body"]) for m in deployment.twilio.accepted())
    assert bodies == ["Three [breath:2026-03-02]"] * len(people)


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
