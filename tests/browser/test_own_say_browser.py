"""A participant's texts in the dashboard (issue 18): their language, discreet texts and
quiet hours changed on their page, and the reminders quiet hours held or stopped, at a
laptop's width and a phone's. See conftest.py for the server and the browser."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from service.core.quiet import QUIET_NOTE
from service.storage.db import transaction
from service.storage.tables import deliveries, enrollments, occurrences
from tests.browser.conftest import Served
from tests.browser.test_dashboard_browser import log_in

with contextlib.suppress(ImportError):
    from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

Shoot = Callable[[str], Path]


def _hold_two(served: Served, participant_id: str) -> None:
    """One of their reminders still to go held until 07:00, one stopped by quiet hours."""
    with transaction(served.runtime.engine) as conn:
        ids = list(
            conn.execute(
                select(deliveries.c.id, deliveries.c.due_at)
                .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
                .join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
                .where(enrollments.c.participant_id == participant_id)
                .where(deliveries.c.state == "pending")
                .order_by(deliveries.c.due_at)
                .limit(2)
            )
        )
        assert len(ids) == 2
        (held, due), (stopped, _) = ids
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == held)
            .values(held_from=due, due_at=due + timedelta(hours=8, minutes=50))
        )
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == stopped)
            .values(
                state="cancelled",
                last_error=f"{QUIET_NOTE} (22:00-07:00); the check-in window closed before they ended",
            )
        )


def test_a_coach_sets_language_discreet_and_quiet_hours_and_sees_what_was_held(
    page: Page, served: Served, shoot: Shoot
) -> None:
    rae = served.cohort.ids["rae"]
    _hold_two(served, rae)
    log_in(page, served, f"/dashboard/participants/{rae}")
    settings = page.locator("#settings")
    expect(settings).to_contain_text("Their texts")
    page.get_by_text("Change", exact=True).click()
    page.get_by_label("Their texts in").select_option("es")
    page.get_by_label("Quiet hours").fill("22-7")
    page.get_by_label("Discreet texts").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#language-setting")).to_contain_text(re.compile("Spanish"))
    expect(page.locator("#discreet-setting")).to_contain_text("never name the practice")
    expect(page.locator("#quiet-setting")).to_contain_text("22:00")
    held = page.get_by_role("heading", name=re.compile("Held for quiet hours"))
    expect(held).to_be_visible()
    shoot("participant-own-say")
    page.set_viewport_size({"width": 390, "height": 844})
    shoot("participant-own-say-phone")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone: {width}px"

    # A bad span is refused in words, and nothing changes.
    page.set_viewport_size({"width": 1200, "height": 900})
    page.get_by_text("Change", exact=True).click()
    page.get_by_label("Quiet hours").fill("25:00-07:00")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Nothing changed: quiet hours: '25:00' is not a time"
    )
    expect(page.locator("#quiet-setting")).to_contain_text("22:00")


def test_the_add_person_form_offers_the_new_settings(
    page: Page, served: Served, shoot: Shoot
) -> None:
    log_in(page, served, "/dashboard/people/new")
    expect(page.get_by_label("Discreet texts")).to_be_visible()
    shoot("person-new")
    page.set_viewport_size({"width": 390, "height": 844})
    shoot("person-new-phone")
