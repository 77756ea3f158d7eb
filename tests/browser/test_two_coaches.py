"""Coach accounts in Chromium (issue 16's done-when): two coaches, each signed in in
their own browser, see only their own cohort; an admin sees both. Along the way: the
set-password page a new coach's link opens, signing in by email and password, the
admin's accounts and audit pages; each page is shot at a laptop's and a phone's width
(into the test's tmp folder, test-artifacts/dashboard/ and /tmp/shots16/).

Cora coaches Rae and Sam, Ben coaches Jo and Dee; Ana is nobody's yet (only admins see
her). See conftest.py for the server and the browser.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update

from service.actions import coaches as accounts
from service.storage.db import transaction
from service.storage.tables import participants
from tests.browser.conftest import ARTIFACTS, Served

with contextlib.suppress(ImportError):
    from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

PASSWORD = "a walk in the park"
SHOTS = Path("/tmp/shots16")
WIDTHS = (1280, 390)
CORA_PEOPLE = ("Rae Example", "Sam Rivera")
BEN_PEOPLE = ("Jo Park", "Dee Okafor")


@dataclass
class Accounts:
    cora_link: str  # her set-password link, not used yet
    ben: str
    boss: str


@pytest.fixture(scope="module")
def staff(served: Served) -> Accounts:
    rt, me = served.runtime, accounts.operator()
    cora = accounts.add(rt, me, email="cora@example.org", name="Cora Coach")
    ben = accounts.add(rt, me, email="ben@example.org", name="Ben Coach")
    boss = accounts.add(rt, me, email="boss@example.org", name="Bo Admin", role="admin")
    for made in (ben, boss):
        accounts.set_password(rt, made.link.rsplit("/", 1)[1], PASSWORD, "127.0.0.1")
    ids = served.cohort.ids
    owners = {"rae": cora.coach.id, "sam": cora.coach.id, "jo": ben.coach.id, "dee": ben.coach.id}
    with transaction(rt.engine) as conn:
        for key, owner in owners.items():
            conn.execute(
                update(participants).where(participants.c.id == ids[key]).values(coach_id=owner)
            )
    return Accounts(cora.link, ben.coach.id, boss.coach.id)


@pytest.fixture
def another(browser: Browser) -> Iterator[Page]:
    """A second browser (its own cookies), for a second person at the same time."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="en-GB")
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def shots(page: Page, name: str, tmp_path: Path) -> None:
    """`name` at each of WIDTHS, full page."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size or {"width": 1200, "height": 900}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        target = tmp_path / f"{name}-{width}.png"
        page.screenshot(path=str(target), full_page=True)
        shutil.copyfile(target, SHOTS / target.name)
        shutil.copyfile(target, ARTIFACTS / target.name)
        # Nothing is wider than the page at a phone's width.
        overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        if overflow:
            wide = page.evaluate(
                """() => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                .slice(0, 8).map(e => e.tagName + '.' + e.className + ' '
                + Math.round(e.getBoundingClientRect().right))"""
            )
            raise AssertionError(f"{name} scrolls sideways at {width}px: {wide}")
    page.set_viewport_size(before)


def sign_in(page: Page, served: Served, email: str, path: str = "/dashboard") -> None:
    page.goto(served.base + path)
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(re.escape(served.base + path) + r"(\?.*)?$"))


def cohort_names(page: Page) -> set[str]:
    names = page.locator("table.cohort tbody tr td.lead a").all_inner_texts()
    return {n.strip() for n in names}


def test_a_new_coach_sets_her_password_and_signs_in(
    page: Page, served: Served, staff: Accounts, tmp_path: Path
) -> None:
    page.goto(served.base + "/dashboard/login")
    shots(page, "login", tmp_path)
    page.goto(staff.cora_link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Set your password")
    expect(page.locator("main")).to_contain_text("cora@example.org")
    shots(page, "set-password", tmp_path)
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD + "!")
    page.get_by_role("button", name="Set the password").click()
    expect(page.get_by_role("alert")).to_contain_text("not the same")
    shots(page, "set-password-error", tmp_path)
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD)
    page.get_by_role("button", name="Set the password").click()
    page.wait_for_url(re.compile(r"/dashboard/login\?email="))
    expect(page.get_by_role("status")).to_contain_text("Your password is set")
    expect(page.get_by_label("Email", exact=True)).to_have_value("cora@example.org")
    # A wrong password first: the one message.
    page.get_by_label("Password", exact=True).fill("not her password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("do not match")
    shots(page, "login-refused", tmp_path)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(served.base + "/dashboard")
    expect(page.get_by_role("heading", level=1)).to_have_text("My participants")
    expect(page.locator("header")).to_contain_text("Cora Coach")
    # The link is spent.
    page.goto(staff.cora_link)
    expect(page.get_by_role("heading", level=1)).to_have_text("This link no longer works")
    shots(page, "set-password-used", tmp_path)


def test_two_coaches_each_see_only_their_own_cohort_and_an_admin_sees_both(
    page: Page, another: Page, served: Served, staff: Accounts, tmp_path: Path
) -> None:
    # Cora's password was set by the test before; set it here when run alone.
    with contextlib.suppress(accounts.Invalid):
        accounts.set_password(
            served.runtime, staff.cora_link.rsplit("/", 1)[1], PASSWORD, "127.0.0.1"
        )
    sign_in(page, served, "cora@example.org")
    sign_in(another, served, "ben@example.org")
    assert cohort_names(page) == set(CORA_PEOPLE)
    assert cohort_names(another) == set(BEN_PEOPLE)
    expect(another.locator("header")).to_contain_text("Ben Coach")
    shots(page, "coach-overview", tmp_path)
    # Another coach's participant is a page that does not exist, for each of them.
    page.goto(f"{served.base}/dashboard/participants/{served.cohort.ids['jo']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.locator("main")).not_to_contain_text("Jo Park")
    another.goto(f"{served.base}/dashboard/participants/{served.cohort.ids['rae']}")
    expect(another.get_by_role("heading", level=1)).to_have_text("Not found")
    # The plan's page lists only their own too; no admin pages for a coach.
    page.goto(f"{served.base}/dashboard/plans/walks-and-moods")
    expect(page.locator("main")).to_contain_text("Rae Example")
    expect(page.locator("main")).not_to_contain_text("Jo Park")
    expect(page.get_by_role("link", name="Accounts")).to_have_count(0)
    page.goto(f"{served.base}/dashboard/accounts")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    # Cora logs out; Ben is still in.
    page.goto(served.base + "/dashboard")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/dashboard/login"))
    another.goto(served.base + "/dashboard")
    assert cohort_names(another) == set(BEN_PEOPLE)
    # The admin sees everyone (Ana, nobody's yet, too).
    sign_in(page, served, "boss@example.org")
    expect(page.get_by_role("heading", level=1)).to_have_text("Participants")
    assert cohort_names(page) == {*CORA_PEOPLE, *BEN_PEOPLE, "Ana Sato"}


def test_an_admin_manages_accounts_and_reads_the_audit_log(
    page: Page, served: Served, staff: Accounts, tmp_path: Path
) -> None:
    sign_in(page, served, "boss@example.org", "/dashboard/accounts")
    expect(page.get_by_role("heading", level=1)).to_have_text("Accounts")
    ben = page.locator(f'section[data-account="{staff.ben}"]')
    ben.get_by_label("New token's label").fill("spreadsheet import")
    ben.get_by_role("button", name="Create token").click()
    shown = page.locator("#shown-value")
    expect(shown).to_have_value(re.compile(r"^tend_"))
    shots(page, "accounts-token-shown", tmp_path)
    page.get_by_label("Email", exact=True).fill("dana@example.org")
    page.get_by_label("Name").fill("Dana Coach")
    page.get_by_role("button", name="Add the account").click()
    expect(shown).to_have_value(re.compile(r"/dashboard/set-password/"))
    expect(page.locator("#shown-heading")).to_contain_text("Dana Coach")
    page.goto(served.base + "/dashboard/accounts")
    expect(page.locator("#shown-value")).to_have_count(0)  # shown once only
    shots(page, "accounts", tmp_path)
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    expect(page.locator("table.audit")).to_contain_text("token.create")
    shots(page, "audit", tmp_path)
    page.get_by_label("Action").fill("sign_in")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"action=sign_in"))
    expect(page.locator("table.audit")).not_to_contain_text("token.create")
    shots(page, "audit-filtered", tmp_path)
