"""Publishing plans (contract section 5.1): `PUT /api/plans/{id}`, its dry run and its
refusals; versions and their texts; `tend plans push` and `tend plans versions`; the
templates kept with each version; rolling back; and the same lines and columns from
`PUT` as from `tend plans check` for every bad plan."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import func, select

from service import cli, report
from service.actions import plans as publishing
from service.clock import ManualClock
from service.runtime import Runtime
from service.storage.db import transaction
from service.storage.tables import occurrences, plan_versions
from service.web.app import create_app
from tests.hostile.test_bad_input import HOSTILE
from tests.support.engine import START, Folders, Harness, RecordingChannel, build_runtime, publish

TOKEN = "publish-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
YAML = {"Content-Type": "application/yaml"}
REPO = Path(__file__).resolve().parents[2]

WALK = """\
# The evening walk: a coach's comment, kept with the version.
plan: walk
title: Evening walk
weeks: 2
practices:
  - id: walk
    category: movement
    title: Walk
    at: "18:00"
    channels: [sms]
    message: "Walk time, {{ participant.first_name }}."
"""
LATER = WALK.replace('"18:00"', '"18:30"').replace("Walk time", "Walk at half past")


@dataclass
class Api:
    client: TestClient
    runtime: Runtime
    folders: Folders

    def put(self, plan_id: str, text: str | bytes, **params: Any) -> Response:
        body = text.encode() if isinstance(text, str) else text
        return self.client.put(f"/api/plans/{plan_id}", content=body, headers=YAML, params=params)

    def versions_stored(self) -> int:
        with transaction(self.runtime.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(plan_versions)).scalar_one())


@pytest.fixture
def api(db_url: str, folders: Folders) -> Iterator[Api]:
    runtime = build_runtime(db_url, folders, ManualClock(START), {}, admin_token=TOKEN)
    try:
        yield Api(TestClient(create_app(runtime), headers=AUTH), runtime, folders)
    finally:
        runtime.close()


def ok(response: Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


# --- PUT -------------------------------------------------------------------------------


def test_a_plan_is_published_as_numbered_versions_and_read_back_as_written(api: Api) -> None:
    first = ok(api.put("walk", WALK))
    assert first == {
        "plan": "walk",
        "version": 1,
        "created": True,
        "dry_run": False,
        "changes": {"enrollments": 0, "added": 0, "moved": 0, "cancelled": 0},
        "cannot_follow": [],
        "warnings": [],
    }
    again = ok(api.put("walk", WALK))
    assert (again["version"], again["created"]) == (1, False)
    second = ok(api.put("walk", LATER, note="half an hour later"))
    assert (second["version"], second["created"]) == (2, True)

    listed = ok(api.client.get("/api/plans/walk/versions"))
    assert [(v["version"], v["note"], v["published_by"]) for v in listed["items"]] == [
        (1, None, "api"),
        (2, "half an hour later", "api"),
    ]
    assert listed["total"] == 2
    one = ok(api.client.get("/api/plans/walk/versions/1"))
    assert one["yaml"] == WALK  # comments and all
    # An inline message uses no template file of the plan's; what a discreet participant
    # gets instead is part of the version, in every language there is.
    assert set(one["templates"]) == {"discreet/default.sms.j2", "discreet/default.es.sms.j2"}
    assert ok(api.client.get("/api/plans/walk"))["practices"][0]["at"] == '"18:30"'.strip('"')


def test_a_version_keeps_the_templates_it_uses(api: Api, folders: Folders) -> None:
    text = WALK.replace('    message: "Walk time, {{ participant.first_name }}."\n', "")
    ok(api.put("walk", text))
    kept = ok(api.client.get("/api/plans/walk/versions/1"))["templates"]
    assert "default/movement.sms.j2" in kept
    assert kept["default/movement.sms.j2"] == "Move: {{ practice.title }}."
    # A template edited on disk is not the published version's until it is published.
    (folders.templates / "default" / "movement.sms.j2").write_text("Go: {{ practice.title }}!")
    assert ok(api.put("walk", text))["version"] == 2  # same YAML, new template text
    assert (
        ok(api.client.get("/api/plans/walk/versions/2"))["templates"]["default/movement.sms.j2"]
        == "Go: {{ practice.title }}!"
    )


def test_a_dry_run_says_what_publishing_would_do_and_stores_nothing(api: Api) -> None:
    ok(api.put("walk", WALK))
    made = ok(api.client.post("/api/participants", json={"name": "Rae", "timezone": "UTC"}), 201)
    ok(
        api.client.post(
            "/api/enrollments",
            json={"participant": made["id"], "plan": "walk", "start": "2026-03-02"},
        ),
        201,
    )
    stored = api.versions_stored()
    dry = ok(api.put("walk", LATER, dry_run="true"))
    assert dry["dry_run"] is True
    assert (dry["version"], dry["created"]) == (2, True)
    assert dry["changes"]["enrollments"] == 1
    assert dry["changes"]["moved"] > 0
    assert api.versions_stored() == stored
    assert ok(api.client.get("/api/plans/walk"))["title"] == "Evening walk"
    real = ok(api.put("walk", LATER))
    assert real["changes"] == dry["changes"]
    assert real["version"] == 2


def test_refusals(api: Api) -> None:
    ok(api.put("walk", WALK))
    stored = api.versions_stored()
    other_id = api.put("stroll", WALK)
    assert other_id.status_code == 422
    (error,) = other_id.json()["errors"]
    assert (error["line"], error["col"]) == (2, 7)
    assert "declares plan 'walk'" in error["message"]
    wrong_type = api.client.put(
        "/api/plans/walk", content=WALK.encode(), headers={"Content-Type": "application/json"}
    )
    assert wrong_type.status_code == 415
    too_big = api.put("walk", WALK + "#" * publishing.MAX_PLAN_BYTES)
    assert too_big.status_code == 413
    assert api.client.get("/api/plans/walk/versions/9").status_code == 404
    assert api.client.get("/api/plans/nowhere/versions").status_code == 404
    no_token = TestClient(api.client.app).put("/api/plans/walk", content=WALK, headers=YAML)
    assert no_token.status_code == 401
    assert api.versions_stored() == stored


def test_rolling_back_is_publishing_an_old_text_again(api: Api) -> None:
    ok(api.put("walk", WALK))
    ok(api.put("walk", LATER))
    old = ok(api.client.get("/api/plans/walk/versions/1"))["yaml"]
    back = ok(api.put("walk", old))
    assert (back["version"], back["created"]) == (3, True)
    listed = ok(api.client.get("/api/plans/walk/versions"))["items"]
    assert listed[2]["content_hash"] == listed[0]["content_hash"] != listed[1]["content_hash"]
    assert ok(api.client.get("/api/plans/walk"))["practices"][0]["at"] == "18:00"


# --- the same positions as `tend plans check` ------------------------------------------

# Mistakes coaches make, each a whole plan file.
COACH_MISTAKES = {
    "typo-key": WALK.replace("channels:", "chanels:"),
    "bad-time": WALK.replace('"18:00"', '"25:00"'),
    "bad-day": WALK.replace("    channels:", "    every: mondy\n    channels:"),
    "template-name": WALK.replace("participant.first_name", "participnt.name"),
    "tab": WALK.replace("  - id: walk", "\t- id: walk"),
    "unclosed-quote": WALK.replace('"18:00"', '"18:00'),
    "bad-zone": WALK.replace("    channels:", "    timezone: Europe/Londn\n    channels:"),
    "bad-url": WALK.replace("    channels:", "    url: htps://example.org\n    channels:"),
    "missing-title": WALK.replace("title: Evening walk\n", ""),
    "three-at-once": WALK.replace("weeks: 2", "weeks: two")
    .replace("movement", "moving")
    .replace("{{ participant", "{{ participant."),
    "not-utf8": WALK.replace("Walk time", "Walk time \udcff"),
    "duplicate-key": WALK.replace("    title: Walk\n", "    title: Walk\n    title: Again\n"),
}


def _bad_plans() -> dict[str, bytes]:
    cases = {name: text.encode("utf-8", "surrogateescape") for name, text in COACH_MISTAKES.items()}
    cases.update({f"hostile-{name}": data for name, data in HOSTILE.items()})
    # Random damage to the shipped plans: a line dropped, a character changed.
    rng = random.Random(15)
    shipped = sorted((REPO / "schedules").glob("*.yaml"))
    for i in range(16):
        lines = rng.choice(shipped).read_text().splitlines(keepends=True)
        at = rng.randrange(len(lines))
        if i % 2:
            del lines[at]
        else:
            line = lines[at]
            col = rng.randrange(max(len(line) - 1, 1))
            lines[at] = line[:col] + rng.choice(":-[{'\"#x ") + line[col + 1 :]
        cases[f"shipped-damaged-{i}"] = "".join(lines).encode()
    return cases


BAD_PLANS = _bad_plans()
CHECK_LINE = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning): (?P<msg>.*)$"
)


def _checked(
    path: Path, templates: Path
) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]]:
    result = CliRunner().invoke(
        cli.main,
        ["plans", "check", str(path)],
        env={"TEND_TEMPLATES_DIR": str(templates), "TEND_SCHEDULES_DIR": str(path.parent)},
    )
    errors, warnings = [], []
    for line in result.stdout.splitlines():
        found = CHECK_LINE.match(line)
        assert found, line
        item = (int(found["line"]), int(found["col"]), found["msg"])
        (errors if found["sev"] == "error" else warnings).append(item)
    return errors, warnings


def _declared(api: Api, data: bytes) -> str:
    """The id to PUT the text to: the one it declares, when that is an id."""
    declared = api.runtime.catalog.load_bytes(data, "plan").declared_id or ""
    return declared if re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", declared) else "unnamed"


@pytest.mark.parametrize("name", sorted(BAD_PLANS))
def test_put_gives_the_lines_and_columns_tend_plans_check_gives(
    api: Api, tmp_path: Path, name: str
) -> None:
    data = BAD_PLANS[name]
    path = tmp_path / "check" / f"{name}.yaml"
    path.parent.mkdir()
    path.write_bytes(data)
    errors, warnings = _checked(path, api.folders.templates)
    stored = api.versions_stored()
    answer = api.put(_declared(api, data), data)
    if not errors:  # a damaged shipped plan may still be a plan
        assert answer.status_code == 200, answer.text
        return
    assert answer.status_code == 422, answer.text
    body = answer.json()
    got = [(e["line"], e["col"], e["message"]) for e in body["errors"]]
    assert got == errors
    assert [(w["line"], w["col"], w["message"]) for w in body["warnings"]] == warnings
    assert api.versions_stored() == stored


def test_the_bad_plans_include_each_kind_of_mistake() -> None:
    """The corpus is not all one kind: at least a dozen different first messages."""
    assert len(BAD_PLANS) >= 40


# --- the command line ------------------------------------------------------------------


def _tend(folders: Folders, db_url: str, *args: str) -> Any:
    env = {
        "TEND_DATABASE_URL": db_url,
        "TEND_SCHEDULES_DIR": str(folders.schedules),
        "TEND_TEMPLATES_DIR": str(folders.templates),
    }
    return CliRunner().invoke(cli.main, list(args), env=env)


def test_tend_plans_push_and_versions(harness: Harness, folders: Folders) -> None:
    url = harness.runtime.settings.database_url
    folders.write_plan("walk", WALK)
    folders.write_plan("broken", WALK.replace("plan: walk", "plan: broken").replace("18:00", "x"))
    pushed = _tend(folders, url, "plans", "push")
    assert pushed.exit_code == 1  # one file has errors; the valid one is still published
    lines = pushed.stdout.splitlines()
    assert "walk: version 1" in lines
    assert any(re.match(r".*broken\.yaml:\d+:\d+: error: ", line) for line in lines)
    again = _tend(folders, url, "plans", "push", str(folders.schedules / "walk.yaml"))
    assert again.exit_code == 0
    assert again.stdout.splitlines() == ["walk: unchanged (version 1)"]

    # The command reads the system clock: enroll from a week ahead.
    harness.clock.set(datetime.now(UTC))
    start = datetime.now(UTC).date() + timedelta(days=7)
    person = harness.participant(tz="UTC")
    harness.enroll(person, "walk", start)
    folders.write_plan("walk", LATER)
    dry = _tend(folders, url, "plans", "push", "--dry-run", str(folders.schedules / "walk.yaml"))
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines()[0].startswith("walk: would be version 2; 1 enrollment")
    moved = f"    ~ walk:{start} {start}T18:00:00Z -> {start}T18:30:00Z"
    assert moved in dry.stdout.splitlines()
    real = _tend(
        folders, url, "plans", "push", "--note", "later", str(folders.schedules / "walk.yaml")
    )
    assert real.stdout.splitlines()[0].startswith("walk: version 2; 1 enrollment")

    listed = _tend(folders, url, "plans", "versions", "walk")
    assert listed.exit_code == 0
    rows = listed.stdout.splitlines()
    assert rows[0].split() == ["version", "published", "by", "content", "hash", "note"]
    assert [row.split()[0] for row in rows[1:]] == ["1", "2"]
    assert rows[2].split()[-1] == "later"
    unknown = _tend(folders, url, "plans", "versions", "wlak")
    assert unknown.exit_code == 2
    assert "did you mean 'walk'" in unknown.output


def test_reminders_follow_a_published_version_and_sent_ones_stay(
    harness: Harness, folders: Folders
) -> None:
    folders.write_plan("walk", WALK)
    publish(harness.runtime)
    person = harness.participant(tz="UTC")
    harness.enroll(person, "walk", date(2026, 3, 2))
    harness.at(datetime(2026, 3, 2, 18, 0, tzinfo=UTC))
    assert [m.body for m in harness.sms.sent] == ["Walk time, Rae."]
    published = publishing.publish(harness.runtime, LATER, by="test")
    assert published.version == 2
    harness.at(datetime(2026, 3, 3, 18, 30, tzinfo=UTC))
    assert [m.body for m in harness.sms.sent] == ["Walk time, Rae.", "Walk at half past, Rae."]
    with transaction(harness.runtime.engine) as conn:
        rows = dict(conn.execute(select(occurrences.c.key, occurrences.c.plan_version)).all())
    assert rows["walk:2026-03-02"] == 1  # sent under version 1, and so it stays
    assert rows["walk:2026-03-03"] == 2
    # The report says which version each week ran on: this one, on both.
    (entry,) = report.build(harness.runtime).entries
    assert (entry.plan_version, entry.week_versions) == (2, ((1, (1, 2)),))
    assert entry.versions_text() == "v1 week 1, v2 week 1"


def test_a_second_process_reads_a_version_published_by_another(
    harness: Harness, folders: Folders, db_url: str
) -> None:
    folders.write_plan("walk", WALK)
    publish(harness.runtime)
    other = build_runtime(db_url, folders, harness.clock, {"sms": RecordingChannel()})
    try:
        assert other.plans.get("walk") is not None
        publishing.publish(harness.runtime, LATER, by="test")
        fresh = other.plans.refresh()["walk"]
        assert (fresh.version, str(fresh.practices[0].base.at)) == (2, "18:30")
    finally:
        other.close()


def test_tend_run_publishes_the_folder_at_start_but_not_over_a_newer_version(
    harness: Harness, folders: Folders
) -> None:
    folders.write_plan("walk", WALK)
    started = publishing.publish_at_start(harness.runtime)
    assert [(p.plan.id, p.version, p.created) for p in started.published] == [("walk", 1, True)]
    # A coach publishes from the dashboard; the file still holds version 1's text.
    publishing.publish(harness.runtime, LATER, by="dashboard")
    again = publishing.publish_at_start(harness.runtime)
    assert again.published == []
    assert [(path.name, why) for path, why in again.skipped] == [
        ("walk.yaml", "a newer version was published since this file")
    ]
    assert harness.plan("walk").version == 2
    # A file edited since is newer: it is published.
    folders.write_plan("walk", LATER.replace("18:30", "19:00"))
    third = publishing.publish_at_start(harness.runtime)
    assert [(p.plan.id, p.version) for p in third.published] == [("walk", 3)]
    # A file with errors leaves the plan's last version running.
    folders.write_plan("walk", "plan: walk\ntitle: [")
    broken = publishing.publish_at_start(harness.runtime)
    assert broken.errors
    assert harness.runtime.plans.refresh()["walk"].version == 3


def test_the_registry_asks_the_database_once_when_nothing_was_published(
    harness: Harness, folders: Folders
) -> None:
    from sqlalchemy import event

    folders.write_plan("walk", WALK)
    publish(harness.runtime)
    registry = harness.runtime.plans
    registry.refresh()
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(harness.runtime.engine, "before_cursor_execute", seen)
    try:
        for _ in range(5):
            registry.refresh()
        assert registry.get("walk") is not None
        plan = registry.get("walk", registry.all()["walk"].content_hash)
        assert plan is not None
    finally:
        event.remove(harness.runtime.engine, "before_cursor_execute", seen)
    queries = [s for s in statements if "plan_versions" in s]
    assert len(queries) == 5  # one `max(id)` a refresh; the plan itself from memory


WAKE = """\
plan: wake
title: Wake
weeks: 4
variables:
  wake: "07:00"
practices:
  - id: rise
    category: sleep
    title: Rise
    at: wake
    channels: [sms]
    message: "Rise, {{ participant.first_name }}."
"""


def test_an_enrollment_that_cannot_follow_goes_on_with_its_own_version(
    harness: Harness, folders: Folders
) -> None:
    folders.write_plan("wake", WAKE)
    publish(harness.runtime)
    stuck = harness.enroll(harness.participant(tz="UTC"), "wake", date(2026, 3, 2), wake="06:30")
    fine = harness.enroll(
        harness.participant(name="Bo", phone="+14155550124", tz="UTC"), "wake", date(2026, 3, 2)
    )
    published = publishing.publish(
        harness.runtime,
        WAKE.replace('variables:\n  wake: "07:00"\n', "").replace("at: wake", 'at: "08:00"'),
        by="test",
    )
    refused = {line.enrollment_id: "wake" in (line.error or "") for line in published.lines}
    assert refused == {stuck: True, fine: False}
    # Three weeks on, past the two weeks stored at enrollment: the one that could not
    # follow still gets its 06:30 reminders (version 1), the other its 08:00 (version 2).
    for day in range(3, 24):
        harness.clock.set(datetime(2026, 3, day, 5, 0, tzinfo=UTC))
        harness.maintain()
    harness.at(datetime(2026, 3, 23, 6, 30, tzinfo=UTC))
    harness.at(datetime(2026, 3, 23, 8, 0, tzinfo=UTC))
    assert [(m.to, m.body) for m in harness.sms.sent[-2:]] == [
        ("+14155550123", "Rise, Rae."),
        ("+14155550124", "Rise, Bo."),
    ]
    with transaction(harness.runtime.engine) as conn:
        versions = dict(
            conn.execute(
                select(occurrences.c.enrollment_id, occurrences.c.plan_version).where(
                    occurrences.c.key == "rise:2026-03-23"
                )
            ).all()
        )
    assert versions == {stuck: 1, fine: 2}


def test_expect_version_refuses_a_publish_over_someone_elses(api: Api) -> None:
    ok(api.put("walk", WALK, expect_version=0))  # a new plan: only if none has the id
    taken = api.put("walk", LATER, expect_version=0)
    assert taken.status_code == 409
    assert "exists already" in taken.json()["detail"]
    ok(api.put("walk", LATER, expect_version=1))  # version 1 was the newest: published
    stale = api.put("walk", WALK, expect_version=1)
    assert stale.status_code == 409
    assert "is at version 2 now" in stale.json()["detail"]
    assert api.versions_stored() == 2
