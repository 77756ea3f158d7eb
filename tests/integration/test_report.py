"""`tend report` through the command line: the contract's JSON shape, CSV, the table,
the filters, and one week of check-ins whose every figure is worked out by hand.

The data is made with the harness on a manual clock (reminders really sent, check-ins
recorded on the occurrences); the command then reads the same database at a fixed
moment. Every test runs on SQLite and on PostgreSQL (`db_url`).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from service import cli
from service.clock import ManualClock
from service.storage import checkins
from service.storage import participants as participant_rows
from service.storage.db import transaction
from service.storage.tables import occurrences
from tests.support.engine import Folders, Harness, publish

WEEK = """
    plan: week
    title: A week
    weeks: 2
    practices:
      - id: walk
        category: movement
        title: Walk
        at: "09:00"
        channels: [sms]
      - id: breathe
        category: mindfulness
        title: Breathe
        at: "09:00"
        channels: [sms]
        check_in: none
"""

MORNINGS = """
    plan: mornings
    title: Mornings
    weeks: 1
    practices:
      - id: stretch
        category: movement
        title: Stretch
        at: "07:00"
        channels: [sms]
"""

START = date(2026, 3, 9)  # a Monday, after the switch to daylight time in New York
# 09:00 EDT is 13:00 UTC; the default 12-hour window closes at 01:00 UTC the next day.
NINE = datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
# The report is read on Sunday the 15th at 11:00 EDT: Sunday's walk (13:00 UTC) is due
# and its window open until Monday 01:00 UTC; next week's walks are not due yet.
NOW = datetime(2026, 3, 15, 15, 0, tzinfo=UTC)

# Rae's walks, Monday to Sunday: D done, S skipped, M missed (reminder sent, no answer),
# P pending (window still open at NOW).
WALKS = "DDDMDSP"

CONTRACT_ENTRY = ["participant", "name", "enrollment", "plan", "status", "sms", "practices"]
CONTRACT_PRACTICE = [
    "practice",
    "scheduled",
    "done",
    "skipped",
    "missed",
    "pending",
    "completion_rate",
    "current_streak",
    "longest_streak",
    "strength",
]
CSV_HEADER = [
    *CONTRACT_ENTRY[:-1],
    *CONTRACT_PRACTICE,
    "rating_count",
    "rating_mean",
    "number_count",
    "number_mean",
    "number_unit",
]

# The walk figures at NOW, by hand.
#
# scheduled: the 7 walks Monday..Sunday (instants <= NOW); next Monday's is ahead.
# done 4 (Mon, Tue, Wed, Fri), skipped 1 (Sat), missed 1 (Thu), pending 1 (Sun).
# completion_rate = done / (scheduled - pending) = 4 / (7 - 1) = 0.6667 -> 0.67
# Streaks over the decided ones, D D D M D S: Mon-Wed make 3 (longest); Thursday's miss
# ends it; Friday starts a new one of 1, which Saturday's skip neither extends nor
# breaks, and Sunday is pending: current_streak 1.
# Strength: f = 14 walks / 14 days = 1, m = 0.5 ** (1/13) = 0.9480775, 1 - m = 0.0519225.
#   Mon D: 0         * m + 0.0519225 = 0.0519225
#   Tue D: 0.0519225 * m + 0.0519225 = 0.1011492   (= 1 - m**2)
#   Wed D: 0.1011492 * m + 0.0519225 = 0.1478196   (= 1 - m**3)
#   Thu M: 0.1478196 * m             = 0.1401444
#   Fri D: 0.1401444 * m + 0.0519225 = 0.1847903
#   Sat S: unchanged                 = 0.1847903
#   Sun P: not counted               -> 0.18
WALK_FIGURES = {
    "practice": "walk",
    "scheduled": 7,
    "done": 4,
    "skipped": 1,
    "missed": 1,
    "pending": 1,
    "completion_rate": 0.67,
    "current_streak": 1,
    "longest_streak": 3,
    "strength": 0.18,
}
# Sam paused SMS before the plan began: no reminder reached him Monday to Saturday, so
# those are excused and left out; Sunday's (07:00 EDT = 11:00 UTC) is due and its window
# open until 23:00 UTC: scheduled 1, pending 1, nothing decided, so no rate (null).
STRETCH_FIGURES = {
    "practice": "stretch",
    "scheduled": 1,
    "done": 0,
    "skipped": 0,
    "missed": 0,
    "pending": 1,
    "completion_rate": None,
    "current_streak": 0,
    "longest_streak": 0,
    "strength": 0.0,
}


def check_in(h: Harness, key: str, result: str, at: datetime, **value: Any) -> None:
    """Record a check-in on the occurrence `key`, as a reply or a link would."""
    with transaction(h.runtime.engine) as conn:
        found = conn.execute(select(occurrences.c.id).where(occurrences.c.key == key)).scalar_one()
        assert checkins.record_check_in(conn, found, result, now=at, **value)


def week_of_walks(h: Harness, folders: Folders) -> dict[str, str]:
    """Rae's week (see WALKS) and Sam's paused one; the ids by name."""
    folders.write_plan("week", WEEK)
    folders.write_plan("mornings", MORNINGS)
    publish(h.runtime)
    rae = h.participant("Rae Example")
    sam = h.participant("Sam Other", phone="+14155550199", email=None)
    rae_enrollment = h.enroll(rae, "week", START)
    sam_enrollment = h.enroll(sam, "mornings", START)
    with transaction(h.runtime.engine) as conn:
        until = datetime(2026, 4, 1, tzinfo=UTC)
        participant_rows.set_sms_pause(conn, sam, until, source="test", now=h.clock.now())
    for day, result in enumerate(WALKS):
        instant = NINE + timedelta(days=day)
        h.at(instant)  # the walk and breathe reminders go out
        local = (START + timedelta(days=day)).isoformat()
        if result in "DS":
            outcome = "done" if result == "D" else "skipped"
            check_in(h, f"walk:{local}", outcome, instant + timedelta(minutes=20), source="sms")
    assert len(h.sms.sent) == 14  # 7 walks and 7 breathes to Rae; none to Sam
    return {
        "rae": rae,
        "sam": sam,
        "rae_enrollment": rae_enrollment,
        "sam_enrollment": sam_enrollment,
    }


@pytest.fixture
def env(db_url: str, folders: Folders, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    # The command reads the system clock: fix it at NOW.
    monkeypatch.setattr("service.runtime.SystemClock", lambda: ManualClock(NOW))
    return {
        "TEND_DATABASE_URL": db_url,
        "TEND_SCHEDULES_DIR": str(folders.schedules),
        "TEND_TEMPLATES_DIR": str(folders.templates),
        "TEND_SECRET_KEY": "test-secret",
        "TEND_PUBLIC_URL": "https://tend.test",
    }


@pytest.fixture
def ids(harness: Harness, folders: Folders) -> dict[str, str]:
    return week_of_walks(harness, folders)


def tend(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)


def report_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = tend(env, "report", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_json_is_exactly_the_contract_with_the_hand_worked_week(
    env: dict[str, str], ids: dict[str, str]
) -> None:
    data = report_json(env)
    assert list(data) == ["participants"]
    rae, sam = data["participants"]  # by name
    for entry in (rae, sam):
        assert list(entry) == CONTRACT_ENTRY
        for practice in entry["practices"]:
            assert list(practice) == CONTRACT_PRACTICE
    assert rae == {
        "participant": ids["rae"],
        "name": "Rae Example",
        "enrollment": ids["rae_enrollment"],
        "plan": "week",
        "status": "active",
        "sms": "subscribed",
        # `breathe` asks for no check-in: nothing to adhere to, so not listed.
        "practices": [WALK_FIGURES],
    }
    assert sam == {
        "participant": ids["sam"],
        "name": "Sam Other",
        "enrollment": ids["sam_enrollment"],
        "plan": "mornings",
        "status": "active",
        "sms": "paused",
        "practices": [STRETCH_FIGURES],
    }
    # A JSON null, not a missing key or "None".
    assert '"completion_rate": null' in tend(env, "report", "--format", "json").stdout


def test_the_report_reads_the_same_before_and_after_the_windows_are_closed(
    env: dict[str, str], ids: dict[str, str], harness: Harness
) -> None:
    before = report_json(env)
    harness.clock.set(NOW)
    harness.scheduler.maintain(force=True)  # marks Thursday missed, Sam's week excused
    with transaction(harness.runtime.engine) as conn:
        stored = dict(
            conn.execute(
                select(occurrences.c.key, occurrences.c.check_in).where(
                    occurrences.c.practice_id == "walk"
                )
            ).all()
        )
    assert stored["walk:2026-03-12"] == "missed"
    assert stored["walk:2026-03-15"] is None  # still open
    assert report_json(env) == before


def test_csv_has_the_header_and_one_row_per_practice(
    env: dict[str, str], ids: dict[str, str]
) -> None:
    result = tend(env, "report", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == CSV_HEADER
    assert rows[1:] == [
        [ids["rae"], "Rae Example", ids["rae_enrollment"], "week", "active", "subscribed",
         "walk", "7", "4", "1", "1", "1", "0.67", "1", "3", "0.18", "", "", "", "", ""],
        [ids["sam"], "Sam Other", ids["sam_enrollment"], "mornings", "active", "paused",
         "stretch", "1", "0", "0", "0", "1", "", "0", "0", "0.0", "", "", "", "", ""],
    ]  # fmt: skip


def test_the_table_shows_names_and_rates(env: dict[str, str], ids: dict[str, str]) -> None:
    result = tend(env, "report")  # table is the default
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "participant", "plan", "status", "sms", "practice", "sched", "done", "skip",
        "miss", "pend", "rate", "streak", "best", "strength", "values", "versions",
    ]  # fmt: skip
    rae = next(line for line in lines if line.startswith("Rae Example"))
    assert rae.split()[2:] == [
        "week", "active", "subscribed", "walk", "7", "4", "1", "1", "1", "67%", "1", "3", "0.18",
        "v1", "week", "1",  # every occurrence so far planned from version 1, in week 1
    ]  # fmt: skip
    sam = next(line for line in lines if line.startswith("Sam Other"))
    assert sam.split()[2:] == [
        "mornings", "active", "paused", "stretch", "1", "0", "0", "0", "1", "-", "0", "0", "0.00",
        "v1", "week", "1",
    ]  # fmt: skip
    assert len(lines) == 3


def test_filters_by_participant_and_plan(env: dict[str, str], ids: dict[str, str]) -> None:
    only_rae = report_json(env, "--participant", ids["rae"])
    assert [e["enrollment"] for e in only_rae["participants"]] == [ids["rae_enrollment"]]
    assert only_rae["participants"][0]["practices"] == [WALK_FIGURES]
    only_mornings = report_json(env, "--plan", "mornings")
    assert [e["enrollment"] for e in only_mornings["participants"]] == [ids["sam_enrollment"]]
    both = report_json(env, "--participant", ids["sam"], "--plan", "mornings")
    assert both == only_mornings
    assert report_json(env, "--participant", ids["rae"], "--plan", "mornings") == {
        "participants": []
    }
    csv_rows = tend(env, "report", "--format", "csv", "--plan", "week").stdout.splitlines()
    assert len(csv_rows) == 2
    assert csv_rows[1].startswith(f"{ids['rae']},Rae Example,")


def test_an_unknown_participant_is_an_error(env: dict[str, str], ids: dict[str, str]) -> None:
    for fmt in ("table", "json", "csv"):
        result = tend(env, "report", "--participant", "p_nobody", "--format", fmt)
        assert result.exit_code != 0
        assert "no participant 'p_nobody'" in result.stderr
        assert result.stdout == ""


def test_an_unknown_plan_is_an_error(env: dict[str, str], ids: dict[str, str]) -> None:
    result = tend(env, "report", "--plan", "nightly")
    assert result.exit_code != 0
    assert "no plan 'nightly'" in result.stderr


def test_an_empty_report(env: dict[str, str], harness: Harness) -> None:
    assert tend(env, "report").stdout == "No enrollments yet.\n"
    assert report_json(env) == {"participants": []}
    assert tend(env, "report", "--format", "csv").stdout.splitlines() == [",".join(CSV_HEADER)]


def test_rating_and_number_means_are_in_csv_and_table_but_not_json(
    harness: Harness, folders: Folders, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folders.write_plan(
        "values",
        """
        plan: values
        title: Values
        weeks: 1
        practices:
          - id: mood
            category: mindfulness
            title: Mood
            at: "09:00"
            check_in: {kind: rating, scale: [1, 10]}
          - id: sit
            category: mindfulness
            title: Sit
            at: "09:00"
            check_in: {kind: number, unit: minutes}
        """,
    )
    publish(harness.runtime)
    harness.enroll(harness.participant("Rae Example"), "values", START)
    # Monday mood 7, Tuesday mood 4: mean 5.5; Monday sat 10 minutes, Tuesday 15: 12.5.
    for day, (mood, sit) in enumerate([(7.0, 10.0), (4.0, 15.0)]):
        instant = NINE + timedelta(days=day)
        harness.at(instant)
        local = (START + timedelta(days=day)).isoformat()
        check_in(harness, f"mood:{local}", "done", instant, source="link", value=mood)
        check_in(harness, f"sit:{local}", "done", instant, source="link", value=sit, unit="minutes")
    # Read on Tuesday at noon EDT (16:00 UTC): two of each due, both done.
    tuesday_noon = NINE + timedelta(days=1, hours=3)
    monkeypatch.setattr("service.runtime.SystemClock", lambda: ManualClock(tuesday_noon))
    data = report_json(env)
    (entry,) = data["participants"]
    assert [list(p) for p in entry["practices"]] == [CONTRACT_PRACTICE, CONTRACT_PRACTICE]
    rows = list(csv.DictReader(io.StringIO(tend(env, "report", "--format", "csv").stdout)))
    assert [(r["practice"], r["rating_count"], r["rating_mean"]) for r in rows] == [
        ("mood", "2", "5.5"),
        ("sit", "", ""),
    ]
    assert [(r["number_count"], r["number_mean"], r["number_unit"]) for r in rows] == [
        ("", "", ""),
        ("2", "12.5", "minutes"),
    ]
    table = tend(env, "report").stdout
    assert "avg 5.5/10 (n=2)" in table
    assert "avg 12.5 minutes (n=2)" in table
