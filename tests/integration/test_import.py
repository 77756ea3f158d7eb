"""The CSV import (CONTRACT section 5.3, issue 17) through each of its entry points: the
command line (`tend participants import`), the API (`POST /api/participants/import`)
and the dashboard (`/dashboard/import`: a dry run, then the import). One action does
the work (`actions.imports.import_csv`), so each says the same.

A file of 500 people with one bad row is refused with that row's line and column and
nothing is stored; fixed, it imports all 500 and, with a plan, enrolls them. A phone
number already in Tend is left out and reported (to a coach without saying whose it
is). A coach's import is theirs, and so is the cohort; the consent log says which file
and who. A dry run stores nothing. Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service import cli
from service.actions import coaches as accounts
from service.actions import imports
from service.clock import ManualClock
from service.runtime import Runtime
from service.storage.db import transaction
from service.storage.tables import (
    audit_log,
    cohorts,
    consent_log,
    enrollments,
    metadata,
    participants,
)
from service.web.app import create_app
from tests.support.engine import START, Folders, Harness, RecordingChannel, build_runtime

TOKEN = "import-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "https://tend.test"
PASSWORD = "correct horse battery"
CSV = {"Content-Type": "text/csv"}

CALM = """
    plan: calm
    title: Calm
    weeks: 2
    variables:
      wake: "07:00"
    practices:
      - id: breathe
        category: mindfulness
        title: Breathe
        at: wake + 10m
        channels: [sms]
        message: "Breathe, {{ participant.first_name }}."
"""

HEADER = "name,timezone,phone,email,language,wake"
BAD_LINE = 251  # the header is line 1: the 250th person


def people(count: int = 500, *, bad: int | None = None, first: int = 0) -> bytes:
    """`count` people with their own numbers; at line `bad`, a time zone that is none."""
    lines = [HEADER]
    for i in range(first, first + count):
        zone = "Mars/Olympus_Mons" if len(lines) + 1 == bad else "America/New_York"
        lines.append(
            f"Person {i} Ñandú,{zone},+1415555{i:04d},p{i}@example.org,es-MX,06:{i % 60:02d}"
        )
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass
class World:
    runtime: Runtime
    app: Any
    folders: Folders
    sms: RecordingChannel

    def api(self, headers: dict[str, str] | None = None) -> TestClient:
        return TestClient(self.app, base_url=BASE, headers=headers or AUTH)

    def count(self, table: Any = participants) -> int:
        with transaction(self.runtime.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        with transaction(self.runtime.engine) as conn:
            return {
                t.name: [tuple(r) for r in conn.execute(select(t)).all()]
                for t in metadata.sorted_tables
            }

    def rows(self, table: Any) -> list[dict[str, Any]]:
        with transaction(self.runtime.engine) as conn:
            return [dict(r) for r in conn.execute(select(table)).mappings()]

    def coach(self, email: str = "cora@example.org") -> tuple[str, str]:
        """A coach account with a password; (its id, an API token of it)."""
        made = accounts.add(self.runtime, accounts.operator(), email=email, name="Cora Coach")
        accounts.set_password(self.runtime, made.link.rpartition("/")[2], PASSWORD, None)
        token = accounts.create_token(self.runtime, accounts.operator(), email, "laptop")
        return made.coach.id, token.secret

    def browser(self, email: str | None = None) -> tuple[TestClient, str]:
        """The dashboard signed in (as the operator, or as the account), and its CSRF token."""
        client = TestClient(self.app, base_url=BASE, headers={"Origin": BASE})
        form = {"token": TOKEN} if email is None else {"email": email, "password": PASSWORD}
        signed = client.post("/dashboard/login", data=form, follow_redirects=False)
        assert signed.status_code == 303, signed.text
        page = client.get("/dashboard/import")
        assert page.status_code == 200, page.text
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        return client, found.group(1)


@pytest.fixture
def world(db_url: str, folders: Folders) -> Iterator[World]:
    folders.write_plan("calm", CALM)
    sms = RecordingChannel("sms")
    runtime = build_runtime(db_url, folders, ManualClock(START), {"sms": sms, "email": sms},
                            admin_token=TOKEN)  # fmt: skip
    try:
        yield World(runtime, create_app(runtime), folders, sms)
    finally:
        runtime.close()


def tend(world: World, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setattr(cli, "runtime", lambda **_: world.runtime)
    return CliRunner().invoke(cli.main, ["participants", "import", *args], catch_exceptions=False)


def enrolled_in(world: World, plan: str = "calm") -> int:
    with transaction(world.runtime.engine) as conn:
        query = select(func.count()).select_from(enrollments).where(enrollments.c.plan_id == plan)
        return int(conn.execute(query).scalar_one())


# --- the command line --------------------------------------------------------------------


def test_the_command_refuses_a_bad_row_then_imports_the_fixed_file_and_enrolls(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "spring.csv"
    path.write_bytes(people(bad=BAD_LINE))
    refused = tend(world, monkeypatch, str(path), "--plan", "calm", "--start", "2026-03-02")
    assert refused.exit_code == 1
    assert refused.stdout.splitlines() == [
        f"{path}:{BAD_LINE}: error: column timezone: unknown time zone 'Mars/Olympus_Mons'; "
        "use an IANA name such as America/New_York"
    ]
    assert refused.stderr == f"{path}: 1 problem; nothing was imported\n"
    assert world.count() == 0

    path.write_bytes(people())
    done = tend(world, monkeypatch, str(path), "--plan", "calm", "--start", "2026-03-02")
    assert done.exit_code == 0, done.output
    # (the last line: the test's runtime logs to stdout too, at info)
    assert done.stdout.splitlines()[-1] == (
        "imported 500 participants, enrolled in Calm from 2026-03-02"
    )
    assert world.count() == 500
    assert enrolled_in(world) == 500
    stored = world.rows(participants)
    assert {p["language"] for p in stored} == {"es-MX"}
    assert {p["coach_id"] for p in stored} == {None}
    assert stored[0]["variables"] == {"wake": "06:00"}
    assert world.sms.sent == []  # the scheduler sends the confirmation, not the import

    again = tend(world, monkeypatch, str(path), "--dry-run")
    assert again.exit_code == 0
    assert again.stdout.splitlines()[-1].startswith(
        "would import 0 participants (500 already in Tend: lines 2, 3,"
    )
    assert f"{path}:2: skipped: this phone number is already in Tend (p_" in again.stderr


def test_the_command_s_other_refusals(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "few.csv"
    path.write_bytes(people(3))
    for args, words in [
        (["--plan", "calm"], "a plan needs a start"),
        (["--start", "today"], "give the plan too"),
        (["--plan", "calmm", "--start", "today"], "did you mean 'calm'"),
        (["--plan", "calm", "--start", "soon"], "'soon' is not a date"),
        (["--cohort", "   "], None),  # an empty name is no cohort
    ]:
        result = tend(world, monkeypatch, str(path), "--dry-run", *args)
        if words is None:
            assert result.exit_code == 0, result.output
            continue
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("tend: ")
        assert words in result.stderr
    missing = tend(world, monkeypatch, str(tmp_path / "nowhere.csv"))
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr
    assert world.count() == 0
    assert world.count(cohorts) == 0


# --- the API -------------------------------------------------------------------------------


def test_the_api_refuses_a_bad_row_then_imports_the_fixed_file(world: World) -> None:
    api = world.api()
    refused = api.post("/api/participants/import", content=people(bad=BAD_LINE), headers=CSV)
    assert refused.status_code == 422, refused.text
    assert refused.json() == {
        "errors": [
            {
                "line": BAD_LINE,
                "column": "timezone",
                "message": "unknown time zone 'Mars/Olympus_Mons'; use an IANA name such as "
                "America/New_York",
            }
        ]
    }
    assert world.count() == 0

    params = {"plan": "calm", "start": "today", "cohort": "Spring 2026", "filename": "s.csv"}
    done = api.post("/api/participants/import", content=people(), headers=CSV, params=params)
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["imported"], len(body["participants"]), body["skipped"], body["dry_run"]) == (
        500,
        500,
        [],
        False,
    )
    assert body["plan"] == "calm"
    assert body["cohort"].startswith("h_")
    assert world.count() == 500
    assert enrolled_in(world) == 500
    assert {p["cohort_id"] for p in world.rows(participants)} == {body["cohort"]}
    sources = {(r["source"], r["detail"]) for r in world.rows(consent_log)}
    assert sources == {("import:s.csv", "added by operator")}
    audit = [r for r in world.rows(audit_log) if r["action"] == "participants.import"]
    assert [(r["actor"], r["target_kind"], r["target_id"], r["detail"]) for r in audit] == [
        ("operator", "cohort", body["cohort"], "500 from s.csv into calm")
    ]


def test_the_api_s_body_type_size_and_shape(world: World) -> None:
    api = world.api()
    url = "/api/participants/import"
    assert api.post(url, content=b"name,timezone\nA,UTC\n").status_code == 415
    assert api.post(url, json={"name": "A"}).status_code == 415
    plain = api.post(url, content=b"name,timezone\nA,UTC\n", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 200
    assert plain.json()["imported"] == 1
    huge = api.post(url, content=b"x" * (5 * 1024 * 1024 + 1), headers=CSV)
    assert huge.status_code == 413
    assert "at most 5 MiB" in huge.json()["detail"]
    latin = api.post(url, content="name,timezone\nJosé,UTC\n".encode("latin-1"), headers=CSV)
    assert latin.status_code == 422
    assert latin.json()["errors"][0]["line"] == 1
    assert latin.json()["errors"][0]["column"] is None
    no_start = api.post(url, content=people(2), headers=CSV, params={"plan": "calm"})
    assert no_start.status_code == 400
    assert "needs a start" in no_start.json()["detail"]
    unknown = api.post(url, content=people(2), headers=CSV, params={"plan": "x", "start": "today"})
    assert unknown.status_code == 404
    shape = api.post(url, content=people(2), headers=CSV, params={"plan": "Not A Plan!"})
    assert shape.status_code == 422
    assert "detail" in shape.json()
    assert world.count() == 1


def test_a_dry_run_stores_nothing(world: World) -> None:
    api = world.api()
    before = world.snapshot()
    params = {"dry_run": "true", "plan": "calm", "start": "today", "cohort": "New one"}
    answer = api.post("/api/participants/import", content=people(20), headers=CSV, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.json()["imported"] == 20
    assert answer.json()["participants"] == []
    assert answer.json()["dry_run"] is True
    after = world.snapshot()
    # Every API request is on the audit log (auth.require_actor): that is all that changed.
    assert [row[5] for row in after.pop("audit_log")] == ["POST /participants/import"]
    before.pop("audit_log")
    assert after == before


def test_a_phone_already_in_tend_is_skipped_and_reported_not_whose_to_a_coach(
    world: World,
) -> None:
    api = world.api()
    first = api.post("/api/participants/import", content=people(3), headers=CSV)
    owner = first.json()["participants"][1]  # line 3's
    # Again with two new people: the three are left out, and said to be.
    admin = api.post("/api/participants/import", content=people(5), headers=CSV).json()
    assert admin["imported"] == 2
    assert admin["skipped"][1] == {
        "line": 3,
        "message": f"this phone number is already in Tend ({owner})",
    }
    _, token = world.coach()
    coach = world.api({"Authorization": f"Bearer {token}"})
    theirs = coach.post("/api/participants/import", content=people(6), headers=CSV).json()
    assert theirs["imported"] == 1
    assert theirs["skipped"][1] == {"line": 3, "message": "this phone number is already in Tend"}
    assert "p_" not in str(theirs["skipped"])
    assert world.count() == 6


def test_a_coach_s_import_is_theirs_and_their_cohort(world: World) -> None:
    coach_id, token = world.coach()
    coach = world.api({"Authorization": f"Bearer {token}"})
    params = {"cohort": "Tuesday group", "filename": "../../tuesday.csv"}
    done = coach.post("/api/participants/import", content=people(4), headers=CSV, params=params)
    assert done.status_code == 200, done.text
    assert {p["coach_id"] for p in world.rows(participants)} == {coach_id}
    [group] = world.rows(cohorts)
    assert (group["coach_id"], group["name"], group["id"]) == (
        coach_id,
        "Tuesday group",
        done.json()["cohort"],
    )
    assert {(r["source"], r["detail"]) for r in world.rows(consent_log)} == {
        ("import:tuesday.csv", f"added by {coach_id}")
    }
    # The coach sees them; the same cohort name is reused, not made twice.
    assert coach.get("/api/participants").json()["total"] == 4
    more = coach.post("/api/participants/import", content=people(2, first=10), headers=CSV,
                      params=params)  # fmt: skip
    assert more.json()["cohort"] == group["id"]
    assert world.count(cohorts) == 1


def test_the_import_route_shadows_no_participant_route(world: World) -> None:
    api = world.api()
    made = api.post("/api/participants/import", content=people(1), headers=CSV).json()
    pid = made["participants"][0]
    assert api.get(f"/api/participants/{pid}").status_code == 200
    assert api.post(f"/api/participants/{pid}/feed/rotate").status_code == 200
    assert api.get("/api/participants/import").status_code == 404  # GET: no such participant


# --- the dashboard -------------------------------------------------------------------------


def _upload(client: TestClient, url: str, data: bytes, csrf: str, **fields: str) -> Any:
    return client.post(
        url,
        data={"csrf": csrf, **fields},
        files={"file": ("group.csv", data, "text/csv")},
        follow_redirects=False,
    )


def test_the_dashboard_shows_every_bad_row_then_imports_the_fixed_file(world: World) -> None:
    coach_id, _ = world.coach()
    browser, csrf = world.browser("cora@example.org")
    overview = browser.get("/dashboard")
    assert 'href="/dashboard/import"' in overview.text

    data = people(bad=BAD_LINE).replace(b"p7@example.org", b"p7-at-example")
    checked = _upload(browser, "/dashboard/import/check", data, csrf, cohort="Spring",
                      plan="calm", when="today")  # fmt: skip
    assert checked.status_code == 422, checked.text
    cells = re.findall(r"<tr><td class=\"where\">(\d+)</td><td class=\"where\">([^<]*)</td>",
                       checked.text)  # fmt: skip
    assert cells == [("9", "email"), (str(BAD_LINE), "timezone")]
    assert "498 of 500 rows of people" in checked.text
    assert world.count() == 0
    assert world.count(cohorts) == 0

    checked = _upload(browser, "/dashboard/import/check", people(), csrf, cohort="Spring",
                      plan="calm", when="date", start="2026-03-03")  # fmt: skip
    assert checked.status_code == 200, checked.text
    assert "Import 500 people" in checked.text
    assert world.count() == 0  # a dry run
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', checked.text))
    assert form["filename"] == "group.csv"
    assert form["start"] == "2026-03-03"
    done = browser.post(
        "/dashboard/import",
        data=form,
        files={"unused": ("", b"", "application/octet-stream")},  # sent as multipart
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith("/dashboard/cohorts/h_")
    page = browser.get(done.headers["location"])
    assert "Imported 500 participants into cohort Spring, enrolled in Calm from 2026-03-03" in (
        page.text
    )
    assert world.count() == 500
    assert enrolled_in(world) == 500
    assert {p["coach_id"] for p in world.rows(participants)} == {coach_id}
    assert {r["source"] for r in world.rows(consent_log)} == {"import:group.csv"}


def test_the_dashboard_import_refuses_without_csrf_or_a_file_or_when_too_big(
    world: World,
) -> None:
    browser, csrf = world.browser()
    assert _upload(browser, "/dashboard/import/check", people(2), "wrong").status_code == 403
    other = TestClient(world.app, base_url=BASE, headers={"Origin": "https://evil.test"},
                       cookies=browser.cookies)  # fmt: skip
    assert _upload(other, "/dashboard/import", people(2), csrf).status_code == 403
    empty = browser.post("/dashboard/import/check", data={"csrf": csrf})
    assert empty.status_code == 400
    assert "Choose a CSV file first" in empty.text
    big = _upload(browser, "/dashboard/import/check", b"x" * (7 * 1024 * 1024), csrf)
    assert big.status_code == 413
    no_start = _upload(browser, "/dashboard/import/check", people(2), csrf, plan="calm",
                       when="date", start="")  # fmt: skip
    assert no_start.status_code == 400
    assert "choose a start date" in no_start.text.lower()
    pasted = browser.post("/dashboard/import", data={"csrf": csrf, "csv": "name,timezone\nA,UTC\n"},
                          follow_redirects=False)  # fmt: skip
    assert pasted.status_code == 303
    assert world.count() == 1
    bare = TestClient(world.app, base_url=BASE, headers={"Origin": BASE})
    login = _upload(bare, "/dashboard/import", people(2), "x")
    assert login.status_code == 303
    assert "/dashboard/login" in login.headers["location"]


def test_the_same_refusal_everywhere(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The action's refusal, through the command, the API and the dashboard."""
    data = b"name,timezone,wake\nAna,UTC,25:00\nBo,Nowhere,\n"
    with pytest.raises(imports.ImportRejected) as direct:
        imports.import_csv(world.runtime, data, filename="f.csv")
    expected = [(e.line, e.column, e.message) for e in direct.value.errors]
    assert [(line, column) for line, column, _ in expected] == [(2, "wake"), (3, "timezone")]

    path = tmp_path / "f.csv"
    path.write_bytes(data)
    command = tend(world, monkeypatch, str(path))
    assert command.stdout.splitlines() == [
        f"{path}:{line}: error: column {column}: {message}" for line, column, message in expected
    ]
    api = world.api().post("/api/participants/import", content=data, headers=CSV)
    assert [(e["line"], e["column"], e["message"]) for e in api.json()["errors"]] == expected
    browser, csrf = world.browser()
    page = _upload(browser, "/dashboard/import/check", data, csrf)
    for _, _, message in expected:
        assert message.replace("'", "&#39;") in page.text
    assert world.count() == 0


# SQLite only: 1,000 texts through the worker; the import and enrolling on PostgreSQL are
# the tests above.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_cohort_of_500_imported_and_enrolled_in_the_dashboard_gets_one_confirmation_each_first(
    world: World,
) -> None:
    """Issue 17's done-when: 500 people imported in the dashboard (one bad row first:
    shown, fixed, uploaded again), enrolled in one action, and each person's first text
    is their confirmation, exactly one of it, before any reminder."""
    browser, csrf = world.browser()
    refused = _upload(browser, "/dashboard/import/check", people(bad=BAD_LINE), csrf,
                      cohort="Spring")  # fmt: skip
    assert refused.status_code == 422
    assert f'<td class="where">{BAD_LINE}</td>' in refused.text
    checked = _upload(browser, "/dashboard/import/check", people(), csrf, cohort="Spring")
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', checked.text))
    done = browser.post("/dashboard/import", data=form,
                        files={"unused": ("", b"", "application/octet-stream")},
                        follow_redirects=False)  # fmt: skip
    assert done.status_code == 303, done.text
    cohort_page = done.headers["location"]
    enrolled = browser.post(f"{cohort_page}/enroll", data={"csrf": csrf, "plan": "calm",
                            "when": "date", "start": "2026-03-03"}, follow_redirects=False)  # fmt: skip
    assert enrolled.status_code == 303
    assert "500 enrolled in calm" in browser.get(enrolled.headers["location"]).text
    assert enrolled_in(world) == 500

    clock = world.runtime.clock
    assert isinstance(clock, ManualClock)
    harness = Harness(world.runtime, clock, world.sms, world.sms)
    try:
        harness.maintain()  # 07:00 in New York: too early for a confirmation
        assert world.sms.sent == []
        clock.set(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))  # 08:00 there
        harness.maintain()
        for minute in range(0, 71, 5):  # the next morning: wake + 10m, 06:10 to 07:09
            harness.at(datetime(2026, 3, 3, 11, 10, tzinfo=UTC) + timedelta(minutes=minute))
    finally:
        harness.worker.stop()
        harness.broker.close()
    by_phone: dict[str, list[str]] = {}
    for message in world.sms.sent:
        by_phone.setdefault(message.to, []).append(message.body)
    assert len(by_phone) == 500
    for phone, texts in by_phone.items():
        confirmations = [t for t in texts if "HELP" in t and "STOP" in t]  # en or es
        assert len(confirmations) == 1, (phone, texts)
        assert texts[0] == confirmations[0], (phone, texts)
        # Their rows say es-MX: the confirmation is Spanish (the plan itself is English only).
        assert texts[0].startswith(
            "Calm: tus recordatorios empiezan ahora. Hasta 1 mensaje al día."
        )
        assert len(texts) > 1, (phone, texts)
        assert texts[1].startswith("Breathe, Person"), (phone, texts)
