"""The dashboard's plan workspace through FastAPI's TestClient: the editor's Check (errors
at their lines and columns, the text kept), Preview (across a clock change), Review (a
dry run's effect) and Publish (a new version that enrolled participants follow), the
versions with their diffs, restoring an old version's text, a new plan from a copy, and
CSRF. On SQLite and PostgreSQL, with the seeded cohort of test_dashboard.py."""

from __future__ import annotations

import html
import re
import textwrap
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from service.actions import plans as publishing
from service.storage import enrollments as enrollment_rows
from service.storage.db import reading
from tests.integration import test_dashboard
from tests.integration.test_dashboard import BASE, App
from tests.support.dashboard_seed import NOW, PLAN, PLAN_ID
from tests.support.engine import next_reminder

# test_dashboard.py's fixtures: the seeded cohort on SQLite and PostgreSQL, a logged-in coach.
source = test_dashboard.source
db = test_dashboard.db
app = test_dashboard.app
coach = test_dashboard.coach

EDIT = f"/dashboard/plans/{PLAN_ID}/edit"
ORIGINAL = textwrap.dedent(PLAN).lstrip()
FIXED = ORIGINAL.replace('at: "09:00"', 'at: "07:30"')
BROKEN = (
    ORIGINAL.replace('at: "09:00"', 'at: "25:00"')  # line 9, column 9
    .replace("every: weekday", "every: blursday")  # line 15, column 12
    .replace('at: "12:00"\n    channels: [sms]', 'at: "12:00"\n    channels: [pigeon]')  # 22:16
)


def _post(coach: App, text: str, action: str, path: str = EDIT, **fields: str) -> Any:
    form = {"csrf": coach.csrf(path if "edit" in path else "/dashboard/plans"),
            "text": text, "action": action, **fields}  # fmt: skip
    return coach.client.post(path, data=form, follow_redirects=False)


def _textarea(page: str) -> str:
    found = re.search(r'<textarea id="text"[^>]*>\n(.*?)</textarea>', page, re.S)
    assert found, "no editor on the page"
    return html.unescape(found.group(1))


def _reviewed(page: str) -> str:
    found = re.search(r'name="reviewed" value="([^"]*)"', page)
    assert found
    return found.group(1)


def _numbers(coach: App, plan_id: str = PLAN_ID) -> list[int]:
    return [v.version for v in publishing.versions(coach.runtime, plan_id)]


def _next_walk(coach: App, who: str) -> tuple[datetime, datetime, int | None]:
    """The next walk's instant, its pending reminder's due time and its plan version."""
    walk = next_reminder(coach.runtime, coach.cohort.enrollments[who], "walk", NOW)
    assert walk is not None
    assert walk.due is not None
    return walk.instant, walk.due, walk.plan_version


def test_the_editor_opens_with_the_newest_text(coach: App) -> None:
    page = coach.client.get(EDIT)
    assert page.status_code == 200
    assert _textarea(page.text) == ORIGINAL
    assert 'id="line-23"' in page.text  # the gutter numbers every line
    assert "Publishing makes version 2" in page.text


def test_check_lists_each_error_at_its_line_and_column_and_keeps_the_text(coach: App) -> None:
    answer = _post(coach, BROKEN.replace("\n", "\r\n"), "check")  # as a browser sends it
    assert answer.status_code == 422
    page = answer.text
    assert "3 errors" in page
    for line, column, said in ((9, 9, "is not a time of day"), (15, 12, "blursday"),
                               (22, 16, "unknown channel")):  # fmt: skip
        assert f"at line {line}, column {column}</a>" in page
        assert said in page
        assert re.search(rf'<span id="line-{line}" class="mark is-error"', page), line
        assert f'data-band="{line}"' in page
    assert not re.search(r'<span id="line-10" class="mark', page)
    assert _textarea(page) == BROKEN  # what the coach typed, line breaks as they were
    assert 'aria-invalid="true"' in page
    assert _numbers(coach) == [1]


def test_a_text_with_errors_is_never_published(coach: App) -> None:
    before = _next_walk(coach, "rae")
    for action in ("publish", "review", "preview"):
        answer = _post(coach, BROKEN, action, reviewed="anything")
        assert answer.status_code == 422, action
        assert _textarea(answer.text) == BROKEN
    assert _numbers(coach) == [1]
    assert _next_walk(coach, "rae") == before


def test_a_text_for_another_plan_is_refused_at_its_plan_line(coach: App) -> None:
    answer = _post(coach, ORIGINAL.replace("plan: walks-and-moods", "plan: other"), "check")
    assert answer.status_code == 422
    assert "at line 1, column" in answer.text
    assert "the two must be the same" in answer.text
    assert _numbers(coach) == [1]


def test_check_of_a_good_text_says_what_publishing_would_do(coach: App) -> None:
    answer = _post(coach, FIXED, "check")
    assert answer.status_code == 200
    assert "No errors" in answer.text
    assert "Publishing would make version 2" in answer.text
    assert _numbers(coach) == [1]


def test_preview_of_the_text_marks_the_clock_change(coach: App) -> None:
    answer = _post(coach, FIXED, "preview", start="2026-03-23", tz="Europe/Berlin")
    assert answer.status_code == 200
    page = answer.text
    assert "Preview of this text" in page
    assert "Clocks change Sun 29 Mar 2026" in page
    assert "times are UTC+02:00 from here (were UTC+01:00)" in page
    assert "Mon 23 Mar 2026 07:30" in page
    assert "Sun 29 Mar 2026 07:30" in page
    assert _textarea(page) == FIXED
    # A zone with no change that spring says so.
    page = _post(coach, FIXED, "preview", start="2026-03-23", tz="Asia/Tokyo").text
    assert "No clock change in Asia/Tokyo" in page


def test_review_shows_the_effect_and_changes_nothing(coach: App) -> None:
    before = _next_walk(coach, "rae")
    answer = _post(coach, FIXED, "review")
    assert answer.status_code == 200
    page = answer.text
    assert "Publish version 2?" in page
    assert re.search(r"4 enrollments change: \+\d+ added, ~\d+ changed, -0 cancelled", page, re.I)
    for name in ("Rae Example", "Sam Rivera", "Dee Okafor"):
        assert name in page
    assert '<button type="submit" name="action" value="publish">Publish version 2</button>' in page
    assert _numbers(coach) == [1]
    assert _next_walk(coach, "rae") == before


def test_publishing_makes_version_two_and_enrollments_follow_it(coach: App) -> None:
    reviewed = _reviewed(_post(coach, FIXED, "review").text)
    answer = _post(coach, FIXED, "publish", reviewed=reviewed, note="earlier walks")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/dashboard/plans/{PLAN_ID}"
    page = coach.client.get(f"/dashboard/plans/{PLAN_ID}").text
    assert "Version 2 published:" in page
    assert "earlier walks" in page
    assert "dashboard" in page
    assert _numbers(coach) == [1, 2]
    stored = publishing.version(coach.runtime, PLAN_ID, 2)
    assert stored.yaml == FIXED
    assert stored.published_by == "dashboard"
    new_york = ZoneInfo("America/New_York")
    instant, due, version = _next_walk(coach, "rae")
    assert instant.astimezone(new_york).time() == time(7, 30)
    assert due == instant
    assert version == 2
    with reading(coach.runtime.engine) as conn:
        rae = enrollment_rows.get_enrollment(conn, coach.cohort.enrollments["rae"])
    assert rae.plan_version == 2
    # Publishing the same text again stores nothing.
    reviewed = _reviewed(_post(coach, FIXED, "review").text)
    assert reviewed == ""
    assert _numbers(coach) == [1, 2]


def test_a_text_changed_after_its_review_is_reviewed_again(coach: App) -> None:
    reviewed = _reviewed(_post(coach, FIXED, "review").text)
    answer = _post(coach, FIXED.replace("07:30", "07:45"), "publish", reviewed=reviewed)
    assert answer.status_code == 200
    assert "The text changed since it was reviewed" in answer.text
    assert _numbers(coach) == [1]


def _publish(coach: App, text: str) -> None:
    reviewed = _reviewed(_post(coach, text, "review").text)
    answer = _post(coach, text, "publish", reviewed=reviewed)
    assert answer.status_code == 303, answer.text


def test_versions_are_listed_viewed_compared_and_restored(coach: App) -> None:
    _publish(coach, FIXED)
    page = coach.client.get(f"/dashboard/plans/{PLAN_ID}").text
    assert 'data-version="2"' in page
    assert 'data-version="1"' in page
    assert f'href="/dashboard/plans/{PLAN_ID}/diff?a=1&amp;b=2"' in page
    diff = coach.client.get(f"/dashboard/plans/{PLAN_ID}/diff?a=1&b=2")
    assert diff.status_code == 200
    assert '<span class="del"><span class="sr-only">removed: </span>-    at: &#34;09:00&#34;' in (
        diff.text
    )
    assert '<span class="add"><span class="sr-only">added: </span>+    at: &#34;07:30&#34;' in (
        diff.text
    )
    backwards = coach.client.get(f"/dashboard/plans/{PLAN_ID}/diff?a=2&b=1").text
    assert "-    at: &#34;07:30&#34;" in backwards
    assert coach.client.get(f"/dashboard/plans/{PLAN_ID}/diff?a=1&b=9").status_code == 404
    one = coach.client.get(f"/dashboard/plans/{PLAN_ID}/versions/1")
    assert one.status_code == 200
    assert "at: &#34;09:00&#34;" in one.text
    assert "Restore: open this text in the editor" in one.text
    restored = coach.client.get(f"{EDIT}?version=1")
    assert _textarea(restored.text) == ORIGINAL
    assert "to publish again as a new version" in restored.text
    _publish(coach, ORIGINAL)  # rolling back is publishing the old text again
    assert _numbers(coach) == [1, 2, 3]
    instant, _, version = _next_walk(coach, "rae")
    assert instant.astimezone(ZoneInfo("America/New_York")).time() == time(9, 0)
    assert version == 3


def test_a_version_shows_the_templates_it_uses(coach: App) -> None:
    plan = coach.runtime.plans.get(PLAN_ID)
    assert plan is not None
    names = sorted(coach.runtime.plans.templates(plan))
    page = coach.client.get(f"/dashboard/plans/{PLAN_ID}/versions/1").text
    for name in names:
        assert f"<code>{name}</code>" in page
    if names:
        assert "#template-1" in coach.client.get(f"/dashboard/plans/{PLAN_ID}").text


def test_a_new_plan_from_a_copy(coach: App) -> None:
    asked = coach.client.get(f"/dashboard/new-plan?copy={PLAN_ID}")
    assert asked.status_code == 200
    assert 'id="new-id"' in asked.text
    page = coach.client.get(f"/dashboard/new-plan?copy={PLAN_ID}&id=walks-spring")
    assert page.status_code == 200
    text = _textarea(page.text)
    assert text == ORIGINAL.replace("plan: walks-and-moods", "plan: walks-spring")
    taken = _post(coach, ORIGINAL, "review", path="/dashboard/new-plan")
    assert taken.status_code == 422
    assert "a plan &#39;walks-and-moods&#39; exists already" in taken.text
    reviewed = _reviewed(_post(coach, text, "review", path="/dashboard/new-plan").text)
    assert reviewed
    answer = _post(coach, text, "publish", path="/dashboard/new-plan", reviewed=reviewed)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/plans/walks-spring"
    assert "Version 1 published" in coach.client.get("/dashboard/plans/walks-spring").text
    assert _numbers(coach, "walks-spring") == [1]
    assert _numbers(coach) == [1]
    assert "walks-spring" in coach.client.get("/dashboard/plans").text
    assert coach.client.get("/dashboard/new-plan?copy=nothing&id=x").status_code == 404


def test_editing_without_the_csrf_token_or_from_another_site_is_refused(coach: App) -> None:
    token = coach.csrf(EDIT)
    for form, headers in (
        ({"text": FIXED, "action": "publish"}, {}),
        ({"text": FIXED, "action": "publish", "csrf": "forged"}, {}),
        ({"text": FIXED, "action": "publish", "csrf": token}, {"Origin": "https://evil.example"}),
    ):
        answer = coach.client.post(EDIT, data=form, headers=headers, follow_redirects=False)
        assert answer.status_code == 403
        answer = coach.client.post("/dashboard/new-plan", data=form, headers=headers,
                                   follow_redirects=False)  # fmt: skip
        assert answer.status_code == 403
    assert _numbers(coach) == [1]
    assert coach.client.get(EDIT.replace("/dashboard", BASE + "/dashboard"), follow_redirects=False)


def test_the_workspace_needs_a_session(app: App) -> None:
    for path in (EDIT, f"/dashboard/plans/{PLAN_ID}/versions/1",
                 f"/dashboard/plans/{PLAN_ID}/diff", "/dashboard/new-plan"):  # fmt: skip
        answer = app.client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
    answer = app.client.post(EDIT, data={"csrf": "x", "text": FIXED, "action": "publish"},
                             follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303
    assert _numbers(app) == [1]


def test_a_large_plan_fits_the_editor_form(coach: App) -> None:
    padded = FIXED + "# " + "x" * 60 + "\n" * 1  # comments are kept as written
    long = padded + "".join(f"# comment line {n}: {'y' * 60}\n" for n in range(800))
    answer = _post(coach, long, "check")
    assert answer.status_code == 200
    assert _textarea(answer.text) == long
