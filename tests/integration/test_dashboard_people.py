"""The dashboard's form to add one person (issue 17): `/dashboard/people/new`.

Adding with and without a plan, a coach's new person being theirs and in their cohort,
the consent log's record of the coach's word, refusals that keep what was typed (a
phone already in Tend is a 409), forms from another site or without their CSRF token,
and an enrollment refused after the person was added.

The cohort is tests/support/dashboard_seed.py's (see tests/integration/test_dashboard.py
for its fixtures, and tests/integration/test_dashboard_accounts.py for the coach
accounts, both reused here): coach Cora owns Rae and Sam, coach Ben owns Jo and Dee.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from service.actions import cohorts as groups
from service.actions.coaches import Actor, accounts
from service.actions.errors import Conflict
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import reading
from service.storage.tables import participants
from service.web import dashboard_people
from tests.integration.test_dashboard import (  # noqa: F401 (fixtures)
    App,
    Source,
    _app,
    db,
    source,
)
from tests.integration.test_dashboard_accounts import (  # noqa: F401 (fixtures)
    OTHER_SITE,
    People,
    people,
)
from tests.support.dashboard_seed import PLAN_ID

FORM = "/dashboard/people/new"
NEW = {
    "name": "Lena Ortiz",
    "phone": "+1 (415) 555-0177",
    "email": "lena@example.org",
    "timezone": "America/Chicago",
    "language": "es",
    "cohort": "",
    "plan": "",
    "when": "today",
    "start": "",
    "variables": "",
}


def _csrf(app: App) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', app.client.get(FORM).text)
    assert found, "no CSRF token on the form"
    return found.group(1)


def _post(app: App, **changes: str) -> Any:
    form = {**NEW, "csrf": _csrf(app), **changes}
    return app.client.post(FORM, data=form, follow_redirects=False)


def _count(app: App) -> int:
    with reading(app.runtime.engine) as conn:
        return int(conn.execute(select(func.count()).select_from(participants)).scalar_one())


def _person(app: App, location: str) -> Any:
    found = re.fullmatch(r"/dashboard/participants/(p_[A-Za-z0-9_-]+)", location)
    assert found, location
    with reading(app.runtime.engine) as conn:
        return participant_rows.get_participant(conn, found.group(1))


def _enrollments(app: App, participant_id: str) -> list[Any]:
    with reading(app.runtime.engine) as conn:
        return enrollment_rows.list_enrollments(conn, participant_id=participant_id)


def _consent(app: App, participant_id: str) -> list[dict[str, Any]]:
    with reading(app.runtime.engine) as conn:
        return participant_rows.consent_history(conn, participant_id)


@pytest.fixture
def app(people: People) -> App:  # noqa: F811 (the fixture)
    return people.app


# --- the form --------------------------------------------------------------------------


def test_the_form_asks_for_everything_and_says_what_adding_means(app: App) -> None:
    app.login()
    page = app.client.get(FORM)
    assert page.status_code == 200
    text = page.text
    for field in ("name", "phone", "email", "timezone", "language", "cohort", "plan", "when",
                  "start", "variables"):  # fmt: skip
        assert f'name="{field}"' in text, field
    assert "Mobile number, with its country code" in text
    assert '<option value="America/Chicago">' in text  # the zones' datalist
    assert "data-zone-guess" in text  # dashboard.js fills an empty zone
    assert "Adding someone is your word that they agreed to get these texts." in text
    assert "Their first text is a confirmation naming the program, with HELP and STOP." in text
    assert "<script>" not in text
    assert "<script nonce" not in text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = app.client.get("/dashboard/static/dashboard.js").text
    assert "resolvedOptions().timeZone" in script
    overview = app.client.get("/dashboard").text
    assert f'href="{FORM}"' in overview
    assert "Add a person" in overview


def test_the_form_needs_a_session(app: App) -> None:
    answer = app.client.get(FORM, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/dashboard/login?next=")


# --- adding ----------------------------------------------------------------------------


def test_adding_without_a_plan(app: App) -> None:
    app.login()
    answer = _post(app)
    assert answer.status_code == 303, answer.text
    person = _person(app, answer.headers["location"])
    assert (person.name, person.phone, person.email, person.timezone, person.language) == (
        "Lena Ortiz", "+14155550177", "lena@example.org", "America/Chicago", "es",
    )  # fmt: skip
    assert (person.coach_id, person.cohort_id) == (None, None)
    assert _enrollments(app, person.id) == []
    page = app.client.get(answer.headers["location"]).text
    assert "Added Lena Ortiz. They are in no plan yet" in page
    (entry,) = _consent(app, person.id)
    assert (entry["action"], entry["source"], entry["detail"]) == (
        "consent", "dashboard", "added by operator",
    )  # fmt: skip
    assert not app.sms.sent  # nothing is texted to someone in no plan


def test_adding_with_a_plan_enrolls_them_from_the_date(app: App) -> None:
    app.login()
    answer = _post(app, plan=PLAN_ID, when="date", start="2026-03-30",
                   variables="wake=06:30\n\n", language="es-mx")  # fmt: skip
    assert answer.status_code == 303, answer.text
    person = _person(app, answer.headers["location"])
    assert person.variables == {"wake": "06:30"}
    assert person.language == "es-MX"
    (enrollment,) = _enrollments(app, person.id)
    assert (enrollment.plan_id, enrollment.start_date, enrollment.status) == (
        PLAN_ID, date(2026, 3, 30), "active",
    )  # fmt: skip
    page = app.client.get(answer.headers["location"]).text
    assert "Added Lena Ortiz and enrolled them in Walks and moods from 2026-03-30." in page


def test_a_plan_from_their_own_today(app: App) -> None:
    app.login()
    answer = _post(app, plan=PLAN_ID, when="today", timezone="Pacific/Kiritimati")
    assert answer.status_code == 303, answer.text
    person = _person(app, answer.headers["location"])
    (enrollment,) = _enrollments(app, person.id)
    # 16:00 UTC on Thursday 26 March is already Friday in Kiritimati (UTC+14).
    assert enrollment.start_date == date(2026, 3, 27)


def test_a_coachs_new_person_is_theirs_and_in_their_cohort(people: People) -> None:  # noqa: F811
    app = people.app
    cora = Actor.of(next(a for a in accounts(app.runtime) if a.id == people.cora))
    ben = Actor.of(next(a for a in accounts(app.runtime) if a.id == people.ben))
    mornings = groups.create(app.runtime, name="Mornings", actor=cora)
    groups.create(app.runtime, name="Ben's evenings", actor=ben)
    people.sign_in("cora@example.org")
    form = app.client.get(FORM).text
    assert '<option value="Mornings">' in form
    assert "Ben&#39;s evenings" not in form
    assert "Ben's evenings" not in form
    answer = _post(app, cohort="Mornings", plan=PLAN_ID)
    assert answer.status_code == 303, answer.text
    person = _person(app, answer.headers["location"])
    assert (person.coach_id, person.cohort_id) == (people.cora, mornings.id)
    (entry,) = _consent(app, person.id)
    assert (entry["source"], entry["detail"]) == ("dashboard", f"added by {people.cora}")
    assert app.client.get(answer.headers["location"]).status_code == 200
    assert "Lena Ortiz" in app.client.get(f"/dashboard?cohort={mornings.id}").text
    # Ben does not see her.
    app.client.cookies.clear()
    people.sign_in("ben@example.org")
    assert app.client.get(answer.headers["location"]).status_code == 404


# --- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"name": "   "}, "a name cannot be empty"),
        ({"phone": "415 555 0177"}, "is not a valid phone number"),
        ({"email": "lena@"}, "email"),
        ({"language": "es_MX"}, "write es-MX, with a hyphen"),
        ({"variables": "wake 06:30"}, "one a line as name=HH:MM"),
        ({"variables": "wake=25:00"}, "variable &#39;wake&#39;"),
        ({"plan": "nope"}, "no plan &#39;nope&#39; is published"),
        ({"plan": PLAN_ID, "when": "date", "start": "soon"}, "choose a start date"),
    ],
)
def test_a_refusal_keeps_what_was_typed(app: App, changes: dict[str, str], said: str) -> None:
    app.login()
    before = _count(app)
    answer = _post(app, **{"variables": "wake=06:30", **changes})
    assert answer.status_code == 400, answer.text
    text = answer.text
    assert "Nobody was added:" in text
    assert said in text, text[text.find("Nobody") :][:300]
    typed = {**NEW, "variables": "wake=06:30", **changes}
    for key in ("name", "phone", "email", "timezone"):
        if typed[key].strip():
            assert f'value="{typed[key]}"' in text, key
    assert f">{typed['variables']}</textarea>" in text
    assert _count(app) == before
    assert not app.sms.sent


def test_a_phone_already_in_tend_is_a_conflict(app: App) -> None:
    app.login()
    before = _count(app)
    answer = _post(app, phone="+1 415 555 0101", plan=PLAN_ID)  # Rae's
    assert answer.status_code == 409
    assert "Nobody was added: a participant with phone +14155550101 exists already." in answer.text
    assert 'value="Lena Ortiz"' in answer.text
    assert 'value="+1 415 555 0101"' in answer.text
    assert f'<option value="{PLAN_ID}" selected>' in answer.text
    assert _count(app) == before


def test_forms_from_another_site_or_without_csrf_are_refused(app: App) -> None:
    app.login()
    csrf = _csrf(app)
    before = _count(app)
    for form, headers in (
        ({**NEW}, {}),
        ({**NEW, "csrf": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}, {}),
        ({**NEW, "csrf": csrf}, OTHER_SITE),
        ({**NEW, "csrf": csrf}, {"Sec-Fetch-Site": "cross-site"}),
    ):
        answer = app.client.post(FORM, data=form, headers=headers, follow_redirects=False)
        assert answer.status_code == 403, (form, headers)
    assert _count(app) == before
    app.client.cookies.clear()
    answer = app.client.post(FORM, data={**NEW, "csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/dashboard/login")
    assert _count(app) == before


def test_an_enrollment_refused_after_adding_is_said_on_their_page(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise Conflict("the plan is full today")

    monkeypatch.setattr(dashboard_people.enrolling, "enroll", refuse)
    app.login()
    answer = _post(app, plan=PLAN_ID)
    assert answer.status_code == 303
    person = _person(app, answer.headers["location"])
    assert _enrollments(app, person.id) == []
    page = app.client.get(answer.headers["location"]).text
    assert "Added, but not enrolled in Walks and moods: The plan is full today." in page
    assert "They are in Tend, in no plan" in page
    assert 'class="flash error"' in page


HOSTILE = {
    "NUL in the name": {"name": "Lena\x00Ortiz"},
    "a name of 10,000 characters": {"name": "a" * 10_000},
    "a zone with a NUL": {"timezone": "America/Chicago\x00"},
    "a zone that is a folder": {"timezone": "America"},
    "a language of 100 letters": {"language": "e" * 100},
    "a cohort name with a NUL": {"cohort": "Mornings\x00"},
    "a plan id with a NUL": {"plan": "walks\x00"},
    "a variable named like SQL": {"variables": "wake'; DROP TABLE participants;--=06:30"},
    "a variable with a NUL": {"variables": "wake=06:30\x00"},
    "a start date of the year 0": {"plan": PLAN_ID, "when": "date", "start": "0000-01-01"},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_values_are_refused_and_store_nothing(app: App, case: str) -> None:
    app.login()
    before = _count(app)
    answer = _post(app, **HOSTILE[case])
    assert answer.status_code == 400, (case, answer.status_code, answer.text[:300])
    assert "Nobody was added:" in answer.text
    assert "\x00" not in answer.text
    assert _count(app) == before


def test_a_form_over_the_cap_is_refused(app: App) -> None:
    app.login()
    before = _count(app)
    answer = _post(app, variables="wake=06:30\n" * 5_000)
    assert answer.status_code == 413
    assert _count(app) == before
