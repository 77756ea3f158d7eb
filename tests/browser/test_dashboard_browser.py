"""The coach dashboard in Chromium: log in, the overview, a participant (a chart drawn,
pause and resume), a plan's preview, a test message in the outbox, and a phone's width.
See conftest.py for the server and the browser."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.browser.conftest import TOKEN, Served

# Without playwright the `browser` fixture skips (or, under CI, fails) and says why.
with contextlib.suppress(ImportError):
    from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

Shoot = Callable[[str], Path]


def log_in(page: Page, served: Served, path: str = "/dashboard") -> None:
    page.goto(served.base + path)
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in with the token").click()
    page.wait_for_url(re.compile(re.escape(served.base + path) + r"(\?.*)?$"))


def test_the_login_refuses_a_wrong_token_and_lets_the_coach_in(
    page: Page, served: Served, shoot: Shoot
) -> None:
    page.goto(served.base + "/dashboard")
    page.wait_for_url(re.compile(r"/dashboard/login\?next="))
    shoot("login")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in with the token").click()
    expect(page.get_by_role("alert")).to_contain_text("not the admin token")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in with the token").click()
    page.wait_for_url(served.base + "/dashboard")
    expect(page.get_by_role("heading", level=1)).to_have_text("Participants")
    cookie = next(c for c in page.context.cookies() if c["name"] == "tend_dashboard")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/dashboard"


def test_the_overview_lists_everyone_and_shows_who_slipped(
    page: Page, served: Served, shoot: Shoot
) -> None:
    log_in(page, served)
    rows = page.locator("table.cohort tbody tr")
    expect(rows).to_have_count(5)
    slipped = page.locator("#slipped li")
    expect(slipped).to_have_count(2)
    expect(page.locator("#slipped")).to_contain_text("Sam Rivera")
    expect(page.locator("#slipped")).to_contain_text("opted out of text reminders")
    sam = page.locator(f'tr[data-participant="{served.cohort.ids["sam"]}"]')
    expect(sam).to_have_class(re.compile(r"\bslipped\b"))
    expect(sam.locator("svg.sparkline")).to_have_attribute(
        "aria-label", re.compile(r"past 7 days 9%")
    )
    shoot("overview")
    page.get_by_role("link", name="Completion").click()
    expect(page.locator("th[aria-sort]")).to_have_text(re.compile("Completion"))
    first = page.locator("table.cohort tbody tr").first
    expect(first).to_contain_text("Sam Rivera")  # lowest completion first


def test_a_participant_has_charts_and_can_be_paused_and_resumed(
    page: Page, served: Served, shoot: Shoot
) -> None:
    log_in(page, served)
    page.get_by_role("link", name="Sam Rivera").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sam Rivera")
    walk = page.locator('article[data-practice="walk"] svg.heatmap')
    expect(walk).to_be_visible()
    box = walk.bounding_box()
    assert box is not None
    assert box["width"] > 100  # drawn: weeks down, weekdays across
    assert box["height"] > 100
    first_cell = walk.locator('g.cell[data-day="2026-03-02"] > title')
    expect(first_cell).to_have_text("Mon 2 Mar: done")
    missed = walk.locator('g.cell[data-state="missed"]')
    assert missed.count() >= 5
    recent = page.locator("table.log").first
    expect(recent).to_contain_text("counted as done for Morning walk")
    expect(recent).to_contain_text("not understood for Evening mood")
    older = page.locator("details table.log")
    expect(older).not_to_be_visible()
    page.get_by_text(re.compile(r"^\d+ older replies$")).click()  # folded away until asked
    expect(older).to_contain_text("Mon 2 Mar 2026 09:20")
    expect(page.locator("#feed-url")).to_have_value(re.compile(r"/calendar/.+\.ics$"))
    shoot("participant")

    page.get_by_role("button", name="Pause reminders").click()
    expect(page.get_by_role("status")).to_contain_text("Paused walks-and-moods")
    expect(page.locator('[data-status="paused"]')).to_be_visible()
    shoot("participant-paused")
    page.get_by_role("button", name="Resume reminders").click()
    expect(page.get_by_role("status")).to_contain_text("Resumed walks-and-moods")
    expect(page.locator('[data-status="active"]')).to_be_visible()


def test_a_test_message_lands_in_the_outbox(page: Page, served: Served, shoot: Shoot) -> None:
    log_in(page, served, f"/dashboard/participants/{served.cohort.ids['rae']}")
    page.get_by_label("Send a test message by").select_option("email")
    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status")).to_contain_text("Test email sent to r***@example.com")
    page.get_by_role("link", name="Outbox").click()
    expect(page.locator("article").first).to_contain_text("A test message from Tend")
    shoot("outbox")


def test_a_plan_shows_its_preview_and_participants(
    page: Page, served: Served, shoot: Shoot
) -> None:
    log_in(page, served, "/dashboard/plans")
    shoot("plans")
    page.get_by_role("link", name="Walks and moods").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Walks and moods")
    page.get_by_label("Start date").fill("2026-04-06")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("details[open] table.preview")).to_contain_text("Morning walk")
    expect(page.locator("details[open] table.preview")).to_contain_text("Mon 6 Apr 2026 09:00")
    expect(page.locator("main")).to_contain_text("Rae Example")
    shoot("plan")


def test_pages_fit_a_phone(page: Page, served: Served, shoot: Shoot) -> None:
    log_in(page, served)
    page.set_viewport_size({"width": 375, "height": 812})
    for path, name in (
        ("/dashboard", "overview-phone"),
        (f"/dashboard/participants/{served.cohort.ids['rae']}", "participant-phone"),
        ("/dashboard/plans/walks-and-moods", "plan-phone"),
    ):
        page.goto(served.base + path)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is wider than a phone by {overflow}px"
        shoot(name)
