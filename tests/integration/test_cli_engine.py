"""The `tend` commands of the engine, as a newcomer types them, on SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from service import cli
from tests.support.engine import Folders
from tests.support.services import free_port, wait_for

PLAN = """
    plan: evening
    title: Evening
    weeks: 2
    variables:
      bedtime: "22:30"
    practices:
      - id: screens
        category: sleep
        title: Screens off
        at: bedtime - 1h
"""


@pytest.fixture
def env(tmp_path: Path, folders: Folders) -> dict[str, str]:
    folders.write_plan("evening", PLAN)
    return {
        "TEND_DATABASE_URL": f"sqlite:///{tmp_path / 'tend.db'}",
        "TEND_SCHEDULES_DIR": str(folders.schedules),
        "TEND_TEMPLATES_DIR": str(folders.templates),
        "TEND_SECRET_KEY": "test-secret",
        "TEND_PUBLIC_URL": "https://tend.test",
    }


def tend(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)


def test_a_newcomer_adds_a_participant_enrolls_them_and_lists_it(env: dict[str, str]) -> None:
    assert "upgraded from empty" in tend(env, "db", "upgrade").stdout
    assert "up to date" in tend(env, "db", "upgrade").stdout
    added = tend(env, "participants", "add", "--name", "Rae Example", "--phone",
                 "+1 415 555 0123", "--email", "rae@example.com", "--tz", "America/New_York")  # fmt: skip
    assert added.exit_code == 0, added.output
    person = added.stdout.splitlines()[-1]
    assert person.startswith("p_")

    # A plan is published before anyone is enrolled in it.
    early = tend(env, "enroll", person, "evening", "--start", "2028-01-10")
    assert early.exit_code == 2
    assert "no plan 'evening' is published" in early.stderr
    assert "tend plans push" in early.stderr
    pushed = tend(env, "plans", "push")
    assert pushed.exit_code == 0, pushed.output

    enrolled = tend(
        env, "enroll", person, "evening", "--start", "2028-01-10", "--var", "bedtime=23:00"
    )
    assert enrolled.exit_code == 0, enrolled.output
    enrollment = enrolled.stdout.splitlines()[-1]
    assert enrollment.startswith("e_")
    assert "first reminder screens at 2028-01-10 22:00 EST" in enrolled.stdout

    listed = json.loads(tend(env, "participants", "list", "--format", "json").stdout)
    (row,) = listed["participants"]
    assert (row["phone"], row["sms"], row["enrollments"]) == (
        "+14155550123",
        "subscribed",
        [enrollment],
    )

    table = tend(env, "enrollments", "list").stdout
    assert "Rae Example" in table
    assert "2028-01-10 22:00 screens" in table

    assert tend(env, "enrollments", "pause", enrollment).stdout.strip() == f"paused {enrollment}"
    again = tend(env, "enrollments", "pause", enrollment)  # asked twice: no change, no error
    assert (again.exit_code, again.stdout.strip()) == (0, f"{enrollment} was paused already")
    assert tend(env, "enrollments", "resume", enrollment).exit_code == 0
    assert tend(env, "enrollments", "cancel", enrollment).exit_code == 0
    data = json.loads(tend(env, "enrollments", "list", "--format", "json").stdout)
    assert data["enrollments"][0]["status"] == "cancelled"


def test_feed_urls_are_stable_until_rotated(env: dict[str, str]) -> None:
    tend(env, "db", "upgrade")
    person = tend(env, "participants", "add", "--name", "A", "--tz", "UTC").stdout.split()[-1]
    first = tend(env, "participants", "feed-url", person).stdout.strip()
    assert first == tend(env, "participants", "feed-url", person).stdout.strip()
    assert first.startswith(f"https://tend.test/calendar/{person}.")
    assert first.endswith(".ics")
    rotated = tend(env, "participants", "feed-url", person, "--rotate")
    assert rotated.stdout.strip() != first
    assert "no longer works" in rotated.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "A", "--tz", "Mars/Base"], "unknown time zone 'Mars/Base'"),
        (["--name", "A", "--tz", "Europe/Lodnon"], "did you mean 'Europe/London'"),
        (["--name", "A", "--tz", "UTC", "--phone", "555-0123"], "not a valid phone number"),
        (["--name", "A", "--tz", "UTC", "--email", "nobody"], "not an email address"),
        (["--name", " ", "--tz", "UTC"], "tend: a name cannot be empty"),
        (["--name", "A\x1b[2J", "--tz", "UTC"], "a name cannot contain control characters"),
        (["--name", "A", "--tz", "UTC", "--var", "Wake=07:00"], "'Wake' is not a variable name"),
        (["--name", "A", "--tz", "UTC", "--var", "wake"], "--var takes NAME=VALUE"),
        (["--name", "A", "--tz", "UTC", "--var", "wake=7h"], "is not a time"),
    ],
)
def test_bad_participant_input_is_refused_clearly(
    env: dict[str, str], args: list[str], message: str
) -> None:
    tend(env, "db", "upgrade")
    result = tend(env, "participants", "add", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert json.loads(tend(env, "participants", "list", "--format", "json").stdout) == {
        "participants": []
    }


def test_enrolling_with_bad_input_is_refused_and_stores_nothing(env: dict[str, str]) -> None:
    tend(env, "db", "upgrade")
    assert tend(env, "plans", "push").exit_code == 0
    person = tend(env, "participants", "add", "--name", "A", "--tz", "UTC").stdout.split()[-1]
    cases = [
        (["enroll", "p_nobody", "evening", "--start", "today"], "no participant 'p_nobody'"),
        (
            ["enroll", person, "nightly", "--start", "today"],
            "no plan 'nightly' is published",
        ),
        (["enroll", person, "evening", "--start", "March"], "not a date"),
        (
            ["enroll", person, "evening", "--start", "today", "--var", "wake=7:00"],
            "has no variable 'wake'",
        ),
        (
            ["enroll", person, "evening", "--start", "today", "--var", "bedtime=late"],
            "unknown variable 'late'",
        ),
    ]
    for args, message in cases:
        result = tend(env, *args)
        assert result.exit_code == 2, args
        assert message in result.stderr, (args, result.stderr)
    assert json.loads(tend(env, "enrollments", "list", "--format", "json").stdout) == {
        "enrollments": []
    }


def test_commands_on_an_empty_database_say_to_upgrade(env: dict[str, str]) -> None:
    result = tend(env, "participants", "list")
    assert result.exit_code == 2
    assert "tend db upgrade" in result.stderr


def test_scheduler_and_worker_need_redis(env: dict[str, str]) -> None:
    tend(env, "db", "upgrade")
    for command in ("scheduler", "worker"):
        result = tend(env, command)
        assert result.exit_code == 2
        assert "TEND_REDIS_URL" in result.stderr


def test_tend_run_serves_and_stops_cleanly_on_sigterm(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "run"],
        env={**os.environ, **env, "TEND_HTTP_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_for(healthy, 60, "tend run to answer /healthz")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/outbox", timeout=5) as page:
            assert "Development outbox" in page.read().decode()  # from this machine: shown
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    text = output.decode()
    assert "tend is running" in text
    assert "tend stopped" in text
    assert "Traceback" not in text
