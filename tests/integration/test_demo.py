"""`tend demo`: two simulated weeks on the shipped plans, through the command line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from service import cli

REPO = Path(__file__).resolve().parents[2]
SEED = "11"


@dataclass(frozen=True)
class Run:
    folder: Path
    output: str
    stderr: str

    def rows(self, sql: str, **params: Any) -> list[Any]:
        engine = create_engine(f"sqlite:///{self.folder / 'demo.db'}")
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        finally:
            engine.dispose()

    def report(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads((self.folder / "report.json").read_text())
        return found


def demo(folder: Path, seed: str = SEED) -> Run:
    env = {
        "TEND_SCHEDULES_DIR": str(REPO / "schedules"),
        "TEND_TEMPLATES_DIR": str(REPO / "templates"),
        # Whatever the environment says, the demo sends nothing and needs no server.
        "TEND_REDIS_URL": "redis://127.0.0.1:1/0",
        "TEND_SMTP_HOST": "smtp.invalid",
        "TEND_TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
        "TEND_DATABASE_URL": f"sqlite:///{folder.parent / 'not-this-one.db'}",
    }
    args = ["demo", "--days", "14", "--out", str(folder), "--seed", seed]
    result = CliRunner().invoke(cli.main, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return Run(folder, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return demo(tmp_path_factory.mktemp("demo") / "tend-demo")


def participant(run: Run, name: str) -> str:
    [(found,)] = run.rows("SELECT id FROM participants WHERE name = :name", name=name)
    return str(found)


def test_the_demo_prints_the_report_and_writes_the_html(run: Run) -> None:
    assert "Simulating 14 days" in run.stderr
    assert "strength" in run.output
    for name in ("Rae Okafor", "Kenji Sato", "Amara Mensah", "Sam Taylor", "Priya Nair"):
        assert name in run.output
    html = (run.folder / "report.html").read_text()
    assert html.count("<svg") > 10
    assert "Sam Taylor" in html
    assert "opted_out" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert str(run.folder / "report.html") in run.output
    assert not (run.folder.parent / "not-this-one.db").exists()
    # Nothing left the machine: every message is in the outbox.
    [(kept,)] = run.rows("SELECT count(*) FROM outbox")
    [(sent,)] = run.rows("SELECT count(*) FROM deliveries WHERE state = 'sent'")
    assert kept >= sent > 50


def test_the_one_who_texts_stop_is_opted_out_and_gets_no_more_texts(run: Run) -> None:
    sam = participant(run, "Sam Taylor")
    [line] = [line for line in run.output.splitlines() if line.startswith("Sam Taylor")][:1]
    assert "opted_out" in line
    [(stopped_at, answer)] = run.rows(
        "SELECT received_at, answer FROM replies WHERE participant_id = :p AND body = 'STOP'",
        p=sam,
    )
    assert "unsubscribed" in answer
    later = run.rows(
        "SELECT d.state FROM deliveries d JOIN occurrences o ON o.id = d.occurrence_id "
        "JOIN enrollments e ON e.id = o.enrollment_id "
        "WHERE e.participant_id = :p AND d.channel = 'sms' AND d.due_at > :at",
        p=sam,
        at=stopped_at,
    )
    states = {state for (state,) in later}
    assert "cancelled" in states
    assert "sent" not in states
    assert all(p["sms"] == "opted_out" for p in run.report()["participants"]
               if p["participant"] == sam)  # fmt: skip


def completion(run: Run, name: str) -> float:
    entries = [p for p in run.report()["participants"] if p["name"] == name]
    done = sum(x["done"] for p in entries for x in p["practices"])
    decided = sum(x["done"] + x["skipped"] + x["missed"] for p in entries for x in p["practices"])
    return float(done / decided)


def test_the_one_who_slips_completes_less_than_those_who_keep_up(run: Run) -> None:
    slipper = completion(run, "Amara Mensah")
    for keeper in ("Rae Okafor", "Kenji Sato", "Priya Nair"):
        assert completion(run, keeper) > slipper + 0.2
    # Replies went through the real inbound logic, which understood them.
    understood = {u for (u,) in run.rows("SELECT DISTINCT understood FROM replies")}
    assert {"done", "rating", "number", "text", "opt_out"} <= understood


def test_new_york_reminders_keep_their_local_time_across_the_change_to_summer_time(
    run: Run,
) -> None:
    rae = participant(run, "Rae Okafor")
    rows = run.rows(
        "SELECT o.local_date, o.instant, d.sent_at FROM occurrences o "
        "JOIN enrollments e ON e.id = o.enrollment_id "
        "JOIN deliveries d ON d.occurrence_id = o.id AND d.kind = 'reminder' "
        "WHERE e.participant_id = :p AND o.practice_id = 'rested' "
        "AND o.local_date IN ('2026-03-06', '2026-03-10') ORDER BY o.local_date",
        p=rae,
    )
    zone = ZoneInfo("America/New_York")
    seen = {}
    for local_date, instant, sent_at in rows:
        assert sent_at is not None
        moment = _utc(instant)
        seen[date.fromisoformat(str(local_date))] = moment
        # Wake + 20m: Rae texted WAKE 6:45 on day 4 (5 March), before both days.
        assert moment.astimezone(zone).time() == time(7, 5)
    before, after = seen[date(2026, 3, 6)], seen[date(2026, 3, 10)]
    assert (before.hour, after.hour) == (12, 11)  # EST, then EDT


def _utc(value: Any) -> Any:
    from datetime import UTC, datetime

    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _without_ids(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in entry.items() if k not in ("participant", "enrollment")}
        for entry in report["participants"]
    ]


def test_participants_have_their_own_say_and_the_report_shows_it(run: Run) -> None:
    """Kenji snoozes a reminder, Rae moves her wake time, Priya sets quiet hours; the
    terminal and the HTML report both show them."""
    said = run.output.split("Participants' own say, by text:")[1]
    assert "Kenji Sato" in said
    assert "LATER 20 (Two minutes for the younger you again in 20 minutes" in said
    assert "Rae Okafor" in said
    assert "WAKE 6:45 (set wake to 06:45)" in said
    assert "QUIET 22:00-07:00" in said
    html = (run.folder / "report.html").read_text()
    assert "Their own say, by text" in html
    assert "LATER 20" in html
    assert "WAKE 6:45" in html
    kenji = participant(run, "Kenji Sato")
    repeated = run.rows(
        "SELECT o.body FROM outbox o JOIN deliveries d ON d.id = o.delivery_id "
        "JOIN occurrences c ON c.id = d.occurrence_id JOIN enrollments e "
        "ON e.id = c.enrollment_id WHERE e.participant_id = :p AND d.kind = 'repeat1'",
        p=kenji,
    )
    assert len(repeated) == 1
    assert repeated[0][0].startswith("Again: Morning, Kenji.")


def test_the_spanish_speaker_reads_spanish_and_the_discreet_one_nothing_revealing(
    run: Run,
) -> None:
    lucia = run.rows("SELECT body FROM outbox WHERE recipient = '+13125550190'")
    assert len(lucia) > 10
    assert any("Responde LISTO" in body for (body,) in lucia)
    assert not any("Reply DONE" in body for (body,) in lucia)
    noor = [
        body for (body,) in run.rows("SELECT body FROM outbox WHERE recipient = '+447700900456'")
    ]
    assert len(noor) > 5
    answers = [a for (a,) in run.rows(
        "SELECT r.answer FROM replies r JOIN participants p ON p.id = r.participant_id "
        "WHERE p.phone = '+447700900456' AND r.answer IS NOT NULL"
    )]  # fmt: skip
    assert answers
    for body in [*noor, *answers]:
        for secret in ("body", "scan", "journal", "compassion", "Body awareness"):
            assert secret.lower() not in body.lower(), body
    assert any("evening practice" in body for body in noor)


def test_the_same_seed_gives_the_same_run(run: Run, tmp_path: Path) -> None:
    again = demo(tmp_path / "again")
    assert _without_ids(again.report()) == _without_ids(run.report())
    table = [line for line in run.output.splitlines() if "subscribed" in line or "opted" in line]
    assert table == [
        line for line in again.output.splitlines() if "subscribed" in line or "opted" in line
    ]


def test_the_folder_is_replaced_only_when_the_demo_made_it(tmp_path: Path) -> None:
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(cli.main, ["demo", "--out", str(precious)])
    assert result.exit_code == 2
    assert "not made by tend demo" in result.stderr
    assert (precious / "notes.txt").read_text() == "keep me"
