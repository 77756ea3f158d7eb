"""Joining on one's own, in Chromium (issue 17's done-when): a person opens a cohort's
sign-up page (their browser says they are in Chicago), fills it in with a number as
people write it, is asked YES by text, answers "Sí" through the signed Twilio webhook,
and gets the first reminder at the right time where they are. The page is shot at a
laptop's and a phone's width: empty, with a mistake, and done (into the test's tmp
folder, test-artifacts/dashboard/ and /tmp/shots17/).

The app is served by uvicorn on a free port with Twilio's webhook configured and SMS
recorded; the scheduler and an in-process worker run on a manual clock (the harness of
tests/support/engine.py).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
import uvicorn

from service.actions import cohorts
from service.clock import ManualClock
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.web.app import create_app
from tests.browser.conftest import ARTIFACTS, START_TIMEOUT
from tests.support.engine import (
    Harness,
    RecordingChannel,
    make_folders,
    published_runtime,
    settings_for,
    sqlite_url,
)
from tests.support.services import free_port, wait_for
from tests.support.twilio_signing import twilio_signature

with contextlib.suppress(ImportError):
    from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

TWILIO_TOKEN = "twilio-token-for-the-browser"
SHOTS = Path("/tmp/shots17")
CHICAGO = ZoneInfo("America/Chicago")
LUCIA = "+13125550190"
PLAN = """
plan: nights
title: Calmer nights
days: 14
variables: {bedtime: "22:30"}
practices:
  - id: wind-down
    category: sleep
    title: Wind down
    at: bedtime - 30m
    message: "Lights low, {{ participant.first_name }}."
"""


def chicago(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=CHICAGO).astimezone(UTC)


@dataclass
class Site:
    base: str
    harness: Harness
    sms: RecordingChannel
    token: str  # the cohort's sign-up page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("sign-up-browser")
    folders = make_folders(root)
    folders.write_plan("nights", PLAN)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    clock = ManualClock(chicago(2, 9, 0))
    settings = settings_for(
        sqlite_url(root), folders, public_url=base, admin_token="admin-for-tests",
        twilio_account_sid="AC" + "0" * 32, twilio_auth_token=TWILIO_TOKEN,
        twilio_from="+15005550006",
    )  # fmt: skip
    sms, email = RecordingChannel("sms"), RecordingChannel("email")
    runtime = published_runtime(settings, clock=clock, channels={"sms": sms, "email": email})
    harness = Harness(runtime, clock, sms, email)
    group = cohorts.create(runtime, name="Spring nights", plan="nights", signup=True)
    assert group.signup_token is not None
    config = uvicorn.Config(
        create_app(runtime), host="127.0.0.1", port=port, loop="asyncio", http="h11",
        log_config=None, log_level="warning", access_log=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="tend-sign-up", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), START_TIMEOUT, "uvicorn")
        if not thread.is_alive():
            pytest.fail("the server did not start")
        yield Site(base, harness, sms, group.signup_token)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        harness.close()


@pytest.fixture
def in_chicago(browser: Browser) -> Iterator[Page]:
    """A browser whose clock says Chicago, as a person there has."""
    context = browser.new_context(
        viewport={"width": 1200, "height": 900}, locale="en-US", timezone_id="America/Chicago"
    )
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def shots(page: Page, name: str, tmp_path: Path) -> None:
    """`name` at a laptop's and a phone's width, full page."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        target = tmp_path / f"{name}-{width}.png"
        page.screenshot(path=str(target), full_page=True)
        shutil.copyfile(target, ARTIFACTS / target.name)
        shutil.copyfile(target, SHOTS / target.name)
    page.set_viewport_size({"width": 1200, "height": 900})


def text_from(site: Site, phone: str, body: str, sid: str) -> str:
    """A text from `phone`, posted to the served app as Twilio posts it, signed."""
    params = [("MessageSid", sid), ("AccountSid", "AC" + "0" * 32), ("From", phone),
              ("To", "+15005550006"), ("Body", body), ("NumMedia", "0")]  # fmt: skip
    url = f"{site.base}/twilio/sms"
    request = urllib.request.Request(
        url,
        data=urlencode(params).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, params),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
        return str(answer.read().decode())


def test_a_person_signs_up_in_a_browser_answers_si_and_gets_the_first_reminder_on_time(
    site: Site, in_chicago: Page, tmp_path: Path
) -> None:
    page = in_chicago
    page.goto(f"{site.base}/join/{site.token}")
    expect(page.get_by_role("heading", name="Calmer nights")).to_be_visible()
    # The browser's zone is filled in, to confirm; the plan's own bedtime, to change.
    expect(page.locator("#timezone")).to_have_value("America/Chicago")
    expect(page.locator("#zone-note")).to_be_visible()
    expect(page.locator("#var_bedtime")).to_have_value("22:30")
    shots(page, "join-empty", tmp_path)
    # A number without its country code, as people write it at home: read as Chicago's.
    page.get_by_label("Your name").fill("Lucía Fernández")
    page.get_by_label("Mobile number").fill("555 0190")  # too short: said, nothing lost
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("alert")).to_contain_text("not a valid phone number")
    expect(page.get_by_label("Your name")).to_have_value("Lucía Fernández")
    shots(page, "join-mistake", tmp_path)
    page.get_by_label("Mobile number").fill("(312) 555-0190")
    page.locator("#var_bedtime").fill("23:00")
    page.get_by_label("Texts in").select_option("es")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("status")).to_contain_text("reply YES")
    shots(page, "join-done", tmp_path)

    h = site.harness
    h.maintain()  # the text asking YES
    [ask] = [m.body for m in site.sms.sent if m.to == LUCIA]
    # She chose Spanish: asked in Spanish, with the carriers' YES, HELP and STOP.
    assert ask.startswith("Calmer nights: responde SÍ (YES) para confirmar tus recordatorios.")
    assert "AYUDA (HELP) para ayuda, BAJA (STOP) para cancelar." in ask
    h.clock.set(chicago(2, 9, 20))
    answer = text_from(site, LUCIA, "Sí", "SM" + "1" * 32)
    # Her first reminder: her bedtime (23:00) less half an hour, tonight in Chicago.
    assert "Primer aviso: lun, 2 de marzo, 22:30." in answer  # in Spanish, as she chose
    with transaction(h.runtime.engine) as conn:
        person = participant_rows.find_participant_by_phone(conn, LUCIA)
    assert person is not None
    assert (person.name, person.timezone, person.language) == (
        "Lucía Fernández", "America/Chicago", "es",
    )  # fmt: skip
    h.maintain()
    h.at(chicago(2, 22, 29))
    assert [m.body for m in site.sms.sent if m.to == LUCIA] == [ask]
    h.at(chicago(2, 22, 30))
    assert [m.body for m in site.sms.sent if m.to == LUCIA] == [ask, "Lights low, Lucía."]
    assert date(2026, 3, 2) == chicago(2, 22, 30).astimezone(CHICAGO).date()
