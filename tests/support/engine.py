"""Fixtures for the engine (a plugin of tests/conftest.py): databases (SQLite, and the
throwaway PostgreSQL of tests/support/services.py), a runtime on a manual clock with
recording channels, and a harness that runs the scheduler and an in-process worker."""

from __future__ import annotations

import shutil
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import delete

from service.actions import enrollments as enrolling
from service.actions import plans as publishing
from service.actions.plans import SyncLine
from service.channels.base import Channel, ChannelError, OutgoingMessage, Receipt
from service.clock import Clock, ManualClock
from service.core.plan import Plan
from service.engine.scheduler import Scheduler, Tick
from service.engine.tasks import QUEUE, declare, middleware, weekly_sender
from service.runtime import PlanRegistry, Runtime
from service.settings import Settings, load_settings
from service.storage import deliveries as delivery_rows
from service.storage import participants as participant_rows
from service.storage.db import make_engine, transaction, upgrade
from service.storage.tables import plan_versions

REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
TEMPLATES = {
    "default/sleep.sms.j2": "Time for {{ practice.title }}, {{ participant.first_name }}.",
    "default/mindfulness.sms.j2": "{{ practice.title }} now, {{ participant.first_name }}.",
    "default/movement.sms.j2": "Move: {{ practice.title }}.",
}
_EMAIL = (
    "{% block subject %}{{ practice.title }}{% endblock %}"
    "{% block text %}Hi {{ participant.first_name }}. {{ message or practice.title }}"
    " {{ check_in_url }}{% endblock %}"
    "{% block html %}<p>Hi {{ participant.first_name }}. {{ message or practice.title }}</p>"
    "{% endblock %}"
)
for _category in ("sleep", "mindfulness", "movement"):
    TEMPLATES[f"default/{_category}.email.j2"] = _EMAIL
    TEMPLATES[f"default/{_category}.calendar.j2"] = "{{ message or practice.title }}"


# --- databases -------------------------------------------------------------------------


def sqlite_url(folder: Path) -> str:
    url = f"sqlite:///{folder / 'tend.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: each test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return str(request.getfixturevalue("pg_url"))


# --- channels --------------------------------------------------------------------------


@dataclass
class RecordingChannel(Channel):
    """Records every send; can be told to fail. Thread-safe."""

    name: str = "sms"
    sent: list[OutgoingMessage] = field(default_factory=list)
    failures: list[ChannelError] = field(default_factory=list)
    before_send: Callable[[OutgoingMessage], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: OutgoingMessage) -> Receipt:
        if self.before_send is not None:
            self.before_send(message)
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(message)
            return Receipt(provider_id=f"rec-{len(self.sent)}", segments=1)

    def already_sent(self, delivery_id: int) -> bool | None:
        with self.lock:
            return any(m.delivery_id == delivery_id for m in self.sent)

    def ids(self) -> list[int | None]:
        with self.lock:
            return [m.delivery_id for m in self.sent]


# --- plans and runtime -----------------------------------------------------------------


@dataclass
class Folders:
    schedules: Path
    templates: Path

    def write_plan(self, name: str, text: str) -> Path:
        path = self.schedules / f"{name}.yaml"
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path


def make_folders(root: Path) -> Folders:
    """An empty schedules folder and the engine's test templates under `root`."""
    schedules = root / "schedules"
    templates = root / "templates"
    schedules.mkdir(parents=True)
    for name, text in TEMPLATES.items():
        target = templates / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    # Answers to replies, summaries and digests are Tend's own words: the shipped ones.
    for shipped in ("replies", "summaries", "digest", "_partials", "consent", "discreet"):
        shutil.copytree(REPO_TEMPLATES / shipped, templates / shipped, dirs_exist_ok=True)
    return Folders(schedules, templates)


@pytest.fixture
def folders(tmp_path: Path) -> Folders:
    return make_folders(tmp_path)


START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
NY_9AM = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # that Monday, 09:00 in New York


def plan_text(
    plan_id: str, at: str = '"09:00"', channels: str = "[sms]", variables: str = "", extra: str = ""
) -> str:
    """A plan of one practice, `rise`, at 09:00 by SMS unless told otherwise."""
    return f"""
plan: {plan_id}
title: T {plan_id}
weeks: 8
{variables}
practices:
  - id: rise
    category: sleep
    title: Rise
    at: {at}
    channels: {channels}
{extra}
"""


def settings_for(db_url: str, folders: Folders, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "schedules_dir": folders.schedules,
        "templates_dir": folders.templates,
        "secret_key": "test-secret",
        "public_url": "https://tend.test",
    }
    values.update(overrides)
    return load_settings(**values)


def build_runtime(
    db_url: str,
    folders: Folders,
    clock: Clock,
    channels: dict[str, Channel],
    **settings: Any,
) -> Runtime:
    """A runtime with the plans of the schedules folder published, as `tend run` does."""
    runtime = Runtime.build(
        settings_for(db_url, folders, **settings), clock=clock, channels=channels
    )
    publish(runtime, strict=False)
    return runtime


def published_runtime(settings: Settings, **options: Any) -> Runtime:
    """`Runtime.build`, then the schedules folder published (files with errors skipped)."""
    runtime = Runtime.build(settings, **options)
    publish(runtime, strict=False)
    return runtime


def publish(runtime: Runtime, *, dry_run: bool = False, strict: bool = True) -> list[SyncLine]:
    """Publish the schedules folder (`tend plans push`), as a coach does after editing a
    file; returns what it changed (or would) for each enrollment. `strict`: a file with
    errors fails the test."""
    result = publishing.push(runtime, by="test", dry_run=dry_run)
    if strict:
        assert not result.errors, [str(d) for d in result.errors]
    return [line for published in result.published for line in published.lines]


def unpublish(runtime: Runtime, plan_id: str) -> None:
    """Make the plan's published versions unreadable, as a version that no longer loads
    is (deleting its files no longer removes a plan): its rows go from plan_versions and
    the runtime gets a fresh registry, which no longer knows the plan."""
    with transaction(runtime.engine) as conn:
        conn.execute(delete(plan_versions).where(plan_versions.c.plan_id == plan_id))
    runtime.plans = PlanRegistry(runtime.engine)


class Harness:
    """A runtime with an in-process broker and worker, driven tick by tick."""

    def __init__(self, runtime: Runtime, clock: ManualClock, sms: RecordingChannel,
                 email: RecordingChannel) -> None:  # fmt: skip
        self.runtime = runtime
        self.clock = clock
        self.sms = sms
        self.email = email
        self.broker = StubBroker(middleware=middleware())
        self.broker.emit_after("process_boot")
        self.actor = declare(self.broker, runtime)
        self.worker = dramatiq.Worker(self.broker, worker_threads=2, worker_timeout=50)
        self.worker.start()
        self.scheduler = Scheduler(
            runtime, self.actor.send, enqueue_weekly=weekly_sender(self.broker)
        )

    def close(self) -> None:
        self.worker.stop()
        self.broker.close()
        self.runtime.close()

    # set-up helpers

    def participant(self, name: str = "Rae Example", tz: str = "America/New_York",
                    phone: str | None = "+14155550123", email: str | None = "rae@example.com",
                    welcomed: bool = True, **variables: str) -> str:  # fmt: skip
        """A participant in Tend already: by default their confirmation SMS has gone
        (`welcomed=False`: it has not, and nothing else is texted before it)."""
        with transaction(self.runtime.engine) as conn:
            return participant_rows.add_participant(
                conn, name=name, timezone=tz, phone=phone, email=email,
                variables=variables, now=self.clock.now(),
                welcomed_at=self.clock.now() if welcomed else None,
            ).id  # fmt: skip

    def plan(self, plan_id: str) -> Plan:
        found = self.runtime.plans.get(plan_id)
        if found is None:  # written since the runtime was built
            publish(self.runtime)
            found = self.runtime.plans.get(plan_id)
        assert found is not None, f"plan {plan_id} did not load"
        return found

    def enroll(self, participant_id: str, plan_id: str, start: date, **overrides: str) -> str:
        return enrolling.enroll(
            self.runtime, participant_id, self.plan(plan_id), start, overrides
        ).id

    # running

    def tick(self) -> Tick:
        """One scheduler pass, then wait until the worker has handled what it enqueued."""
        result = self.scheduler.tick()
        self.broker.join(QUEUE, fail_fast=True)
        self.worker.join()
        return result

    def at(self, moment: datetime) -> Tick:
        self.clock.set(moment)
        return self.tick()

    def maintain(self) -> None:
        """The scheduler's maintenance, now, then wait for what it handed to the worker."""
        self.scheduler.maintain(force=True)
        self.broker.join(QUEUE, fail_fast=True)
        self.worker.join()

    def deliveries(self) -> list[dict[str, Any]]:
        from sqlalchemy import select

        from service.storage.tables import deliveries, occurrences

        with transaction(self.runtime.engine) as conn:
            rows = conn.execute(
                select(deliveries, occurrences.c.key)
                .join(occurrences, occurrences.c.id == deliveries.c.occurrence_id)
                .order_by(deliveries.c.due_at, deliveries.c.id)
            ).mappings()
            return [dict(r) for r in rows]

    def states(self) -> dict[str, int]:
        with transaction(self.runtime.engine) as conn:
            return delivery_rows.delivery_states(conn)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def harness(db_url: str, folders: Folders, clock: ManualClock) -> Iterator[Harness]:
    sms, email = RecordingChannel("sms"), RecordingChannel("email")
    runtime = build_runtime(db_url, folders, clock, {"sms": sms, "email": email})
    h = Harness(runtime, clock, sms, email)
    try:
        yield h
    finally:
        h.close()


def later(moment: datetime, **delta: float) -> datetime:
    return moment + timedelta(**delta)


@dataclass(frozen=True)
class NextReminder:
    """An enrollment's next occurrence of a practice: when, when its reminder is due
    (None: no reminder is waiting, for someone who texted STOP, say), and the plan
    version it was planned from."""

    instant: datetime
    due: datetime | None
    plan_version: int | None


def next_reminder(
    runtime: Runtime, enrollment_id: str, practice_id: str, after: datetime
) -> NextReminder | None:
    from sqlalchemy import select

    from service.storage.tables import deliveries, occurrences

    with transaction(runtime.engine) as conn:
        row = conn.execute(
            select(occurrences.c.id, occurrences.c.instant, occurrences.c.plan_version)
            .where(occurrences.c.enrollment_id == enrollment_id)
            .where(occurrences.c.practice_id == practice_id)
            .where(occurrences.c.instant > after)
            .where(occurrences.c.state == "scheduled")
            .order_by(occurrences.c.instant)
            .limit(1)
        ).first()
        if row is None:
            return None
        due = conn.execute(
            select(deliveries.c.due_at)
            .where(deliveries.c.occurrence_id == row.id)
            .where(deliveries.c.state == "pending")
        ).scalar_one_or_none()
    return NextReminder(row.instant, due, row.plan_version)
