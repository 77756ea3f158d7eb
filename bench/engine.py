"""The delivery engine on PostgreSQL and Redis, each a throwaway server on a free port.

1. Throughput: N reminders due at once go end to end (claim, enqueue, actor, a no-op
   channel, recorded) with the scheduler loop and an in-process worker. Baseline in
   the same run: raw dramatiq, the same number of messages enqueued to a no-op actor on
   the same Redis and consumed by a worker with the same threads. Target: at least 0.5.
2. Lateness: reminders due at a steady 200 a second for 20 seconds, through
   `Scheduler.run`; lateness is from the instant due to the moment the channel is
   handed the message. Targets: p95 under 250 ms, p99 under 1 s.

    python -m bench.engine [--reminders N] [--rate R] [--seconds S]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dramatiq
from sqlalchemy import insert

from bench.report import write_section
from service.actions.plans import push
from service.channels.base import Channel, OutgoingMessage, Receipt
from service.clock import SystemClock
from service.engine.scheduler import Scheduler
from service.engine.tasks import declare, make_broker
from service.logging import configure_logging
from service.runtime import Runtime
from service.settings import load_settings
from service.storage import deliveries as delivery_rows
from service.storage.db import make_engine, transaction, upgrade
from service.storage.tables import deliveries, enrollments, occurrences, participants
from tests.support.services import postgres_server, redis_server

THREADS = 8  # dramatiq's default, and `tend worker`'s
THREAD_COUNTS = (8, 4)  # and `tend run`'s default of 4


class NoopChannel(Channel):
    """Sends nothing; notes when each message was handed over."""

    def __init__(self) -> None:
        self.handed: dict[int, float] = {}
        self.lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> Receipt:
        with self.lock:
            self.handed[message.delivery_id or 0] = time.time()
        return Receipt(provider_id="noop", segments=1)


def setup_runtime(db_url: str, folder: Path, channel: Channel) -> Runtime:
    schedules = folder / "schedules"
    templates = folder / "templates" / "default"
    schedules.mkdir(parents=True, exist_ok=True)
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "mindfulness.sms.j2").write_text(
        "{{ practice.title }}, {{ participant.first_name }}."
    )
    (schedules / "bench.yaml").write_text(
        "plan: bench\ntitle: Bench\ndays: 1\npractices:\n"
        "  - id: breathe\n    category: mindfulness\n    title: Breathe\n    at: '09:00'\n"
    )
    settings = load_settings(
        database_url=db_url,
        schedules_dir=schedules,
        templates_dir=folder / "templates",
        secret_key="bench",
    )
    runtime = Runtime.build(
        settings, clock=SystemClock(), channels={"sms": channel, "email": channel}
    )
    push(runtime, by="bench")
    return runtime


def insert_due(runtime: Runtime, instants: list[datetime]) -> None:
    """Deliveries due at `instants`, one participant each (bulk inserts, not the API:
    this measures sending, not enrolling)."""
    now = datetime.now(UTC)
    plan = runtime.plans.get("bench")
    assert plan is not None
    with transaction(runtime.engine) as conn:
        people = []
        for i in range(len(instants)):
            people.append(
                {
                    "id": f"p_bench{i:07d}",
                    "name": f"Person {i}",
                    "phone": f"+1415{i:07d}",
                    "timezone": "UTC",
                    "variables": {},
                    "sms_state": "subscribed",
                    "email_unsubscribed": False,
                    "feed_version": 1,
                    "created_at": now,
                }
            )
        conn.execute(insert(participants), people)
        conn.execute(
            insert(enrollments),
            [
                {
                    "id": f"e_bench{i:07d}",
                    "participant_id": p["id"],
                    "plan_id": "bench",
                    "plan_hash": plan.content_hash,
                    "start_date": date(2026, 3, 2),
                    "variables": {},
                    "status": "active",
                    "horizon": date(2026, 3, 3),
                    "end_date": date(2026, 3, 3),
                    "not_before": now - timedelta(days=1),
                    "created_at": now,
                    "updated_at": now,
                }
                for i, p in enumerate(people)
            ],
        )
        ids = conn.execute(
            insert(occurrences).returning(occurrences.c.id, sort_by_parameter_order=True),
            [
                {
                    "enrollment_id": f"e_bench{i:07d}",
                    "key": "breathe:2026-03-02",
                    "practice_id": "breathe",
                    "local_date": date(2026, 3, 2),
                    "week": 1,
                    "seq": 0,
                    "instant": moment,
                    "duration_minutes": 15,
                    "window_end": moment + timedelta(hours=12),
                    "channels": ["sms"],
                    "fingerprint": "bench",
                    "state": "scheduled",
                    "sequence": 0,
                    "updated_at": now,
                }
                for i, moment in enumerate(instants)
            ],
        ).scalars()
        conn.execute(
            insert(deliveries),
            [
                {
                    "occurrence_id": occurrence_id,
                    "channel": "sms",
                    "kind": "reminder",
                    "state": "pending",
                    "due_at": moment,
                    "attempts": 0,
                    "updated_at": now,
                }
                for occurrence_id, moment in zip(ids, instants, strict=True)
            ],
        )


def sent_count(runtime: Runtime) -> int:
    with transaction(runtime.engine) as conn:
        return delivery_rows.delivery_states(conn).get("sent", 0)


def wait_until(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("the benchmark did not finish in time")
        time.sleep(0.005)


def fresh_database(pg: object, name: str) -> str:
    url: str = pg.create_database(name)  # type: ignore[attr-defined]
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def tend_rate(
    pg: object, redis_url: str, count: int, folder: Path, name: str, threads: int
) -> float:
    """Reminders per second end to end: scheduler loop, Redis, worker, no-op channel."""
    channel = NoopChannel()
    runtime = setup_runtime(fresh_database(pg, name), folder / name, channel)
    insert_due(runtime, [datetime.now(UTC) - timedelta(seconds=1)] * count)
    broker = make_broker(redis_url)
    actor = declare(broker, runtime)
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=20)
    worker.start()
    stop = threading.Event()
    began = time.perf_counter()
    thread = threading.Thread(target=Scheduler(runtime, actor.send).run, args=(stop,))
    thread.start()
    wait_until(lambda: sent_count(runtime) == count, 600)
    seconds = time.perf_counter() - began
    stop.set()
    thread.join()
    worker.stop()
    broker.close()
    runtime.close()
    return count / seconds


def raw_rate(redis_url: str, count: int, name: str, threads: int) -> float:
    """The baseline: raw dramatiq enqueue and consume of a no-op actor, same threads."""
    raw = make_broker(redis_url)
    done = threading.Semaphore(0)

    def noop(_value: int) -> None:
        done.release()

    actor = dramatiq.actor(actor_name=f"noop_{name}", queue_name=f"raw_{name}", broker=raw)(noop)
    worker = dramatiq.Worker(raw, worker_threads=threads, worker_timeout=20)
    worker.start()
    began = time.perf_counter()
    for i in range(count):
        actor.send(i)
    for _ in range(count):
        done.acquire()
    seconds = time.perf_counter() - began
    worker.stop()
    raw.close()
    return count / seconds


def throughput(
    pg: object, redis_url: str, count: int, folder: Path, rounds: int, threads: int
) -> tuple[float, float]:
    """Best of `rounds` interleaved runs of each: Tend's rate and the baseline's."""
    best_tend = best_raw = 0.0
    for i in range(rounds):
        name = f"{threads}_{i}"
        best_tend = max(best_tend, tend_rate(pg, redis_url, count, folder, f"t{name}", threads))
        best_raw = max(best_raw, raw_rate(redis_url, count, f"r{name}", threads))
    return best_tend, best_raw


def lateness(pg: object, redis_url: str, rate: int, seconds: int, folder: Path) -> list[float]:
    """Milliseconds from due to handed to the channel, at a steady `rate` per second."""
    channel = NoopChannel()
    runtime = setup_runtime(fresh_database(pg, "lateness"), folder / "l", channel)
    start = datetime.now(UTC) + timedelta(seconds=5)
    instants = [start + timedelta(seconds=i / rate) for i in range(rate * seconds)]
    insert_due(runtime, instants)
    broker = make_broker(redis_url)
    actor = declare(broker, runtime)
    worker = dramatiq.Worker(broker, worker_threads=THREADS, worker_timeout=20)
    worker.start()
    stop = threading.Event()
    thread = threading.Thread(target=Scheduler(runtime, actor.send).run, args=(stop,))
    thread.start()
    wait_until(lambda: len(channel.handed) == len(instants), seconds + 120)
    stop.set()
    thread.join()
    worker.stop()
    broker.close()
    with transaction(runtime.engine) as conn:
        due = {
            row.id: row.due_at
            for row in conn.execute(
                deliveries.select().with_only_columns(deliveries.c.id, deliveries.c.due_at)
            )
        }
    runtime.close()
    return sorted((channel.handed[i] - due[i].timestamp()) * 1000 for i in due)


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reminders", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput runs")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    configure_logging("json", "warning")  # as in production, less the per-reminder lines
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as pg, redis_server() as redis:
        rates = {
            threads: throughput(pg, redis.url, args.reminders, Path(tmp), args.rounds, threads)
            for threads in THREAD_COUNTS
        }
        late = lateness(pg, redis.url, args.rate, args.seconds, Path(tmp))
    p50, p95, p99 = (percentile(late, s) for s in (0.5, 0.95, 0.99))
    rows = "\n".join(
        f"| {threads} | {raw:,.0f} /s | {tend:,.0f} /s | **{tend / raw:.2f}** |"
        for threads, (tend, raw) in rates.items()
    )
    worst = min(tend / raw for tend, raw in rates.values())
    body = f"""## Delivery engine (PostgreSQL and Redis)

`python -m bench.engine`: throwaway PostgreSQL and Redis servers, one scheduler and an
in-process worker, a no-op channel. Throughput: {args.reminders:,} reminders due at once go
end to end (claim, enqueue, actor, channel, recorded); the baseline is raw dramatiq
enqueue and consume of a no-op actor on the same Redis with the same worker threads.
Best of {args.rounds} interleaved runs of each side, for dramatiq's default of 8 threads
and `tend run`'s 4.

| worker threads | baseline | Tend | ratio |
|---:|---:|---:|---:|
{rows}

Target: at least 0.5 of the baseline; this run {"meets" if worst >= 0.5 else "MISSES"} it
{"for both" if worst >= 0.5 else "for at least one thread count"}.

| lateness at a steady {args.rate} due per second for {args.seconds} s, {THREADS} threads | ms |
|---|---:|
| p50 | {p50:.1f} |
| p95 | **{p95:.1f}** |
| p99 | **{p99:.1f}** |
| max | {late[-1]:.1f} |

Targets: p95 under 250 ms and p99 under 1000 ms; this run
{"meets" if p95 < 250 and p99 < 1000 else "MISSES"} them."""
    print(body)
    if not args.no_write:
        write_section("engine", body)


if __name__ == "__main__":
    main()
