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
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service import cli
from service.actions import cohorts as groups
from service.actions import data_rights, imports, messages
from service.actions import enrollments as enrolling
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
from service.storage.tables import (
    audit_log,
    cohorts,
    consent_log,
    deliveries,
    enrollments,
    metadata,
    occurrences,
    signups,
    suppressed_numbers,
)
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
    others: dict[str, str] = field(default_factory=dict)  # more ids, and their words

    def ids(self, text: str) -> str:
        """`text` with this world's ids in words, to compare with another world's."""
        text = text.replace(self.enrollment, "<enrollment>").replace(self.rae, "<rae>")
        for made, word in self.others.items():
            text = text.replace(made, word)
        return text


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
        if state in ("replied", "opted-out-replied"):  # a reminder went, and she answered
            clock.set(START + timedelta(minutes=11))
            with runtime.engine.begin() as conn:
                claimed = delivery_rows.claim_due(conn, now=clock.now(), limit=10,
                                                  lease=timedelta(minutes=2))  # fmt: skip
            for delivery_id in sorted(claimed):
                deliver(runtime, delivery_id)
            by_sms(world, "done")
            if state == "opted-out-replied":
                by_sms(world, "stop", sid="2")
        return world

    yield make
    for world in made:
        world.client.close()
        world.runtime.close()


def snapshot(world: World) -> dict[str, Any]:
    """What the database holds about the world's people, without ids or times; and how
    many rows each table has (but the audit log, which says who asked: it differs by
    entry point, as it should)."""
    with reading(world.runtime.engine) as conn:
        groups_by_id = {row.id: row for row in conn.execute(cohorts.select())}
        who = {
            p.id: (p.name, p.phone, p.email, p.timezone, p.sms_state, p.feed_version,
                   p.email_unsubscribed, p.sms_paused(world.clock.now()),
                   p.language, tuple(sorted(p.variables.items())), p.coach_id,
                   groups_by_id[p.cohort_id].name if p.cohort_id else None,
                   p.welcomed_at is not None, p.discreet, p.quiet_hours)
            for p in participant_rows.list_participants(conn)
        }  # fmt: skip
        members = Counter(p.cohort_id for p in participant_rows.list_participants(conn))
        teams = sorted(
            (row.name, row.coach_id, row.plan_id, row.keyword, row.signup_token is not None,
             members[row.id])
            for row in groups_by_id.values()
        )  # fmt: skip
        joining = sorted(
            (groups_by_id[row.cohort_id].name, row.name, row.phone, row.timezone, row.source)
            for row in conn.execute(signups.select())
        )
        suppressed = sorted(conn.execute(select(suppressed_numbers.c.digest)).scalars())
        rows = {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
            if table is not audit_log
        }
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
        "cohorts": teams,
        "signups": joining,
        "suppressed": suppressed,  # keyed digests: the same key in every world
        "rows": rows,
    }


# --- what an entry point said -------------------------------------------------------------


Problems = tuple[tuple[int, str | None, str], ...]


@dataclass(frozen=True)
class Said:
    """`done`, `refused` (with the reason) or `missing` (no such thing); the command line
    cannot tell the two refusals apart, and says `failed`. A refused import also says
    its file's `problems` (line, column, message)."""

    kind: str
    text: str | None = None
    problems: Problems | None = None


def agrees(reference: Said, said: Said) -> bool:
    if reference.problems is not None or said.problems is not None:
        return said.kind == reference.kind and said.problems == reference.problems
    if said.kind == "failed":
        return reference.kind in ("refused", "missing") and said.text == reference.text
    if said.kind != reference.kind:
        return False
    if said.text is None or reference.text is None:
        return True
    as_sentence = reference.text[:1].upper() + reference.text[1:]  # a page's flash says so
    return reference.text in said.text or as_sentence in said.text


def on_a_page(reference: Said) -> Said:
    """What the dashboard says of a thing not found that is not the page's own (a plan
    named in a form, a person ticked on a cohort's page): a refusal with the same words
    on the page it returns to, where the 404 page is for the page's own thing."""
    return Said("refused", reference.text) if reference.kind == "missing" else reference


def directly(world: World, act: Callable[[], Any]) -> Said:
    try:
        act()
    except NotFound as exc:
        return Said("missing", world.ids(exc.message))
    except imports.ImportRejected as exc:
        return Said("refused", problems=tuple((e.line, e.column, e.message) for e in exc.errors))
    except ActionError as exc:
        return Said("refused", world.ids(exc.message))
    return Said("done")


def tend(world: World, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setattr(cli, "runtime", lambda **_: world.runtime)
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def by_cli(world: World, monkeypatch: pytest.MonkeyPatch, *args: str) -> Said:
    result = tend(world, monkeypatch, *args)
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
# A form that comes back with what was typed says why at its top (the add-a-person form).
FORM_ERROR = re.compile(r'<p class="error" role="alert">(.*?)</p>', re.S)


def signed_in(world: World) -> str:
    """The dashboard signed in with the admin token; its CSRF token."""
    page = world.client.post("/dashboard/login", data={"token": ADMIN}, follow_redirects=True)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the dashboard"
    return token.group(1)


def by_dashboard(world: World, path: str, **form: str) -> Said:
    answer = world.client.post(path, data={"csrf": signed_in(world), **form})
    if answer.status_code == 404:
        return Said("missing")
    again = FORM_ERROR.search(answer.text) if answer.status_code in (400, 409) else None
    if again is not None:
        return Said("refused", world.ids(html.unescape(again.group(1))))
    assert answer.status_code == 200, answer.text
    found = FLASH.search(answer.text)
    assert found, "no message on the page"
    kind, text = found.group(1), html.unescape(found.group(2))
    if kind == "ok":
        return Said("done")
    return Said("refused", world.ids(text))


def by_sms(world: World, body: str, sid: str = "1") -> Said:
    """A text from Rae; each of hers needs its own `sid` (Twilio's retries share one)."""
    params = [("MessageSid", "SM" + sid * 32), ("AccountSid", "AC" + "0" * 32),
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


@pytest.mark.parametrize("entry", ["cli", "api", "dashboard"])
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
    elif entry == "dashboard":
        said = by_dashboard(world, "/dashboard/people/new", name="Sam Rivera", phone=phone,
                            timezone=zone)  # fmt: skip
    else:
        said = by_api(world, "POST", "/api/participants",
                      {"name": "Sam Rivera", "phone": phone, "timezone": zone})  # fmt: skip
    assert agrees(expected, said), (expected, said)
    assert snapshot(world) == snapshot(reference)


@pytest.mark.parametrize("entry", ["cli", "api", "dashboard"])
@pytest.mark.parametrize(
    ("who", "language", "quiet_hours"),
    [
        ("rae", "es", "22:00-07:00"),
        ("rae", "", "off"),  # the deployment's language, and no quiet hours at all
        ("rae", "en", "25:00-07:00"),
        ("rae", "es_MX", "22:00-07:00"),
        ("missing", "es", "22:00-07:00"),
    ],
)
def test_changing_a_participants_settings_is_the_same_everywhere(
    make_world: Callable[[str], World],
    monkeypatch: pytest.MonkeyPatch,
    who: str,
    language: str,
    quiet_hours: str,
    entry: str,
) -> None:
    def target(world: World) -> str:
        return world.rae if who == "rae" else "p_nosuchperson"

    reference = make_world("active")
    changes = {"language": language or None, "discreet": True, "quiet_hours": quiet_hours}
    expected = directly(
        reference, lambda: people.update(reference.runtime, target(reference), changes)
    )
    world = make_world("active")
    pid = target(world)
    if entry == "cli":
        said = by_cli(world, monkeypatch, "participants", "set", pid, "--language",
                      language or "default", "--discreet", "--quiet", quiet_hours)  # fmt: skip
    elif entry == "api":
        said = by_api(world, "PATCH", f"/api/participants/{pid}", changes)
    else:
        said = by_dashboard(world, f"/dashboard/participants/{pid}/settings", language=language,
                            discreet="on", quiet_hours=quiet_hours)  # fmt: skip
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


# --- cohorts: add, change, put people in, enroll them all -----------------------------------


def with_cohorts(world: World) -> World:
    """Sam joins Rae; both are in the cohort Spring (people join it in Calm, by texting
    JOIN SPRING); Autumn is empty and has no plan."""
    sam = people.create(world.runtime, name="Sam Rivera", timezone="Europe/London",
                        phone="+14155550199").id  # fmt: skip
    spring = groups.create(world.runtime, name="Spring", plan="calm", keyword="spring").id
    autumn = groups.create(world.runtime, name="Autumn").id
    groups.add_members(world.runtime, spring, [world.rae, sam])
    world.others.update({sam: "<sam>", spring: "<spring>", autumn: "<autumn>"})
    return world


def _cohort(world: World, name: str) -> str:
    """The id of the world's cohort of that name; "missing": one there is not."""
    if name == "missing":
        return "h_nosuchcohort"
    return next(made for made, word in world.others.items() if word == f"<{name.lower()}>")


COHORT_ADDS = [
    ("Summer", None, None, False),
    ("Summer", "calm", "sleep", True),
    ("spring", None, None, False),  # Spring is taken, whatever the case
    ("Summer", None, "SLEEP", False),  # joining needs a plan
    ("Summer", "calm", "STOP", False),  # a word participants text for something else
    ("Summer", "calm", "SPRING", False),  # Spring's keyword
    ("Summer", "wakls", None, True),  # no such plan
]


@pytest.mark.parametrize("entry", ["cli", "api", "dashboard"])
@pytest.mark.parametrize(("name", "plan", "keyword", "signup"), COHORT_ADDS)
def test_adding_a_cohort_is_the_same_everywhere(
    make_world: Callable[[str], World],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    plan: str | None,
    keyword: str | None,
    signup: bool,
    entry: str,
) -> None:
    reference = with_cohorts(make_world("active"))
    expected = directly(
        reference,
        lambda: groups.create(reference.runtime, name=name, plan=plan, keyword=keyword,
                              signup=signup),
    )  # fmt: skip
    world = with_cohorts(make_world("active"))
    if entry == "cli":
        options = [*(["--plan", plan] if plan else []), *(["--keyword", keyword] if keyword else []),
                   *(["--signup"] if signup else [])]  # fmt: skip
        said = by_cli(world, monkeypatch, "cohorts", "add", name, *options)
    elif entry == "api":
        said = by_api(world, "POST", "/api/cohorts",
                      {"name": name, "plan": plan, "keyword": keyword, "signup": signup})  # fmt: skip
    else:
        form = {"name": name, "plan": plan or "", "keyword": keyword or ""}
        said = by_dashboard(
            world, "/dashboard/cohorts", **form, **({"signup": "on"} if signup else {})
        )
        expected = on_a_page(expected)
    assert agrees(expected, said), (expected, said)
    assert snapshot(world) == snapshot(reference)


# What the cohort is to be: each entry point is asked for all of it (the dashboard's form
# always sends every field).
COHORT_CHANGES = [
    ("spring", "Summer", "calm", "SPRING", True),
    ("spring", "Spring", None, None, False),  # nobody can join it any more
    ("spring", "Spring", None, "SPRING", False),  # a keyword needs a plan
    ("spring", "AUTUMN", "calm", "SPRING", False),  # Autumn's name
    ("autumn", "Autumn", "walks", "SPRING", False),  # Spring's keyword
    ("autumn", "Autumn", "walks", "JOIN", True),  # not a keyword
    ("autumn", "Autumn", "wakls", None, False),  # no such plan
    ("missing", "Summer", "calm", None, False),
]


@pytest.mark.parametrize("entry", ["cli", "api", "dashboard"])
@pytest.mark.parametrize(("which", "name", "plan", "keyword", "signup"), COHORT_CHANGES)
def test_changing_a_cohort_is_the_same_everywhere(
    make_world: Callable[[str], World],
    monkeypatch: pytest.MonkeyPatch,
    which: str,
    name: str,
    plan: str | None,
    keyword: str | None,
    signup: bool,
    entry: str,
) -> None:
    reference = with_cohorts(make_world("active"))
    target = _cohort(reference, which)
    expected = directly(
        reference,
        lambda: groups.change(reference.runtime, target, name=name, plan=plan, keyword=keyword,
                              signup=signup),
    )  # fmt: skip
    world = with_cohorts(make_world("active"))
    target = _cohort(world, which)
    if entry == "cli":
        options = ["--name", name, *(["--plan", plan] if plan else ["--no-plan"]),
                   *(["--keyword", keyword] if keyword else ["--no-keyword"]),
                   "--signup" if signup else "--no-signup"]  # fmt: skip
        said = by_cli(world, monkeypatch, "cohorts", "set", target, *options)
    elif entry == "api":
        said = by_api(world, "PATCH", f"/api/cohorts/{target}",
                      {"name": name, "plan": plan, "keyword": keyword, "signup": signup})  # fmt: skip
    else:
        form = {"name": name, "plan": plan or "", "keyword": keyword or ""}
        said = by_dashboard(world, f"/dashboard/cohorts/{target}/settings", **form,
                            **({"signup": "on"} if signup else {}))  # fmt: skip
        expected = on_a_page(expected) if which != "missing" else expected
    assert agrees(expected, said), (expected, said)
    assert snapshot(world) == snapshot(reference)


COHORT_MEMBERS = [
    ("autumn", ["sam"]),
    ("autumn", ["rae", "sam", "rae"]),  # out of Spring; asked twice is once
    ("spring", ["rae"]),  # where she is already
    ("autumn", ["sam", "missing"]),  # nobody moves
    ("missing", ["sam"]),
]


@pytest.mark.parametrize("entry", ["cli", "api", "dashboard"])
@pytest.mark.parametrize(("which", "who"), COHORT_MEMBERS)
def test_putting_people_in_a_cohort_is_the_same_everywhere(
    make_world: Callable[[str], World],
    monkeypatch: pytest.MonkeyPatch,
    which: str,
    who: list[str],
    entry: str,
) -> None:
    def ids(world: World) -> list[str]:
        named = {word: made for made, word in world.others.items()} | {"<rae>": world.rae}
        return [named.get(f"<{person}>", "p_nosuchperson") for person in who]

    reference = with_cohorts(make_world("active"))
    target = _cohort(reference, which)
    expected = directly(
        reference, lambda: groups.add_members(reference.runtime, target, ids(reference))
    )
    world = with_cohorts(make_world("active"))
    target = _cohort(world, which)
    if entry == "cli":
        said = by_cli(world, monkeypatch, "cohorts", "members", target, *ids(world))
    elif entry == "api":
        said = by_api(world, "POST", f"/api/cohorts/{target}/members",
                      {"participants": ids(world)})  # fmt: skip
    else:
        ticked = {f"member:{pid}": "on" for pid in ids(world)}
        said = by_dashboard(world, f"/dashboard/cohorts/{target}/members", **ticked)
        expected = on_a_page(expected) if which != "missing" else expected
    assert agrees(expected, said), (expected, said)
    assert snapshot(world) == snapshot(reference)


COHORT_ENROLLS = [
    ("spring", "walks", "2026-03-02"),  # both
    ("spring", "calm", "2026-03-03"),  # Sam; Rae is in Calm already and stays as she is
    ("spring", "walks", "today"),  # each in their own today (London is ahead)
    ("spring", "walks", "2029-03-02"),  # too far ahead: nobody
    ("autumn", "walks", "2026-03-02"),  # nobody in it
    ("spring", "wakls", "2026-03-02"),
    ("missing", "walks", "2026-03-02"),
]


@pytest.mark.parametrize("entry", ["cli", "api", "dashboard"])
@pytest.mark.parametrize(("which", "plan", "start"), COHORT_ENROLLS)
def test_enrolling_a_cohort_is_the_same_everywhere(
    make_world: Callable[[str], World],
    monkeypatch: pytest.MonkeyPatch,
    which: str,
    plan: str,
    start: str,
    entry: str,
) -> None:
    begins: date | Literal["today"] = "today" if start == "today" else date.fromisoformat(start)
    reference = with_cohorts(make_world("active"))
    target = _cohort(reference, which)
    expected = directly(reference, lambda: groups.enroll(reference.runtime, target, plan, begins))
    world = with_cohorts(make_world("active"))
    target = _cohort(world, which)
    if entry == "cli":
        said = by_cli(world, monkeypatch, "cohorts", "enroll", target, plan, "--start", start)
    elif entry == "api":
        said = by_api(world, "POST", f"/api/cohorts/{target}/enroll",
                      {"plan": plan, "start": start})  # fmt: skip
    else:
        when = {"when": "today"} if start == "today" else {"when": "date", "start": start}
        said = by_dashboard(world, f"/dashboard/cohorts/{target}/enroll", plan=plan, **when)
        expected = on_a_page(expected) if which != "missing" else expected
    assert agrees(expected, said), (expected, said)
    assert snapshot(world) == snapshot(reference)


# --- the CSV import ---------------------------------------------------------------------------

FILENAME = "group.csv"
GOOD = (
    "name,timezone,phone,email,language,wake\r\n"
    "Ana García,America/Mexico_City,+525512345678,ana@example.com,es-MX,06:30\r\n"
    "Sam Lee,Europe/London,+447911123456,,en,\r\n"
)
WITH_RAE = GOOD + f"Rae Again,America/New_York,{RAE},,,\r\n"  # left out: she is in Tend
BAD = "name,timezone,wake\nAna,UTC,25:00\nBo,Nowhere,\n\n"
NO_ZONE = "name,tz,phone\nAna,UTC,+525512345678\n"
TOO_EARLY = "name,timezone,wake\nAna,UTC,06:30\nBo,UTC,01:00 + 1h\n"  # wake: a time, not a sum

IMPORTS = [
    (GOOD, None, None, None),
    (GOOD, "Spring", "calm", "2026-03-03"),
    (WITH_RAE, "Spring", "walks", "today"),
    (BAD, "Spring", None, None),  # every problem, and no cohort made
    (NO_ZONE, None, None, None),
    (TOO_EARLY, None, "calm", "2026-03-03"),
    (GOOD, None, "wakls", "2026-03-03"),
    (GOOD, None, "calm", "2029-03-03"),  # too far ahead: nobody
]


def by_cli_import(
    world: World, monkeypatch: pytest.MonkeyPatch, path: Path, options: list[str]
) -> Said:
    result = tend(world, monkeypatch, "participants", "import", str(path), *options)
    if result.exit_code != 1:
        return by_cli_result(world, result)
    problems = []
    for line in result.stdout.splitlines():
        found = re.fullmatch(rf"{re.escape(str(path))}:(\d+): error: (?:column (.+?): )?(.*)", line)
        assert found, line
        problems.append((int(found.group(1)), found.group(2), found.group(3)))
    return Said("refused", problems=tuple(problems))


def by_cli_result(world: World, result: Result) -> Said:
    if result.exit_code == 0:
        return Said("done")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("tend: "), result.stderr
    return Said("failed", world.ids(result.stderr.removeprefix("tend: ").strip()))


PROBLEM = re.compile(
    r'<tr><td class="where">(\d+)</td><td class="where">([^<]*)</td><td>(.*?)</td></tr>', re.S
)
PAGE_ERROR = re.compile(r'<p class="error" role="alert">(.*?)</p>', re.S)


def by_dashboard_import(world: World, data: bytes, **choices: str) -> Said:
    """As a coach does it: the file checked (a dry run), then "Import N people"."""
    form = {"csrf": signed_in(world), **choices}
    checked = world.client.post("/dashboard/import/check", data=form,
                                files={"file": (FILENAME, data, "text/csv")})  # fmt: skip
    if checked.status_code == 422:
        rows = PROBLEM.findall(checked.text)
        return Said("refused", problems=tuple(
            (int(line), html.unescape(column) or None, html.unescape(message))
            for line, column, message in rows
        ))  # fmt: skip
    if checked.status_code == 400:
        found = PAGE_ERROR.search(checked.text)
        assert found, checked.text
        text = html.unescape(found.group(1)).removesuffix(".")
        return Said("refused", world.ids(text[:1].lower() + text[1:]))
    assert checked.status_code == 200, checked.text
    assert snapshot_rows(world)["participants"] == 1  # the dry run stored nothing
    carried = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', checked.text))
    done = world.client.post(
        "/dashboard/import",
        data={key: html.unescape(value) for key, value in carried.items()},
        files={"unused": ("", b"", "application/octet-stream")},  # multipart, as the form
    )
    assert done.status_code == 200, done.text
    found = FLASH.search(done.text)
    assert found, "no message on the page"
    return Said("done" if found.group(1) == "ok" else "refused", html.unescape(found.group(2)))


def snapshot_rows(world: World) -> dict[str, int]:
    rows: dict[str, int] = snapshot(world)["rows"]
    return rows


def consent_sources(world: World) -> list[tuple[str, str, str]]:
    """The consent log's entries with where they came from (the file, for an import)."""
    with reading(world.runtime.engine) as conn:
        return sorted(
            (row.channel, row.action, row.source) for row in conn.execute(consent_log.select())
        )


@pytest.mark.parametrize("entry", ["cli", "api", "dashboard"])
@pytest.mark.parametrize(("text", "cohort", "plan", "start"), IMPORTS)
def test_importing_a_file_is_the_same_everywhere(
    make_world: Callable[[str], World],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    text: str,
    cohort: str | None,
    plan: str | None,
    start: str | None,
    entry: str,
) -> None:
    data = text.encode()
    reference = make_world("active")
    expected = directly(
        reference,
        lambda: imports.import_csv(reference.runtime, data, filename=FILENAME, cohort=cohort,
                                   plan=plan, start=imports.parse_start(start)),
    )  # fmt: skip
    world = make_world("active")
    if entry == "cli":
        path = tmp_path / FILENAME
        path.write_bytes(data)
        options = [*(["--cohort", cohort] if cohort else []), *(["--plan", plan] if plan else []),
                   *(["--start", start] if start else [])]  # fmt: skip
        said = by_cli_import(world, monkeypatch, path, options)
    elif entry == "api":
        query = {"filename": FILENAME, "cohort": cohort, "plan": plan, "start": start}
        answer = world.client.post(
            "/api/participants/import",
            params={key: value for key, value in query.items() if value is not None},
            content=data,
            headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "text/csv"},
        )
        if answer.status_code == 422:
            said = Said("refused", problems=tuple(
                (e["line"], e["column"], e["message"]) for e in answer.json()["errors"]
            ))  # fmt: skip
        elif answer.status_code < 300:
            said = Said("done")
        else:
            kind = "missing" if answer.status_code == 404 else "refused"
            said = Said(kind, world.ids(answer.json()["detail"]))
    else:
        when = {"when": "today"} if start == "today" else {"when": "date", "start": start or ""}
        said = by_dashboard_import(world, data, cohort=cohort or "", plan=plan or "", **when)
        expected = on_a_page(expected)
    assert agrees(expected, said), (expected, said)
    assert snapshot(world) == snapshot(reference)
    assert consent_sources(world) == consent_sources(reference)


def test_the_import_cases_cover_each_outcome(make_world: Callable[[str], World]) -> None:
    """Imports that store people, refusals with a file's problems, and plain refusals."""
    world = make_world("active")
    seen: Counter[tuple[str, bool]] = Counter()
    for text, cohort, plan, start in IMPORTS:
        act = partial(imports.import_csv, world.runtime, text.encode(), filename=FILENAME,
                      cohort=cohort, plan=plan, start=imports.parse_start(start), dry_run=True)  # fmt: skip
        said = directly(world, act)
        seen[(said.kind, said.problems is not None)] += 1
    assert set(seen) == {("done", False), ("refused", True), ("refused", False), ("missing", False)}
    assert seen[("refused", True)] == 3


# --- data rights: everything held about a person, and erasing them ----------------------------


def _person(world: World, who: str) -> str:
    return "p_nosuchperson" if who == "missing" else world.rae


def by_export(world: World, monkeypatch: pytest.MonkeyPatch, entry: str, pid: str) -> Any:
    """The export document an entry point gives, as JSON; or what it said instead."""
    if entry == "cli":
        result = tend(world, monkeypatch, "participants", "export", pid)
        if result.exit_code != 0:
            return by_cli_result(world, result)
        printed = result.stdout[result.stdout.index("{\n") :]  # after the log's lines
        return json.loads(printed)
    if entry == "api":
        answer = world.client.get(f"/api/participants/{pid}/export",
                                  headers={"Authorization": f"Bearer {ADMIN}"})  # fmt: skip
        if answer.status_code == 404:
            return Said("missing", world.ids(answer.json()["detail"]))
    else:
        signed_in(world)
        answer = world.client.get(f"/dashboard/participants/{pid}/export")
        if answer.status_code == 404:
            return Said("missing")
        assert answer.headers["content-disposition"].startswith("attachment")
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("entry", ["cli", "api", "dashboard"])
@pytest.mark.parametrize(
    ("state", "who"),
    [("active", "rae"), ("replied", "rae"), ("opted-out-replied", "rae"), ("active", "missing")],
)
def test_an_export_is_the_same_everywhere(
    make_world: Callable[[str], World],
    monkeypatch: pytest.MonkeyPatch,
    state: str,
    who: str,
    entry: str,
) -> None:
    world = make_world(state)
    before = snapshot(world)
    got = by_export(world, monkeypatch, entry, _person(world, who))
    document: list[Any] = []
    expected = directly(
        world, lambda: document.append(data_rights.export(world.runtime, _person(world, who)))
    )
    if isinstance(got, Said):
        assert agrees(expected, got), (expected, got)
    else:  # identical, to the letter: the same state, the same clock
        assert expected == Said("done")
        assert got == json.loads(json.dumps(document[0]))
        assert got["replies"] if state != "active" else not got["replies"]
    assert snapshot(world) == before  # an export changes nothing (but the audit log)


ERASES = [
    ("active", "rae"),
    ("replied", "rae"),
    ("opted-out-replied", "rae"),  # the number is kept, as its keyed digest only
    ("active", "missing"),
]


@pytest.mark.parametrize("entry", ["cli", "api", "dashboard"])
@pytest.mark.parametrize(("state", "who"), ERASES)
def test_an_erasure_is_the_same_everywhere(
    make_world: Callable[[str], World],
    monkeypatch: pytest.MonkeyPatch,
    state: str,
    who: str,
    entry: str,
) -> None:
    reference = make_world(state)
    expected = directly(
        reference, lambda: data_rights.erase(reference.runtime, _person(reference, who))
    )
    world = make_world(state)
    pid = _person(world, who)
    if entry == "cli":
        said = by_cli(world, monkeypatch, "participants", "erase", pid)
    elif entry == "api":
        said = by_api(world, "DELETE", f"/api/participants/{pid}")
    else:
        said = by_dashboard(world, f"/dashboard/participants/{pid}/erase", confirm="rae  EXAMPLE")
    assert agrees(expected, said), (expected, said)
    after = snapshot(world)
    assert after == snapshot(reference)
    if who == "rae":
        assert after["people"] == []
        assert len(after["suppressed"]) == (state == "opted-out-replied")


def test_the_dashboard_erases_nobody_without_their_name(
    make_world: Callable[[str], World],
) -> None:
    """The dashboard's confirmation is the action's (`confirm_name`): the wrong name, and
    nothing is erased, in the same words."""
    reference = make_world("replied")
    expected = directly(
        reference,
        lambda: data_rights.erase(reference.runtime, reference.rae, confirm_name="Ray Example"),
    )
    world = make_world("replied")
    said = by_dashboard(world, f"/dashboard/participants/{world.rae}/erase", confirm="Ray Example")
    assert expected.kind == "refused"
    assert agrees(expected, said), (expected, said)
    assert snapshot(world) == snapshot(reference)
    assert len(snapshot(world)["people"]) == 1
