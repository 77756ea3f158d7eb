"""Exactly once under concurrency and faults, on PostgreSQL and Redis as in production:
two schedulers and two workers at once, a worker killed mid-batch, Redis restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dramatiq
import pytest

from service.actions import enrollments as enrolling
from service.clock import ManualClock
from service.engine.scheduler import Scheduler
from service.engine.tasks import declare, make_broker
from service.runtime import Runtime
from service.storage import deliveries as delivery_rows
from service.storage import participants as participant_rows
from service.storage.db import transaction
from tests.support.clock import SharedClock
from tests.support.engine import Folders, RecordingChannel, build_runtime
from tests.support.procs import sent_ids
from tests.support.services import RedisServer, wait_for

pytestmark = pytest.mark.services

NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def many_practices_plan(folders: Folders, practices: int) -> None:
    lines = ["plan: many", "title: Many", "days: 1", "practices:"]
    for i in range(practices):
        lines += [
            f"  - id: p{i}",
            "    category: mindfulness",
            f"    title: Practice {i}",
            '    at: "09:00"',
        ]
    folders.write_plan("many", "\n".join(lines) + "\n")


def populate(runtime: Runtime, people: int) -> None:
    plan = runtime.plans.get("many")
    assert plan is not None
    for i in range(people):
        with transaction(runtime.engine) as conn:
            person = participant_rows.add_participant(
                conn,
                name=f"Person {i}",
                timezone="UTC",
                phone=f"+1415555{i:04d}",
                now=runtime.clock.now(),
                welcomed_at=runtime.clock.now(),  # confirmed before the test
            )
        enrolling.enroll(runtime, person.id, plan, date(2026, 3, 2), {})


def states(runtime: Runtime) -> dict[str, int]:
    with transaction(runtime.engine) as conn:
        return delivery_rows.delivery_states(conn)


def settled(runtime: Runtime, total: int) -> bool:
    found = states(runtime)
    return sum(found.get(s, 0) for s in ("sent", "failed", "expired", "cancelled")) == total


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NINE - timedelta(hours=1))


def test_two_schedulers_and_two_workers_send_each_of_1000_reminders_exactly_once(
    pg_url: str, redis_url: str, folders: Folders, clock: ManualClock
) -> None:
    many_practices_plan(folders, 10)
    channel = RecordingChannel("sms")
    setup = build_runtime(pg_url, folders, clock, {"sms": channel, "email": channel})
    populate(setup, 100)
    assert states(setup) == {"pending": 1000}

    parts = []
    for _ in range(2):
        runtime = build_runtime(pg_url, folders, clock, {"sms": channel, "email": channel})
        broker = make_broker(redis_url)
        actor = declare(broker, runtime)
        worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=50)
        worker.start()
        parts.append((runtime, broker, worker, Scheduler(runtime, actor.send, batch=50)))
    try:
        clock.set(NINE + timedelta(seconds=5))
        barrier = threading.Barrier(2)

        def schedule(scheduler: Scheduler) -> None:
            barrier.wait()
            for _ in range(3):
                scheduler.tick()

        threads = [threading.Thread(target=schedule, args=(p[3],)) for p in parts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_for(lambda: settled(setup, 1000), 120, "all 1000 deliveries to settle")
    finally:
        for runtime, broker, worker, _ in parts:
            worker.stop()
            broker.close()
            runtime.close()

    ids = channel.ids()
    assert len(ids) == 1000
    assert len(set(ids)) == 1000
    assert states(setup) == {"sent": 1000}
    setup.close()


def start_worker(tmp: Path, name: str, pg_url: str, redis_url: str, folders: Folders,
                 delay: float) -> subprocess.Popen[bytes]:  # fmt: skip
    ready = tmp / f"{name}.ready"
    log = (tmp / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.procs",
            "worker",
            "--db",
            pg_url,
            "--redis",
            redis_url,
            "--clock",
            str(tmp / "clock"),
            "--record",
            str(tmp / "sent.jsonl"),
            "--schedules",
            str(folders.schedules),
            "--templates",
            str(folders.templates),
            "--ready",
            str(ready),
            "--delay",
            str(delay),
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()  # the child has its own copy
    wait_for(ready.exists, 60, f"worker {name} to start")
    return process


@pytest.fixture
def worker_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.parametrize("round_", range(3))
def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(
    round_: int,
    tmp_path: Path,
    pg_url: str,
    redis_url: str,
    folders: Folders,
    worker_processes: list[subprocess.Popen[bytes]],
) -> None:
    many_practices_plan(folders, 10)
    file_clock = SharedClock(tmp_path / "clock")
    file_clock.set(NINE - timedelta(hours=1))
    record = tmp_path / "sent.jsonl"
    from tests.support.procs import FileRecordingChannel

    channel = FileRecordingChannel("sms", record)
    runtime = build_runtime(pg_url, folders, file_clock, {"sms": channel, "email": channel})
    populate(runtime, 30)  # 300 reminders at 09:00
    broker = make_broker(redis_url)
    actor = declare(broker, runtime)
    scheduler = Scheduler(runtime, actor.send)
    try:
        first = start_worker(tmp_path, "a", pg_url, redis_url, folders, delay=0.01)
        worker_processes.append(first)
        file_clock.set(NINE)
        assert scheduler.tick().claimed == 300
        kill_after = 40 + 60 * round_
        wait_for(lambda: len(sent_ids(record)) >= kill_after, 60, f"{kill_after} sends")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        before = states(runtime)
        assert before.get("sent", 0) < 300, before  # killed in the middle of the batch

        second = start_worker(tmp_path, "b", pg_url, redis_url, folders, delay=0.0)
        worker_processes.append(second)
        # The claims' and the sends' leases run out; the scheduler claims them again.
        file_clock.set(NINE + timedelta(minutes=4))
        scheduler.tick()
        wait_for(lambda: settled(runtime, 300), 120, "all 300 deliveries to settle")
        final = states(runtime)
    finally:
        broker.close()
        runtime.close()

    ids = sent_ids(record)
    assert sorted(ids) == sorted(set(ids)), "a reminder was sent twice"
    assert len(ids) == 300, "a reminder was lost"
    assert final == {"sent": 300}


def test_redis_restarted_mid_run_loses_nothing(
    pg_url: str, folders: Folders, clock: ManualClock
) -> None:
    many_practices_plan(folders, 5)
    server = RedisServer()
    server.start()
    channel = RecordingChannel("sms")
    runtime = build_runtime(pg_url, folders, clock, {"sms": channel, "email": channel})
    populate(runtime, 20)  # 100 reminders
    broker = make_broker(server.url)
    actor = declare(broker, runtime)
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=50)
    scheduler = Scheduler(runtime, actor.send)
    try:
        server.stop()
        clock.set(NINE)
        tick = scheduler.tick()  # Redis is down: nothing can be enqueued
        assert tick.claimed >= 1
        assert tick.enqueued == 0
        server.start()
        worker.start()
        clock.set(NINE + timedelta(minutes=3))  # the claims' leases ran out
        assert scheduler.tick().enqueued == 100
        wait_for(lambda: settled(runtime, 100), 120, "all 100 deliveries to settle")
        final = states(runtime)
    finally:
        worker.stop()
        broker.close()
        runtime.close()
        server.close()
    assert sorted(channel.ids()) == sorted(set(channel.ids()))
    assert len(channel.ids()) == 100
    assert final == {"sent": 100}
