"""Schemathesis against the JSON API's own OpenAPI document (`/openapi.json`): for every
operation, requests generated from the document (its examples, the coverage phase's
edge cases, valid and invalid, and a few fuzzed ones) must get no server error, and
every answer must match the schema the document gives for its status.

On SQLite only (the PostgreSQL side of each route is in test_api.py). The database is
seeded first, and the generated ids are sometimes swapped for seeded ones, so that the
happy paths run too, not only the 404s. Deterministic: Hypothesis is derandomized
and schemathesis gets a fixed seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance

from service.actions.enrollments import enroll
from service.actions.inbound_sms import handle_sms
from service.clock import ManualClock
from service.runtime import Runtime
from service.settings import load_settings
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.web.app import create_app
from tests.support.engine import (
    Folders,
    RecordingChannel,
    published_runtime,
    settings_for,
    sqlite_url,
)

TOKEN = "schema-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PLAN = """
    plan: calm
    title: Calm
    weeks: 2
    variables:
      wake: "07:00"
    practices:
      - id: breathe
        category: mindfulness
        title: Breathe
        at: wake + 10m
        channels: [sms, email, calendar]
        message: "Breathe, {{ participant.first_name }}."
      - id: rate
        category: sleep
        title: Rate your sleep
        at: "08:00"
        every: weekday
        channels: [sms]
        message: "How did you sleep?"
        check_in: {kind: rating, scale: [1, 5]}
"""

pytestmark = pytest.mark.timeout(240)


# The seeded rows get these ids (the generated cases are built when the tests are
# collected, before any database exists, so the ids must be known beforehand).
PARTICIPANTS = ["p_rae000000001", "p_sam000000002", "p_kai000000003"]
ENROLLMENTS = ["e_rae000000001", "e_sam000000002", "e_sam000000003"]


# The app is made once, when this module is collected, for its OpenAPI document (the
# generated cases are built from it then). Each test gives it a runtime of its own, on a
# fresh seeded database, through the `served` fixture; until then it holds one that is
# never used (an in-memory database, never connected to).
APP = create_app(
    Runtime.build(
        load_settings(
            database_url="sqlite://",
            schedules_dir=Path(__file__).parent / "no-schedules-here",
            templates_dir=Path(__file__).parent / "no-templates-here",
            secret_key="test-secret",
            admin_token=TOKEN,
        ),
        channels={},
        check_schema=False,
    )
)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", APP, config=SchemathesisConfig.from_dict({"seed": 20260302})
).include(path_regex="^/api/")


@pytest.fixture
def served(tmp_path: Path, folders: Folders, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    folders.write_plan("calm", PLAN)
    fixed = iter(PARTICIPANTS + ENROLLMENTS)
    monkeypatch.setattr(participant_rows, "new_id", lambda prefix: next(fixed))
    monkeypatch.setattr(enrollment_rows, "new_id", lambda prefix: next(fixed))
    runtime = published_runtime(
        settings_for(sqlite_url(tmp_path), folders, admin_token=TOKEN),
        clock=ManualClock(NOW),
        channels={"sms": RecordingChannel("sms"), "email": RecordingChannel("email")},
    )
    unused = APP.state.runtime
    try:
        _seed(runtime)
        monkeypatch.undo()  # what the API makes gets ids of its own
        APP.state.runtime = runtime
        yield runtime
    finally:
        APP.state.runtime = unused
        runtime.close()


def _seed(runtime: Runtime) -> None:
    """Three people: Rae (texts and email, enrolled, one reply), Sam (opted out, one
    enrollment paused, one cancelled) and Kai (no phone, unsubscribed from email)."""
    with transaction(runtime.engine) as conn:
        rae = participant_rows.add_participant(
            conn,
            name="Rae Example",
            timezone="America/New_York",
            phone="+14155550199",
            email="rae@example.com",
            now=NOW,
        )
        sam = participant_rows.add_participant(
            conn,
            name="Sam Other",
            timezone="Europe/London",
            phone="+447911123456",
            variables={"wake": "06:00"},
            now=NOW,
        )
        kai = participant_rows.add_participant(conn, name="Kai", timezone="Asia/Tokyo",
                                   email="kai@example.com", now=NOW)  # fmt: skip
        participant_rows.unsubscribe_email(conn, kai.id, source="test", now=NOW)
    plan = runtime.plans.get("calm")
    assert plan is not None
    first = enroll(runtime, rae.id, plan, date(2026, 3, 2), {})
    paused = enroll(runtime, sam.id, plan, date(2026, 3, 2), {"wake": "06:30"})
    with transaction(runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, paused.id, "paused", now=NOW)
        enrollment_rows.set_enrollment_status(conn, paused.id, "cancelled", now=NOW)
    again = enroll(runtime, sam.id, plan, date(2026, 3, 3), {})
    with transaction(runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, again.id, "paused", now=NOW)
    handle_sms(runtime, sid="SM0001", sender="+447911123456", body="STOP")
    handle_sms(runtime, sid="SM0002", sender="+14155550199", body="HELP")
    assert [rae.id, sam.id, kai.id] == PARTICIPANTS
    assert [first.id, paused.id, again.id] == ENROLLMENTS


ZONES = ["America/New_York", "Europe/London", "Asia/Kolkata"]


def flatmap_case(_context: Any, case: Any) -> st.SearchStrategy[Any]:
    """Half of the time, a case about seeded rows: ids that exist, a plan that exists,
    a real time zone, so that the happy paths run too (the generated ids are random)."""
    choices = st.tuples(
        st.sampled_from(PARTICIPANTS), st.sampled_from(ENROLLMENTS), st.sampled_from(ZONES)
    )
    return st.one_of(st.just(case), choices.map(lambda chosen: _seeded(case, *chosen)))


def _seeded(generated: Any, participant: str, enrollment: str, zone: str) -> Any:
    case = generated.derive()  # a copy: the generated case stays as it was
    values = {
        "participant_id": participant,
        "participant": participant,
        "enrollment_id": enrollment,
        "plan_id": "calm",
        "plan": "calm",
        "tz": zone,
        "start": "2026-03-02",
    }
    for part in (case.path_parameters, case.query):
        if isinstance(part, dict):
            part.update({key: values[key] for key in part if key in values})
    if case.method.upper() == "POST" and case.path == "/api/enrollments":
        case.body = {"participant": participant, "plan": "calm", "start": "2026-03-02"}
    if case.method.upper() == "PATCH":  # a new zone and variables: reminders re-planned
        case.body = {"timezone": zone, "variables": {"wake": "06:15"}}
    return case


schema.hook(flatmap_case)


@schema.parametrize()
@settings(
    max_examples=15,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_answers_as_its_openapi_document_says(case: Any, served: Runtime) -> None:
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error, response_schema_conformance])
