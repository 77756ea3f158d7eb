"""Tend as production runs it, in separate processes, for tests that break things.

A `Deployment` is: a database on the suite's throwaway PostgreSQL, the suite's
throwaway Redis (flushed), a fake Twilio API (tests/support/fake_twilio.py, spoken to by the
real Twilio client through TEND_TWILIO_API_BASE), a real SMTP server (aiosmtpd), and
Tend's processes, each started as `python -m tests.reliability.proc ROLE`: `tend web`,
`tend scheduler` or `tend worker` on the shared clock of tests/support/clock.py.
Every process logs JSON lines to its own file, which the suite reads at the end for
phone numbers and email addresses that should have been masked.

The test process itself populates the database (participants and enrollments through
the same functions the API uses) and reads it back to check the outcome.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from sqlalchemy.exc import DBAPIError
from twilio.request_validator import RequestValidator

from service.actions.enrollments import enroll
from service.clock import SystemClock
from service.runtime import Runtime
from service.settings import Settings, load_settings
from service.storage import deliveries as delivery_rows
from service.storage import participants as participant_rows
from service.storage.db import make_engine, transaction, upgrade
from tests.support.clock import SharedClock
from tests.support.engine import publish
from tests.support.fake_smtp import SMTPServer
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.support.services import PostgresServer, RedisServer, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "reliability-secret-key-0123456789"
ADMIN_TOKEN = "reliability-admin-token-0123456789"
TWILIO_FROM = "+15005550006"
START_TIMEOUT = 90.0  # a cold Python start on a loaded 2-CPU machine


@dataclass
class Process:
    name: str
    role: str
    log: Path
    popen: subprocess.Popen[bytes]
    offset: int = 0  # the log's length when this start began

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        """Everything this process's name has logged, across restarts."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Deployment:
    """One test's Tend: build with `Deployment.create`, stop with `close`."""

    folder: Path
    pg: PostgresServer
    redis: RedisServer
    database_url: str
    twilio: FakeTwilio
    smtp: SMTPServer
    clock: SharedClock
    web_port: int
    grace_minutes: int
    processes: dict[str, Process] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)
    _runtime: Runtime | None = None

    # --- building -------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        folder: Path,
        pg: PostgresServer,
        redis: RedisServer,
        plans: dict[str, str],
        *,
        grace_minutes: int = 120,
        database: str | None = None,
    ) -> Deployment:
        folder.mkdir(parents=True, exist_ok=True)
        schedules = folder / "schedules"
        schedules.mkdir(exist_ok=True)
        for name, text in plans.items():
            (schedules / f"{name}.yaml").write_text(text)
        if not (folder / "templates").exists():
            shutil.copytree(ROOT / "templates", folder / "templates")
        name = database or f"tend_{uuid.uuid4().hex[:16]}"
        url = pg.create_database(name)
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        _flush(redis)
        twilio = FakeTwilio().start()
        smtp = SMTPServer()
        smtp.start()
        deployment = cls(
            folder=folder,
            pg=pg,
            redis=redis,
            database_url=url,
            twilio=twilio,
            smtp=smtp,
            clock=SharedClock(folder / "clock.json"),
            web_port=free_port(),
            grace_minutes=grace_minutes,
        )
        deployment.push_plans()
        return deployment

    def push_plans(self) -> None:
        """`tend plans push` of the deployment's folder: the processes read the database
        (on the system clock: the shared one may not be started yet)."""
        runtime = Runtime.build(self.settings(), clock=SystemClock(), channels={})
        try:
            publish(runtime)
        finally:
            runtime.close()

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def environment(self) -> dict[str, str]:
        """Every setting the processes run with: production's, but on loopback."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEND_")}
        env.update(
            TEND_ENV="production",
            TEND_LOG_FORMAT="json",
            TEND_LOG_LEVEL="info",
            TEND_DATABASE_URL=self.database_url,
            TEND_REDIS_URL=self.redis.url,
            TEND_PUBLIC_URL=self.public_url,
            TEND_HTTP_HOST="127.0.0.1",
            TEND_HTTP_PORT=str(self.web_port),
            TEND_SCHEDULES_DIR=str(self.folder / "schedules"),
            TEND_TEMPLATES_DIR=str(self.folder / "templates"),
            TEND_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TEND_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TEND_TWILIO_FROM=TWILIO_FROM,
            TEND_TWILIO_API_BASE=self.twilio.url,
            TEND_TWILIO_RATE="1000",
            TEND_SMTP_HOST="127.0.0.1",
            TEND_SMTP_PORT=str(self.smtp.port),
            TEND_SMTP_STARTTLS="false",
            TEND_EMAIL_FROM="Tend <tend@reliability.test>",
            TEND_SECRET_KEY=SECRET_KEY,
            TEND_ADMIN_TOKEN=ADMIN_TOKEN,
            TEND_GRACE_MINUTES=str(self.grace_minutes),
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
        )
        return env

    def settings(self) -> Settings:
        env = self.environment()
        values = {
            k.removeprefix("TEND_").lower(): v for k, v in env.items() if k.startswith("TEND_")
        }
        return load_settings(**values)

    @property
    def runtime(self) -> Runtime:
        """A runtime in the test process, on the shared clock, that sends nothing: for
        populating the database and reading it back."""
        if self._runtime is None:
            self._runtime = Runtime.build(self.settings(), clock=self.clock, channels={})
        return self._runtime

    # --- people -----------------------------------------------------------------------

    def add_people(
        self, count: int, plan_id: str, start: date, zone: str, *, first: int = 0
    ) -> list[Person]:
        runtime = self.runtime
        plan = runtime.plans.get(plan_id)
        assert plan is not None, f"plan {plan_id} did not load"
        people = []
        for i in range(first, first + count):
            with transaction(runtime.engine) as conn:
                participant = participant_rows.add_participant(
                    conn,
                    name=f"Person{i} Test",
                    timezone=zone,
                    phone=f"+1415555{i:04d}",
                    email=f"person{i}@people.test",
                    now=runtime.clock.now(),
                    welcomed_at=runtime.clock.now(),  # confirmed before the run
                )
            enrollment = enroll(runtime, participant.id, plan, start, {})
            people.append(
                Person(
                    participant.id, enrollment.id, participant.phone or "", participant.email or ""
                )
            )
        return people

    # --- processes --------------------------------------------------------------------

    def start(self, name: str, role: str, *, wait: bool = True, **env: str) -> Process:
        """Start (or start again) the process `name` in `role`."""
        log = self.folder / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        if log not in self.logs:
            self.logs.append(log)
        offset = log.stat().st_size if log.exists() else 0
        environment = {**self.environment(), **env}
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.reliability.proc",
                    role,
                    "--clock",
                    str(self.clock.path),
                ],
                env=environment,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, role, log, popen, offset)
        self.processes[name] = process
        if wait:
            self.wait_ready(process)
        return process

    def start_all(self) -> None:
        """Two schedulers, two workers and the web app, started side by side."""
        names = [
            ("scheduler-1", "scheduler"),
            ("scheduler-2", "scheduler"),
            ("worker-1", "worker"),
            ("worker-2", "worker"),
            ("web", "web"),
        ]
        started = [self.start(name, role, wait=False) for name, role in names]
        for process in started:
            self.wait_ready(process)

    def wait_ready(self, process: Process) -> None:
        marker = {"scheduler": '"scheduler started"', "worker": '"worker started"'}.get(
            process.role
        )

        def ready() -> bool:
            if not process.alive:
                raise RuntimeError(f"{process.name} exited at start:\n{process.log_text()[-3000:]}")
            if process.role == "web":
                with contextlib.suppress(requests.RequestException):
                    return requests.get(f"{self.public_url}/healthz", timeout=1).status_code == 200
                return False
            return (marker or "") in process.log_text()[process.offset :]

        wait_for(ready, START_TIMEOUT, f"{process.name} to start", interval=0.1)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.popen.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            process.popen.wait(timeout=60)

    def pause(self, name: str) -> None:
        os.killpg(self.processes[name].popen.pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        os.killpg(self.processes[name].popen.pid, signal.SIGCONT)

    def stop_all(self) -> None:
        """SIGTERM each process (they finish what is in hand), SIGKILL what lingers."""
        for process in self.processes.values():
            if process.alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGCONT)
                    os.killpg(process.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 40
        for process in self.processes.values():
            try:
                process.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait()

    def close(self) -> None:
        self.stop_all()
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
        self.twilio.close()
        self.smtp.stop()

    # --- talking to it ----------------------------------------------------------------

    def text(self, person: Person, body: str, sid: str | None = None) -> requests.Response:
        """`body` texted by `person`, through the web process, signed as Twilio signs."""
        params = {
            "From": person.phone,
            "To": TWILIO_FROM,
            "Body": body,
            "MessageSid": sid or f"SM{os.urandom(16).hex()}",
            "AccountSid": ACCOUNT_SID,
        }
        url = f"{self.public_url}/twilio/sms"
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
        return requests.post(
            url,
            data=urlencode(params),
            headers={
                "X-Twilio-Signature": signature,
                "Content-Type": "application/x-www-form-urlencoded",
            },
            timeout=30,
        )

    def delivery_states(self) -> dict[str, int]:
        with transaction(self.runtime.engine) as conn:
            return delivery_rows.delivery_states(conn)

    def settled(self, now: datetime | None = None) -> bool:
        """Every delivery due by `now` (the clock's now) has an end: nothing is pending,
        claimed or being sent."""
        from tests.reliability.checks import unsettled

        try:
            return unsettled(self.runtime.engine, now or self.clock.now()) == 0
        except DBAPIError:  # PostgreSQL restarting: ask again
            return False

    def wait_settled(self, timeout: float, what: str = "every due delivery to settle") -> None:
        wait_for(self.settled, timeout, what, interval=0.25)

    def log_lines(self) -> Iterator[tuple[str, str]]:
        for path in self.logs:
            for line in path.read_text(errors="replace").splitlines():
                yield path.stem, line


@dataclass(frozen=True)
class Person:
    participant_id: str
    enrollment_id: str
    phone: str
    email: str


def _flush(server: RedisServer) -> None:
    import redis

    client: Any = redis.Redis.from_url(server.url)
    try:
        client.flushall()
    finally:
        client.close()
