"""Importing people from a CSV file (`actions.imports.import_csv`) on SQLite.

N people (default 2,000) in one file, imported without a plan and with one (two
practices a day, 14 days materialised per enrollment), each into an empty database.
Baseline from the same run: the same people added and enrolled one by one through the
existing actions (`participants.create`, `enrollments.enroll`), as a coach typing them
in would. Target: 2,000 with a plan in a few seconds.

    python -m bench.import_csv [--people N]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from bench.report import write_section
from service.actions import enrollments as enrolling
from service.actions import imports
from service.actions import participants as people
from service.actions import plans as publishing
from service.clock import ManualClock
from service.logging import configure_logging
from service.runtime import Runtime
from service.settings import load_settings
from service.storage.db import make_engine, upgrade

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
START = date(2026, 3, 2)
PLAN = """\
plan: bench-import
title: Bench import
weeks: 8
variables:
  wake: "07:00"
practices:
  - id: walk
    category: movement
    title: Walk
    at: "18:00"
    channels: [sms]
    message: "Walk, {{ participant.first_name }}."
  - id: breathe
    category: mindfulness
    title: Breathe
    at: wake + 10m
    channels: [sms]
    message: "Breathe, {{ participant.first_name }}."
"""


def csv_of(count: int) -> bytes:
    lines = ["name,timezone,phone,email,wake"]
    lines += [
        f"Person {i},America/New_York,+1415555{i:04d},p{i}@example.org,06:{i % 60:02d}"
        for i in range(count)
    ]
    return ("\n".join(lines) + "\n").encode()


def fresh_runtime(folder: Path, name: str) -> Runtime:
    url = f"sqlite:///{folder / name}.db"
    engine = make_engine(url)
    upgrade(engine)
    settings = load_settings(
        database_url=url,
        schedules_dir=folder / "schedules",
        templates_dir=ROOT / "templates",
        secret_key="bench",
    )
    runtime = Runtime.build(settings, clock=ManualClock(NOW), channels={}, engine=engine)
    publishing.publish(runtime, PLAN, by="bench")
    return runtime


def seconds(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def measure(folder: Path, count: int) -> tuple[dict[str, float], str]:
    data = csv_of(count)
    found: dict[str, float] = {}
    runtime = fresh_runtime(folder, "plain")
    found["import"] = seconds(lambda: imports.import_csv(runtime, data, filename="b.csv"))
    runtime.close()
    runtime = fresh_runtime(folder, "planned")
    found["import_plan"] = seconds(
        lambda: imports.import_csv(
            runtime, data, filename="b.csv", plan="bench-import", start=START
        )
    )
    runtime.close()
    runtime = fresh_runtime(folder, "profiled")  # apart: a profile slows what it measures
    profile = cProfile.Profile()
    profile.enable()
    imports.import_csv(runtime, data, filename="b.csv", plan="bench-import", start=START)
    profile.disable()
    runtime.close()
    runtime = fresh_runtime(folder, "one_by_one")
    plan = enrolling.running_plan(runtime, "bench-import")

    def one_by_one() -> None:
        for i in range(count):
            person = people.create(
                runtime,
                name=f"Person {i}",
                timezone="America/New_York",
                phone=f"+1415555{i:04d}",
                email=f"p{i}@example.org",
                variables={"wake": f"06:{i % 60:02d}"},
            )
            enrolling.enroll(runtime, person.id, plan, START, {})

    found["one_by_one"] = seconds(one_by_one)
    runtime.close()
    stats = pstats.Stats(profile)
    enrolling_share = _cumulative(stats, "_enroll") / _cumulative(stats, "import_csv")
    return found, f"{enrolling_share:.0%}"


def _cumulative(stats: pstats.Stats, function: str) -> float:
    for (path, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        if name == function and path.endswith("imports.py"):
            return float(row[3])
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=2000)
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "schedules").mkdir()
        f, share = measure(folder, args.people)
    row = (
        f"| SQLite | {args.people:,} | {f['import']:.2f} s | {f['import_plan']:.2f} s | "
        f"{f['one_by_one']:.2f} s | {f['import_plan'] / f['one_by_one']:.2f} | {share} |"
    )
    print(row)
    body = f"""## Importing people from CSV

`python -m bench.import_csv`: {args.people:,} people in one CSV file, imported into an
empty SQLite database without a plan, and with one (two practices a day, 14 days
stored per enrollment). Baseline from the same run: the same people added and enrolled
one by one through `participants.create` and `enrollments.enroll`, each in its own
transaction. The last column is the share of the import with a plan spent enrolling
(`enroll_in`, the engine's own work per enrollment), from a profile of that run.

| database | people | import | import with a plan | one by one, with the plan \
| ratio | enrolling's share |
|---|---|---|---|---|---|---|
{row}

The import reads and checks the file in memory, inserts everyone in one statement and
does the rest in one transaction; enrolling is most of its time (each enrollment
expands the plan and inserts its occurrences and deliveries, as enrolling one person
does), so it is left as it is.
"""
    write_section("import_csv", body)


if __name__ == "__main__":
    main()
