"""Cohorts (issue 17): named groups of a coach's participants, through every entry point.

The actions (adding, names and keywords, changing, putting people in, enrolling a whole
cohort in one transaction with each person's own today), the `tend cohorts` commands,
`/api/cohorts` with coaches' tokens (another coach's cohort is a 404 like a missing one),
the dashboard's cohort pages, and filtering the overview, the participant list and the
report by cohort.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service import cli, report
from service.actions import coaches as accounts
from service.actions import cohorts as groups
from service.actions import participants as people
from service.actions.errors import Conflict, Invalid, NotFound
from service.clock import ManualClock
from service.runtime import Runtime
from service.storage.db import reading, transaction
from service.storage.tables import cohorts, enrollments, participants
from service.web.app import create_app
from tests.support.engine import Folders, RecordingChannel, published_runtime, settings_for
from tests.support.engine import sqlite_url as migrated_sqlite

NOW = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # still Sunday 1 March west of UTC
BASE = "https://tend.test"
ADMIN_TOKEN = "cohorts-admin-token"
PASSWORD = "a long enough password"
PLAN = """
plan: calm
title: Calm
weeks: 2
variables:
  wake: "07:00"
  bedtime: "wake + 15h"
practices:
  - id: rise
    category: sleep
    title: Rise
    at: wake
    channels: [sms]
    check_in: done
"""
OTHER = PLAN.replace("plan: calm", "plan: other").replace("Calm", "Other")


@dataclass
class World:
    runtime: Runtime
    app: Any
    coach_a: accounts.Actor
    coach_b: accounts.Actor
    token_a: str
    token_b: str

    def client(self, token: str = ADMIN_TOKEN) -> TestClient:
        return TestClient(self.app, base_url=BASE, client=("203.0.113.9", 5000),
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    def person(self, name: str, tz: str = "UTC", actor: accounts.Actor | None = None,
               **variables: str) -> str:  # fmt: skip
        return people.create(self.runtime, name=name, timezone=tz, variables=variables,
                             actor=actor).id  # fmt: skip


@pytest.fixture
def world(tmp_path: Path, folders: Folders) -> Iterator[World]:
    folders.write_plan("calm", PLAN)
    folders.write_plan("other", OTHER)
    runtime = published_runtime(
        settings_for(migrated_sqlite(tmp_path), folders, admin_token=ADMIN_TOKEN),
        clock=ManualClock(NOW),
        channels={"sms": RecordingChannel("sms"), "email": RecordingChannel("email")},
    )
    op = accounts.operator()
    a = accounts.add(runtime, op, email="a@example.org", name="Coach A").coach
    b = accounts.add(runtime, op, email="b@example.org", name="Coach B").coach
    token_a = accounts.create_token(runtime, op, "a@example.org", "a").secret
    token_b = accounts.create_token(runtime, op, "b@example.org", "b").secret
    made = World(runtime, create_app(runtime), accounts.Actor.of(a), accounts.Actor.of(b),
                 token_a, token_b)  # fmt: skip
    try:
        yield made
    finally:
        runtime.close()


def _enrollments(world: World) -> list[tuple[str, date]]:
    with reading(world.runtime.engine) as conn:
        rows = conn.execute(select(enrollments.c.participant_id, enrollments.c.start_date))
        return sorted((r[0], r[1]) for r in rows)


# --- the actions -----------------------------------------------------------------------


def test_a_cohort_is_made_named_and_changed(world: World) -> None:
    rt, a = world.runtime, world.coach_a
    made = groups.create(rt, name="  Spring   sleep ", actor=a)
    assert (made.name, made.coach_id, made.members, made.plan_id) == ("Spring sleep", a.id, 0,
                                                                       None)  # fmt: skip
    with pytest.raises(Conflict, match="another cohort has the name"):
        groups.create(rt, name="spring SLEEP", actor=a)  # case ignored
    groups.create(rt, name="Spring sleep", actor=world.coach_b)  # another coach's may
    groups.create(rt, name="Operator's")
    with pytest.raises(Conflict):
        groups.create(rt, name="operator's")  # the operator's own are checked too
    with pytest.raises(Invalid, match="cannot be empty"):
        groups.create(rt, name="   ", actor=a)
    with pytest.raises(Invalid, match="only when it has a plan"):
        groups.create(rt, name="Walkers", keyword="WALK", actor=a)
    with pytest.raises(NotFound, match="no plan 'nope'"):
        groups.create(rt, name="Walkers", plan="nope", actor=a)

    joinable = groups.create(rt, name="Walkers", plan="calm", keyword="walk", signup=True,
                             actor=a)  # fmt: skip
    assert (joinable.keyword, joinable.plan_id) == ("WALK", "calm")
    assert joinable.signup_token
    with pytest.raises(Conflict, match="keyword WALK"):
        groups.create(rt, name="Other walkers", plan="calm", keyword="Walk", actor=world.coach_b)

    changed = groups.change(rt, joinable.id, name="Evening walkers", keyword=None, actor=a)
    assert (changed.name, changed.keyword, changed.signup_token) == (
        "Evening walkers", None, joinable.signup_token)  # fmt: skip
    renewed = groups.change(rt, joinable.id, signup=True, actor=a)
    assert renewed.signup_token not in (None, joinable.signup_token)  # a new address
    with pytest.raises(Invalid, match="only when it has a plan"):
        groups.change(rt, joinable.id, plan=None, actor=a)  # it still has a sign-up page
    assert groups.change(rt, joinable.id, plan=None, signup=False, actor=a).plan_id is None
    with pytest.raises(Conflict):
        groups.change(rt, joinable.id, name="SPRING SLEEP", actor=a)
    with pytest.raises(NotFound, match=f"^no cohort '{joinable.id}'$"):
        groups.change(rt, joinable.id, name="Mine now", actor=world.coach_b)
    assert [c.name for c in groups.cohorts(rt, actor=a)] == ["Evening walkers", "Spring sleep"]
    assert len(groups.cohorts(rt)) == 4  # the operator sees all


@pytest.mark.parametrize("word", ["STOP", "help", "Yes", "join", "START", "no", "done"])
def test_reply_keywords_cannot_be_join_keywords(world: World, word: str) -> None:
    with pytest.raises(Invalid, match="already text for something else"):
        groups.create(world.runtime, name="G", plan="calm", keyword=word)


@pytest.mark.parametrize("word", ["X", "TWO WORDS", "sleep!", "A" * 21])
def test_a_join_keyword_is_one_short_word(world: World, word: str) -> None:
    with pytest.raises(Invalid, match="2 to 20 letters or digits"):
        groups.create(world.runtime, name="G", plan="calm", keyword=word)


def test_members_are_the_actor_s_own(world: World) -> None:
    rt, a = world.runtime, world.coach_a
    mine = [world.person(f"Ann {n}", actor=a) for n in range(3)]
    theirs = world.person("Bea B", actor=world.coach_b)
    group = groups.create(rt, name="Mine", actor=a)
    with pytest.raises(NotFound, match=f"no participant '{theirs}'"):
        groups.add_members(rt, group.id, [mine[0], theirs], actor=a)
    assert groups.get(rt, group.id, actor=a).members == 0  # nobody moved
    assert groups.add_members(rt, group.id, [*mine, mine[0]], actor=a) == 3
    assert groups.get(rt, group.id, actor=a).members == 3
    other = groups.create(rt, name="Other", actor=a)
    groups.add_members(rt, other.id, [mine[2]], actor=a)  # moves out of the first
    assert [groups.get(rt, c, actor=a).members for c in (group.id, other.id)] == [2, 1]
    with pytest.raises(NotFound, match=f"^no cohort '{group.id}'$"):
        groups.add_members(rt, group.id, [theirs], actor=world.coach_b)


def test_a_participant_is_added_straight_into_a_cohort(world: World) -> None:
    rt, a = world.runtime, world.coach_a
    person = people.create(rt, name="Cy", timezone="UTC", actor=a, cohort="Night owls")
    group = groups.find(rt, "night OWLS", actor=a)
    assert person.cohort_id == group.id
    again = people.create(rt, name="Di", timezone="UTC", actor=a, cohort="Night Owls")
    assert again.cohort_id == group.id  # the same cohort, found by name
    assert groups.get(rt, group.id, actor=a).members == 2


ZONES = ["Pacific/Honolulu", "America/Los_Angeles", "America/New_York", "Europe/London",
         "Asia/Tokyo", "Pacific/Kiritimati"]  # fmt: skip


def test_a_cohort_of_50_is_enrolled_at_once_each_from_their_own_today(world: World) -> None:
    rt, a = world.runtime, world.coach_a
    group = groups.create(rt, name="Fifty", actor=a)
    members = [world.person(f"P{n:02d}", ZONES[n % len(ZONES)], actor=a) for n in range(50)]
    groups.add_members(rt, group.id, members, actor=a)
    done = groups.enroll(rt, group.id, "calm", "today", actor=a)
    assert len(done.enrolled) == 50
    assert done.already == []
    assert done.summary == "50 enrolled in calm"
    zone_of = {pid: ZONES[n % len(ZONES)] for n, pid in enumerate(members)}
    started = dict(_enrollments(world))
    for pid, first in started.items():
        assert first == NOW.astimezone(ZoneInfo(zone_of[pid])).date(), zone_of[pid]
    assert {started[pid] for pid in members} == {date(2026, 3, 1), date(2026, 3, 2)}

    # Again: everyone is in it already; nobody twice.
    again = groups.enroll(rt, group.id, "calm", "today", actor=a)
    assert (again.enrolled, sorted(again.already)) == ([], sorted(members))
    assert "50 already in it" in again.summary
    # A shared date for another plan.
    shared = groups.enroll(rt, group.id, "other", date(2026, 3, 9), actor=a)
    assert len(shared.enrolled) == 50
    assert {d for _, d in _enrollments(world)} >= {date(2026, 3, 9)}


def test_enrolling_a_cohort_is_all_or_nothing(world: World) -> None:
    rt, a = world.runtime, world.coach_a
    group = groups.create(rt, name="Mixed", actor=a)
    fine = [world.person(f"Fine {n}", actor=a) for n in range(3)]
    # Their own wake refers to bedtime, which the plan makes from wake: a loop.
    stuck = world.person("Stuck Person", actor=a, wake="bedtime - 9h")
    already = world.person("Already In", actor=a)
    groups.add_members(rt, group.id, [*fine, stuck, already], actor=a)
    people_before = _enrollments(world)
    with pytest.raises(Invalid, match=rf"Stuck Person \({stuck}\): .*nobody was enrolled"):
        groups.enroll(rt, group.id, "calm", "today", actor=a)
    assert _enrollments(world) == people_before == []
    with pytest.raises(Invalid, match="too far from today"):
        groups.enroll(rt, group.id, "calm", date(2030, 1, 1), actor=a)
    with pytest.raises(NotFound, match=f"^no cohort '{group.id}'$"):
        groups.enroll(rt, group.id, "calm", "today", actor=world.coach_b)
    with pytest.raises(Invalid, match="nobody in it"):
        groups.enroll(rt, groups.create(rt, name="Empty", actor=a).id, "calm", "today", actor=a)

    people.update(rt, stuck, {"variables": {}}, actor=a)
    rt_enrolled = groups.enroll(rt, group.id, "calm", "today", actor=a)
    assert len(rt_enrolled.enrolled) == 5


def test_the_report_and_the_participant_list_filter_by_cohort(world: World) -> None:
    rt, a = world.runtime, world.coach_a
    group = groups.create(rt, name="In", actor=a)
    inside, outside = world.person("In Side", actor=a), world.person("Out Side", actor=a)
    groups.add_members(rt, group.id, [inside], actor=a)
    groups.enroll(rt, group.id, "calm", "today", actor=a)
    people_rows = [world.person(f"x{n}") for n in range(2)]
    assert people_rows
    from service.actions.enrollments import enroll, running_plan

    enroll(rt, outside, running_plan(rt, "calm"), "today", {})
    built = report.build(rt, cohort_id=group.id)
    assert [e.participant.id for e in built.entries] == [inside]
    listed = world.client(world.token_a).get("/api/participants", params={"cohort": group.id})
    assert [p["id"] for p in listed.json()["items"]] == [inside]
    assert listed.json()["items"][0]["cohort"] == group.id


# --- the command line ------------------------------------------------------------------


def tend(world: World, *args: str) -> Result:
    settings = world.runtime.settings
    env = {
        "TEND_DATABASE_URL": settings.database_url,
        "TEND_SCHEDULES_DIR": str(settings.schedules_dir),
        "TEND_TEMPLATES_DIR": str(settings.templates_dir),
        "TEND_SECRET_KEY": "test-secret",
        "TEND_PUBLIC_URL": BASE,
    }
    return CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)


def test_the_cohorts_commands(world: World) -> None:
    added = tend(world, "cohorts", "add", "Spring group", "--plan", "calm", "--keyword",
                 "spring", "--signup")  # fmt: skip
    assert added.exit_code == 0, added.output
    lines = added.stdout.splitlines()
    cohort_id = lines[-1]
    assert cohort_id.startswith("h_")
    assert "join by texting: JOIN SPRING" in lines
    assert re.search(rf"sign-up page: {BASE}/join/[A-Za-z0-9_-]+$", added.stdout, re.M)
    assert tend(world, "cohorts", "add", "spring GROUP").exit_code == 2

    one = tend(world, "participants", "add", "--name", "Lee Tokyo", "--tz", "Asia/Tokyo",
               "--cohort", "Spring group")  # fmt: skip
    assert one.exit_code == 0, one.output
    two = world.person("Mo Hawaii", "Pacific/Honolulu")
    members = tend(world, "cohorts", "members", "spring group", two)
    assert members.exit_code == 0, members.output
    assert "it has 2 now" in members.stdout
    missing = tend(world, "cohorts", "members", cohort_id, "p_zzzzzzzzzzzz")
    assert (missing.exit_code, missing.stderr) == (2, "tend: no participant 'p_zzzzzzzzzzzz'\n")

    listed = tend(world, "cohorts", "list")
    assert "Spring group" in listed.stdout
    assert "JOIN SPRING" in listed.stdout

    enrolled = tend(world, "cohorts", "enroll", cohort_id, "calm", "--start", "today")
    assert enrolled.exit_code == 0, enrolled.output
    out = enrolled.stdout.splitlines()
    assert out[0] == "Spring group: 2 enrolled in calm"
    assert all(line.startswith("e_") for line in out[1:])
    assert len(out) == 3
    bad = tend(world, "cohorts", "enroll", "Nobody's", "calm", "--start", "today")
    assert (bad.exit_code, bad.stderr) == (2, "tend: no cohort 'Nobody's'\n")

    changed = tend(world, "cohorts", "set", cohort_id, "--name", "Summer group",
                   "--no-keyword", "--no-signup")  # fmt: skip
    assert changed.exit_code == 0, changed.output
    assert "JOIN" not in changed.stdout
    assert "sign-up" not in changed.stdout
    refused = tend(world, "cohorts", "set", cohort_id, "--keyword", "stop")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("tend: 'STOP' is a word participants already text")

    report_all = tend(world, "report", "--format", "json")
    report_some = tend(world, "report", "--cohort", "summer group", "--format", "json")
    assert report_some.exit_code == 0, report_some.output
    assert report_some.stdout == report_all.stdout  # only the cohort is enrolled
    world.person("Not In")
    nope = tend(world, "report", "--cohort", "h_zzzzzzzzzzzz")
    assert (nope.exit_code, nope.stderr) == (2, "tend: no cohort 'h_zzzzzzzzzzzz'\n")


# --- the API ---------------------------------------------------------------------------


def test_the_cohorts_api(world: World) -> None:
    a, b = world.client(world.token_a), world.client(world.token_b)
    made = a.post("/api/cohorts", json={"name": "Sleepers", "plan": "calm", "keyword": "sleep",
                                        "signup": True})  # fmt: skip
    assert made.status_code == 201, made.text
    body = made.json()
    cid = body["id"]
    assert body["signup_url"].startswith(f"{BASE}/join/")
    assert (body["coach"], body["members"], body["keyword"]) == (world.coach_a.id, 0, "SLEEP")
    assert a.post("/api/cohorts", json={"name": "sleepers"}).status_code == 409
    assert a.post("/api/cohorts", json={"name": "X", "plan": "calm",
                                        "keyword": "STOP"}).status_code == 400  # fmt: skip

    ann = a.post("/api/participants", json={"name": "Ann", "timezone": "Asia/Tokyo"}).json()
    bo = a.post("/api/participants", json={"name": "Bo", "timezone": "America/Denver"}).json()
    bea = b.post("/api/participants", json={"name": "Bea", "timezone": "UTC"}).json()
    refused = a.post(f"/api/cohorts/{cid}/members", json={"participants": [ann["id"], bea["id"]]})
    assert refused.status_code == 404
    assert refused.json() == {"detail": f"no participant '{bea['id']}'"}
    filled = a.post(f"/api/cohorts/{cid}/members", json={"participants": [ann["id"], bo["id"]]})
    assert filled.status_code == 200, filled.text
    assert filled.json()["members"] == 2

    enrolled = a.post(f"/api/cohorts/{cid}/enroll", json={"plan": "calm", "start": "today"})
    assert enrolled.status_code == 200, enrolled.text
    assert len(enrolled.json()["enrolled"]) == 2
    assert enrolled.json()["already"] == []
    again = a.post(f"/api/cohorts/{cid}/enroll", json={"plan": "calm"}).json()
    assert (again["enrolled"], sorted(again["already"])) == ([], sorted([ann["id"], bo["id"]]))

    patched = a.patch(f"/api/cohorts/{cid}", json={"keyword": None, "signup": False})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["keyword"], patched.json()["signup_url"]) == (None, None)
    assert patched.json()["plan"] == "calm"  # not given: unchanged

    # Coach B: A's cohort is a 404 with the words a missing one gets, everywhere.
    missing = "h_zzzzzzzzzzzz"
    for method, path, body_ in (
        ("GET", "/api/cohorts/{}", None),
        ("PATCH", "/api/cohorts/{}", {"name": "Taken over"}),
        ("POST", "/api/cohorts/{}/members", {"participants": [bea["id"]]}),
        ("POST", "/api/cohorts/{}/enroll", {"plan": "calm", "start": "today"}),
    ):
        theirs = b.request(method, path.format(cid), json=body_)
        nobody = b.request(method, path.format(missing), json=body_)
        assert theirs.status_code == nobody.status_code == 404, (path, theirs.text)
        assert theirs.json()["detail"] == nobody.json()["detail"].replace(missing, cid)
    assert b.get("/api/cohorts").json()["items"] == []
    assert b.get("/api/participants", params={"cohort": cid}).json()["items"] == []
    listed = world.client().get("/api/cohorts").json()  # the operator sees everyone's
    assert [c["id"] for c in listed["items"]] == [cid]
    assert a.get(f"/api/cohorts/{cid}").json()["name"] == "Sleepers"


# --- the dashboard ---------------------------------------------------------------------


def _signed_in(world: World, email: str) -> tuple[TestClient, str]:
    link = accounts.new_link(world.runtime, accounts.operator(), email)
    accounts.set_password(world.runtime, link.rpartition("/")[2], PASSWORD, None)
    client = TestClient(world.app, base_url=BASE, headers={"Origin": BASE})
    signed = client.post("/dashboard/login", data={"email": email, "password": PASSWORD},
                         follow_redirects=False)  # fmt: skip
    assert signed.status_code == 303, signed.text
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/dashboard/cohorts").text)
    assert found is not None
    return client, found.group(1)


def test_the_dashboard_s_cohort_pages(world: World) -> None:
    rt, a = world.runtime, world.coach_a
    client, csrf = _signed_in(world, "a@example.org")
    page = client.get("/dashboard/cohorts")
    assert page.status_code == 200
    assert 'href="/dashboard/cohorts" aria-current="page"' in page.text
    assert "No cohorts yet" in page.text

    added = client.post("/dashboard/cohorts", data={"csrf": csrf, "name": "Larks",
                        "plan": "calm", "keyword": "lark", "signup": "on"},
                        follow_redirects=False)  # fmt: skip
    assert added.status_code == 303, added.text
    here = added.headers["location"]
    (group,) = groups.cohorts(rt, actor=a)
    assert here == f"/dashboard/cohorts/{group.id}"
    shown = client.get(here)
    assert "Added Larks." in shown.text
    assert f"{BASE}/join/{group.signup_token}" in shown.text
    assert re.search(r'<svg viewBox="[0-9 ]+" class="qr"><title>QR code of https://', shown.text)
    assert 'data-copy="signup-url"' in shown.text
    assert "JOIN LARK" in shown.text
    refused = client.post("/dashboard/cohorts", data={"csrf": csrf, "name": "larks"})
    assert "Not added: another cohort has the name" in refused.text

    ann = world.person("Ann Lark", "Asia/Tokyo", actor=a)
    bo = world.person("Bo Lark", "America/Denver", actor=a)
    bea = world.person("Bea Elsewhere", actor=world.coach_b)
    assert "Bea Elsewhere" not in client.get(here).text  # not offered to A
    put = client.post(f"{here}/members", data={"csrf": csrf, f"member:{ann}": "on",
                                               f"member:{bo}": "on"})  # fmt: skip
    assert "Added 2 people." in put.text
    assert f'href="/dashboard/participants/{ann}"' in put.text
    sneaky = client.post(f"{here}/members", data={"csrf": csrf, f"member:{bea}": "on"})
    assert "Nobody was added: no participant" in sneaky.text

    enrolled = client.post(f"{here}/enroll", data={"csrf": csrf, "plan": "calm",
                                                   "when": "today"})  # fmt: skip
    assert "2 enrolled in calm." in enrolled.text
    assert {d for _, d in _enrollments(world)} == {date(2026, 3, 2), date(2026, 3, 1)}
    shared = client.post(f"{here}/enroll", data={"csrf": csrf, "plan": "other", "when": "date",
                                                 "start": "2026-03-09"})  # fmt: skip
    assert "2 enrolled in other." in shared.text

    token = group.signup_token
    kept = client.post(f"{here}/settings", data={"csrf": csrf, "name": "Early larks",
                       "plan": "calm", "keyword": "LARK", "signup": "on"})  # fmt: skip
    assert "Saved Early larks." in kept.text
    assert groups.get(rt, group.id).signup_token == token  # saved as it was: same address
    off = client.post(f"{here}/settings", data={"csrf": csrf, "name": "Early larks",
                      "plan": "calm", "keyword": ""})  # fmt: skip
    assert "No sign-up page." in off.text
    assert groups.get(rt, group.id).keyword is None
    bad = client.post(f"{here}/settings", data={"csrf": csrf, "name": "Early larks",
                      "plan": "calm", "keyword": "HELP"})  # fmt: skip
    assert "Nothing changed:" in bad.text

    # The overview narrowed to the cohort.
    other_person = world.person("Cy Outside", actor=a)
    everyone = client.get("/dashboard")
    assert "Cy Outside" in everyone.text
    assert 'name="cohort"' in everyone.text
    narrowed = client.get("/dashboard", params={"cohort": group.id})
    assert narrowed.status_code == 200
    assert "Ann Lark" in narrowed.text
    assert "Cy Outside" not in narrowed.text
    assert f"cohort={group.id}" in narrowed.text  # the sort links keep it
    assert other_person

    # Without a CSRF token, nothing.
    assert client.post(f"{here}/enroll", data={"plan": "calm"}).status_code == 403


def test_another_coach_s_cohort_is_a_missing_one_on_the_dashboard(world: World) -> None:
    rt = world.runtime
    theirs = groups.create(rt, name="B's", plan="calm", signup=True, actor=world.coach_b)
    bea = world.person("Bea Elsewhere", actor=world.coach_b)
    groups.add_members(rt, theirs.id, [bea], actor=world.coach_b)
    client, csrf = _signed_in(world, "a@example.org")
    missing = "h_zzzzzzzzzzzz"
    for method, path, form in (
        ("GET", "/dashboard/cohorts/{}", None),
        ("GET", "/dashboard?cohort={}", None),
        ("POST", "/dashboard/cohorts/{}/settings", {"name": "Mine", "plan": ""}),
        ("POST", "/dashboard/cohorts/{}/members", {f"member:{bea}": "on"}),
        ("POST", "/dashboard/cohorts/{}/enroll", {"plan": "calm", "when": "today"}),
    ):
        data = {**form, "csrf": csrf} if form is not None else None
        answers = [client.request(method, path.format(x), data=data) for x in (theirs.id, missing)]
        assert [r.status_code for r in answers] == [404, 404], (path, answers[0].text)
        assert answers[0].text == answers[1].text
        assert "Bea" not in answers[0].text
        assert "B&#39;s" not in answers[0].text
    assert "B&#39;s" not in client.get("/dashboard/cohorts").text
    with reading(rt.engine) as conn:
        assert conn.execute(select(func.count()).select_from(enrollments)).scalar() == 0
        assert conn.execute(select(cohorts.c.name)).scalars().all() == ["B's"]
        assert conn.execute(select(participants.c.cohort_id)).scalars().all() == [theirs.id]
    with transaction(rt.engine):
        pass
