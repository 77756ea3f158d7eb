"""The coach dashboard through FastAPI's TestClient: the login and its session cookie,
CSRF, the overview's figures, a participant's page, the actions, a plan's page.

Every test runs on SQLite and on PostgreSQL. The cohort (tests/support/dashboard_seed.py)
is made once per database kind and module, then copied for each test (a file copy, or
PostgreSQL's CREATE DATABASE ... TEMPLATE), so each test starts from the same state.
"""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.actions import links, messages
from service.channels.base import Channel
from service.clock import ManualClock
from service.runtime import Runtime
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import make_engine, transaction, upgrade
from service.storage.tables import deliveries, occurrences
from service.web import dashboard_data
from service.web.app import create_app
from service.web.session import FLASH_COOKIE, SESSION_COOKIE
from tests.support import dashboard_seed
from tests.support.dashboard_seed import NOW, Cohort
from tests.support.engine import Folders, RecordingChannel, published_runtime, settings_for
from tests.support.services import PostgresServer

TOKEN = "coach-secret-token"
BASE = "https://tend.test"
_names = itertools.count()


# --- fixtures ----------------------------------------------------------------------------


@dataclass
class Source:
    kind: str
    url: str
    folders: Folders
    cohort: Cohort
    server: PostgresServer | None = None
    database: str = ""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def source(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Source:
    """The seeded cohort, once per database kind for this module."""
    root = tmp_path_factory.mktemp("dashboard")
    folders = dashboard_seed.make_folders(root)
    server: PostgresServer | None = None
    database = ""
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'seed.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
    else:
        server = request.getfixturevalue("postgres")
        database = f"dash_seed{next(_names)}"
        url = server.create_database(database, template="tend_template")
    clock = ManualClock(dashboard_seed.BEGIN)
    runtime = published_runtime(settings_for(url, folders), clock=clock, channels={})
    try:
        cohort = dashboard_seed.seed(runtime, clock)
    finally:
        runtime.close()  # no connection may stay open on a template database
    return Source(request.param, url, folders, cohort, server, database)


@pytest.fixture
def db(source: Source, tmp_path: Path) -> str:
    """A copy of the seeded database for one test."""
    if source.server is None:
        target = tmp_path / "tend.db"
        shutil.copyfile(source.url.removeprefix("sqlite:///"), target)
        return f"sqlite:///{target}"
    return source.server.create_database(f"dash{next(_names)}", template=source.database)


@dataclass
class App:
    runtime: Runtime
    clock: ManualClock
    client: TestClient
    cohort: Cohort
    sms: RecordingChannel
    email: RecordingChannel

    def login(self, token: str = TOKEN) -> None:
        answer = self.client.post("/dashboard/login", data={"token": token}, follow_redirects=False)
        assert answer.status_code == 303, answer.text

    def csrf(self, path: str = "/dashboard") -> str:
        page = self.client.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, "no CSRF token on the page"
        return found.group(1)

    def enrollment_status(self, enrollment_id: str) -> str:
        with transaction(self.runtime.engine) as conn:
            return enrollment_rows.get_enrollment(conn, enrollment_id).status


def _app(
    db: str,
    source: Source,
    *,
    outbox: bool = False,
    client: tuple[str, int] = ("203.0.113.7", 50000),
    base_url: str = BASE,
    **settings: Any,
) -> App:
    """The app on a copy of the cohort, its clock at NOW, with recording channels (or,
    with `outbox`, the development outbox), as seen from `client`."""
    clock = ManualClock(NOW)
    sms, email = RecordingChannel("sms"), RecordingChannel("email")
    values: dict[str, Any] = {"admin_token": TOKEN, **settings}
    channels: dict[str, Channel] | None = None if outbox else {"sms": sms, "email": email}
    runtime = published_runtime(settings_for(db, source.folders, **values), clock=clock,
                            channels=channels)  # fmt: skip
    test_client = TestClient(create_app(runtime), base_url=base_url, client=client)
    return App(runtime, clock, test_client, source.cohort, sms, email)


@pytest.fixture
def app(db: str, source: Source) -> Iterator[App]:
    made = _app(db, source)
    try:
        yield made
    finally:
        made.runtime.close()


@pytest.fixture
def coach(app: App) -> App:
    """Logged in."""
    app.login()
    return app


# --- logging in ------------------------------------------------------------------------


def test_every_page_needs_a_session(app: App) -> None:
    rae = app.cohort.ids["rae"]
    for path in ("/dashboard", f"/dashboard/participants/{rae}", "/dashboard/plans",
                 "/dashboard/plans/walks-and-moods", "/dashboard/outbox"):  # fmt: skip
        answer = app.client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/dashboard/login?next=%2Fdashboard")
    # An action without a session does nothing and sends one to log in.
    enrollment = app.cohort.enrollments["rae"]
    answer = app.client.post(f"/dashboard/enrollments/{enrollment}/pause",
                             data={"csrf": "x"}, follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/login?next=%2Fdashboard"
    assert app.enrollment_status(enrollment) == "active"
    # A bearer token is not a session: the dashboard is for browsers.
    answer = app.client.get(
        "/dashboard", headers={"Authorization": f"Bearer {TOKEN}"}, follow_redirects=False
    )
    assert answer.status_code == 303


def test_a_wrong_token_is_refused(app: App) -> None:
    for wrong in ("", "coach-secret-tokeN", "x" * 100):
        answer = app.client.post("/dashboard/login", data={"token": wrong},
                                 follow_redirects=False)  # fmt: skip
        assert answer.status_code == 401
        assert "not the admin token" in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert app.client.get("/dashboard", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_httponly_strict_secure_and_lasts_twelve_hours(app: App) -> None:
    answer = app.client.post(
        "/dashboard/login",
        data={"token": TOKEN, "next": "/dashboard/plans"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/plans"
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in attributes
    assert "secure" in attributes  # TEND_PUBLIC_URL is https
    assert attributes["samesite"].strip().lower() == "samesite=strict"
    assert attributes["path"].strip() == "Path=/dashboard"
    assert attributes["max-age"].strip() == "Max-Age=43200"
    assert app.client.get("/dashboard", follow_redirects=False).status_code == 200
    app.clock.advance(hours=11, minutes=59)
    assert app.client.get("/dashboard", follow_redirects=False).status_code == 200
    app.clock.advance(minutes=1)  # twelve hours on: over
    assert app.client.get("/dashboard", follow_redirects=False).status_code == 303


def test_a_session_is_not_secure_over_plain_http(db: str, source: Source) -> None:
    made = _app(db, source, public_url="http://127.0.0.1:8000", base_url="http://127.0.0.1:8000")
    try:
        answer = made.client.post("/dashboard/login", data={"token": TOKEN},
                                  follow_redirects=False)  # fmt: skip
        assert "secure" not in answer.headers["set-cookie"].lower()
    finally:
        made.runtime.close()


def test_a_forged_or_outdated_session_is_refused(app: App, db: str, source: Source) -> None:
    app.login()
    good = app.client.cookies[SESSION_COOKIE]
    stamp, _, rest = good.partition(".")
    forged = f"{int(stamp) + 86400}.{rest}"  # a later expiry, the old signature
    app.client.cookies.set(SESSION_COOKIE, forged, domain="tend.test", path="/dashboard")
    assert app.client.get("/dashboard", follow_redirects=False).status_code == 303
    # A new admin token ends the sessions made with the old one.
    other = _app(db, source, admin_token="a-new-token")
    try:
        other.client.cookies.set(SESSION_COOKIE, good, domain="tend.test", path="/dashboard")
        assert other.client.get("/dashboard", follow_redirects=False).status_code == 303
    finally:
        other.runtime.close()


def test_without_a_token_only_this_machine_may_log_in(db: str, source: Source) -> None:
    here = _app(db, source, admin_token=None, client=("127.0.0.1", 50000))
    away = _app(db, source, admin_token=None, client=("203.0.113.7", 50000))
    try:
        page = here.client.get("/dashboard/login")
        assert "this machine may log in without one" in page.text
        refused = here.client.post("/dashboard/login", data={"token": "guess"},
                                   follow_redirects=False)  # fmt: skip
        assert refused.status_code == 401
        assert "leave the field empty" in refused.text
        here.login(token="")
        assert here.client.get("/dashboard", follow_redirects=False).status_code == 200
        answer = away.client.post("/dashboard/login", data={"token": ""}, follow_redirects=False)
        assert answer.status_code == 401
        assert "only this machine may log in" in answer.text
        # A session made here is no use from elsewhere.
        cookie = here.client.cookies[SESSION_COOKIE]
        away.client.cookies.set(SESSION_COOKIE, cookie, domain="tend.test", path="/dashboard")
        assert away.client.get("/dashboard", follow_redirects=False).status_code == 303
    finally:
        here.runtime.close()
        away.runtime.close()


@pytest.mark.parametrize(
    ("given", "lands"),
    [
        ("/dashboard/plans", "/dashboard/plans"),
        ("/dashboard?sort=rate&dir=desc", "/dashboard?sort=rate&dir=desc"),
        ("https://evil.example/dashboard", "/dashboard"),
        ("//evil.example/dashboard", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("/outbox", "/dashboard"),
        ("/dashboardx", "/dashboard"),
    ],
)
def test_after_logging_in_only_a_dashboard_page_is_next(app: App, given: str, lands: str) -> None:
    answer = app.client.post("/dashboard/login", data={"token": TOKEN, "next": given},
                             follow_redirects=False)  # fmt: skip
    assert answer.headers["location"] == lands


def test_logging_out_ends_the_session(coach: App) -> None:
    answer = coach.client.post(
        "/dashboard/logout", data={"csrf": coach.csrf()}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/login"
    assert SESSION_COOKIE not in coach.client.cookies
    page = coach.client.get("/dashboard/login")
    assert "You are logged out." in page.text
    assert coach.client.get("/dashboard", follow_redirects=False).status_code == 303


# --- CSRF and headers ------------------------------------------------------------------


def test_a_form_without_its_csrf_token_or_from_another_site_is_refused(coach: App) -> None:
    enrollment = coach.cohort.enrollments["rae"]
    path = f"/dashboard/enrollments/{enrollment}/pause"
    token = coach.csrf()
    refused: list[tuple[dict[str, str], dict[str, str]]] = [
        ({}, {}),
        ({"csrf": ""}, {}),
        ({"csrf": token[:-1] + ("A" if token[-1] != "A" else "B")}, {}),
        ({"csrf": token}, {"Origin": "https://evil.example"}),
        ({"csrf": token}, {"Origin": "null"}),
        ({"csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
        ({"csrf": token}, {"Sec-Fetch-Site": "same-site"}),
    ]
    for form, headers in refused:
        answer = coach.client.post(path, data=form, headers=headers, follow_redirects=False)
        assert answer.status_code == 403, (form, headers)
        assert coach.enrollment_status(enrollment) == "active"
    # A token from another session does not do either.
    other = coach.client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    assert other.status_code == 303
    assert coach.client.post(path, data={"csrf": token}, follow_redirects=False).status_code == 403
    answer = coach.client.post(
        path,
        data={"csrf": coach.csrf()},
        headers={"Origin": BASE, "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert coach.enrollment_status(enrollment) == "paused"


def test_a_login_from_another_site_is_refused(app: App) -> None:
    answer = app.client.post(
        "/dashboard/login",
        data={"token": TOKEN},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


def test_pages_are_private_and_run_only_their_own_script(coach: App) -> None:
    page = coach.client.get("/dashboard")
    assert page.headers["cache-control"] == "no-store"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "same-origin"
    assert '<script src="/dashboard/static/dashboard.js" defer></script>' in page.text
    assert "<script>" not in page.text  # nothing inline
    script = coach.client.get("/dashboard/static/dashboard.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "data-copy" in script.text


# --- the overview ----------------------------------------------------------------------


def _row(page: str, participant_id: str) -> str:
    found = re.search(rf'<tr[^>]*data-participant="{participant_id}".*?</tr>', page, re.S)
    assert found, participant_id
    return found.group(0)


def test_the_overview_lists_everyone_with_their_figures(coach: App) -> None:
    page = coach.client.get("/dashboard").text
    ids = coach.cohort.ids
    # Completion: done of decided over both practices (the walk and the mood); strength
    # the mean of the two; the week of the plan; see dashboard_seed for the days.
    expected = {
        "rae": ("Rae Example", "4 of 6", "93%", "0.61", "past 7 days 91%"),
        "sam": ("Sam Rivera", "4 of 6", "67%", "0.36", "past 7 days 9%"),
        "jo": ("Jo Park", "4 of 6", "97%", "0.57", "past 7 days 100%"),
        "dee": ("Dee Okafor", "4 of 6", "87%", "0.46", "past 7 days no decided check-ins"),
    }
    for key, (name, week, rate, strength, spark) in expected.items():
        row = _row(page, ids[key])
        assert name in row
        assert f">{week}<" in row
        assert f">{rate}<" in row
        assert strength in row
        assert spark in row  # the sparkline says its weeks in words
        assert 'class="chart sparkline"' in row
    assert "not enrolled" in _row(page, ids["ana"])
    assert "paused" in _row(page, ids["dee"])
    assert "texts opted out" in _row(page, ids["jo"])


def test_those_who_slipped_this_week_stand_out(coach: App) -> None:
    page = coach.client.get("/dashboard").text
    ids = coach.cohort.ids
    slipped = page[page.index('id="slipped"') : page.index("<h2>Everyone</h2>")]
    assert "Slipped this week (2)" in slipped
    # Sam: 1 done of 11 decided in the past 7 days; Jo texted STOP this week.
    assert "Sam Rivera</a>" in slipped
    assert "1 of 11 done this week" in slipped
    assert "Jo Park</a>" in slipped
    assert "opted out of text reminders" in slipped
    assert slipped.index("Sam Rivera") < slipped.index("Jo Park")  # lowest rate first
    assert "Rae Example" not in slipped
    assert 'class="slipped"' in _row(page, ids["sam"])
    assert 'class="slipped"' not in _row(page, ids["rae"])
    # A week later Jo's STOP is old news, and nothing was sent to Sam: no one slipped.
    coach.clock.advance(days=8)
    coach.login()  # the session ran out meanwhile
    later = coach.client.get("/dashboard").text
    assert "Nobody has slipped this week." in later


def _order(page: str, names: list[str]) -> list[str]:
    return sorted(names, key=lambda name: page.index(f">{name}</a>"))


@pytest.mark.parametrize(
    ("query", "order"),
    [
        ("", ["Ana Sato", "Dee Okafor", "Jo Park", "Rae Example", "Sam Rivera"]),
        ("?sort=name&dir=desc", ["Sam Rivera", "Rae Example", "Jo Park", "Dee Okafor", "Ana Sato"]),
        ("?sort=rate&dir=desc", ["Jo Park", "Rae Example", "Dee Okafor", "Sam Rivera", "Ana Sato"]),
        ("?sort=rate", ["Sam Rivera", "Dee Okafor", "Rae Example", "Jo Park", "Ana Sato"]),
        ("?sort=strength", ["Sam Rivera", "Dee Okafor", "Jo Park", "Rae Example", "Ana Sato"]),
        ("?sort=status", ["Jo Park", "Rae Example", "Sam Rivera", "Ana Sato", "Dee Okafor"]),
        ("?sort=nonsense", ["Ana Sato", "Dee Okafor", "Jo Park", "Rae Example", "Sam Rivera"]),
    ],
)
def test_the_overview_sorts_by_a_column(coach: App, query: str, order: list[str]) -> None:
    page = coach.client.get(f"/dashboard{query}").text
    table = page[page.index("<tbody>") :]
    assert _order(table, order) == order


def test_the_sorted_column_says_so(coach: App) -> None:
    page = coach.client.get("/dashboard?sort=rate&dir=desc").text
    assert re.search(r'<th scope="col" aria-sort="descending">\s*<a href="/dashboard\?sort=rate'
                     r'&amp;dir=asc">Completion ↓</a>', page)  # fmt: skip
    assert page.count("aria-sort=") == 1


# --- a participant ---------------------------------------------------------------------


def test_a_participant_page_shows_calendars_replies_consent_and_the_feed(coach: App) -> None:
    sam = coach.cohort.ids["sam"]
    page = coach.client.get(f"/dashboard/participants/{sam}").text
    # One calendar per practice that asks for a check-in (not Breathe, which asks none).
    assert page.count('class="chart heatmap"') == 2
    assert 'data-practice="walk"' in page
    assert 'data-practice="mood"' in page
    assert 'data-practice="breathe"' not in page
    assert "<title>Mon 2 Mar: done</title>" in page  # the walk
    assert "<title>Mon 2 Mar: done, rating 3</title>" in page  # the mood, with its rating
    assert "<title>Sat 14 Mar: skipped</title>" in page
    assert "<title>Tue 17 Mar: missed</title>" in page  # a morning with no reply
    assert "<title>Thu 26 Mar: pending (window open)</title>" in page  # open at NOW
    assert "<title>Fri 27 Mar: still to come</title>" in page
    assert "17 done · 1 skipped · 6 missed · 1 pending" in page
    assert 'aria-label="Habit strength of Morning walk: 0.43 of 1"' in page
    # The reply log: what was sent and what it was taken as.
    assert "“what is this?”" in page
    assert "not understood for Evening mood" in page
    assert "rated 2 of 5 for Evening mood" in page
    # The feed, as the participant's link.
    with transaction(coach.runtime.engine) as conn:
        person = participant_rows.get_participant(conn, sam)
    feed = links.feed_link(coach.runtime, sam, person.feed_version)
    assert f'value="{feed}"' in page
    assert links.webcal_link(feed) in page
    assert "Nothing recorded yet: how they agreed" in page
    assert '<span class="badge ok">subscribed</span>' in page


def test_a_participant_who_texted_stop_shows_it(coach: App) -> None:
    page = coach.client.get(f"/dashboard/participants/{coach.cohort.ids['jo']}").text
    assert "opted out</span> (STOP: no texts of any kind)" in page
    assert "sms: opted out" in page
    assert "from sms:opt_out" in page
    assert "“STOP”" in page
    # After the STOP no reminder reached Jo: those days are not counted, not missed.
    assert "<title>Tue 24 Mar: not counted</title>" in page


def test_an_unknown_participant_is_not_found(coach: App) -> None:
    assert coach.client.get("/dashboard/participants/p_nobody").status_code == 404


# --- actions ---------------------------------------------------------------------------


def _pending(app: App, enrollment_id: str) -> int:
    with transaction(app.runtime.engine) as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(deliveries.join(occurrences))
                .where(occurrences.c.enrollment_id == enrollment_id)
                .where(deliveries.c.state == "pending")
            ).scalar_one()
        )


def test_pause_and_resume_an_enrollment(coach: App) -> None:
    rae, enrollment = coach.cohort.ids["rae"], coach.cohort.enrollments["rae"]
    here = f"/dashboard/participants/{rae}"
    ahead = _pending(coach, enrollment)
    assert ahead > 0
    answer = coach.client.post(f"/dashboard/enrollments/{enrollment}/pause",
                               data={"csrf": coach.csrf(here), "next": here},
                               follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303
    assert answer.headers["location"] == here
    assert FLASH_COOKIE in answer.headers["set-cookie"]
    assert coach.enrollment_status(enrollment) == "paused"
    assert _pending(coach, enrollment) == 0  # nothing more is sent
    page = coach.client.get(here).text
    assert "Paused walks-and-moods: no reminders are sent until it is resumed." in page
    assert "Resume reminders" in page
    assert "Pause reminders" not in page
    assert "Paused walks-and-moods" not in coach.client.get(here).text  # shown once
    coach.clock.advance(hours=1)
    answer = coach.client.post(f"/dashboard/enrollments/{enrollment}/resume",
                               data={"csrf": coach.csrf(here), "next": here},
                               follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303
    assert coach.enrollment_status(enrollment) == "active"
    assert 0 < _pending(coach, enrollment) <= ahead  # what is still ahead comes back
    page = coach.client.get(here).text
    assert "Resumed walks-and-moods: reminders still ahead will be sent." in page
    assert "Pause reminders" in page


def test_pausing_twice_changes_nothing(coach: App) -> None:
    enrollment = coach.cohort.enrollments["dee"]  # paused already
    here = f"/dashboard/participants/{coach.cohort.ids['dee']}"
    page = coach.client.post(f"/dashboard/enrollments/{enrollment}/pause",
                             data={"csrf": coach.csrf(here), "next": here})  # fmt: skip
    assert page.status_code == 200
    assert 'class="flash error"' not in page.text  # asked twice: no change, and no error
    assert "walks-and-moods was paused already." in page.text
    unknown = coach.client.post("/dashboard/enrollments/e_nothing/pause",
                                data={"csrf": coach.csrf()})  # fmt: skip
    assert unknown.status_code == 404
    odd = coach.client.post(f"/dashboard/enrollments/{enrollment}/archive",
                            data={"csrf": coach.csrf()})  # fmt: skip
    assert odd.status_code == 404
    assert coach.enrollment_status(enrollment) == "paused"


def test_rotating_the_feed_revokes_the_old_url(coach: App) -> None:
    rae = coach.cohort.ids["rae"]
    here = f"/dashboard/participants/{rae}"
    with transaction(coach.runtime.engine) as conn:
        version = participant_rows.get_participant(conn, rae).feed_version
    old = links.feed_link(coach.runtime, rae, version)
    old_path = old.removeprefix(BASE)
    assert coach.client.get(old_path).status_code == 200
    page = coach.client.post(f"{here}/rotate-feed", data={"csrf": coach.csrf(here)})
    assert page.status_code == 200
    new = links.feed_link(coach.runtime, rae, version + 1)
    assert f'value="{new}"' in page.text
    assert old not in page.text
    assert "the old one no longer works" in page.text
    assert coach.client.get(old_path).status_code == 404
    assert coach.client.get(new.removeprefix(BASE)).status_code == 200


def test_a_test_message_goes_by_the_chosen_channel(coach: App) -> None:
    rae = coach.cohort.ids["rae"]
    here = f"/dashboard/participants/{rae}"
    page = coach.client.post(f"{here}/test-message",
                             data={"csrf": coach.csrf(here), "channel": "sms"})  # fmt: skip
    assert "Test text sent to +1********01." in page.text  # never the whole number
    assert [m.to for m in coach.sms.sent] == ["+14155550101"]
    assert coach.sms.sent[0].body == messages.TEST_SMS.format(first="Rae")
    assert len(coach.sms.sent[0].body) <= 160  # one segment
    page = coach.client.post(f"{here}/test-message",
                             data={"csrf": coach.csrf(here), "channel": "email"})  # fmt: skip
    assert "Test email sent to r***@example.com." in page.text
    sent = coach.email.sent[0]
    assert sent.subject == messages.TEST_EMAIL_SUBJECT
    assert sent.unsubscribe_url is not None
    assert sent.unsubscribe_url in sent.body
    assert sent.delivery_id is None


def test_a_test_message_honours_stop_pause_and_unsubscribe(coach: App) -> None:
    ids = coach.cohort.ids
    now = coach.clock.now()
    with transaction(coach.runtime.engine) as conn:
        participant_rows.set_sms_pause(
            conn, ids["rae"], now + timedelta(days=2), source="test", now=now
        )
        participant_rows.unsubscribe_email(conn, ids["sam"], source="test", now=now)
    cases = [
        ("jo", "sms", "Jo Park opted out of text messages (see their consent log); nothing"),
        ("jo", "email", "Jo Park has no email address; add one first."),
        ("ana", "sms", "Ana Sato has no phone number; add one first."),
        ("rae", "sms", "Rae Example paused text messages until Sat 28 Mar 2026 12:00"),
        ("sam", "email", "Sam Rivera unsubscribed from email (see their consent log); nothing"),
        ("rae", "fax", "there is no channel &#39;fax&#39;; choose sms or email"),
    ]
    for key, channel, said in cases:
        here = f"/dashboard/participants/{ids[key]}"
        page = coach.client.post(f"{here}/test-message",
                                 data={"csrf": coach.csrf(here), "channel": channel})  # fmt: skip
        assert "Not sent: " in page.text, (key, channel)
        assert said in page.text, (key, channel)
    assert coach.sms.sent == []
    assert coach.email.sent == []


def test_the_development_outbox_is_shown_when_in_use(db: str, source: Source) -> None:
    made = _app(db, source, outbox=True)
    try:
        made.login()
        rae = made.cohort.ids["rae"]
        here = f"/dashboard/participants/{rae}"
        made.client.post(f"{here}/test-message", data={"csrf": made.csrf(here), "channel": "sms"})
        page = made.client.get("/dashboard").text
        assert '<a href="/dashboard/outbox"' in page
        outbox = made.client.get("/dashboard/outbox").text
        assert "SMS and email are not configured" in outbox
        assert "sms to +14155550101" in outbox
        assert "Tend test message" in outbox
    finally:
        made.runtime.close()


def test_no_outbox_link_when_real_channels_send(coach: App) -> None:
    assert '<a href="/dashboard/outbox"' not in coach.client.get("/dashboard").text


# --- plans -----------------------------------------------------------------------------


def test_the_plans_page_counts_enrollments(coach: App) -> None:
    page = coach.client.get("/dashboard/plans").text
    assert '<a href="/dashboard/plans/walks-and-moods">Walks and moods</a>' in page
    assert '<td data-label="Active">3</td>' in page
    assert '<td data-label="Paused">1</td>' in page


def test_a_plan_page_shows_its_preview_and_its_participants(coach: App) -> None:
    page = coach.client.get("/dashboard/plans/walks-and-moods?start=2026-04-06&tz=Europe/Berlin")
    assert page.status_code == 200
    text = page.text
    assert "starting Mon 6 Apr 2026 in Europe/Berlin: 114 reminders" in text
    assert "Mon 6 Apr 2026 09:00" in text  # local time of the first walk
    assert "Move: Morning walk." in text
    assert "Evening mood now, Alex." in text
    assert text.count("<details") == 6  # a week each
    for name in ("Rae Example", "Sam Rivera", "Jo Park", "Dee Okafor"):
        assert f">{name}</a>" in text
    assert "Ana Sato" not in text


def test_a_plan_preview_with_a_wrong_zone_or_date_says_so(coach: App) -> None:
    page = coach.client.get("/dashboard/plans/walks-and-moods?tz=Mars/Olympus")
    assert page.status_code == 400
    assert "&#39;Mars/Olympus&#39; is not a time zone" in page.text
    page = coach.client.get("/dashboard/plans/walks-and-moods?start=6 April")
    assert page.status_code == 400
    assert "is not a date (YYYY-MM-DD)" in page.text
    assert coach.client.get("/dashboard/plans/no-such-plan").status_code == 404


# --- pure parts ------------------------------------------------------------------------


def test_plan_week_counts_from_the_start() -> None:
    assert dashboard_data.plan_week(None, date(2026, 3, 2), date(2026, 3, 1)) == (
        None,
        "starts 2 Mar",
    )
    assert dashboard_data.plan_week(None, date(2026, 3, 2), date(2026, 3, 8)) == (1, "week 1")
    assert dashboard_data.plan_week(None, date(2026, 3, 2), date(2026, 3, 9)) == (2, "week 2")
