"""Each action gives the same outcome through every entry point that offers it.

An action is done once (`service.actions`); the command line, the JSON API, the
dashboard and SMS only parse and present. Here each case builds the same small world
(Rae, enrolled in a plan, on a manual clock), does one thing through one entry point,
and compares what that entry point said, and what the database holds afterwards, with
the action called directly on a world of its own. The three places where the entry
points used to disagree are cases: pausing a paused enrollment (a no-op everywhere),
resuming one whose plan changed under it (refused everywhere, and it stays paused), and
a carrier opt-out met by a test message (recorded as the delivery path records it).
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import cli
from service.actions import enrollments as enrolling
from service.actions import messages
from service.actions import participants as people
from service.actions.errors import ActionError, NotFound
from service.channels.base import ChannelError
from service.clock import ManualClock
from service.engine.delivery import deliver
from service.runtime import Runtime
from service.storage import deliveries as delivery_rows
from service.storage import enrollments as enrollment_rows
from service.storage import participants as participant_rows
from service.storage.db import reading, transaction
from service.storage.tables import consent_log, deliveries, enrollments, occurrences
from service.web.app import create_app
from tests.support.engine import (
    START,
    Folders,
    RecordingChannel,
    make_folders,
    publish,
    published_runtime,
    settings_for,
    sqlite_url,
)
from tests.support.twilio_signing import twilio_signature

ADMIN = "one-action-admin"
TWILIO = "one-action-twilio-token"
TEND_NUMBER = "+15005550006"
RAE = "+14155550123"
BASE = "https://tend.test"

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
        channels: [sms, email]
        message: "Breathe, {{ participant.first_name }}."
"""

# The same plan without its variable: an enrollment that overrides `wake` cannot follow.
CALM_WITHOUT_WAKE = """
    plan: calm
    title: Calm
    summary: Breathe every morning.
    weeks: 2
    practices:
      - id: breathe
        category: mindfulness
        title: Breathe
        at: "07:10"
        channels: [sms, email]
        message: "Breathe, {{ participant.first_name }}."
"""

WALKS = """
    plan: walks
    title: Walks
    weeks: 1
    practices:
      - id: walk
        category: movement
        title: Walk
        at: "17:00"
        channels: [sms]
        message: "A walk, {{ participant.first_name }}?"
"""


# --- the world --------------------------------------------------------------------------


@dataclass
class World:
    runtime: Runtime
    clock: ManualClock
    sms: RecordingChannel
    email: RecordingChannel
    folders: Folders
    client: TestClient
    rae: str
    enrollment: str

    def ids(self, text: str) -> str:
        """`text` with this world's ids in words, to compare with another world's."""
        return text.replace(self.enrollment, "<enrollment>").replace(self.rae, "<rae>")


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[[str], World]]:
    """Worlds of their own, each on a fresh SQLite database: what is compared is the
    entry points, which do not depend on the database (both databases are tested under
    the actions by the rest of the suite)."""
    made: list[World] = []

    def make(state: str) -> World:
        root = tmp_path / f"world{len(made)}"
        folders = make_folders(root)
        folders.write_plan("calm", CALM)
        folders.write_plan("walks", WALKS)
        settings = settings_for(
            sqlite_url(root),
            folders,
            admin_token=ADMIN,
            public_url=BASE,
            twilio_account_sid="AC" + "0" * 32,
            twilio_auth_token=TWILIO,
            twilio_from=TEND_NUMBER,
        )
        clock = ManualClock(START)  # Monday 2 March 2026, 07:00 in New York
        sms, email = RecordingChannel("sms"), RecordingChannel("email")
        runtime = published_runtime(settings, clock=clock, channels={"sms": sms, "email": email})
        rae = people.create(
            runtime, name="Rae Example", timezone="America/New_York", phone=RAE,
            email="rae@example.com",
        ).id  # fmt: skip
        with transaction(runtime.engine) as conn:  # her confirmation SMS went before
            participant_rows.welcomed(conn, rae, clock.now())
        plan = enrolling.running_plan(runtime, "calm")
        overrides = {"wake": "06:30"} if state == "plan-changed" else {}
        enrollment = enrolling.enroll(runtime, rae, plan, date(2026, 3, 2), overrides).id
        if state in ("paused", "plan-changed"):
            enrolling.pause(runtime, enrollment)
        if state == "cancelled":
            enrolling.cancel(runtime, enrollment)
        if state == "plan-changed":  # a version it cannot follow: it stays on its own
            folders.write_plan("calm", CALM_WITHOUT_WAKE)
            refusals = [line.enrollment_id for line in publish(runtime) if line.error]
            assert refusals == [enrollment]
        if state == "opted-out":
            with runtime.engine.begin() as conn:
                participant_rows.opt_out_sms(conn, rae, source="sms:STOP", now=clock.now())
        if state == "carrier-stop":  # the carrier refuses: the number opted out there
            sms.failures.append(
                ChannelError("unsubscribed recipient", permanent=True, code="21610", opted_out=True)
            )
        client = TestClient(create_app(runtime), base_url=BASE)
        world = World(runtime, clock, sms, email, folders, client, rae, enrollment)
        made.append(world)
        return world

    yield make
    for world in made:
        world.client.close()
        world.runtime.close()


def snapshot(world: World) -> dict[str, Any]:
    """What the database holds about the world's people, without ids or times."""
    with reading(world.runtime.engine) as conn:
        who = {
            p.id: (p.name, p.phone, p.email, p.timezone, p.sms_state, p.feed_version,
                   p.email_unsubscribed, p.sms_paused(world.clock.now()))
            for p in participant_rows.list_participants(conn)
        }  # fmt: skip
        plans = sorted(
            (who[e.participant_id][0], e.plan_id, e.status, e.start_date, tuple(e.variables))
            for e in enrollment_rows.list_enrollments(conn)
        )
        consent = sorted(
            (row.channel, row.action) for row in conn.execute(consent_log.select()).mappings()
        )
        sends = Counter(
            (row.channel, row.kind, row.state, row.last_error)
            for row in conn.execute(
                deliveries.select()
                .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
                .join(enrollments, enrollments.c.id == occurrences.c.enrollment_id)
            ).mappings()
        )
    return {
        "people": sorted(who.values()),
        "enrollments": plans,
        "consent": consent,
        "deliveries": sorted(sends.items()),
        "sent": [(m.channel, m.to) for m in world.sms.sent + world.email.sent],
    }


# --- what an entry point said -------------------------------------------------------------


@dataclass(frozen=True)
class Said:
    """`done`, `refused` (with the reason) or `missing` (no such thing); the command line
    cannot tell the two refusals apart, and says `failed`."""

    kind: str
    text: str | None = None


def agrees(reference: Said, said: Said) -> bool:
    if said.kind == "failed":
        return reference.kind in ("refused", "missing") and said.text == reference.text
    if said.kind != reference.kind:
        return False
    return said.text is None or reference.text is None or reference.text in said.text


def directly(world: World, act: Callable[[], Any]) -> Said:
    try:
        act()
    except NotFound as exc:
        return Said("missing", world.ids(exc.message))
    except ActionError as exc:
        return Said("refused", world.ids(exc.message))
    return Said("done")


def by_cli(world: World, monkeypatch: pytest.MonkeyPatch, *args: str) -> Said:
    monkeypatch.setattr(cli, "runtime", lambda **_: world.runtime)
    result = CliRunner().invoke(cli.main, list(args), catch_exceptions=False)
    if result.exit_code == 0:
        return Said("done")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("tend: "), result.stderr
    return Said("failed", world.ids(result.stderr.removeprefix("tend: ").strip()))


def by_api(world: World, method: str, path: str, body: Any = None) -> Said:
    answer = world.client.request(
        method, path, json=body, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    if answer.status_code < 300:
        return Said("done")
    detail = answer.json()["detail"]
    text = detail if isinstance(detail, str) else " ".join(item["msg"] for item in detail)
    kind = "missing" if answer.status_code == 404 else "refused"
    return Said(kind, world.ids(text))


FLASH = re.compile(r'<p class="flash (ok|error)" role="status">(.*?)</p>', re.S)


def by_dashboard(world: World, path: str, **form: str) -> Said:
    page = world.client.post("/dashboard/login", data={"token": ADMIN}, follow_redirects=True)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the dashboard"
    answer = world.client.post(path, data={"csrf": token.group(1), **form})
    if answer.status_code == 404:
        return Said("missing")
    assert answer.status_code == 200, answer.text
    found = FLASH.search(answer.text)
    assert found, "no message on the page"
    kind, text = found.group(1), html.unescape(found.group(2))
    if kind == "ok":
        return Said("done")
    return Said("refused", world.ids(text))


def by_sms(world: World, body: str) -> Said:
    params = [("MessageSid", "SM" + "1" * 32), ("AccountSid", "AC" + "0" * 32),
              ("From", RAE), ("To", TEND_NUMBER), ("Body", body)]  # fmt: skip
    signature = twilio_signature(TWILIO, f"{BASE}/twilio/sms", params)
    answer = world.client.post(
        "/twilio/sms",
        content=urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded",
                 "X-Twilio-Signature": signature},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return Said("done")


# --- enrollments: pause, resume, cancel -------------------------------------------------

ACTIONS = {"pause": enrolling.pause, "resume": enrolling.resume, "cancel": enrolling.cancel}
API_PATH = {"pause": "pause", "resume": "resume", "cancel": "cancel"}

STATUS_CASES = [
    ("pause", "active"),
    ("pause", "paused"),  # asked twice: no change, and no error, everywhere
    ("pause", "cancelled"),
    ("pause", "missing"),
    ("resume", "paused"),
    ("resume", "active"),
    ("resume", "cancelled"),
    ("resume", "plan-changed"),  # it resumes on the version it is on, everywhere
    ("cancel", "active"),
    ("cancel", "paused"),
    ("cancel", "cancelled"),
]


def _target(world: World, state: str) -> str:
    return "e_nosuchthing" if state == "missing" else world.enrollment


@pytest.mark.parametrize("entry", ["cli", "api", "dashboard"])
@pytest.mark.parametrize(("action", "state"), STATUS_CASES)
def test_an_enrollment_status_change_is_the_same_everywhere(
    make_world: Callable[[str], World],
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    state: str,
    entry: str,
) -> None:
    reference = make_world("active" if state == "missing" else state)
    expected = directly(
        reference, lambda: ACTIONS[action](reference.runtime, _target(reference, state))
    )
    world = make_world("active" if state == "missing" else state)
    target = _target(world, state)
    if entry == "cli":
        said = by_cli(world, monkeypatch, "enrollments", action, target)
    elif entry == "api":
        said = by_api(world, "POST", f"/api/enrollments/{target}/{API_PATH[action]}")
    else:
        said = by_dashboard(world, f"/dashboard/enrollments/{target}/{action}")
    assert agrees(expected, said), (expected, said)
    assert snapshot(world) == snapshot(reference)


def test_the_cases_cover_each_outcome(make_world: Callable[[str], World]) -> None:
    """The cases above are worth comparing: done, no-op, refused and missing all occur."""
    seen = set()
    for action, state in STATUS_CASES:
        world = make_world("active" if state == "missing" else state)
        act, target = ACTIONS[action], _target(world, state)
        seen.add(directly(world, lambda: act(world.runtime, target)).kind)  # noqa: B023
        if state == "plan-changed":  # resumed on its version: 06:30 + 10m, as it was
            with reading(world.runtime.engine) as conn:
                resumed = enrollment_rows.get_enrollment(conn, world.enrollment)
                ahead = conn.execute(
                    select(occurrences.c.instant)
                    .where(occurrences.c.enrollment_id == world.enrollment)
                    .where(occurrences.c.state == "scheduled")
                ).scalars()
                times = {
                    i.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M") for i in ahead
                }
            assert (resumed.status, resumed.plan_version) == ("active", 1)
            assert times == {"06:40"}
    assert seen == {"done", "refused", "missing"}


# --- participants: the feed, a test message, adding one, enrolling ----------------------


@pytest.mark.parametrize("entry", ["cli", "api", "dashboard"])
@pytest.mark.parametrize("who", ["rae", "missing"])
def test_rotating_a_feed_is_the_same_everywhere(
    make_world: Callable[[str], World], monkeypatch: pytest.MonkeyPatch, who: str, entry: str
) -> None:
    reference = make_world("active")
    pid = reference.rae if who == "rae" else "p_nosuchperson"
    expected = directly(reference, lambda: people.rotate_feed(reference.runtime, pid))
    world = make_world("active")
    pid = world.rae if who == "rae" else "p_nosuchperson"
    if entry == "cli":
        said = by_cli(world, monkeypatch, "participants", "feed-url", pid, "--rotate")
    elif entry == "api":
        said = by_api(world, "POST", f"/api/participants/{pid}/feed/rotate")
    else:
        said = by_dashboard(world, f"/dashboard/participants/{pid}/rotate-feed")
    assert agrees(expected, said), (expected, said)
    assert snapshot(world) == snapshot(reference)


@pytest.mark.parametrize("entry", ["api", "dashboard"])
@pytest.mark.parametrize(
    ("state", "channel"),
    [
        ("active", "sms"),
        ("active", "email"),
        ("opted-out", "sms"),
        ("carrier-stop", "sms"),  # the opt-out is recorded, as the delivery path does
        ("paused", "sms"),  # an enrollment's pause is not a pause of texts: it goes
    ],
)
def test_a_test_message_is_the_same_everywhere(
    make_world: Callable[[str], World], state: str, channel: str, entry: str
) -> None:
    reference = make_world(state)
    expected = directly(
        reference, lambda: messages.send_test(reference.runtime, reference.rae, channel)
    )
    world = make_world(state)
    if entry == "api":
        said = by_api(world, "POST", f"/api/participants/{world.rae}/test-message",
                      {"channel": channel})  # fmt: skip
    else:
        said = by_dashboard(world, f"/dashboard/participants/{world.rae}/test-message",
                            channel=channel)  # fmt: skip
    assert agrees(expected, said), (expected, said)
    assert snapshot(world) == snapshot(reference)
    if state == "carrier-stop":
        assert snapshot(world)["people"][0][4] == "opted_out"


@pytest.mark.parametrize("entry", ["cli", "api"])
@pytest.mark.parametrize(
    ("phone", "zone"),
    [
        ("+1 415 555 0199", "Europe/London"),
        (RAE, "Europe/London"),
        ("+1 415 555 0199", "Mars/Base"),
    ],
)
def test_adding_a_participant_is_the_same_everywhere(
    make_world: Callable[[str], World],
    monkeypatch: pytest.MonkeyPatch,
    phone: str,
    zone: str,
    entry: str,
) -> None:
    reference = make_world("active")
    expected = directly(
        reference,
        lambda: people.create(reference.runtime, name="Sam Rivera", timezone=zone, phone=phone),
    )
    world = make_world("active")
    if entry == "cli":
        said = by_cli(world, monkeypatch, "participants", "add", "--name", "Sam Rivera",
                      "--phone", phone, "--tz", zone)  # fmt: skip
    else:
        said = by_api(world, "POST", "/api/participants",
                      {"name": "Sam Rivera", "phone": phone, "timezone": zone})  # fmt: skip
    assert agrees(expected, said), (expected, said)
    assert snapshot(world) == snapshot(reference)


@pytest.mark.parametrize("entry", ["cli", "api"])
@pytest.mark.parametrize(
    ("plan", "start"),
    [("walks", "2026-03-02"), ("calm", "2026-03-02"), ("wakls", "2026-03-02"),
     ("walks", "2029-03-02")],
)  # fmt: skip
def test_enrolling_is_the_same_everywhere(
    make_world: Callable[[str], World],
    monkeypatch: pytest.MonkeyPatch,
    plan: str,
    start: str,
    entry: str,
) -> None:
    def act(world: World) -> None:
        enrolling.enroll(world.runtime, world.rae, enrolling.running_plan(world.runtime, plan),
                         date.fromisoformat(start), {})  # fmt: skip

    reference = make_world("active")
    expected = directly(reference, lambda: act(reference))
    world = make_world("active")
    if entry == "cli":
        said = by_cli(world, monkeypatch, "enroll", world.rae, plan, "--start", start)
    else:
        said = by_api(world, "POST", "/api/enrollments",
                      {"participant": world.rae, "plan": plan, "start": start})  # fmt: skip
    assert agrees(expected, said), (expected, said)
    assert snapshot(world) == snapshot(reference)


# --- an opt-out, from wherever it comes ---------------------------------------------------


def _stopped_by_sms(world: World) -> None:
    by_sms(world, "stop")


def _stopped_by_the_carrier_on_a_reminder(world: World) -> None:
    world.sms.failures.append(
        ChannelError("unsubscribed recipient", permanent=True, code="21610", opted_out=True)
    )
    world.clock.set(START + timedelta(minutes=11))  # the first reminder is due (07:10 NY)
    with world.runtime.engine.begin() as conn:
        claimed = delivery_rows.claim_due(conn, now=world.clock.now(), limit=10,
                                          lease=timedelta(minutes=2))  # fmt: skip
    for delivery_id in sorted(claimed):
        deliver(world.runtime, delivery_id)


def _stopped_by_the_carrier_on_a_test_message(world: World) -> None:
    world.sms.failures.append(
        ChannelError("unsubscribed recipient", permanent=True, code="21610", opted_out=True)
    )
    by_api(world, "POST", f"/api/participants/{world.rae}/test-message", {"channel": "sms"})


@pytest.mark.parametrize(
    "source",
    [_stopped_by_sms, _stopped_by_the_carrier_on_a_reminder,
     _stopped_by_the_carrier_on_a_test_message],
)  # fmt: skip
def test_an_opt_out_is_recorded_the_same_from_every_source(
    make_world: Callable[[str], World], source: Callable[[World], None]
) -> None:
    world = make_world("active")
    source(world)
    after = snapshot(world)
    (person,) = after["people"]
    assert person[4] == "opted_out"
    # Added (on the coach's word), confirmed by the first SMS, then stopped (the
    # snapshot lists them sorted).
    assert after["consent"] == [("sms", "consent"), ("sms", "opt_out"), ("sms", "welcome")]
    unsent_sms = [
        (key, count) for key, count in after["deliveries"]
        if key[0] == "sms" and key[2] in ("pending", "claimed", "sending")
    ]  # fmt: skip
    assert unsent_sms == []  # every text still to go is cancelled
    assert any(key[0] == "sms" and key[3] == "participant opted out of SMS"
               for key, _ in after["deliveries"])  # fmt: skip
    assert all(key[2] != "cancelled" for key, _ in after["deliveries"] if key[0] == "email")
