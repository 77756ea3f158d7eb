"""The JSON API (`/api/...`): every route's happy path and its refusals, and the admin
token on every route. Each test runs on SQLite and on PostgreSQL (`db_url`).

Sections: the token; participants (create, read, list and its filters, change, and a
change of zone or variables that moves reminders); the calendar feed URL; test
messages; the consent log; enrollments; plans and previews; replies and adherence
(with reminders really sent by the scheduler and a worker); the OpenAPI document.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import select

from service import cli, report
from service.actions.inbound_sms import handle_sms
from service.channels.base import ChannelError
from service.clock import ManualClock
from service.runtime import Runtime
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.storage.tables import deliveries, enrollments, occurrences
from service.web.api import RESOURCES as API_RESOURCES
from service.web.app import create_app
from tests.support.engine import (
    START,
    Folders,
    Harness,
    RecordingChannel,
    build_runtime,
    unpublish,
)

TOKEN = "api-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = START  # Monday 2 March 2026, 12:00 UTC: 07:00 in New York (EST)
RAE_PHONE = "+14155550123"

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
        message: "Breathe, {{ participant.first_name }}. Wake was {{ vars.wake }}."
"""

EVENING = """
    plan: evening
    title: Evening
    days: 7
    practices:
      - id: wind-down
        category: sleep
        title: Wind down
        at: "21:00"
        every: weekday
        channels: [email]
        message: "Lights low, {{ participant.first_name }}."
        check_in: {kind: rating, scale: [1, 5]}
"""


@dataclass
class Api:
    client: TestClient
    runtime: Runtime
    clock: ManualClock
    sms: RecordingChannel
    email: RecordingChannel
    folders: Folders

    def get(self, path: str, **params: Any) -> Response:
        return self.client.get(path, params=params)

    def post(self, path: str, body: Any = None) -> Response:
        return self.client.post(path, json=body)

    def patch(self, path: str, body: Any) -> Response:
        return self.client.patch(path, json=body)

    def person(self, name: str = "Rae Example", *, welcomed: bool = True, **fields: Any) -> str:
        """A participant added through the API. `welcomed`: as if their confirmation SMS
        had gone (the scheduler sends it; these tests do not run it), so that texts to
        them may go."""
        body = {"name": name, "timezone": "America/New_York", **fields}
        made = self.post("/api/participants", body)
        assert made.status_code == 201, made.text
        person = str(made.json()["id"])
        if welcomed and fields.get("phone"):
            with transaction(self.runtime.engine) as conn:
                participant_rows.welcomed(conn, person, self.runtime.clock.now())
        return person

    def enroll(self, participant: str, plan: str = "calm", **fields: Any) -> dict[str, Any]:
        body = {"participant": participant, "plan": plan, "start": "2026-03-02", **fields}
        made = self.post("/api/enrollments", body)
        assert made.status_code == 201, made.text
        found: dict[str, Any] = made.json()
        return found


def ok(response: Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: Response, status: int, *words: str) -> str:
    """The `detail` of a refusal with `status`, checked to contain `words`."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    text = detail if isinstance(detail, str) else " ".join(item["msg"] for item in detail)
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    return text


@pytest.fixture
def api(db_url: str, folders: Folders) -> Iterator[Api]:
    folders.write_plan("calm", CALM)
    folders.write_plan("evening", EVENING)
    clock = ManualClock(NOW)
    sms, email = RecordingChannel("sms"), RecordingChannel("email")
    runtime = build_runtime(db_url, folders, clock, {"sms": sms, "email": email},
                            admin_token=TOKEN)  # fmt: skip
    try:
        client = TestClient(create_app(runtime), headers=AUTH)
        yield Api(client, runtime, clock, sms, email, folders)
    finally:
        runtime.close()


# --- the token ---------------------------------------------------------------------------


def api_routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) the app serves under /api, routers included."""
    found = [
        (method, str(context.path))
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute) and str(context.path).startswith("/api")
        for method in sorted(context.methods or ())
    ]
    return sorted(found)


def test_every_api_route_refuses_a_request_without_the_admin_token(api: Api) -> None:
    app = api.client.app
    routes = api_routes(app)
    assert len(routes) == 32  # every route of the API is here; none slipped past the router
    assert routes == sorted(
        (method, "/api" + route.path)
        for resource in API_RESOURCES
        for route in resource.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    )
    bare = TestClient(app)
    for method, path in routes:
        url = path.replace("{participant_id}", "p_aaaaaaaaaaaa").replace(
            "{enrollment_id}", "e_aaaaaaaaaaaa").replace("{plan_id}", "calm")  # fmt: skip
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            answer = bare.request(method, url, headers=headers, json={})
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            assert "admin bearer token" in answer.json()["detail"]


def test_with_the_token_the_api_answers(api: Api) -> None:
    assert ok(api.get("/api/participants")) == {"items": [], "total": 0, "limit": 100, "offset": 0}
    assert ok(api.get("/api/plans"))["total"] == 2


def test_without_a_configured_token_only_this_machine_may_use_the_api(
    db_url: str, folders: Folders
) -> None:
    runtime = build_runtime(db_url, folders, ManualClock(NOW), {"sms": RecordingChannel()})
    try:
        app = create_app(runtime)
        assert TestClient(app).get("/api/participants").status_code == 401
        local = TestClient(app, client=("127.0.0.1", 50000), base_url="http://localhost:8000")
        assert local.get("/api/participants").status_code == 200
        assert local.get("/api/participants", headers=AUTH).status_code == 200
        # A page elsewhere whose name resolves to 127.0.0.1 (DNS rebinding) gets nothing,
        # nor does another site's page posting through the browser.
        rebound = TestClient(app, client=("127.0.0.1", 50000), base_url="http://evil.test:8000")
        assert rebound.get("/api/participants").status_code == 401
        foreign = {"Origin": "https://evil.test"}
        assert local.get("/api/participants", headers=foreign).status_code == 401
    finally:
        runtime.close()


# --- participants ------------------------------------------------------------------------


def test_a_participant_is_created_read_and_listed(api: Api) -> None:
    made = ok(
        api.post(
            "/api/participants",
            {
                "name": "  Rae   Example ",
                "phone": "+1 (415) 555-0123",
                "email": " rae@example.com ",
                "timezone": "America/New_York",
                "variables": {"wake": " 06:30 "},
            },
        ),
        201,
    )
    assert made["id"].startswith("p_")
    assert made == {
        "id": made["id"],
        "name": "Rae Example",
        "phone": RAE_PHONE,
        "email": "rae@example.com",
        "timezone": "America/New_York",
        "variables": {"wake": "06:30"},
        "sms": "subscribed",
        "sms_paused_until": None,
        "email_unsubscribed": False,
        "created_at": "2026-03-02T12:00:00Z",
        "coach": None,
        "cohort": None,
        "language": None,
        "discreet": False,
        "quiet_hours": None,
        "enrollments": [],
    }
    assert ok(api.get(f"/api/participants/{made['id']}")) == made
    listed = ok(api.get("/api/participants"))
    assert listed == {"items": [made], "total": 1, "limit": 100, "offset": 0}
    # Only a name and a zone are needed.
    bare = ok(api.post("/api/participants", {"name": "Kai", "timezone": "Asia/Tokyo"}), 201)
    assert (bare["phone"], bare["email"], bare["variables"]) == (None, None, {})


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"name": "Rae", "timezone": "UTC", "phone": "555-0123"},
         ["'555-0123' is not a valid phone number", "E.164"]),
        ({"name": "Rae", "timezone": "UTC", "phone": "+1415555012"}, ["not a valid phone"]),
        ({"name": "Rae", "timezone": "UTC", "email": "rae.example.com"},
         ["'rae.example.com' is not an email address"]),
        ({"name": "Rae", "timezone": "America/New_Yrok"},
         ["unknown time zone 'America/New_Yrok'", "did you mean 'America/New_York'"]),
        ({"name": "Rae", "timezone": "UTC", "variables": {"wake": "7pm"}},
         ["variable 'wake'", "'7pm' is not a time"]),
        ({"name": "Rae", "timezone": "UTC", "variables": {"Wake": "07:00"}},
         ["'Wake' is not a variable name"]),
        ({"name": "   ", "timezone": "UTC"}, ["a name cannot be empty"]),
        ({"name": "Ra\x00e", "timezone": "UTC"}, ["NUL"]),
        ({"name": "Ra\x1be", "timezone": "UTC"}, ["a name cannot contain control characters"]),
        ({"name": "Rae"}, ["Field required"]),
        ({"name": "Rae", "timezone": "UTC", "nickname": "R"}, ["Extra inputs are not permitted"]),
        ({"name": "R" * 201, "timezone": "UTC"}, ["at most 200 characters"]),
    ],
)  # fmt: skip
def test_a_participant_with_bad_fields_is_refused_with_422(
    api: Api, body: dict[str, Any], words: list[str]
) -> None:
    refused(api.post("/api/participants", body), 422, *words)
    assert ok(api.get("/api/participants"))["total"] == 0


def test_a_second_participant_with_the_same_phone_is_refused_with_409(api: Api) -> None:
    api.person(phone=RAE_PHONE)
    again = api.post("/api/participants", {"name": "Rae Two", "timezone": "UTC",
                                           "phone": "+1 415 555 0123"})  # fmt: skip
    refused(again, 409, f"a participant with phone {RAE_PHONE} exists already")
    assert ok(api.get("/api/participants"))["total"] == 1


def test_an_unknown_or_malformed_participant_id(api: Api) -> None:
    refused(api.get("/api/participants/p_nobody00000"), 404, "no participant 'p_nobody00000'")
    refused(api.get("/api/participants/not an id"), 422, "String should match pattern")
    refused(api.patch("/api/participants/p_nobody00000", {"name": "X"}), 404, "no participant")


def test_participants_are_filtered_and_paged(api: Api) -> None:
    rae = api.person("Rae Example", phone=RAE_PHONE)
    sam = api.person("Sam Other")
    kai = api.person("Kai 100%_done", phone="+447911123456")
    jo = api.person("Jo", phone="+14155550188")
    api.enroll(rae)
    paused = api.enroll(sam)
    ok(api.post(f"/api/enrollments/{paused['id']}/pause"))
    api.enroll(kai, "evening")
    with transaction(api.runtime.engine) as conn:
        participant_rows.opt_out_sms(conn, kai, source="test", now=NOW)
        participant_rows.set_sms_pause(conn, jo, NOW + timedelta(days=2), source="test", now=NOW)

    def names(**params: Any) -> list[str]:
        return [p["name"] for p in ok(api.get("/api/participants", **params))["items"]]

    everyone = ["Rae Example", "Sam Other", "Kai 100%_done", "Jo"]
    assert sorted(names()) == sorted(everyone)
    assert sorted(names(plan="calm")) == ["Rae Example", "Sam Other"]
    assert names(plan="calm", status="paused") == ["Sam Other"]
    assert names(status="active", plan="evening") == ["Kai 100%_done"]
    assert names(plan="nothing-here") == []
    assert names(sms="opted_out") == ["Kai 100%_done"]
    assert names(sms="paused") == ["Jo"]
    assert sorted(names(sms="subscribed")) == ["Rae Example", "Sam Other"]
    assert names(name="EXAMPLE") == ["Rae Example"]
    assert names(name="%") == ["Kai 100%_done"]  # a literal percent sign, not a wildcard
    assert names(name="_") == ["Kai 100%_done"]
    assert names(name="o", sms="paused") == ["Jo"]
    paused_jo = ok(api.get(f"/api/participants/{jo}"))
    assert paused_jo["sms"] == "paused"
    assert paused_jo["sms_paused_until"] == "2026-03-04T12:00:00Z"
    listed = ok(api.get("/api/participants"))["items"]
    rae_row = next(p for p in listed if p["id"] == rae)
    assert [(e["plan"], e["status"]) for e in rae_row["enrollments"]] == [("calm", "active")]

    page = ok(api.get("/api/participants", limit=2, offset=1))
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (4, 2, 1, 2)
    assert [p["id"] for p in page["items"]] == [p["id"] for p in listed[1:3]]
    assert ok(api.get("/api/participants", offset=10))["items"] == []
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"status": "sleeping"},
                   {"sms": "maybe"}, {"plan": "Not A Plan"}):  # fmt: skip
        assert api.get("/api/participants", **params).status_code == 422, params


def test_a_participant_is_changed_field_by_field(api: Api) -> None:
    rae = api.person(phone=RAE_PHONE, email="rae@example.com")
    other = api.person("Sam Other", phone="+14155550188")
    changed = ok(api.patch(f"/api/participants/{rae}", {"name": "Rae  Changed"}))
    assert (changed["name"], changed["phone"], changed["email"]) == (
        "Rae Changed", RAE_PHONE, "rae@example.com")  # fmt: skip
    changed = ok(api.patch(f"/api/participants/{rae}", {"phone": "+1 415 555 0199",
                                                         "email": None}))  # fmt: skip
    assert (changed["phone"], changed["email"]) == ("+14155550199", None)
    assert ok(api.patch(f"/api/participants/{rae}", {})) == changed  # nothing asked, nothing done
    assert ok(api.patch(f"/api/participants/{rae}", {"phone": "+14155550199"})) == changed
    refused(api.patch(f"/api/participants/{rae}", {"phone": "+1 415 555 0188"}), 409,
            "a participant with phone +14155550188 exists already", other)  # fmt: skip
    refused(api.patch(f"/api/participants/{rae}", {"name": None}), 422, "name cannot be null")
    refused(api.patch(f"/api/participants/{rae}", {"timezone": None}), 422, "timezone cannot")
    refused(api.patch(f"/api/participants/{rae}", {"phone": "12"}), 422, "not a valid phone")
    refused(api.patch(f"/api/participants/{rae}", {"sms": "opted_out"}), 422, "Extra inputs")
    assert ok(api.get(f"/api/participants/{rae}")) == changed


def _instants(api: Api, enrollment_id: str) -> dict[str, datetime]:
    with transaction(api.runtime.engine) as conn:
        rows = conn.execute(
            select(occurrences.c.key, occurrences.c.instant)
            .where(occurrences.c.enrollment_id == enrollment_id)
            .where(occurrences.c.state == "scheduled")
        )
        return {row.key: row.instant for row in rows}


def _pending_due(api: Api, enrollment_id: str) -> list[datetime]:
    with transaction(api.runtime.engine) as conn:
        rows = conn.execute(
            select(deliveries.c.due_at)
            .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
            .where(occurrences.c.enrollment_id == enrollment_id)
            .where(deliveries.c.state == "pending")
            .order_by(deliveries.c.due_at)
        )
        return [row.due_at for row in rows]


def test_a_new_time_zone_or_new_variables_move_the_reminders_still_ahead(api: Api) -> None:
    rae = api.person(phone=RAE_PHONE)
    active = api.enroll(rae)["id"]
    sam = api.person("Sam Other", phone="+14155550188")
    paused = api.enroll(sam)["id"]
    ok(api.post(f"/api/enrollments/{paused}/pause"))
    # 07:10 in New York (EST) is 12:10 UTC.
    assert _instants(api, active)["breathe:2026-03-03"] == datetime(2026, 3, 3, 12, 10, tzinfo=UTC)

    moved = ok(api.patch(f"/api/participants/{rae}", {"timezone": "Europe/London"}))
    assert moved["timezone"] == "Europe/London"
    instants = _instants(api, active)
    # London is on GMT: 07:10 there is 07:10 UTC. Today's has passed there, so today's
    # reminder (which was still ahead, at 12:10 UTC) is withdrawn; tomorrow's moves.
    assert "breathe:2026-03-02" not in instants
    assert instants["breathe:2026-03-03"] == datetime(2026, 3, 3, 7, 10, tzinfo=UTC)
    assert {(d.hour, d.minute) for d in _pending_due(api, active)} == {(7, 10)}

    ok(api.patch(f"/api/participants/{rae}", {"variables": {"wake": "06:00"}}))
    assert _instants(api, active)["breathe:2026-03-03"] == datetime(2026, 3, 3, 6, 10, tzinfo=UTC)
    nxt = ok(api.get(f"/api/enrollments/{active}"))["next_reminder"]
    assert nxt == {"practice": "breathe", "key": "breathe:2026-03-03",
                   "at": "2026-03-03T06:10:00Z", "local": "2026-03-03T06:10:00+00:00"}  # fmt: skip

    # A paused enrollment moves too, and stays paused: nothing of it becomes pending.
    ok(api.patch(f"/api/participants/{sam}", {"timezone": "Asia/Tokyo"}))
    assert _instants(api, paused)["breathe:2026-03-04"] == datetime(2026, 3, 3, 22, 10, tzinfo=UTC)
    assert _pending_due(api, paused) == []
    resumed = ok(api.post(f"/api/enrollments/{paused}/resume"))
    # 07:10 on Tuesday in Tokyo is 22:10 UTC on Monday: still ahead.
    assert resumed["next_reminder"]["local"] == "2026-03-03T07:10:00+09:00"
    assert resumed["next_reminder"]["at"] == "2026-03-02T22:10:00Z"


def test_a_change_an_enrollment_cannot_follow_changes_nothing(api: Api) -> None:
    rae = api.person(phone=RAE_PHONE, variables={"wake": "06:30"})
    enrolled = api.enroll(rae)["id"]
    before = ok(api.get(f"/api/participants/{rae}"))
    due = _pending_due(api, enrolled)
    # A variable that names another the plan does not have.
    refused(api.patch(f"/api/participants/{rae}", {"timezone": "Europe/London",
                                                    "variables": {"wake": "nap + 1h"}}),
            400, f"enrollment {enrolled} (calm) cannot follow the change", "nap")  # fmt: skip
    assert ok(api.get(f"/api/participants/{rae}")) == before
    assert _pending_due(api, enrolled) == due
    # A plan whose published versions no longer load: its reminders cannot be moved.
    unpublish(api.runtime, "calm")
    assert api.get("/api/plans/calm").status_code == 404
    refused(api.patch(f"/api/participants/{rae}", {"timezone": "Europe/London"}), 409,
            f"enrollment {enrolled} follows plan 'calm'", "cannot be read",
            "publish the plan again")  # fmt: skip
    assert ok(api.get(f"/api/participants/{rae}")) == before
    # What does not move reminders still changes.
    assert ok(api.patch(f"/api/participants/{rae}", {"name": "Rae E."}))["name"] == "Rae E."


# --- the calendar feed ---------------------------------------------------------------------


def test_the_feed_url_is_given_as_https_and_webcal_and_rotates(api: Api) -> None:
    rae = api.person(email="rae@example.com")
    api.enroll(rae, "evening")
    feed = ok(api.get(f"/api/participants/{rae}/feed"))
    assert feed["participant"] == rae
    assert feed["version"] == 1
    assert feed["url"].startswith("https://tend.test/calendar/")
    assert feed["url"].endswith(".ics")
    assert feed["webcal"] == "webcal://" + feed["url"].removeprefix("https://")
    old_path = feed["url"].removeprefix("https://tend.test")
    assert api.client.get(old_path).status_code == 200
    assert ok(api.get(f"/api/participants/{rae}/feed")) == feed  # the same URL, again

    rotated = ok(api.post(f"/api/participants/{rae}/feed/rotate"))
    assert rotated["version"] == 2
    assert rotated["url"] != feed["url"]
    assert rotated["webcal"] == "webcal://" + rotated["url"].removeprefix("https://")
    assert ok(api.get(f"/api/participants/{rae}/feed")) == rotated
    assert api.client.get(old_path).status_code == 404  # the old one is revoked
    assert api.client.get(rotated["url"].removeprefix("https://tend.test")).status_code == 200

    refused(api.get("/api/participants/p_nobody00000/feed"), 404, "no participant")
    refused(api.post("/api/participants/p_nobody00000/feed/rotate"), 404, "no participant")


# --- test messages -------------------------------------------------------------------------


def test_a_test_message_goes_out_through_the_channel(api: Api) -> None:
    rae = api.person(phone=RAE_PHONE, email="rae@example.com")
    sent = ok(api.post(f"/api/participants/{rae}/test-message", {"channel": "sms"}))
    assert sent == {"participant": rae, "channel": "sms", "to": RAE_PHONE,
                    "provider_id": "rec-1", "segments": 1}  # fmt: skip
    message = api.sms.sent[-1]
    assert (message.delivery_id, message.channel, message.to) == (None, "sms", RAE_PHONE)
    assert "Rae" in message.body
    ok(api.post(f"/api/participants/{rae}/test-message", {"channel": "sms", "text": "Hi “Rae”"}))
    assert api.sms.sent[-1].body == 'Hi "Rae"'  # cleaned for SMS like any reminder

    by_email = ok(api.post(f"/api/participants/{rae}/test-message", {"channel": "email"}))
    assert (by_email["channel"], by_email["to"]) == ("email", "rae@example.com")
    email = api.email.sent[-1]
    assert (email.delivery_id, email.to, email.subject) == (None, "rae@example.com",
                                                            "A test message from Tend")  # fmt: skip
    assert email.unsubscribe_url is not None
    assert email.unsubscribe_url.startswith("https://tend.test/unsubscribe/")


def test_a_test_message_respects_consent_and_needs_an_address(api: Api) -> None:
    rae = api.person(phone=RAE_PHONE, email="rae@example.com")
    kai = api.person("Kai")
    url = f"/api/participants/{rae}/test-message"
    refused(api.post(f"/api/participants/{kai}/test-message", {"channel": "sms"}), 409,
            "Kai has no phone number")  # fmt: skip
    refused(api.post(f"/api/participants/{kai}/test-message", {"channel": "email"}), 409,
            "Kai has no email address")  # fmt: skip
    with transaction(api.runtime.engine) as conn:
        participant_rows.set_sms_pause(conn, rae, NOW + timedelta(days=1), source="test", now=NOW)
    refused(api.post(url, {"channel": "sms"}), 409, "paused text messages until Tue 3 Mar 2026")
    with transaction(api.runtime.engine) as conn:
        participant_rows.opt_out_sms(conn, rae, source="sms:STOP", now=NOW)
        participant_rows.unsubscribe_email(conn, rae, source="email:list-unsubscribe", now=NOW)
    refused(
        api.post(url, {"channel": "sms"}), 409, "Rae Example opted out of text messages", "START"
    )
    refused(api.post(url, {"channel": "email"}), 409, "unsubscribed from email")
    assert api.sms.sent == []
    assert api.email.sent == []
    refused(api.post(url, {"channel": "calendar"}), 422, "'sms' or 'email'")
    refused(api.post(url, {"channel": "sms", "to": "+1"}), 422, "Extra inputs")
    refused(api.post(url, {"channel": "sms", "text": ""}), 422, "at least 1 character")
    refused(api.post(url), 422, "Field required")
    refused(api.post("/api/participants/p_nobody00000/test-message", {"channel": "sms"}),
            404, "no participant")  # fmt: skip


def test_a_channel_that_fails_gets_a_502_and_a_carriers_opt_out_a_409(api: Api) -> None:
    rae = api.person(phone=RAE_PHONE)
    api.sms.failures.append(ChannelError("carrier unreachable", permanent=False))
    refused(api.post(f"/api/participants/{rae}/test-message", {"channel": "sms"}), 502,
            "the sms channel did not send it: carrier unreachable")  # fmt: skip
    api.sms.failures.append(ChannelError("21610: unsubscribed", permanent=True, opted_out=True))
    refused(api.post(f"/api/participants/{rae}/test-message", {"channel": "sms"}), 409,
            "the sms provider refused: 21610: unsubscribed")  # fmt: skip
    assert api.sms.sent == []


# --- the consent log -----------------------------------------------------------------------


def test_the_consent_log_is_read_per_participant_and_for_all(api: Api) -> None:
    rae = api.person(phone=RAE_PHONE, welcomed=False)
    sam = api.person("Sam Other", phone="+14155550188", welcomed=False)
    with transaction(api.runtime.engine) as conn:
        participant_rows.opt_out_sms(conn, rae, source="sms:STOP", now=NOW)
        participant_rows.opt_in_sms(conn, rae, source="sms:START", now=NOW + timedelta(hours=1))
        participant_rows.opt_out_sms(conn, sam, source="twilio:21610", now=NOW + timedelta(hours=2))
    log = ok(api.get(f"/api/participants/{rae}/consent"))
    assert log["total"] == 3
    # Added through the API on the operator's word, then STOP and START by text.
    assert [(e["action"], e["source"], e["at"]) for e in log["items"]] == [
        ("consent", "api", "2026-03-02T12:00:00Z"),
        ("opt_out", "sms:STOP", "2026-03-02T12:00:00Z"),
        ("opt_in", "sms:START", "2026-03-02T13:00:00Z"),
    ]
    assert log["items"][0]["detail"] == "added by operator"
    assert {e["participant"] for e in log["items"]} == {rae}
    assert ok(api.get("/api/consent", participant=rae)) == log
    everyone = ok(api.get("/api/consent"))
    assert [e["participant"] for e in everyone["items"]] == [rae, sam, rae, rae, sam]
    page = ok(api.get("/api/consent", limit=1, offset=4))
    assert (page["total"], [e["source"] for e in page["items"]]) == (5, ["twilio:21610"])
    assert ok(api.get("/api/consent", participant="p_nobody00000"))["items"] == []
    refused(api.get("/api/participants/p_nobody00000/consent"), 404, "no participant")


# --- enrollments ---------------------------------------------------------------------------


def test_an_enrollment_is_created_and_read(api: Api) -> None:
    rae = api.person(phone=RAE_PHONE)
    made = ok(api.post("/api/enrollments", {"participant": rae, "plan": "calm",
                                             "start": "2026-03-02",
                                             "variables": {"wake": "06:45"}}), 201)  # fmt: skip
    assert made["id"].startswith("e_")
    assert made == {
        "id": made["id"],
        "participant": rae,
        "plan": "calm",
        "status": "active",
        "start": "2026-03-02",
        "last_day": "2026-03-15",
        "variables": {"wake": "06:45"},
        "created_at": "2026-03-02T12:00:00Z",
        "updated_at": "2026-03-02T12:00:00Z",
        # 06:55 New York today has passed (it is 07:00): tomorrow's is next.
        "next_reminder": {"practice": "breathe", "key": "breathe:2026-03-03",
                          "at": "2026-03-03T11:55:00Z", "local": "2026-03-03T06:55:00-05:00"},
    }  # fmt: skip
    assert ok(api.get(f"/api/enrollments/{made['id']}")) == made
    person = ok(api.get(f"/api/participants/{rae}"))
    assert person["enrollments"] == [{"id": made["id"], "plan": "calm", "status": "active"}]


def test_an_enrollment_starting_today_starts_on_the_participants_today(api: Api) -> None:
    # 12:00 UTC is already 02:00 on Tuesday on Kiritimati (UTC+14).
    kiri = api.person("Kiri", timezone="Pacific/Kiritimati")
    made = ok(api.post("/api/enrollments", {"participant": kiri, "plan": "calm",
                                             "start": "today"}), 201)  # fmt: skip
    assert made["start"] == "2026-03-03"
    ny = api.person("Rae", timezone="America/New_York")
    made = ok(api.post("/api/enrollments", {"participant": ny, "plan": "calm"}), 201)
    assert made["start"] == "2026-03-02"  # `today` is the default


def test_enrollment_refusals(api: Api) -> None:
    rae = api.person(phone=RAE_PHONE)
    first = api.enroll(rae)
    refused(api.post("/api/enrollments", {"participant": rae, "plan": "calm"}), 409,
            f"Rae Example is already enrolled in calm ({first['id']}, active)",
            "cancel that enrollment first")  # fmt: skip
    refused(api.post("/api/enrollments", {"participant": rae, "plan": "calmm"}), 404,
            "no plan 'calmm' is published", "did you mean 'calm'", "tend plans push")  # fmt: skip
    refused(api.post("/api/enrollments", {"participant": "p_nobody00000", "plan": "evening"}),
            404, "no participant 'p_nobody00000'")  # fmt: skip
    refused(api.post("/api/enrollments", {"participant": rae, "plan": "evening",
                                          "variables": {"wake": "07:00"}}),
            400, "plan 'evening' has no variable 'wake'")  # fmt: skip
    refused(api.post("/api/enrollments", {"participant": rae, "plan": "evening",
                                          "start": "2028-06-01"}),
            400, "start 2028-06-01 is too far from today (2026-03-02)")  # fmt: skip
    refused(api.post("/api/enrollments", {"participant": rae, "plan": "evening",
                                          "start": "2025-02-01"}), 400, "too far")  # fmt: skip
    refused(api.post("/api/enrollments", {"participant": rae, "plan": "evening",
                                          "start": "2026-02-30"}),
            422, "'2026-02-30' is not a date")  # fmt: skip
    refused(api.post("/api/enrollments", {"participant": rae, "plan": "evening",
                                          "start": "tomorrow"}), 422, "pattern")  # fmt: skip
    refused(api.post("/api/enrollments", {"participant": rae, "plan": "calm",
                                          "variables": {"wake": "7pm"}}),
            422, "'7pm' is not a time")  # fmt: skip
    refused(api.post("/api/enrollments", {"participant": rae, "plan": "Calm!"}), 422, "pattern")
    refused(api.post("/api/enrollments", {"participant": rae, "plan": "calm", "x": 1}), 422,
            "Extra inputs")  # fmt: skip
    assert ok(api.get("/api/enrollments"))["total"] == 1
    refused(api.get("/api/enrollments/e_nobody00000"), 404, "no enrollment 'e_nobody00000'")
    # Once the first is cancelled, enrolling again is fine.
    ok(api.post(f"/api/enrollments/{first['id']}/cancel"))
    assert api.enroll(rae)["status"] == "active"


def _delivery_states(api: Api, enrollment_id: str) -> dict[str, int]:
    with transaction(api.runtime.engine) as conn:
        rows = conn.execute(
            select(deliveries.c.state)
            .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
            .where(occurrences.c.enrollment_id == enrollment_id)
        )
        states: dict[str, int] = {}
        for (state,) in rows:
            states[state] = states.get(state, 0) + 1
        return states


def test_an_enrollment_is_paused_resumed_and_cancelled(api: Api) -> None:
    rae = api.person(phone=RAE_PHONE)
    made = api.enroll(rae)
    eid = made["id"]
    ahead = _delivery_states(api, eid)["pending"]
    assert ahead > 0

    paused = ok(api.post(f"/api/enrollments/{eid}/pause"))
    assert paused["status"] == "paused"
    assert paused["next_reminder"] is None
    assert _delivery_states(api, eid) == {"cancelled": ahead}
    assert ok(api.post(f"/api/enrollments/{eid}/pause")) == paused  # asked twice: no change
    assert ok(api.get("/api/enrollments", status="paused"))["items"] == [paused]

    resumed = ok(api.post(f"/api/enrollments/{eid}/resume"))
    assert resumed["status"] == "active"
    assert resumed["next_reminder"] == made["next_reminder"]
    assert _delivery_states(api, eid) == {"pending": ahead}
    assert ok(api.post(f"/api/enrollments/{eid}/resume")) == resumed

    cancelled = ok(api.post(f"/api/enrollments/{eid}/cancel"))
    assert cancelled["status"] == "cancelled"
    assert _delivery_states(api, eid) == {"cancelled": ahead}
    refused(api.post(f"/api/enrollments/{eid}/pause"), 409,
            f"enrollment {eid} is cancelled; it cannot be paused")  # fmt: skip
    refused(api.post(f"/api/enrollments/{eid}/resume"), 409, "is cancelled; it cannot be resumed")
    assert ok(api.post(f"/api/enrollments/{eid}/cancel"))["status"] == "cancelled"

    other = api.enroll(api.person("Sam"), "evening")["id"]
    with transaction(api.runtime.engine) as conn:
        enrollment_rows.set_enrollment_status(conn, other, "finished", now=NOW)
    refused(api.post(f"/api/enrollments/{other}/cancel"), 409,
            "is finished; it cannot be cancelled")  # fmt: skip
    for verb in ("pause", "resume", "cancel"):
        refused(api.post(f"/api/enrollments/e_nobody00000/{verb}"), 404, "no enrollment")
        refused(api.post(f"/api/enrollments/bad id/{verb}"), 422, "pattern")


def test_enrollments_are_filtered_and_paged(api: Api) -> None:
    rae = api.person(phone=RAE_PHONE)
    sam = api.person("Sam")
    a = api.enroll(rae)["id"]
    b = api.enroll(rae, "evening")["id"]
    c = api.enroll(sam)["id"]
    ok(api.post(f"/api/enrollments/{c}/pause"))

    def ids(**params: Any) -> list[str]:
        return sorted(e["id"] for e in ok(api.get("/api/enrollments", **params))["items"])

    assert ids() == sorted([a, b, c])
    assert ids(participant=rae) == sorted([a, b])
    assert ids(plan="calm") == sorted([a, c])
    assert ids(plan="calm", status="active") == [a]
    assert ids(status="paused") == [c]
    assert ids(participant="p_nobody00000") == []
    page = ok(api.get("/api/enrollments", limit=2, offset=2))
    assert (page["total"], len(page["items"])) == (3, 1)
    for params in ({"limit": 0}, {"status": "asleep"}, {"participant": "no such id!"}):
        assert api.get("/api/enrollments", **params).status_code == 422, params


# --- plans and previews --------------------------------------------------------------------


def test_plans_are_listed_and_read(api: Api) -> None:
    listed = ok(api.get("/api/plans"))
    assert (listed["total"], [p["id"] for p in listed["items"]]) == (2, ["calm", "evening"])
    calm = ok(api.get("/api/plans/calm"))
    assert calm == listed["items"][0]
    assert calm == {
        "id": "calm",
        "title": "Calm",
        "summary": "Breathe every morning.",
        "days": 14,
        "weeks": 2,
        "variables": {"wake": "07:00"},
        "practices": [
            {"id": "breathe", "title": "Breathe", "category": "mindfulness",
             "at": "wake + 10m", "every": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
             "rrule": None, "weeks": None, "duration_minutes": 15, "channels": ["sms"],
             "check_in": "done", "check_in_scale": None, "check_in_unit": None,
             "window_minutes": 720, "nudge_after_minutes": None},
        ],
    }  # fmt: skip
    evening = ok(api.get("/api/plans/evening"))["practices"][0]
    assert (evening["every"], evening["check_in"], evening["check_in_scale"]) == (
        ["mon", "tue", "wed", "thu", "fri"], "rating", [1, 5])  # fmt: skip
    assert ok(api.get("/api/plans", limit=1, offset=1))["items"][0]["id"] == "evening"
    refused(api.get("/api/plans/calmm"), 404, "no plan 'calmm'", "did you mean 'calm'")
    refused(api.get("/api/plans/Calm"), 422, "pattern")


def test_a_preview_is_the_same_object_as_the_commands(api: Api) -> None:
    env = {
        "TEND_DATABASE_URL": api.runtime.settings.database_url,
        "TEND_SCHEDULES_DIR": str(api.folders.schedules),
        "TEND_TEMPLATES_DIR": str(api.folders.templates),
        "TEND_SECRET_KEY": "test-secret",
        "TEND_PUBLIC_URL": "https://tend.test",
    }
    args = ["plans", "preview", "calm", "--start", "2026-03-09", "--tz", "Europe/Paris",
            "--var", "wake=06:00", "--format", "json"]  # fmt: skip
    command = CliRunner().invoke(cli.main, args, env=env, catch_exceptions=False)
    assert command.exit_code == 0, command.output
    preview = ok(api.get("/api/plans/calm/preview", start="2026-03-09", tz="Europe/Paris",
                         var=["wake=06:00"]))  # fmt: skip
    assert preview == json.loads(command.stdout)
    assert len(preview["occurrences"]) == 14
    first = preview["occurrences"][0]
    assert (first["local"], first["utc"]) == ("2026-03-09T06:10:00+01:00", "2026-03-09T05:10:00Z")
    assert first["text"] == "Breathe, Alex. Wake was 06:00."


def test_a_preview_for_a_participant_uses_their_name_zone_variables_and_enrollment(
    api: Api,
) -> None:
    rae = api.person("Rae Example", timezone="Asia/Kolkata", variables={"wake": "05:30"})
    preview = ok(api.get("/api/plans/calm/preview", participant=rae, start="2026-03-09"))
    assert preview["timezone"] == "Asia/Kolkata"
    first = preview["occurrences"][0]
    assert first["local"] == "2026-03-09T05:40:00+05:30"
    assert first["text"] == "Breathe, Rae. Wake was 05:30."
    # Without a start: today in their zone, or their enrollment's start.
    assert ok(api.get("/api/plans/calm/preview", participant=rae))["start"] == "2026-03-02"
    api.enroll(rae, start="2026-03-05", variables={"wake": "06:00"})
    enrolled = ok(api.get("/api/plans/calm/preview", participant=rae))
    assert enrolled["start"] == "2026-03-05"
    assert enrolled["occurrences"][0]["local"] == "2026-03-05T06:10:00+05:30"
    # The query's own zone and variables win.
    mine = ok(api.get("/api/plans/calm/preview", participant=rae, tz="UTC", var="wake=08:00"))
    assert (mine["timezone"], mine["occurrences"][0]["local"]) == (
        "UTC", "2026-03-05T08:10:00+00:00")  # fmt: skip


def test_preview_refusals(api: Api) -> None:
    url = "/api/plans/calm/preview"
    refused(api.get(url), 400, "give a time zone (tz), or a participant")
    refused(api.get(url, tz="Europe/Pariss"), 400, "unknown time zone 'Europe/Pariss'",
            "did you mean 'Europe/Paris'")  # fmt: skip
    refused(api.get(url, tz="UTC", start="1999-12-31"), 400, "start 1999-12-31 is out of range")
    refused(api.get(url, tz="UTC", start="2026-13-01"), 422, "date")
    refused(api.get(url, tz="UTC", var="nap=06:00"), 400, "plan 'calm' has no variable 'nap'")
    refused(api.get(url, tz="UTC", var="wake=7pm"), 400, "'7pm' is not a time")
    refused(api.get(url, tz="UTC", var="wake"), 422, "pattern")
    refused(api.get(url, participant="p_nobody00000"), 404, "no participant")
    refused(api.get("/api/plans/nothing/preview", tz="UTC"), 404, "no plan 'nothing'")


# --- replies and adherence, with reminders really sent -------------------------------------


@pytest.fixture
def driven(db_url: str, folders: Folders, clock: ManualClock) -> Iterator[tuple[Harness, Api]]:
    folders.write_plan("calm", CALM)
    folders.write_plan("evening", EVENING)
    sms, email = RecordingChannel("sms"), RecordingChannel("email")
    runtime = build_runtime(db_url, folders, clock, {"sms": sms, "email": email},
                            admin_token=TOKEN)  # fmt: skip
    harness = Harness(runtime, clock, sms, email)
    try:
        client = TestClient(create_app(runtime), headers=AUTH)
        yield harness, Api(client, runtime, clock, sms, email, folders)
    finally:
        harness.close()


def test_replies_are_listed_newest_first_and_filtered(driven: tuple[Harness, Api]) -> None:
    harness, api = driven
    rae = api.person(phone=RAE_PHONE)
    sam = api.person("Sam", phone="+14155550188")
    enrolled = api.enroll(rae)["id"]
    harness.at(datetime(2026, 3, 2, 12, 10, tzinfo=UTC))  # the reminder goes out
    assert [m.to for m in harness.sms.sent] == [RAE_PHONE]
    api.clock.set(datetime(2026, 3, 2, 12, 20, tzinfo=UTC))
    handle_sms(api.runtime, sid="SM1", sender=RAE_PHONE, body="Done!")
    api.clock.set(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))
    handle_sms(api.runtime, sid="SM2", sender="+14155550188", body="HELP")
    api.clock.set(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))
    handle_sms(api.runtime, sid="SM3", sender="+15550001111", body="who is this")

    listed = ok(api.get("/api/replies"))
    assert listed["total"] == 3
    assert [r["body"] for r in listed["items"]] == ["who is this", "HELP", "Done!"]
    done = listed["items"][2]
    assert {k: done[k] for k in ("participant", "channel", "sender", "understood",
                                 "occurrence", "practice", "received_at")} == {
        "participant": rae, "channel": "sms", "sender": RAE_PHONE, "understood": "done",
        "occurrence": "breathe:2026-03-02", "practice": "breathe",
        "received_at": "2026-03-02T12:20:00Z",
    }  # fmt: skip
    assert done["handled_at"] is not None
    assert done["answer"]
    assert listed["items"][0]["participant"] is None  # a number Tend does not know
    assert [r["body"] for r in ok(api.get("/api/replies", participant=rae))["items"]] == ["Done!"]
    assert [r["body"] for r in ok(api.get("/api/replies", participant=sam))["items"]] == ["HELP"]
    since = ok(api.get("/api/replies", since="2026-03-02T13:00:00Z"))["items"]
    assert [r["body"] for r in since] == ["who is this", "HELP"]
    # A time without an offset is UTC; one with an offset means that instant.
    assert ok(api.get("/api/replies", since="2026-03-02T13:00:01"))["total"] == 1
    assert ok(api.get("/api/replies", since="2026-03-02T08:00:00-05:00"))["total"] == 2
    page = ok(api.get("/api/replies", limit=1, offset=1))
    assert [r["body"] for r in page["items"]] == ["HELP"]
    refused(api.get("/api/replies", since="yesterday"), 422, "datetime")
    assert enrolled


def test_adherence_is_exactly_the_reports_json(driven: tuple[Harness, Api]) -> None:
    harness, api = driven
    rae = api.person(phone=RAE_PHONE, email="rae@example.com")
    sam = api.person("Sam Other", phone="+14155550188")
    api.enroll(rae)
    api.enroll(rae, "evening")
    api.enroll(sam)
    harness.at(datetime(2026, 3, 2, 12, 10, tzinfo=UTC))
    api.clock.set(datetime(2026, 3, 2, 12, 20, tzinfo=UTC))
    handle_sms(api.runtime, sid="SM1", sender=RAE_PHONE, body="done")
    harness.at(datetime(2026, 3, 3, 12, 10, tzinfo=UTC))  # Tuesday's: no answer
    api.clock.set(datetime(2026, 3, 4, 12, 0, tzinfo=UTC))

    everything = ok(api.get("/api/adherence"))
    assert everything == report.build(api.runtime).as_json()
    rae_calm = next(e for e in everything["participants"]
                    if e["participant"] == rae and e["plan"] == "calm")  # fmt: skip
    assert rae_calm["practices"][0] == {
        "practice": "breathe", "scheduled": 2, "done": 1, "skipped": 0, "missed": 1,
        "pending": 0, "completion_rate": 0.5, "current_streak": 0, "longest_streak": 1,
        "strength": rae_calm["practices"][0]["strength"],
    }  # fmt: skip
    assert (rae_calm["name"], rae_calm["status"], rae_calm["sms"]) == (
        "Rae Example", "active", "subscribed")  # fmt: skip
    mine = ok(api.get("/api/adherence", participant=rae))
    assert mine == report.build(api.runtime, participant_id=rae).as_json()
    assert {e["plan"] for e in mine["participants"]} == {"calm", "evening"}
    calm = ok(api.get("/api/adherence", plan="calm"))
    assert calm == report.build(api.runtime, plan_id="calm").as_json()
    assert {e["participant"] for e in calm["participants"]} == {rae, sam}
    both = ok(api.get("/api/adherence", participant=sam, plan="calm"))
    assert [e["participant"] for e in both["participants"]] == [sam]
    refused(api.get("/api/adherence", participant="p_nobody00000"), 404, "no participant")
    refused(api.get("/api/adherence", plan="nothing"), 404, "no plan 'nothing'")
    # A plan that can no longer be read still has its history.
    unpublish(api.runtime, "evening")
    refused(api.get("/api/plans/evening"), 404)
    gone = ok(api.get("/api/adherence", plan="evening"))
    assert [e["participant"] for e in gone["participants"]] == [rae]


# --- the OpenAPI document --------------------------------------------------------------------


def test_the_openapi_document_describes_every_route(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["AdminToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "TEND_ADMIN_TOKEN" in scheme["description"]
    assert "coach" in scheme["description"]
    described = sorted(
        (method.upper(), path)
        for path, item in document["paths"].items()
        if path.startswith("/api/")
        for method in item
    )
    assert described == api_routes(api.client.app)
    for method, path in described:
        operation = document["paths"][path][method.lower()]
        assert operation["tags"], (method, path)
        assert operation["security"] == [{"AdminToken": []}], (method, path)
        answers = operation["responses"]
        assert "401" in answers, (method, path)
        if method == "DELETE":  # erasure: 204, no body
            assert "204" in answers, (method, path)
            continue
        ok_status = "201" if method == "POST" and path in (
            "/api/participants", "/api/enrollments", "/api/cohorts") else "200"  # fmt: skip
        schema = answers[ok_status]["content"]["application/json"]["schema"]
        assert "$ref" in schema, (method, path)
    schemas = document["components"]["schemas"]
    for body in ("ParticipantCreate", "ParticipantUpdate", "EnrollmentCreate",
                 "TestMessageCreate"):  # fmt: skip
        assert schemas[body]["additionalProperties"] is False, body
    assert "name" not in schemas["ParticipantUpdate"].get("required", [])


def test_enrollment_rows_are_left_as_the_engine_would(api: Api) -> None:
    """The API enrolls through the same code as `tend enroll`: the row and its horizon."""
    rae = api.person(phone=RAE_PHONE)
    made = api.enroll(rae, variables={"wake": "06:45"})
    with transaction(api.runtime.engine) as conn:
        row = conn.execute(select(enrollments).where(enrollments.c.id == made["id"])).one()
    assert (row.plan_id, row.start_date, row.end_date, row.variables) == (
        "calm", date(2026, 3, 2), date(2026, 3, 16), {"wake": "06:45"})  # fmt: skip
    assert row.horizon == date(2026, 3, 16)  # 14 days ahead, the plan's end
