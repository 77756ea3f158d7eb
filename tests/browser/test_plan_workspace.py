"""The plan workspace in Chromium, as issue 15's done-when says: a coach opens a plan,
breaks it in three places, sees each error at its line, fixes them, previews across a
daylight saving change, publishes, and the enrolled participants' next reminders follow
the new version. Then the versions' diff, a restore, and the pages at a phone's width.

Screenshots go where conftest.py's `shoot` puts them, and to /tmp/shots/."""

from __future__ import annotations

import contextlib
import re
import shutil
import textwrap
from collections.abc import Callable
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from service.actions import plans as publishing
from service.storage.db import reading
from service.storage.tables import enrollments
from tests.browser.conftest import Served
from tests.browser.test_dashboard_browser import log_in
from tests.support.dashboard_seed import NOW, PLAN, PLAN_ID
from tests.support.engine import next_reminder

with contextlib.suppress(ImportError):
    from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/shots")
ORIGINAL = textwrap.dedent(PLAN).lstrip()
BREAKS = (  # (the line it is on, its column, what the coach sees, the change)
    (9, 9, "is not a time of day", ('at: "09:00"', 'at: "25:00"')),
    (15, 12, "unknown value for every: 'blursday'", ("every: weekday", "every: blursday")),
    (22, 16, "unknown channel 'pigeon'",
     ('at: "12:00"\n    channels: [sms]', 'at: "12:00"\n    channels: [pigeon]')),
)  # fmt: skip
FIXED = ORIGINAL.replace('at: "09:00"', 'at: "07:30"')


@pytest.fixture
def snap(shoot: Callable[[str], Path]) -> Callable[[str], Path]:
    """`shoot`, and a copy in /tmp/shots/."""

    def take(name: str) -> Path:
        path = shoot(name)
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SHOTS / path.name)
        return path

    return take


def _next_walks(served: Served) -> dict[str, tuple[datetime, datetime | None, int | None]]:
    """Per participant with a live enrollment: the next walk's instant, when its
    reminder is due (None: no text is waiting, as for Jo, who texted STOP), and the plan
    version it was planned from."""
    found = {}
    for who, enrollment in served.cohort.enrollments.items():
        walk = next_reminder(served.runtime, enrollment, "walk", NOW)
        if walk is not None:
            found[who] = (walk.instant, walk.due, walk.plan_version)
    return found


def _no_overflow(page: Page) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page.url} is wider than the window by {overflow}px"


def test_a_coach_breaks_fixes_previews_and_publishes_a_plan(
    page: Page, served: Served, snap: Callable[[str], Path]
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, served, f"/dashboard/plans/{PLAN_ID}")
    before = _next_walks(served)
    assert set(before) >= {"rae", "sam", "jo"}
    page.get_by_role("link", name="Edit this plan").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit Walks and moods")
    editor = page.get_by_label("The plan (YAML)")
    expect(editor).to_have_value(ORIGINAL)
    snap("workspace-editor")

    # Broken in three places: each error is listed at its line and column, and marked.
    broken = ORIGINAL
    for _, _, _, (old, new) in BREAKS:
        assert old in broken
        broken = broken.replace(old, new)
    editor.fill(broken)
    page.get_by_role("button", name="Check").click()
    diagnostics = page.locator("#diagnostics")
    expect(diagnostics.get_by_role("heading")).to_contain_text("3 errors")
    expect(diagnostics.get_by_role("heading")).to_be_focused()
    for line, column, said, _ in BREAKS:
        item = diagnostics.locator(f'li.is-error[data-line="{line}"]')
        expect(item).to_contain_text(f"Error at line {line}, column {column}")
        expect(item).to_contain_text(said)
        mark = page.locator(f"#line-{line}")
        expect(mark).to_have_class(re.compile(r"\bmark is-error\b"))
        expect(mark).to_contain_text("✖")
        expect(page.locator(f'[data-band="{line}"]')).to_be_visible()
        # The band lies on the line's row in the text, beside its number.
        band, number = page.locator(f'[data-band="{line}"]').bounding_box(), mark.bounding_box()
        assert band is not None
        assert number is not None
        assert abs(band["y"] - number["y"]) <= 1, (line, band, number)
    expect(page.locator("#line-10")).not_to_have_class(re.compile("mark"))
    expect(editor).to_have_value(broken)  # nothing the coach typed is lost
    # An error's link puts the cursor on its line and column.
    diagnostics.locator('li[data-line="15"] a').click()
    expect(editor).to_be_focused()
    caret = page.evaluate("document.getElementById('text').selectionStart")
    assert caret == sum(len(x) + 1 for x in broken.split("\n")[:14]) + 11
    snap("workspace-errors")
    assert [v.version for v in publishing.versions(served.runtime, PLAN_ID)] == [1]

    # Fixed (and the walk moved to 07:30), then previewed across a clock change.
    editor.fill(FIXED)
    page.get_by_label("Preview from").fill("2026-03-23")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#diagnostics")).to_have_count(0)
    preview = page.locator("#preview")
    expect(preview.get_by_role("heading", name="Preview of this text")).to_be_focused()
    expect(preview.locator(".dst-summary")).to_contain_text("Sun 29 Mar 2026")
    expect(preview.locator(".dst-summary")).to_contain_text("UTC+02:00")
    change = preview.locator('tr.dst[data-day="2026-03-29"]')
    expect(change).to_be_visible()
    expect(change).to_contain_text("Clocks change Sun 29 Mar 2026")
    expect(preview.locator("table.preview").first).to_contain_text("Mon 23 Mar 2026 07:30")
    expect(preview).to_contain_text("Sun 29 Mar 2026 07:30")  # the same wall-clock time
    expect(editor).to_have_value(FIXED)
    change.scroll_into_view_if_needed()
    snap("workspace-preview")

    # Review: the effect on live enrollments; then the confirmation publishes.
    page.get_by_label("Note for the new version").fill("walks at half past seven")
    page.get_by_role("button", name="Review publish").click()
    review = page.locator("#review")
    expect(review.get_by_role("heading")).to_have_text("Publish version 2?")
    expect(review).to_contain_text("4 enrollments change")
    for name in ("Rae Example", "Sam Rivera", "Jo Park", "Dee Okafor"):
        expect(review.locator("table")).to_contain_text(name)
    snap("workspace-review")
    assert [v.version for v in publishing.versions(served.runtime, PLAN_ID)] == [1]
    review.get_by_role("button", name="Publish version 2").click()
    page.wait_for_url(f"{served.base}/dashboard/plans/{PLAN_ID}")
    expect(page.get_by_role("status")).to_contain_text("Version 2 published")
    expect(page.locator('tr[data-version="2"]')).to_contain_text("walks at half past seven")
    expect(page.locator('tr[data-version="2"]')).to_contain_text("dashboard")
    snap("workspace-published")

    # The enrolled participants' next reminders follow version 2: walks at 07:30 local.
    after = _next_walks(served)
    zones = {"rae": "America/New_York", "sam": "Europe/Berlin", "jo": "Europe/London"}
    for who, zone in zones.items():
        instant, due, version = after[who]
        assert instant.astimezone(ZoneInfo(zone)).time() == time(7, 30), who
        if who != "jo":  # Jo texted STOP: her walks are planned, but no text waits
            assert due == instant, who
        assert version == 2, who
        assert instant != before[who][0], who
    with reading(served.runtime.engine) as conn:
        rows = conn.execute(select(enrollments.c.id, enrollments.c.plan_version)).all()
    versions = {row.id: row.plan_version for row in rows}
    assert versions[served.cohort.enrollments["rae"]] == 2

    # The versions' diff, then a restore of version 1's text in the editor.
    page.get_by_role("link", name="Changes in version 2").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("version 1 to version 2")
    expect(page.locator("pre.diff .del")).to_contain_text(['-    at: "09:00"'])
    expect(page.locator("pre.diff .add")).to_contain_text(['+    at: "07:30"'])
    snap("workspace-diff")
    page.go_back()
    page.get_by_role("link", name="Restore version 1").click()
    expect(page.get_by_label("The plan (YAML)")).to_have_value(ORIGINAL)
    expect(page.get_by_role("status")).to_contain_text("to publish again")
    page.goto(f"{served.base}/dashboard/plans/{PLAN_ID}/versions/1")
    expect(page.locator("table.code-lines")).to_contain_text('at: "09:00"')
    page.locator("#template-1 summary").click()
    expect(page.locator("#template-1 pre")).to_be_visible()
    snap("workspace-version")


def test_the_workspace_fits_a_phone(
    page: Page, served: Served, snap: Callable[[str], Path]
) -> None:
    log_in(page, served, f"/dashboard/plans/{PLAN_ID}")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    _no_overflow(page)
    snap("workspace-plan-phone")
    page.get_by_role("link", name="Edit this plan").click()
    editor = page.get_by_label("The plan (YAML)")
    text = editor.input_value().replace("every: weekday", "every: blursday")
    editor.fill(text)
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#diagnostics")).to_contain_text("line 15, column 12")
    _no_overflow(page)
    snap("workspace-errors-phone")
    editor.fill(text.replace("every: blursday", "every: weekday").replace('"20:00"', '"20:15"'))
    page.get_by_label("Preview from").fill("2026-10-19")
    page.get_by_label("Time zone").fill("Europe/London")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator('tr.dst[data-day="2026-10-25"]')).to_be_visible()
    _no_overflow(page)
    snap("workspace-preview-phone")
    page.get_by_role("button", name="Review publish").click()
    expect(page.locator("#review").get_by_role("heading")).to_have_text(
        re.compile(r"^Publish version \d+\?$")
    )
    _no_overflow(page)
    snap("workspace-review-phone")
    if len(publishing.versions(served.runtime, PLAN_ID)) > 1:
        page.goto(f"{served.base}/dashboard/plans/{PLAN_ID}/diff")
        _no_overflow(page)
        snap("workspace-diff-phone")
    page.goto(f"{served.base}/dashboard/new-plan?copy={PLAN_ID}")
    page.get_by_label("New plan id").fill("walks-autumn")
    page.get_by_role("button", name="Open the copy in the editor").click()
    expect(page.get_by_label("The plan (YAML)")).to_have_value(re.compile(r"^plan: walks-autumn\n"))
    _no_overflow(page)
    snap("workspace-copy-phone")
