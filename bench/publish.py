"""Publishing a plan: what a new version costs, and what reading plans costs a process.

N participants are enrolled in one plan (two practices a day, 14 days materialised) on
SQLite in a temporary folder, and on a throwaway PostgreSQL server when its binaries
are on this machine. Then, each against a baseline from the same run:

1. Publishing a version that moves one practice by half an hour (every enrollment's
   unsent occurrences of it move), against enrolling the same N people (the work
   publishing repeats per enrollment: reading its occurrences, reconciling, writing).
   A dry run of the same version, which reads and reconciles but writes nothing.
2. `PlanRegistry.refresh()` when nothing was published (what every scheduler pass and
   dashboard page pays), against `SELECT 1` on the same engine; and the first read of
   a version by a process that has not seen it (loading and checking its text).

    python -m bench.publish [--people N] [--repeat R]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bench.report import write_section
from service.actions import enrollments as enrolling
from service.actions import plans as publishing
from service.clock import ManualClock
from service.logging import configure_logging
from service.runtime import PlanRegistry, Runtime
from service.settings import load_settings
from service.storage import participants as participant_rows
from service.storage.db import make_engine, reading, transaction, upgrade
from tests.support.services import postgres_server

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
START = date(2026, 3, 2)
PLAN = """\
plan: bench-publish
title: Bench publish
weeks: 8
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
    at: "07:30"
    channels: [sms]
    message: "Breathe, {{ participant.first_name }}."
"""
MOVED = PLAN.replace('"18:00"', '"18:30"')


def seconds(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def median_of(repeat: int, work: Callable[[], object]) -> float:
    return statistics.median(seconds(work) for _ in range(repeat))


@contextmanager
def runtime_on(url: str, folder: Path) -> Iterator[Runtime]:
    engine = make_engine(url)
    upgrade(engine)
    settings = load_settings(
        database_url=url,
        schedules_dir=folder / "schedules",
        templates_dir=ROOT / "templates",
        secret_key="bench",
    )
    runtime = Runtime.build(settings, clock=ManualClock(NOW), channels={}, engine=engine)
    try:
        yield runtime
    finally:
        runtime.close()


def measure(url: str, folder: Path, people: int, repeat: int) -> dict[str, float]:
    with runtime_on(url, folder) as runtime:
        first = publishing.publish(runtime, PLAN, by="bench")
        ids = []
        with transaction(runtime.engine) as conn:
            for i in range(people):
                ids.append(
                    participant_rows.add_participant(
                        conn, name=f"P{i} Bench", timezone="America/New_York", now=NOW
                    ).id
                )

        def enroll_all() -> None:
            for pid in ids:
                enrolling.enroll(runtime, pid, first.plan, START, {})

        enrolled = seconds(enroll_all)
        dry = seconds(lambda: publishing.publish(runtime, MOVED, by="bench", dry_run=True))
        moved = publishing.publish(runtime, MOVED, by="bench")
        published = seconds(lambda: publishing.publish(runtime, PLAN, by="bench"))
        assert moved.effect.enrollments == people, moved.effect

        registry = runtime.plans
        registry.refresh()
        idle = median_of(repeat, registry.refresh)

        def select_one() -> None:
            with reading(runtime.engine) as conn:
                conn.execute(text("SELECT 1")).scalar_one()

        bare = median_of(repeat, select_one)
        cold = median_of(
            max(repeat // 20, 3), lambda: PlanRegistry(runtime.engine).get("bench-publish")
        )
    return {
        "enroll": enrolled,
        "publish": published,
        "dry_run": dry,
        "refresh": idle,
        "select_one": bare,
        "cold_read": cold,
    }


def table(name: str, people: int, f: dict[str, float]) -> str:
    return (
        f"| {name} | {people:,} | {f['enroll']:.2f} s | {f['publish']:.2f} s "
        f"({f['publish'] / f['enroll']:.2f}) | {f['dry_run']:.2f} s "
        f"({f['dry_run'] / f['enroll']:.2f}) | {f['refresh'] * 1e3:.3f} ms "
        f"({f['refresh'] / f['select_one']:.2f}) | {f['cold_read'] * 1e3:.1f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    configure_logging("console", "warning")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "schedules").mkdir()
        found = measure(f"sqlite:///{folder / 'bench.db'}", folder, args.people, args.repeat)
        rows.append(table("SQLite", args.people, found))
        print(rows[-1])
        with contextlib.ExitStack() as stack:
            try:
                pg = stack.enter_context(postgres_server())
            except pytest.skip.Exception as exc:
                print(f"PostgreSQL skipped: {exc.msg}")
            else:
                url = pg.create_database("bench_publish")
                found = measure(url, folder, args.people, args.repeat)
                rows.append(table("PostgreSQL", args.people, found))
                print(rows[-1])
    body = f"""## Publishing plans

`python -m bench.publish`: {args.people:,} participants enrolled in one plan (two
practices a day, 14 days stored each); a new version moves one practice by half an
hour, so every enrollment's unsent occurrences of it move. Baselines from the same
run: enrolling the same people (the per-enrollment work publishing repeats), and
`SELECT 1` on the same engine for the registry's check for new versions. The cold read
is a process's first read of a version it has not seen (loading and checking it).

| database | people | enrolling them | publishing (ratio) | dry run (ratio) \
| refresh, nothing new (ratio to SELECT 1) | cold read |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Publishing costs about twice what enrolling the same people does: enrolling inserts
each enrollment's occurrences in one statement, while a new version updates each moved
occurrence on its own (its pending deliveries follow it), each enrollment in its own
transaction so that one that cannot follow holds up no one. A dry run reads and
reconciles only. The check for new versions is one indexed `max(id)`, which every
scheduler pass and dashboard page pays: a small factor of the bare round trip.
"""
    write_section("publish", body)


if __name__ == "__main__":
    main()
