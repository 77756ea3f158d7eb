"""A participant's data rights (issue 17, CONTRACT section 5.3): export, erasure and
retention.

- `export` holds everything Tend keeps about one person, and is scoped like every action.
- After `erase`, no column of any table (every table of `tables.metadata`, on SQLite and
  PostgreSQL) and no log line written during or after it holds the person's name,
  number, address, variable values or any text to or from them; an opt-out survives as
  a keyed digest only, so the number added again starts opted out; someone who had not
  opted out leaves no digest.
- TEND_RETENTION_DAYS clears texts of enrollments that ended that long ago, leaving the
  adherence report exactly as it was.
- The command line, the API and the dashboard offer both, and a coach reaches only
  their own participants.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import structlog
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from service import cli, report
from service.actions import coaches as accounts
from service.actions import consent, data_rights, inbound_sms
from service.actions import enrollments as enrolling
from service.actions import participants as people
from service.actions.errors import Invalid, NotFound
from service.channels.outbox import OutboxChannel
from service.clock import ManualClock
from service.core.states import SmsState
from service.logging import configure_logging
from service.storage import outbox as outbox_rows
from service.storage import participants as participant_rows
from service.storage import summaries as summary_rows
from service.storage.db import transaction
from service.storage.tables import (
    audit_log,
    cohorts,
    metadata,
    outbox,
    replies,
    signups,
    suppressed_numbers,
)
from service.web.app import create_app
from tests.support.engine import Folders, Harness, RecordingChannel, build_runtime

TOKEN = "data-rights-admin-token"
BASE = "https://tend.test"

PLAN = """
plan: rights
title: Rights
weeks: 2
variables:
  wake: "09:00"
practices:
  - id: rise
    category: sleep
    title: Rise
    at: wake
    channels: [sms, email, calendar]
    check_in: done
  - id: journal
    category: mindfulness
    title: Journal
    at: "10:00"
    channels: [sms]
    check_in: text
"""

# The person erased: values found nowhere else, so that finding one means it was theirs.
Q_NAME = "Quintessa Marlowe-Vance"
Q_PHONE = "+12125550163"
Q_EMAIL = "quintessa.mv@example.net"
Q_WAKE = "06:47"
Q_BEFORE = "Hi, is this the sleep course? Q here"  # texted before they were added
Q_JOURNAL = "Slept fitfully after the neighbours quarrelled"
# Someone who stays.
K_NAME = "Kai Steadfast"
K_PHONE = "+12125550174"
K_EMAIL = "kai.steady@example.org"
K_JOURNAL = "A calm evening with tea"

START_DAY = date(2026, 3, 3)  # a Tuesday
RISE_Q = datetime(2026, 3, 3, 11, 47, tzinfo=UTC)  # 06:47 in New York
RISE_K = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # 09:00 in New York
JOURNAL = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York


# --- the world ----------------------------------------------------------------------------


@pytest.fixture
def h(db_url: str, folders: Folders, clock: ManualClock) -> Iterator[Harness]:
    """A harness whose channels are the development outbox (so messages are rows)."""
    folders.write_plan("rights", PLAN)
    runtime = build_runtime(db_url, folders, clock, {}, admin_token=TOKEN)
    runtime.channels = {
        "sms": OutboxChannel("sms", runtime.engine, clock.now),
        "email": OutboxChannel("email", runtime.engine, clock.now),
    }
    harness = Harness(runtime, clock, RecordingChannel("sms"), RecordingChannel("email"))
    try:
        yield harness
    finally:
        harness.close()


_sids = iter(range(1, 10_000))


def text(h: Harness, sender: str, body: str) -> str | None:
    return inbound_sms.handle_sms(h.runtime, sid=f"SM{next(_sids):032d}", sender=sender, body=body)


def populate(h: Harness, *, opt_out: bool) -> tuple[str, str]:
    """Quintessa and Kai, enrolled, reminded by SMS, email and calendar, replying; a
    weekly summary, a coach's digest naming both, a sign-up with Quintessa's number.
    Returns their ids."""
    rt = h.runtime
    text(h, Q_PHONE, Q_BEFORE)  # a stranger, for now
    q = people.create(rt, name=Q_NAME, timezone="America/New_York", phone=Q_PHONE,
                      email=Q_EMAIL, variables={"wake": Q_WAKE}).id  # fmt: skip
    k = people.create(rt, name=K_NAME, timezone="America/New_York", phone=K_PHONE,
                      email=K_EMAIL).id  # fmt: skip
    q_enrollment = h.enroll(q, "rights", START_DAY)
    h.enroll(k, "rights", START_DAY)
    h.maintain()  # calendar invitations
    for moment in (RISE_Q, RISE_K, JOURNAL):
        h.at(moment)
    h.at(JOURNAL + timedelta(minutes=5))
    text(h, Q_PHONE, Q_JOURNAL)
    text(h, K_PHONE, K_JOURNAL)
    if opt_out:
        text(h, Q_PHONE, "STOP")
    now = h.clock.now()
    with transaction(rt.engine) as conn:
        summary_rows.add(
            conn,
            [summary_rows.Wanted("participant", q_enrollment, START_DAY, "sms", now)],  # type: ignore[arg-type]
            now=now,
        )
        outbox_rows.outbox_put(
            conn, delivery_id=None, channel="email", recipient="coach@example.com",
            subject="Your week", body=f"- {Q_NAME} (rights): slipped\n- {K_NAME} (rights): 3 of 3",
            html=f"<li>{Q_NAME}</li><li>{K_NAME}</li>", now=now,
        )  # fmt: skip
        outbox_rows.outbox_put(
            conn, delivery_id=None, channel="sms", recipient=Q_PHONE,
            body=f"A test message for {Q_NAME.split()[0]}", now=now,
        )  # fmt: skip
        conn.execute(insert(cohorts).values(id="co_1", name="Spring", created_at=now))
        conn.execute(
            insert(signups).values(
                id="s_1", cohort_id="co_1", name="Quintessa again", phone=Q_PHONE,
                email=Q_EMAIL, timezone="UTC", variables={"wake": Q_WAKE},
                source="signup:page", created_at=now, expires_at=now + timedelta(hours=48),
            )
        )  # fmt: skip
    return q, k


def texts_of(document: dict[str, Any]) -> set[str]:
    """Every text to or from the person in their export: messages, replies, answers,
    check-in texts."""
    found: set[str] = set()
    for message in document["messages"]:
        found |= {message[k] for k in ("subject", "body", "html", "calendar") if message[k]}
    for reply in document["replies"]:
        found |= {reply[k] for k in ("body", "answer", "detail") if reply[k]}
    for enrollment in document["enrollments"]:
        found |= {o["check_in_text"] for o in enrollment["occurrences"] if o["check_in_text"]}
    return found


def stored(h: Harness) -> list[tuple[str, str, str]]:
    """Every value of every column of every table, as text: (table, column, value)."""
    found = []
    with transaction(h.runtime.engine) as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                for column, value in row.items():
                    shown = value if isinstance(value, str) else json.dumps(value, default=str)
                    found.append((table.name, column, shown))
    return found


def needles(document: dict[str, Any], others: str) -> list[str]:
    """What of the person's must be found nowhere: their details, variable values, and
    each text of theirs that is not also someone else's (an answer template's words)."""
    person = document["participant"]
    fixed = [
        person["name"], *person["name"].split(), person["phone"], person["phone"][1:],
        person["email"], person["email"].split("@")[0], *person["variables"].values(),
    ]  # fmt: skip
    return fixed + sorted(t for t in texts_of(document) if t not in others)


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Tend's own logging (JSON, at debug) to a stream this test reads; undone after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quietened = {name: logging.getLogger(name).level for name in ("alembic", "dramatiq")}
    saved = structlog.get_config()
    stream = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", stream)
        configure_logging("json", "debug")
    try:
        yield stream
    finally:
        root.handlers, root.level = handlers, level
        for name, was in quietened.items():
            logging.getLogger(name).setLevel(was)
        structlog.reset_defaults()
        structlog.configure(**saved)


# --- export -----------------------------------------------------------------------------------


def test_export_holds_everything_held_about_the_person(h: Harness) -> None:
    q, _ = populate(h, opt_out=True)
    document = data_rights.export(h.runtime, q)
    json.dumps(document)  # JSON as it is: datetimes are text
    person = document["participant"]
    assert (person["id"], person["name"], person["phone"], person["email"]) == (
        q, Q_NAME, Q_PHONE, Q_EMAIL,
    )  # fmt: skip
    assert person["variables"] == {"wake": Q_WAKE}
    assert person["sms_state"] == "opted_out"
    assert {"coach_id", "cohort_id", "language", "welcomed_at", "created_at"} <= set(person)
    assert datetime.fromisoformat(person["created_at"]).tzinfo is not None
    assert document["calendar_feed"] == {"version": 1}
    assert [e["action"] for e in document["consent_log"]][-1] == "opt_out"
    (enrollment,) = document["enrollments"]
    assert enrollment["participant_id"] == q
    assert enrollment["invitation"] is not None
    assert enrollment["invitation"]["enrollment_id"] == enrollment["id"]
    assert [s["kind"] for s in enrollment["summaries"]] == ["participant"]
    journal = [o for o in enrollment["occurrences"] if o["check_in_text"]]
    assert [o["check_in_text"] for o in journal] == [Q_JOURNAL]
    sent = [d for o in enrollment["occurrences"] for d in o["deliveries"] if d["state"] == "sent"]
    assert sent, "no delivery was sent"
    assert {"channel", "kind", "state", "due_at", "sent_at", "attempts", "last_error"} <= set(
        sent[0]
    )
    bodies = [r["body"] for r in document["replies"]]
    assert bodies == [Q_BEFORE, Q_JOURNAL, "STOP"]
    assert document["replies"][0]["participant_id"] is None  # from their number, before
    assert {"answer", "understood", "detail", "received_at"} <= set(document["replies"][1])
    recipients = {m["recipient"] for m in document["messages"]}
    assert recipients <= {Q_PHONE, Q_EMAIL}
    assert Q_EMAIL in recipients
    assert any(m["delivery_id"] is not None for m in document["messages"])
    assert any(m["calendar"] for m in document["messages"])  # the invitation
    assert [s["name"] for s in document["signups"]] == ["Quintessa again"]
    # Nothing of Kai's.
    assert K_NAME not in json.dumps(document)
    assert K_JOURNAL not in json.dumps(document)
    # On the audit log, by id.
    with transaction(h.runtime.engine) as conn:
        entries = conn.execute(select(audit_log).where(audit_log.c.action == "participant.export"))
        rows = [dict(r) for r in entries.mappings()]
    assert [(r["actor"], r["target_kind"], r["target_id"]) for r in rows] == [
        ("operator", "participant", q)
    ]


def test_export_and_erase_are_scoped_to_the_coach(h: Harness) -> None:
    rt = h.runtime
    a = accounts.add(rt, accounts.operator(), email="a@example.com", name="A").coach
    b = accounts.add(rt, accounts.operator(), email="b@example.com", name="B").coach
    coach_a, coach_b = accounts.Actor.of(a), accounts.Actor.of(b)
    mine = people.create(rt, name="Ada Own", timezone="UTC", actor=coach_a).id
    theirs = people.create(rt, name="Bea Else", timezone="UTC", actor=coach_b).id
    assert data_rights.export(rt, mine, actor=coach_a)["participant"]["id"] == mine
    for act in (data_rights.export, data_rights.erase):
        with pytest.raises(NotFound, match=f"^no participant '{theirs}'$"):
            act(rt, theirs, actor=coach_a)
        with pytest.raises(NotFound, match=r"^no participant 'p_zzzzzzzzzzzz'$"):
            act(rt, "p_zzzzzzzzzzzz", actor=coach_a)
    assert data_rights.export(rt, theirs)["participant"]["name"] == "Bea Else"  # still there
    admin = accounts.Actor("c_admin", "Boss", "admin")
    assert data_rights.export(rt, theirs, actor=admin)["participant"]["id"] == theirs


# --- erasure ----------------------------------------------------------------------------------


def test_after_erasure_nothing_of_the_person_is_stored_or_logged(
    h: Harness, json_logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    q, k = populate(h, opt_out=True)
    document = data_rights.export(h.runtime, q)
    kai_before = data_rights.export(h.runtime, k)
    look_for = needles(document, json.dumps(kai_before))
    assert Q_JOURNAL in look_for
    assert Q_BEFORE in look_for
    assert any(Q_NAME.split()[0] in t for t in texts_of(document))  # messages named them
    before = stored(h)
    assert any(v == Q_PHONE for _, _, v in before)  # the scan sees what is there
    json_logs.seek(0)
    json_logs.truncate()
    capsys.readouterr()

    erased = data_rights.erase(h.runtime, q)

    assert erased.suppressed
    assert erased.enrollments == 1
    assert erased.replies == 3
    assert erased.signups == 1
    assert erased.summaries == 1
    assert erased.mentions == 1  # the coach's digest
    assert erased.messages >= 3
    # Life goes on after: the scheduler's next passes, Kai's reminders.
    h.maintain()
    h.at(RISE_K + timedelta(days=1))
    h.at(JOURNAL + timedelta(days=1))

    found = [
        f"{table}.{column} holds {needle!r}"
        for table, column, value in stored(h)
        for needle in look_for
        if needle in value
    ]
    assert found == []
    logged = json_logs.getvalue()
    output = capsys.readouterr()
    assert "participant erased" in logged  # the capture saw the erasure's own line
    for needle in look_for:
        assert needle not in logged, needle
        assert needle not in output.out + output.err, needle
    # Kai is untouched; the digest keeps Kai and strikes Quintessa out.
    assert data_rights.export(h.runtime, k)["participant"] == kai_before["participant"]
    with transaction(h.runtime.engine) as conn:
        digest = conn.execute(
            select(outbox.c.body).where(outbox.c.recipient == "coach@example.com")
        ).scalar_one()
        digests = conn.execute(select(suppressed_numbers.c.digest)).scalars().all()
    assert digest == f"- [erased] (rights): slipped\n- {K_NAME} (rights): 3 of 3"
    assert digests == [consent.number_digest(h.runtime.secret, Q_PHONE)]
    with pytest.raises(NotFound):
        data_rights.export(h.runtime, q)
    with pytest.raises(NotFound):
        data_rights.erase(h.runtime, q)

    # The number comes back: it stays opted out, and is told nothing.
    again = people.create(h.runtime, name="Someone New", timezone="UTC", phone=Q_PHONE)
    assert again.sms_state == SmsState.OPTED_OUT
    with transaction(h.runtime.engine) as conn:
        log = participant_rows.consent_history(conn, again.id)
    assert [(e["action"], e["source"]) for e in log][-1] == ("opt_out", "suppressed")


def test_erasing_someone_who_had_not_opted_out_keeps_no_digest(h: Harness) -> None:
    q, _ = populate(h, opt_out=False)
    erased = data_rights.erase(h.runtime, q)
    assert not erased.suppressed
    assert "keyed digest" not in erased.text
    with transaction(h.runtime.engine) as conn:
        assert conn.execute(select(suppressed_numbers)).all() == []
        assert conn.execute(select(replies).where(replies.c.sender == Q_PHONE)).all() == []
    again = people.create(h.runtime, name="Someone New", timezone="UTC", phone=Q_PHONE)
    assert again.sms_state == SmsState.SUBSCRIBED


def test_erasure_asked_to_confirm_by_name_erases_only_on_the_name(h: Harness) -> None:
    q, _ = populate(h, opt_out=False)
    with pytest.raises(Invalid, match="nothing was erased"):
        data_rights.erase(h.runtime, q, confirm_name="Quintessa")
    assert data_rights.export(h.runtime, q)["participant"]["name"] == Q_NAME
    erased = data_rights.erase(h.runtime, q, confirm_name="  quintessa   marlowe-vance ")
    assert erased.participant_id == q
    with transaction(h.runtime.engine) as conn:
        rows = conn.execute(
            select(audit_log.c.actor, audit_log.c.target_id, audit_log.c.detail).where(
                audit_log.c.action == "participant.erase"
            )
        ).all()
    assert [(r.actor, r.target_id) for r in rows] == [("operator", q)]
    assert re.fullmatch(r"[a-z_]+=\d+( [a-z_]+=\d+)* suppressed=no", rows[0].detail)


# --- retention --------------------------------------------------------------------------------


def test_retention_clears_old_texts_and_keeps_adherence(h: Harness) -> None:
    rt = h.runtime
    q, k = populate(h, opt_out=False)
    q_enrollment = data_rights.export(rt, q)["enrollments"][0]["id"]
    assert data_rights.apply_retention(rt) == 0  # unset: keep everything
    rt.settings = rt.settings.model_copy(update={"retention_days": 30})
    ended = h.clock.now()
    enrolling.cancel(rt, q_enrollment)
    at = ended + timedelta(days=1)
    before = report.build(rt, now=at)
    exported = data_rights.export(rt, q)
    q_texts = texts_of(exported)
    (stranger,) = [r for r in exported["replies"] if r["participant_id"] is None]
    kai_before = data_rights.export(rt, k)

    h.clock.set(ended + timedelta(days=29, hours=23))
    # Only the text from their number before they were added (a stranger's, 30 days
    # old now); the enrollment's texts stay until it ended 30 days ago.
    assert data_rights.apply_retention(rt) == 1
    cleared_texts = {stranger[k] for k in ("body", "answer", "detail")}
    assert Q_BEFORE in cleared_texts
    assert texts_of(data_rights.export(rt, q)) == q_texts - cleared_texts

    h.clock.set(ended + timedelta(days=30, minutes=1))
    cleared = data_rights.apply_retention(rt)
    assert cleared > 0
    after = data_rights.export(rt, q)
    (enrollment,) = after["enrollments"]
    assert [o["check_in_text"] for o in enrollment["occurrences"] if o["check_in_text"]] == []
    reminders = [m for m in after["messages"] if m["delivery_id"] is not None]
    assert reminders
    for message in reminders:
        assert (message["body"], message["html"], message["subject"], message["calendar"]) == (
            "", None, None, None,
        )  # fmt: skip
    replies_after = {r["body"]: r for r in after["replies"]}
    assert Q_JOURNAL not in replies_after
    assert Q_BEFORE not in replies_after
    assert {r["answer"] for r in after["replies"]} == {None}
    assert {r["understood"] for r in after["replies"]} != {None}  # what they meant stays
    # Kai is still enrolled: nothing of Kai's changes.
    assert data_rights.export(rt, k)["enrollments"] == kai_before["enrollments"]
    assert data_rights.export(rt, k)["replies"] == kai_before["replies"]
    # Adherence is exactly as it was.
    assert report.build(rt, now=at) == before
    # Idempotent, and nothing to do is no write.
    assert data_rights.apply_retention(rt) == 0


def test_the_scheduler_applies_retention_at_most_hourly(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = h.runtime
    q, _ = populate(h, opt_out=False)
    rt.settings = rt.settings.model_copy(update={"retention_days": 1})
    enrolling.cancel(rt, data_rights.export(rt, q)["enrollments"][0]["id"])
    calls: list[int] = []
    apply = data_rights.apply_retention

    def counted(runtime: Any) -> int:
        calls.append(apply(runtime))
        return calls[-1]

    monkeypatch.setattr(data_rights, "apply_retention", counted)
    h.maintain()
    h.clock.advance(timedelta(minutes=30))
    h.maintain()  # within the hour: not again
    assert calls == [1]  # the text from their number before they were added: a day old
    h.clock.advance(timedelta(minutes=31))
    h.maintain()
    assert calls == [1, 0]  # the enrollment ended less than a day ago
    h.clock.advance(timedelta(days=1))
    h.maintain()
    assert len(calls) == 3
    assert calls[-1] > 0
    assert {r["body"] for r in data_rights.export(rt, q)["replies"]} == {""}


# --- entry points -----------------------------------------------------------------------------


def test_the_api_exports_and_erases(h: Harness) -> None:
    rt = h.runtime
    q, k = populate(h, opt_out=True)
    operator = accounts.operator()
    a = accounts.add(rt, operator, email="a@example.com", name="A").coach
    token_a = accounts.create_token(rt, operator, "a@example.com", "a").secret
    mine = people.create(rt, name="Ada Own", timezone="UTC", actor=accounts.Actor.of(a)).id
    app = create_app(rt)
    client = TestClient(app, base_url=BASE, client=("203.0.113.9", 5000))
    admin = {"Authorization": f"Bearer {TOKEN}"}
    coach = {"Authorization": f"Bearer {token_a}"}

    exported = client.get(f"/api/participants/{q}/export", headers=admin)
    assert exported.status_code == 200, exported.text
    assert exported.headers["cache-control"] == "no-store"
    assert exported.json() == {**data_rights.export(rt, q), "exported_at": ANY}
    for path in (f"/api/participants/{q}/export", f"/api/participants/{q}"):
        method = "GET" if path.endswith("export") else "DELETE"
        refused = client.request(method, path, headers=coach)
        assert (refused.status_code, refused.json()) == (404, {"detail": f"no participant '{q}'"})
        missing = client.request(method, path.replace(q, "p_zzzzzzzzzzzz"), headers=coach)
        assert missing.json() == {"detail": "no participant 'p_zzzzzzzzzzzz'"}
    assert client.get(f"/api/participants/{mine}/export", headers=coach).status_code == 200

    gone = client.delete(f"/api/participants/{q}", headers=admin)
    assert (gone.status_code, gone.content) == (204, b"")
    assert client.get(f"/api/participants/{q}", headers=admin).status_code == 404
    assert client.delete(f"/api/participants/{q}", headers=admin).status_code == 404
    assert client.delete(f"/api/participants/{mine}", headers=coach).status_code == 204
    assert client.get(f"/api/participants/{k}", headers=admin).status_code == 200
    with transaction(rt.engine) as conn:
        rows = conn.execute(
            select(audit_log.c.actor, audit_log.c.action, audit_log.c.target_id)
            .where(audit_log.c.action.like("participant.%"))
            .order_by(audit_log.c.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("operator", "participant.export", q),
        ("operator", "participant.export", q),  # the comparison's own export
        (a.id, "participant.export", mine),
        ("operator", "participant.erase", q),
        (a.id, "participant.erase", mine),
    ]


class _Any:
    def __eq__(self, other: object) -> bool:
        return True


ANY = _Any()


def test_the_commands_export_and_erase(h: Harness, folders: Folders) -> None:
    q, _ = populate(h, opt_out=True)
    env = {
        "TEND_DATABASE_URL": h.runtime.settings.database_url,
        "TEND_SCHEDULES_DIR": str(folders.schedules),
        "TEND_TEMPLATES_DIR": str(folders.templates),
        "TEND_PUBLIC_URL": BASE,
        "TEND_SECRET_KEY": "test-secret",
    }

    def tend(*args: str) -> Any:
        return CliRunner().invoke(cli.main, list(args), env=env)

    exported = tend("participants", "export", q)
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.stdout)
    assert document["participant"]["phone"] == Q_PHONE
    assert exported.stdout.startswith('{\n  "format"')  # indented
    erased = tend("participants", "erase", q)
    assert erased.exit_code == 0, erased.output
    (line,) = erased.stdout.splitlines()
    assert line.startswith(f"erased participant {q}: 1 enrollment, ")
    assert line.endswith("the opted-out number is kept only as a keyed digest")
    assert Q_NAME not in erased.output
    assert Q_PHONE not in erased.output
    for command in ("export", "erase"):
        again = tend("participants", command, q)
        assert (again.exit_code, again.output.strip()) == (2, f"tend: no participant '{q}'")
    # The digest is the one the server keeps (the same secret): the number stays out.
    assert people.create(h.runtime, name="New", timezone="UTC", phone=Q_PHONE).sms_state == (
        SmsState.OPTED_OUT
    )


def test_the_dashboard_exports_and_erases_after_the_name_is_typed(h: Harness) -> None:
    q, k = populate(h, opt_out=False)
    client = TestClient(create_app(h.runtime), base_url=BASE, client=("203.0.113.7", 5000))
    assert client.post("/dashboard/login", data={"token": TOKEN},
                       follow_redirects=False).status_code == 303  # fmt: skip
    here = f"/dashboard/participants/{q}"
    page = client.get(here)
    assert 'href="' + here + '/export"' in page.text
    assert 'action="' + here + '/erase"' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None

    download = client.get(f"{here}/export")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/json")
    assert download.headers["content-disposition"] == f'attachment; filename="tend-{q}.json"'
    assert download.headers["cache-control"] == "no-store"
    assert json.loads(download.text)["participant"]["id"] == q
    assert client.get("/dashboard/participants/p_zzzzzzzzzzzz/export").status_code == 404

    wrong = client.post(f"{here}/erase", data={"csrf": csrf.group(1), "confirm": "Kai"},
                        follow_redirects=False)  # fmt: skip
    assert (wrong.status_code, wrong.headers["location"]) == (303, here)
    shown = client.get(here).text
    assert "nothing was erased" in shown
    assert data_rights.export(h.runtime, q)["participant"]["name"] == Q_NAME
    no_csrf = client.post(f"{here}/erase", data={"confirm": Q_NAME}, follow_redirects=False)
    assert no_csrf.status_code == 403

    done = client.post(f"{here}/erase", data={"csrf": csrf.group(1), "confirm": Q_NAME},
                       follow_redirects=False)  # fmt: skip
    assert (done.status_code, done.headers["location"]) == (303, "/dashboard")
    overview = client.get("/dashboard").text
    assert f"Erased participant {q}: 1 enrollment" in overview
    assert Q_NAME not in overview
    assert client.get(here).status_code == 404
    assert client.get(f"/dashboard/participants/{k}").status_code == 200
