"""The `tend plans` commands, as CONTRACT.md section 2 describes them."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
from click.testing import CliRunner, Result
from ruamel.yaml import YAML

from service.cli import main
from tests.support.plans import REPO

Write = Callable[[str, str], Path]

SLEEP = """\
plan: sleep-hygiene
title: Sleep hygiene
weeks: 1
variables:
  wake: "07:00"
  bedtime: "22:30"
practices:
  - id: screens-off
    category: sleep
    title: Screens off
    at: bedtime - 60m
    duration: 10m
    channels: [sms, calendar]
    message: "Screens off now. {{ participant.first_name }}, bedtime is {{ vars.bedtime }}."
  - id: get-up
    category: sleep
    title: Get up
    at: wake
    every: weekday
    check_in: {kind: rating, scale: [1, 5]}
    rotate: [Open the curtains., Drink water.]
    message: "Up, {{ participant.first_name }}! {{ item }}"
  - id: another
    category: sleep
    title: Same time as screens-off
    at: "21:30"
    every: [mon]
    channels: [calendar]
    message: "Both at 21:30"
"""

BAD = """\
plan: bad-plan
title: Bad
weeks: 2
practices:
  - id: a
    category: slep
    title: A
    at: "25:00"
    message: hi
"""

WARNED = """\
plan: warned
title: Warned
weeks: 1
practices:
  - id: late
    category: sleep
    title: Late
    at: "03:00"
    message: hi
"""


@pytest.fixture
def tend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, templates_dir: Path
) -> Callable[..., Result]:
    """Run `tend` in tmp_path with its schedules and templates folders there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schedules").mkdir()
    monkeypatch.setenv("TEND_SCHEDULES_DIR", str(tmp_path / "schedules"))
    monkeypatch.setenv("TEND_TEMPLATES_DIR", str(templates_dir))

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return run


# --- check ------------------------------------------------------------------------------


def test_check_prints_each_error_as_path_line_column(
    tend: Callable[..., Result], write_file: Write
) -> None:
    path = write_file("schedules/bad.yaml", BAD)
    result = tend("plans", "check", str(path))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}:6:15: error: unknown category 'slep' (did you mean 'sleep'?); expected one of "
        "sleep, movement, affirmation, mindfulness, journaling, connection, other",
        f"{path}:8:9: error: '25:00' is not a time of day; use 00:00 to 23:59",
    ]
    assert result.stderr == "checked 1 plan file: 2 errors, 0 warnings\n"


def test_check_lines_match_the_contract_format(
    tend: Callable[..., Result], write_file: Write
) -> None:
    write_file("schedules/bad.yaml", BAD)
    write_file("schedules/warned.yaml", WARNED)
    result = tend("plans", "check", "schedules")
    pattern = re.compile(
        r"^(?P<path>[^:]+):(?P<line>[1-9]\d*):(?P<col>[1-9]\d*): (error|warning): \S.*$"
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert all(pattern.match(line) for line in lines), lines
    assert lines[2] == (
        "schedules/warned.yaml:8:9: warning: 03:00 is in the small hours; "
        "a reminder then may wake someone"
    )


def test_check_exits_0_with_only_warnings(tend: Callable[..., Result], write_file: Write) -> None:
    path = write_file("schedules/warned.yaml", WARNED)
    result = tend("plans", "check", str(path))
    assert result.exit_code == 0
    assert (
        result.stdout
        == f"{path}:8:9: warning: 03:00 is in the small hours; a reminder then may wake someone\n"
    )
    assert "0 errors, 1 warning" in result.stderr


def test_check_a_clean_plan(tend: Callable[..., Result], write_file: Write) -> None:
    path = write_file("schedules/sleep.yaml", SLEEP)
    result = tend("plans", "check", str(path))
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "checked 1 plan file: 0 errors, 0 warnings\n"


def test_check_defaults_to_the_schedules_folder_recursively(
    tend: Callable[..., Result], write_file: Write, tmp_path: Path
) -> None:
    write_file("schedules/sleep.yaml", SLEEP)
    write_file("schedules/deeper/still/bad.yml", BAD)
    write_file("schedules/notes.txt", "not a plan: [")
    write_file("elsewhere/bad.yaml", BAD)
    result = tend("plans", "check")
    assert result.exit_code == 1
    paths = {line.split(":")[0] for line in result.stdout.splitlines()}
    assert paths == {str(tmp_path / "schedules/deeper/still/bad.yml")}
    assert "checked 2 plan files: 2 errors" in result.stderr


def test_check_several_paths_and_folders(tend: Callable[..., Result], write_file: Write) -> None:
    one = write_file("a/one.yaml", BAD)
    write_file("b/c/two.yaml", BAD.replace("bad-plan", "bad-two"))
    result = tend("plans", "check", str(one), "b")
    assert result.exit_code == 1
    assert sorted({line.split(":")[0] for line in result.stdout.splitlines()}) == [
        str(one),
        "b/c/two.yaml",
    ]


def test_check_reports_duplicate_plan_ids(tend: Callable[..., Result], write_file: Write) -> None:
    write_file("schedules/a.yaml", SLEEP)
    write_file("schedules/b.yaml", SLEEP)
    result = tend("plans", "check", "schedules")
    assert result.exit_code == 1
    assert result.stdout == (
        "schedules/b.yaml:1:7: error: plan id 'sleep-hygiene' is already used by schedules/a.yaml\n"
    )


def test_check_a_path_that_does_not_exist(tend: Callable[..., Result]) -> None:
    result = tend("plans", "check", "nope.yaml")
    assert result.exit_code == 1
    assert result.stdout == "nope.yaml:1:1: error: no such file or folder\n"


def test_check_never_shows_a_traceback(tend: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "schedules" / "binary.yaml").write_bytes(b"\xff\xfe\x00plan")
    (tmp_path / "schedules" / "list.yaml").write_text("- 1\n- 2\n")
    result = tend("plans", "check")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert len(result.stdout.splitlines()) == 2


def test_python_dash_m_service(tmp_path: Path, write_file: Write, templates_dir: Path) -> None:
    path = write_file("bad.yaml", BAD)
    env = {
        "PATH": "/usr/bin:/bin",
        "TEND_TEMPLATES_DIR": str(templates_dir),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-m", "service", "plans", "check", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith(f"{path}:6:15: error: unknown category 'slep'")
    assert "checked 1 plan file: 2 errors, 0 warnings" in done.stderr


# --- preview ----------------------------------------------------------------------------


def _json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_preview_json_shape(tend: Callable[..., Result], write_file: Write) -> None:
    path = write_file("schedules/sleep.yaml", SLEEP)
    data = _json(
        tend(
            "plans",
            "preview",
            str(path),
            "--start",
            "2026-03-02",
            "--tz",
            "America/New_York",
            "--format",
            "json",
        )
    )
    assert list(data) == ["plan", "start", "timezone", "occurrences"]
    assert (data["plan"], data["start"], data["timezone"]) == (
        "sleep-hygiene",
        "2026-03-02",
        "America/New_York",
    )
    occurrences = data["occurrences"]
    assert len(occurrences) == 7 + 5 + 1
    keys = [
        "key",
        "practice",
        "category",
        "title",
        "week",
        "local",
        "utc",
        "duration_minutes",
        "channels",
        "check_in",
        "text",
    ]
    assert all(list(o) == keys for o in occurrences)
    assert occurrences[0] == {
        "key": "get-up:2026-03-02",
        "practice": "get-up",
        "category": "sleep",
        "title": "Get up",
        "week": 1,
        "local": "2026-03-02T07:00:00-05:00",
        "utc": "2026-03-02T12:00:00Z",
        "duration_minutes": 15,
        "channels": ["sms"],
        "check_in": "rating",
        "text": "Up, Alex! Open the curtains.",
    }
    # two practices at the same instant: sorted by practice id
    assert [o["key"] for o in occurrences[1:3]] == ["another:2026-03-02", "screens-off:2026-03-02"]
    assert occurrences[2] == {
        "key": "screens-off:2026-03-02",
        "practice": "screens-off",
        "category": "sleep",
        "title": "Screens off",
        "week": 1,
        "local": "2026-03-02T21:30:00-05:00",
        "utc": "2026-03-03T02:30:00Z",
        "duration_minutes": 10,
        "channels": ["sms", "calendar"],
        "check_in": "done",
        "text": "Screens off now. Alex, bedtime is 22:30.",
    }
    assert [(o["utc"], o["practice"]) for o in occurrences] == sorted(
        (o["utc"], o["practice"]) for o in occurrences
    )
    assert occurrences[3]["text"] == "Up, Alex! Drink water."


def test_preview_by_id_with_variables_and_dst(
    tend: Callable[..., Result], write_file: Write
) -> None:
    write_file("schedules/sub/sleep.yaml", SLEEP)
    data = _json(
        tend(
            "plans",
            "preview",
            "sleep-hygiene",
            "--start",
            "2026-03-08",
            "--tz",
            "America/New_York",
            "--var",
            "wake=02:30",
            "--var",
            "bedtime = 23:00",
            "--format",
            "json",
        )
    )
    first = data["occurrences"][0]
    # Sunday 8 March: 02:30 does not exist in New York; the weekday practice starts Monday
    assert first["key"] == "screens-off:2026-03-08"
    assert (first["local"], first["utc"]) == ("2026-03-08T22:00:00-04:00", "2026-03-09T02:00:00Z")
    get_up = next(o for o in data["occurrences"] if o["practice"] == "get-up")
    assert (get_up["local"], get_up["utc"]) == ("2026-03-09T02:30:00-04:00", "2026-03-09T06:30:00Z")
    assert "bedtime is 23:00" in first["text"]


def test_preview_table_is_readable(tend: Callable[..., Result], write_file: Write) -> None:
    path = write_file("schedules/sleep.yaml", SLEEP)
    result = tend("plans", "preview", str(path), "--start", "2026-03-02", "--tz", "Europe/London")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "Sleep hygiene (sleep-hygiene): 7 days from 2026-03-02, Europe/London"
    assert lines[1] == "13 reminders"
    assert lines[2] == ""
    assert lines[3] == "Mon 02 Mar 2026  week 1"
    assert re.match(r"^  07:00  get-up\s+sms\s+rating\s+Up, Alex! Open the curtains\.$", lines[4])
    assert re.match(r"^  21:30  another\s+calendar\s+done\s+Both at 21:30$", lines[5])
    assert sum(1 for line in lines if re.match(r"^\w{3} \d\d \w{3} 2026  week 1$", line)) == 7


def test_preview_ics(tend: Callable[..., Result], write_file: Write) -> None:
    path = write_file("schedules/sleep.yaml", SLEEP)
    result = tend(
        "plans",
        "preview",
        str(path),
        "--start",
        "2026-03-07",
        "--tz",
        "America/New_York",
        "--format",
        "ics",
    )
    assert result.exit_code == 0
    calendar = icalendar.Calendar.from_ical(result.stdout_bytes)
    events = calendar.walk("VEVENT")
    # only practices with the calendar channel: screens-off daily, another on Monday
    assert sorted(str(e["UID"]).split(".")[0] for e in events) == sorted(
        [f"screens-off:2026-03-{d:02d}" for d in range(7, 14)] + ["another:2026-03-09"]
    )
    timezones = calendar.walk("VTIMEZONE")
    assert [str(tz["TZID"]) for tz in timezones] == ["America/New_York"]
    raw = result.stdout_bytes.decode()
    starts = [line for line in raw.splitlines() if line.startswith("DTSTART")]
    event_starts = [line for line in starts if ";TZID=" in line]
    assert len(event_starts) == len(events)
    for event in events:
        start = event.decoded("DTSTART")
        assert start.tzinfo is not None
        assert event["DTSTART"].params["TZID"] == "America/New_York"
    by_uid = {str(e["UID"]).split(".")[0]: e for e in events}
    sunday = by_uid["screens-off:2026-03-08"]
    assert sunday.decoded("DTSTART").isoformat() == "2026-03-08T21:30:00-04:00"
    assert sunday.decoded("DTEND") - sunday.decoded("DTSTART") == timedelta(minutes=10)
    assert str(sunday["SUMMARY"]) == "Screens off"
    assert str(sunday["DESCRIPTION"]) == "Screens off now. Alex, bedtime is 22:30."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--tz", "America/New_Yrok"],
            "tend: unknown time zone 'America/New_Yrok' (did you mean 'America/New_York'?)",
        ),
        (["--tz", "../../etc/passwd"], "tend: unknown time zone '../../etc/passwd'"),
        (
            ["--tz", "UTC", "--start", "2026-3-2"],
            "tend: '2026-3-2' is not a date; write YYYY-MM-DD",
        ),
        (["--tz", "UTC", "--start", "2026-02-30"], "tend: '2026-02-30' is not a date"),
        (
            ["--tz", "UTC", "--var", "wake"],
            "tend: --var takes NAME=VALUE, such as wake=06:30, not 'wake'",
        ),
        (["--tz", "UTC", "--var", "wak=06:00"], "tend: plan 'sleep-hygiene' has no variable 'wak'"),
        (
            ["--tz", "UTC", "--var", "wake=25:00"],
            "tend: variable 'wake': '25:00' is not a time of day",
        ),
    ],
)
def test_preview_bad_options(
    tend: Callable[..., Result], write_file: Write, args: list[str], message: str
) -> None:
    write_file("schedules/sleep.yaml", SLEEP)
    if "--start" not in args:
        args = [*args, "--start", "2026-03-02"]
    result = tend("plans", "preview", "sleep-hygiene", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message), result.stderr


def test_preview_unknown_plan(tend: Callable[..., Result]) -> None:
    result = tend("plans", "preview", "nope", "--start", "2026-03-02", "--tz", "UTC")
    assert result.exit_code == 2
    assert "tend: no plan with id 'nope'" in result.stderr
    missing = tend("plans", "preview", "missing.yaml", "--start", "2026-03-02", "--tz", "UTC")
    assert (missing.exit_code, missing.stderr) == (2, "tend: no plan file at missing.yaml\n")


def test_preview_a_plan_with_errors(tend: Callable[..., Result], write_file: Write) -> None:
    path = write_file("schedules/bad.yaml", BAD)
    result = tend("plans", "preview", "bad-plan", "--start", "2026-03-02", "--tz", "UTC")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:6:15: error: unknown category 'slep' (did you mean 'sleep'?); expected one of "
        "sleep, movement, affirmation, mindfulness, journaling, connection, other",
        f"{path}:8:9: error: '25:00' is not a time of day; use 00:00 to 23:59",
        "tend: the plan has errors; fix them first (tend plans check)",
    ]


def test_bad_settings_are_reported_not_raised(
    tend: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEND_HTTP_PORT", "abc")
    result = tend("plans", "check")
    assert result.exit_code == 2
    assert result.stderr.startswith("tend: invalid settings:\n  TEND_HTTP_PORT:")


# --- schema -----------------------------------------------------------------------------


def _validate(instance: Any, schema: dict[str, Any], root: dict[str, Any]) -> list[str]:
    """A small JSON Schema (2020-12) validator for the keywords the plan schema uses."""
    annotations = {"title", "description", "default", "examples", "$schema", "$id", "$defs"}
    unknown = (
        set(schema)
        - annotations
        - {
            "$ref",
            "anyOf",
            "type",
            "enum",
            "pattern",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "minItems",
            "maxItems",
            "minimum",
            "maximum",
            "uniqueItems",
            "const",
        }
    )
    assert not unknown, f"the test validator does not know {unknown}"
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        return _validate(instance, root["$defs"][ref.removeprefix("#/$defs/")], root)
    options = schema.get("anyOf", [])
    if options and all(_validate(instance, option, root) for option in options):
        return [f"{instance!r} matches no option"]
    errors: list[str] = []
    kinds = {
        "object": dict,
        "array": list,
        "string": str,
        "null": type(None),
        "boolean": bool,
    }
    kind = schema.get("type")
    if kind == "integer":
        if not isinstance(instance, int) or isinstance(instance, bool):
            return [f"{instance!r} is not an integer"]
    elif kind == "number":
        if not isinstance(instance, int | float) or isinstance(instance, bool):
            return [f"{instance!r} is not a number"]
    elif kind is not None and not isinstance(instance, kinds[kind]):
        return [f"{instance!r} is not of type {kind}"]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{instance!r} not in {schema['enum']}")
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{instance!r} is not {schema['const']!r}")
    if (
        "pattern" in schema
        and isinstance(instance, str)
        and not re.search(schema["pattern"], instance)
    ):
        errors.append(f"{instance!r} does not match {schema['pattern']}")
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            errors.append(f"{instance} < {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            errors.append(f"{instance} > {schema['maximum']}")
    if isinstance(instance, dict):
        for name in schema.get("required", []):
            if name not in instance:
                errors.append(f"missing {name}")
        properties = schema.get("properties", {})
        for name, value in instance.items():
            if name in properties:
                errors.extend(_validate(value, properties[name], root))
            elif schema.get("additionalProperties") is False:
                errors.append(f"unknown key {name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors.extend(_validate(value, schema["additionalProperties"], root))
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            errors.append("too few items")
        if len(instance) > schema.get("maxItems", len(instance)):
            errors.append("too many items")
        if schema.get("uniqueItems") and len({json.dumps(i) for i in instance}) != len(instance):
            errors.append("items repeat")
        if "items" in schema:
            for item in instance:
                errors.extend(_validate(item, schema["items"], root))
    return errors


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = CliRunner().invoke(main, ["plans", "schema"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(textwrap.dedent(text))


def test_schema_top(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["required"] == ["plan", "title", "practices"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "plan",
        "title",
        "summary",
        "weeks",
        "days",
        "variables",
        "defaults",
        "practices",
        "weekly_summary",
        "timezone",
        "language",
    }


def test_schema_refs_all_resolve(schema: dict[str, Any]) -> None:
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(schema))
    assert refs
    for ref in refs:
        assert ref.removeprefix("#/$defs/") in schema["$defs"], ref


def test_schema_accepts_valid_plans(schema: dict[str, Any]) -> None:
    sample = _yaml(SLEEP)
    assert _validate(sample, schema, schema) == []
    richer = _yaml(
        """\
        plan: p
        title: T
        days: 10
        defaults: {channels: [sms], category: movement}
        practices:
          - id: a
            title: A
            at: "7:30"
            rrule: FREQ=WEEKLY;BYDAY=MO
            weeks: [1, "2-3"]
            window: 1h30m
            check_in: text
            nudge: {after: 45m, message: Still?}
            phases: [{weeks: 2, at: "08:00", duration: 1h, rotate: [x]}]
          - id: b
            title: B
            at: wake + 10m
            every: [Mon, Fridays]
            check_in: {kind: number, unit: steps}
          - id: c
            title: C
            at: "09:00"
            every: Mon, Wed.
          - id: d
            title: D
            at: "09:00"
            every: Sundays
          - id: e
            title: E
            at: "09:00"
            every: Weekdays
        weekly_summary: {day: Saturdays, at: "18:30", channels: [sms, email]}
        """
    )
    assert _validate(richer, schema, schema) == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda p: p.update(variabls={}), "unknown key"),
        (lambda p: p["practices"][0].update(category="slep"), "matches no option"),
        (lambda p: p["practices"][0].update(channels=["sms", "fax"]), "matches no option"),
        (lambda p: p["practices"][0].update(every=["mon", "wdn"]), "matches no option"),
        (lambda p: p["practices"][0].update(at="7h"), "matches no option"),
        (lambda p: p.update(plan="Bad_Id"), "does not match"),
        (lambda p: p.update(practices=[]), "too few items"),
        (lambda p: p.pop("title"), "missing title"),
        (lambda p: p.update(weekly_summary={"dya": "sun"}), "matches no option"),
        (lambda p: p.update(weekly_summary={"channels": ["calendar"]}), "matches no option"),
        (lambda p: p.update(weekly_summary={"day": "sundy"}), "matches no option"),
        (lambda p: p["practices"][0].update(every="Sundy"), "matches no option"),
        (lambda p: p["practices"][0].update(every="Mon, Wdn"), "matches no option"),
    ],
)
def test_schema_rejects_invalid_plans(
    schema: dict[str, Any], change: Callable[[dict[str, Any]], Any], path: str
) -> None:
    sample = _yaml(SLEEP)
    change(sample)
    errors = _validate(sample, schema, schema)
    assert any(path in error for error in errors), errors


@pytest.mark.skipif(
    importlib.util.find_spec("jsonschema") is None, reason="jsonschema is not installed"
)
def test_schema_with_jsonschema(schema: dict[str, Any]) -> None:  # pragma: no cover - optional
    import jsonschema  # type: ignore[import-untyped]

    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(_yaml(SLEEP))
