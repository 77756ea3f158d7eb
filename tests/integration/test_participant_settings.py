"""Participants' own settings (issue 14, contract 5.4): the language of their texts,
discreet texts and quiet hours, set and changed through the action, the command line,
the JSON API and the dashboard; bad values answered with a clear error and nothing
changed; the deployment's defaults (TEND_QUIET_HOURS, TEND_DEFAULT_LANGUAGE); the
reminders quiet hours held or stopped, listed on the person's page; and the export.

The deployment here has quiet hours of its own (21:30-06:30) and English by default.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import insert, select, update

from service import cli
from service.actions import data_rights
from service.actions import enrollments as enrolling
from service.actions import participants as people
from service.actions.errors import Invalid, NotFound
from service.clock import ManualClock
from service.core.quiet import QUIET_NOTE
from service.core.records import Participant
from service.runtime import Runtime
from service.settings import SettingsError, load_settings
from service.storage import participants as participant_rows
from service.storage.db import reading, transaction
from service.storage.tables import audit_log, deliveries, enrollments, occurrences, participants
from service.web.app import create_app
from service.web.pages import when
from tests.support.engine import START, Folders, RecordingChannel, build_runtime

TOKEN = "settings-admin-token"
BASE = "https://tend.test"
RAE_PHONE = "+14155550123"
DEFAULT_QUIET = "21:30-06:30"

CALM = """
    plan: calm
    title: Calm
    summary: Breathe every morning.
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


@dataclass
class World:
    runtime: Runtime
    clock: ManualClock
    client: TestClient
    rae: str

    def person(self, participant_id: str | None = None) -> Participant:
        with reading(self.runtime.engine) as conn:
            return participant_rows.get_participant(conn, participant_id or self.rae)

    def settings_of(self, participant_id: str | None = None) -> tuple[str | None, bool, str | None]:
        found = self.person(participant_id)
        return found.language, found.discreet, found.quiet_hours

    def api(self, method: str, path: str, body: Any = None) -> Response:
        return self.client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )

    def csrf(self) -> str:
        """Signed in to the dashboard with the admin token; the form's CSRF token."""
        page = self.client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=True)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, "no CSRF token on the dashboard"
        return found.group(1)


@pytest.fixture
def world(db_url: str, folders: Folders) -> Iterator[World]:
    folders.write_plan("calm", CALM)
    clock = ManualClock(START)  # Monday 2 March 2026, 07:00 in New York
    runtime = build_runtime(
        db_url, folders, clock, {"sms": RecordingChannel("sms"), "email": RecordingChannel("email")},
        admin_token=TOKEN, public_url=BASE, quiet_hours=DEFAULT_QUIET,
    )  # fmt: skip
    rae = people.create(runtime, name="Rae Example", timezone="America/New_York",
                        phone=RAE_PHONE).id  # fmt: skip
    client = TestClient(create_app(runtime), base_url=BASE)
    try:
        yield World(runtime, clock, client, rae)
    finally:
        client.close()
        runtime.close()


# --- the deployment's defaults ---------------------------------------------------------------


def test_the_deployments_quiet_hours_and_language_are_read_and_checked() -> None:
    assert load_settings().quiet_hours is None
    assert load_settings().default_language == "en"
    assert load_settings(quiet_hours="22-7").quiet_hours == "22:00-07:00"
    assert load_settings(quiet_hours="10pm to 6:30am").quiet_hours == "22:00-06:30"
    assert load_settings(quiet_hours="off").quiet_hours is None
    assert load_settings(quiet_hours="  ").quiet_hours is None
    assert load_settings(default_language="ES-mx").default_language == "es-MX"
    assert load_settings(default_language="").default_language == "en"
    with pytest.raises(SettingsError) as bad_quiet:
        load_settings(quiet_hours="25:00-07:00")
    assert "TEND_QUIET_HOURS: '25:00' is not a time" in str(bad_quiet.value)
    with pytest.raises(SettingsError) as bad_language:
        load_settings(default_language="es_MX")
    assert "TEND_DEFAULT_LANGUAGE: 'es_MX' is not a language tag" in str(bad_language.value)


# --- the action ------------------------------------------------------------------------------


def test_a_participant_is_added_with_their_settings_or_the_defaults(world: World) -> None:
    assert world.settings_of() == (None, False, None)  # none given: the deployment's
    kai = people.create(world.runtime, name="Kai", timezone="Asia/Tokyo", language="ES-mx",
                        discreet=True, quiet_hours="10pm-7am")  # fmt: skip
    assert (kai.language, kai.discreet, kai.quiet_hours) == ("es-MX", True, "22:00-07:00")
    assert world.settings_of(kai.id) == ("es-MX", True, "22:00-07:00")
    off = people.create(world.runtime, name="Jo", timezone="UTC", quiet_hours="OFF",
                        language="")  # fmt: skip
    assert (off.language, off.discreet, off.quiet_hours) == (None, False, "off")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"quiet_hours": "25:00-07:00"}, "quiet hours: '25:00' is not a time; write it like"),
        ({"quiet_hours": "22:00"}, "quiet hours: '22:00' is not a span of quiet hours; write it "
                                   "like 22:00-07:00"),
        ({"quiet_hours": "22:00-22:00"}, "quiet hours: quiet hours need an end that differs"),
        ({"quiet_hours": 2200}, "quiet hours: write them like 22:00-07:00, or off for none"),
        ({"language": "es_MX"}, "language: 'es_MX' is not a language tag (write es-MX, with a "
                                "hyphen); write one such as en, es or es-MX"),
        ({"language": "Spanish please"}, "language: 'Spanish please' is not a language tag"),
        ({"discreet": "yes"}, "discreet: write true or false"),
        ({"discreet": None}, "discreet cannot be empty"),
        ({"language": "es", "quiet_hours": "7 to 7"}, "quiet hours: quiet hours need an end"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_and_nothing_changes(
    world: World, changes: dict[str, Any], words: str
) -> None:
    people.update(world.runtime, world.rae, {"language": "en", "quiet_hours": "23:00-06:00"})
    before = world.settings_of()
    with pytest.raises(Invalid) as refused:
        people.update(world.runtime, world.rae, changes)
    assert words in refused.value.message
    assert world.settings_of() == before
    with pytest.raises(Invalid) as on_adding:
        people.create(world.runtime, name="Kai", timezone="UTC", **changes)
    assert words in on_adding.value.message
    with reading(world.runtime.engine) as conn:
        assert len(participant_rows.list_participants(conn)) == 1


def _plan_state(world: World) -> list[tuple[Any, ...]]:
    with reading(world.runtime.engine) as conn:
        rows = conn.execute(
            select(occurrences.c.key, occurrences.c.instant, occurrences.c.sequence,
                   occurrences.c.updated_at, deliveries.c.due_at, deliveries.c.state)
            .join(deliveries, deliveries.c.occurrence_id == occurrences.c.id)
            .order_by(occurrences.c.key)
        ).all()  # fmt: skip
    return [tuple(row) for row in rows]


def test_settings_change_one_by_one_and_move_no_reminder(world: World) -> None:
    plan = enrolling.running_plan(world.runtime, "calm")
    enrolling.enroll(world.runtime, world.rae, plan, date(2026, 3, 2), {})
    planned = _plan_state(world)
    assert planned
    world.clock.advance(timedelta(minutes=5))
    after = people.update(world.runtime, world.rae, {"language": "es"})
    assert (after.language, after.discreet, after.quiet_hours) == ("es", False, None)
    people.update(world.runtime, world.rae, {"discreet": True})
    people.update(world.runtime, world.rae, {"quiet_hours": " 22:00 - 07:00 "})
    assert world.settings_of() == ("es", True, "22:00-07:00")
    people.update(world.runtime, world.rae, {"quiet_hours": "off"})
    assert world.settings_of() == ("es", True, "off")
    people.update(world.runtime, world.rae, {"quiet_hours": None, "language": None,
                                             "discreet": False})  # fmt: skip
    assert world.settings_of() == (None, False, None)
    assert _plan_state(world) == planned  # nothing re-planned, nothing touched
    with pytest.raises(NotFound):
        people.update(world.runtime, "p_nosuchperson", {"discreet": True})


# --- the command line ------------------------------------------------------------------------


def tend(world: World, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setattr(cli, "runtime", lambda **_: world.runtime)
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \[")


def said(result: Result) -> list[str]:
    """What the command printed, without the log's lines (on the same output here)."""
    return [line for line in result.stdout.splitlines() if not LOG_LINE.match(line)]


def test_the_command_line_adds_changes_and_lists_the_settings(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    added = tend(world, monkeypatch, "participants", "add", "--name", "Sam Rivera", "--tz",
                 "Europe/Madrid", "--language", "es", "--discreet", "--quiet", "22:00-07:00")  # fmt: skip
    assert added.exit_code == 0, added.output
    lines = said(added)
    assert lines[0] == "added Sam Rivera (Europe/Madrid)"
    assert lines[1] == "texts in es; discreet; quiet hours 22:00-07:00"
    sam = lines[-1]
    assert world.settings_of(sam) == ("es", True, "22:00-07:00")
    plain = tend(world, monkeypatch, "participants", "add", "--name", "Kai", "--tz", "UTC")
    assert len(said(plain)) == 2  # no settings given: no line about them

    changed = tend(world, monkeypatch, "participants", "set", sam, "--quiet", "off",
                   "--no-discreet", "--language", "es-mx")  # fmt: skip
    assert changed.exit_code == 0, changed.output
    assert said(changed) == [
        "Sam Rivera (Europe/Madrid): texts in es-MX; not discreet; quiet hours off"
    ]
    assert world.settings_of(sam) == ("es-MX", False, "off")
    back = tend(world, monkeypatch, "participants", "set", sam, "--quiet", "default",
                "--language", "default", "--discreet")  # fmt: skip
    assert said(back) == [
        f"Sam Rivera (Europe/Madrid): texts in default (en); discreet; quiet hours default "
        f"({DEFAULT_QUIET})"
    ]
    assert world.settings_of(sam) == (None, True, None)
    other = tend(world, monkeypatch, "participants", "set", sam, "--name", "Sam  R",
                 "--timezone", "Europe/Lisbon", "--email", "sam@example.org")  # fmt: skip
    assert other.exit_code == 0, other.output
    person = world.person(sam)
    assert (person.name, person.timezone, person.email, person.discreet) == (
        "Sam R", "Europe/Lisbon", "sam@example.org", True)  # fmt: skip
    tend(world, monkeypatch, "participants", "set", sam, "--no-email", "--quiet", "23-6")
    assert (world.person(sam).email, world.person(sam).quiet_hours) == (None, "23:00-06:00")

    listing = tend(world, monkeypatch, "participants", "list", "--format", "json")
    listed = json.loads("\n".join(said(listing)))
    rows = {row["id"]: row for row in listed["participants"]}
    assert (rows[sam]["language"], rows[sam]["discreet"], rows[sam]["quiet_hours"]) == (
        None, True, "23:00-06:00")  # fmt: skip
    assert (rows[world.rae]["language"], rows[world.rae]["discreet"],
            rows[world.rae]["quiet_hours"]) == (None, False, None)  # fmt: skip
    table = said(tend(world, monkeypatch, "participants", "list"))
    assert table[0].split() == ["id", "name", "zone", "sms", "language", "discreet", "quiet",
                                "plans"]  # fmt: skip
    sam_line = next(line for line in table if line.startswith(sam))
    assert sam_line.split()[-4:] == ["default", "yes", "23:00-06:00", "-"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--quiet", "25:00-07:00"], "tend: quiet hours: '25:00' is not a time; write it like"),
        (["--language", "es_MX"], "tend: language: 'es_MX' is not a language tag (write es-MX"),
        (["--quiet", "soon"], "tend: quiet hours: 'soon' is not a span of quiet hours"),
        (["--phone", "+1415", "--no-phone"], "tend: give --phone or --no-phone, not both"),
        (["--tz", "Mars/Base", "--discreet"], "tend: unknown time zone 'Mars/Base'"),
    ],
)
def test_the_command_line_refuses_bad_settings_and_changes_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch, args: list[str], words: str
) -> None:
    before = world.person()
    result = tend(world, monkeypatch, "participants", "set", world.rae, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(words), result.stderr
    assert world.person() == before
    added = tend(world, monkeypatch, "participants", "add", "--name", "Kai", "--tz", "UTC",
                 *[a for a in args if a not in ("--no-phone", "--phone", "+1415")])  # fmt: skip
    if "--no-phone" not in args:
        assert added.exit_code == 2
        assert added.stderr.startswith(words), added.stderr
    missing = tend(world, monkeypatch, "participants", "set", "p_nosuchperson", "--discreet")
    assert (missing.exit_code, missing.stderr.strip()) == (
        2,
        "tend: no participant 'p_nosuchperson'",
    )


# --- the API ---------------------------------------------------------------------------------


def test_the_api_takes_and_gives_the_settings(world: World) -> None:
    made = world.api("POST", "/api/participants", {
        "name": "Sam Rivera", "timezone": "Europe/Madrid", "language": "ES",
        "discreet": True, "quiet_hours": "22-7"})  # fmt: skip
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["language"], body["discreet"], body["quiet_hours"]) == ("es", True, "22:00-07:00")
    sam = body["id"]
    assert world.api("GET", f"/api/participants/{sam}").json() == body
    rae = world.api("GET", f"/api/participants/{world.rae}").json()
    assert (rae["language"], rae["discreet"], rae["quiet_hours"]) == (None, False, None)

    def patched(changes: dict[str, Any]) -> dict[str, Any]:
        answer = world.api("PATCH", f"/api/participants/{sam}", changes)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    assert patched({"name": "Sam R"})["quiet_hours"] == "22:00-07:00"  # absent: unchanged
    assert patched({"quiet_hours": "off"})["quiet_hours"] == "off"
    changed = patched({"quiet_hours": None, "discreet": False})
    assert (changed["language"], changed["discreet"], changed["quiet_hours"]) == ("es", False, None)
    assert patched({"language": None})["language"] is None
    assert world.settings_of(sam) == (None, False, None)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"quiet_hours": "25:00-07:00"}, "quiet hours: '25:00' is not a time"),
        ({"quiet_hours": ""}, "at least 1 character"),
        ({"quiet_hours": "2" * 40}, "at most 32 characters"),
        ({"language": "es_MX"}, "language: 'es_MX' is not a language tag (write es-MX"),
        ({"language": "e" * 17}, "at most 16 characters"),
        ({"discreet": "yes"}, "Input should be a valid boolean"),
        ({"discreet": 1}, "Input should be a valid boolean"),
    ],
)
def test_the_api_refuses_bad_settings_with_422_and_changes_nothing(
    world: World, body: dict[str, Any], words: str
) -> None:
    before = world.person()
    answer = world.api("PATCH", f"/api/participants/{world.rae}", body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert any(words in item["msg"] for item in detail), detail
    assert world.person() == before
    made = world.api("POST", "/api/participants", {"name": "Kai", "timezone": "UTC", **body})
    assert made.status_code == 422, made.text
    assert any(words in item["msg"] for item in made.json()["detail"])
    assert world.api("GET", "/api/participants").json()["total"] == 1
    null = world.api("PATCH", f"/api/participants/{world.rae}", {"discreet": None})
    assert null.status_code == 422
    assert "discreet cannot be null" in null.text


# --- the dashboard ---------------------------------------------------------------------------

NEW = {"name": "Lena Ortiz", "phone": "", "email": "", "timezone": "America/Chicago",
       "cohort": "", "plan": "", "when": "today", "start": "", "variables": ""}  # fmt: skip
FLASH = re.compile(r'<p class="flash (ok|error)" role="status">(.*?)</p>', re.S)


def _flash(page: Response) -> tuple[str, str]:
    found = FLASH.search(page.text)
    assert found, "no message on the page"
    return found.group(1), html.unescape(found.group(2))


def test_the_add_person_form_asks_for_the_settings_and_stores_them(world: World) -> None:
    csrf = world.csrf()
    form = world.client.get("/dashboard/people/new").text
    assert '<option value="" selected>Default: English (en)</option>' in form
    assert '<option value="en">English (en)</option>' in form
    assert '<option value="es">Spanish (es)</option>' in form
    assert 'name="discreet"' in form
    assert "Discreet texts" in form
    assert "Texts never name the practice: for a phone others may see." in form
    assert 'name="quiet_hours"' in form
    assert 'placeholder="22:00-07:00"' in form
    assert f"Blank: the deployment&#39;s, {DEFAULT_QUIET}." in form

    added = world.client.post("/dashboard/people/new", data={
        **NEW, "csrf": csrf, "language": "es", "discreet": "on", "quiet_hours": "10pm-6am"},
        follow_redirects=False)  # fmt: skip
    assert added.status_code == 303, added.text
    lena = added.headers["location"].rsplit("/", 1)[-1]
    assert world.settings_of(lena) == ("es", True, "22:00-06:00")
    plain = world.client.post("/dashboard/people/new", data={
        **NEW, "name": "Kai", "csrf": csrf, "language": "", "quiet_hours": ""},
        follow_redirects=False)  # fmt: skip
    assert plain.status_code == 303, plain.text
    assert world.settings_of(plain.headers["location"].rsplit("/", 1)[-1]) == (None, False, None)


def test_the_add_person_form_refuses_bad_quiet_hours_and_keeps_what_was_typed(
    world: World,
) -> None:
    csrf = world.csrf()
    again = world.client.post("/dashboard/people/new", data={
        **NEW, "csrf": csrf, "language": "es", "discreet": "on", "quiet_hours": "25:00-07:00"})  # fmt: skip
    assert again.status_code == 400
    text = html.unescape(again.text)
    assert (
        "Nobody was added: quiet hours: '25:00' is not a time; write it like 6:30 or 18:30." in text
    )
    assert 'value="25:00-07:00"' in again.text
    assert re.search(r'name="discreet" value="on"[^>]*checked', again.text)
    assert '<option value="es" selected>' in again.text
    with reading(world.runtime.engine) as conn:
        assert len(participant_rows.list_participants(conn)) == 1


def _page(world: World, participant_id: str | None = None) -> str:
    answer = world.client.get(f"/dashboard/participants/{participant_id or world.rae}")
    assert answer.status_code == 200, answer.text
    return html.unescape(answer.text)


def _setting(page: str, name: str) -> str:
    found = re.search(rf'<dd id="{name}-setting">(.*?)</dd>', page, re.S)
    assert found, name
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split())


def test_the_person_page_shows_the_settings_and_a_coach_changes_them(world: World) -> None:
    csrf = world.csrf()
    page = _page(world)
    assert _setting(page, "language") == "English (en), the default"
    assert _setting(page, "discreet") == "no: texts name the practice"
    assert _setting(page, "quiet") == f"{DEFAULT_QUIET}, the default"
    here = f"/dashboard/participants/{world.rae}"
    assert f'action="{here}/settings"' in page

    saved = world.client.post(f"{here}/settings", data={
        "csrf": csrf, "language": "es", "discreet": "on", "quiet_hours": "22:00-07:00"})  # fmt: skip
    assert saved.status_code == 200
    assert _flash(saved) == ("ok", "Saved Rae Example's settings: texts in Spanish (es), discreet texts, "
                                   "quiet hours 22:00-07:00.")  # fmt: skip
    assert world.settings_of() == ("es", True, "22:00-07:00")
    page = _page(world)
    assert _setting(page, "language") == "Spanish (es)"
    assert _setting(page, "discreet") == "discreet texts never name the practice"
    assert _setting(page, "quiet") == "22:00-07:00"
    assert 'name="quiet_hours" value="22:00-07:00"' in page

    off = world.client.post(f"{here}/settings", data={"csrf": csrf, "language": "",
                                                       "quiet_hours": "off"})  # fmt: skip
    assert _flash(off) == ("ok", "Saved Rae Example's settings: texts in the default, English (en), "
                                 "texts that name the practice, no quiet hours.")  # fmt: skip
    assert world.settings_of() == (None, False, "off")
    assert _setting(_page(world), "quiet") == "none (turned off)"
    blank = world.client.post(f"{here}/settings", data={"csrf": csrf, "quiet_hours": " "})
    assert _flash(blank)[0] == "ok"
    assert world.settings_of() == (None, False, None)

    with reading(world.runtime.engine) as conn:
        audited = conn.execute(
            select(audit_log.c.action, audit_log.c.target_kind, audit_log.c.target_id)
            .where(audit_log.c.action.like("%settings"))
        ).all()  # fmt: skip
    assert [tuple(row) for row in audited] == [
        ("POST /dashboard/participants/{participant_id}/settings", "participant", world.rae)
    ] * 3


def test_the_person_page_refuses_bad_settings_and_changes_nothing(world: World) -> None:
    csrf = world.csrf()
    here = f"/dashboard/participants/{world.rae}"
    people.update(world.runtime, world.rae, {"language": "es", "quiet_hours": "23:00-06:00"})
    before = world.person()
    bad = world.client.post(f"{here}/settings", data={
        "csrf": csrf, "language": "es", "discreet": "on", "quiet_hours": "25:00-07:00"})  # fmt: skip
    assert _flash(bad) == ("error", "Nothing changed: quiet hours: '25:00' is not a time; write "
                                    "it like 6:30 or 18:30.")  # fmt: skip
    tag = world.client.post(f"{here}/settings", data={"csrf": csrf, "language": "es_MX"})
    assert _flash(tag)[0] == "error"
    assert "language: 'es_MX' is not a language tag (write es-MX, with a hyphen)" in _flash(tag)[1]
    assert world.person() == before
    stale = world.client.post(f"{here}/settings", data={"csrf": "wrong", "discreet": "on"})
    assert stale.status_code == 403
    foreign = world.client.post(f"{here}/settings", data={"csrf": csrf, "discreet": "on"},
                                headers={"Origin": "https://evil.test"})  # fmt: skip
    assert foreign.status_code == 403
    assert world.person() == before
    missing = world.client.post("/dashboard/participants/p_nosuchperson/settings",
                                data={"csrf": csrf, "discreet": "on"})  # fmt: skip
    assert missing.status_code == 404


# --- reminders quiet hours held or stopped ---------------------------------------------------


def _reminders(world: World, participant_id: str) -> list[int]:
    """The ids of the participant's reminder deliveries, by due time."""
    with reading(world.runtime.engine) as conn:
        rows = conn.execute(
            select(deliveries.c.id)
            .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
            .join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
            .where(enrollments.c.participant_id == participant_id)
            .order_by(deliveries.c.due_at, deliveries.c.id)
        ).scalars()
        return list(rows)


def _set(world: World, delivery_id: int, **values: Any) -> None:
    with transaction(world.runtime.engine) as conn:
        conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))


def _due(world: World, delivery_id: int) -> Any:
    with reading(world.runtime.engine) as conn:
        return conn.execute(
            select(deliveries.c.due_at).where(deliveries.c.id == delivery_id)
        ).scalar_one()


def _quiet_rows(page: str) -> list[tuple[str, str]]:
    """(how, what happened) of each row of the page's quiet-hours table."""
    rows = re.findall(r'<tr data-quiet="(\w+)">(.*?)</tr>', page, re.S)
    out = []
    for how, cells in rows:
        said = re.findall(r'<td data-label="What happened">(.*?)</td>', cells, re.S)[0]
        out.append((how, " ".join(re.sub(r"<[^>]+>", "", said).split())))
    return out


def test_the_person_page_lists_reminders_held_or_stopped_by_quiet_hours(world: World) -> None:
    world.csrf()
    assert "Nothing held: reminders due inside their quiet hours show here" in _page(world)
    plan = enrolling.running_plan(world.runtime, "calm")
    enrolling.enroll(world.runtime, world.rae, plan, date(2026, 3, 2), {})
    first, second, third, *rest = _reminders(world, world.rae)
    # Rae's reminders are at 07:10 New York time; as if her quiet hours ran to 07:30.
    due = _due(world, first)
    _set(world, first, state="sent", held_from=due, due_at=due + timedelta(minutes=20),
         sent_at=due + timedelta(minutes=20, seconds=3))  # fmt: skip
    _set(world, second, state="cancelled", last_error=f"{QUIET_NOTE} (21:00-09:00); the "
         "check-in window closed before they ended")  # fmt: skip
    held_due = _due(world, third)
    _set(world, third, held_from=held_due, due_at=held_due + timedelta(minutes=20))
    _set(world, rest[0], state="cancelled", last_error="participant opted out of SMS")  # not quiet
    # Someone else's are not Rae's.
    kai = people.create(world.runtime, name="Kai", timezone="America/New_York").id
    enrolling.enroll(world.runtime, kai, plan, date(2026, 3, 2), {})
    theirs = _reminders(world, kai)[0]
    _set(world, theirs, held_from=_due(world, theirs))

    page = _page(world)
    assert "Held for quiet hours" in page
    assert _quiet_rows(page) == [  # newest first, in Rae's own time (New York)
        ("held", "held for quiet hours: was due Wed 4 Mar 2026 07:10, goes Wed 4 Mar 2026 07:30"),
        ("not_sent", "not sent: inside quiet hours (21:00-09:00); the check-in window closed "
                     "before they ended"),
        ("sent", "sent after quiet hours, Mon 2 Mar 2026 07:30"),
    ]  # fmt: skip
    assert "Breathe" in page
    assert "(Calm; text)" in page
    assert len(_quiet_rows(_page(world, kai))) == 1


def test_the_person_page_lists_at_most_the_last_20(world: World) -> None:
    world.csrf()
    plan = enrolling.running_plan(world.runtime, "calm")
    enrolling.enroll(world.runtime, world.rae, plan, date(2026, 3, 2), {})
    ids = _reminders(world, world.rae)
    with transaction(world.runtime.engine) as conn:  # as if LATER had asked for repeats
        rows = conn.execute(select(deliveries).where(deliveries.c.id.in_(ids))).mappings().all()
        for row in rows:
            for kind in ("repeat1", "repeat2"):
                later = timedelta(minutes=30 if kind == "repeat1" else 60)
                copy = {k: v for k, v in row.items() if k != "id"}
                conn.execute(insert(deliveries).values(
                    {**copy, "kind": kind, "due_at": row["due_at"] + later}))  # fmt: skip
    every = _reminders(world, world.rae)
    assert len(every) > 20
    for delivery_id in every:
        _set(world, delivery_id, state="cancelled", last_error=f"{QUIET_NOTE} (00:00-23:59)")
    shown = re.findall(r'<tr data-quiet="\w+">\s*<td data-label="Was due" class="num">(.*?)</td>',
                       _page(world), re.S)  # fmt: skip
    newest = sorted((_due(world, d) for d in every), reverse=True)[:20]
    assert shown == [when(moment, ZoneInfo("America/New_York")) for moment in newest]


# --- the export ------------------------------------------------------------------------------


def test_the_export_has_the_settings(world: World) -> None:
    people.update(world.runtime, world.rae, {"language": "es", "discreet": True,
                                             "quiet_hours": "22:00-07:00"})  # fmt: skip
    exported = data_rights.export(world.runtime, world.rae)["participant"]
    assert (exported["language"], exported["discreet"], exported["quiet_hours"]) == (
        "es", True, "22:00-07:00")  # fmt: skip
    with reading(world.runtime.engine) as conn:
        assert conn.execute(select(participants.c.discreet)).scalar_one() is True


def test_the_command_line_sets_one_time_and_keeps_the_others(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    added = tend(world, monkeypatch, "participants", "add", "--name", "Kai", "--tz", "UTC",
                 "--var", "wake=07:00", "--var", "bedtime=22:30")  # fmt: skip
    kai = said(added)[-1]
    changed = tend(world, monkeypatch, "participants", "set", kai, "--var", "wake=06:30")
    assert changed.exit_code == 0, changed.output
    assert world.person(kai).variables == {"wake": "06:30", "bedtime": "22:30"}
    cleared = tend(world, monkeypatch, "participants", "set", kai, "--var", "bedtime=")
    assert cleared.exit_code == 0, cleared.output
    assert world.person(kai).variables == {"wake": "06:30"}
    bad = tend(world, monkeypatch, "participants", "set", kai, "--var", "wake")
    assert (bad.exit_code, bad.stderr.strip()) == (
        2,
        "tend: --var takes NAME=VALUE, such as wake=06:30 (NAME= clears it)",
    )
    missing = tend(world, monkeypatch, "participants", "set", "p_nosuchperson", "--var", "w=1")
    assert missing.stderr.strip() == "tend: no participant 'p_nosuchperson'"
