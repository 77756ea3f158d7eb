"""Fixtures of the reliability suite: one throwaway PostgreSQL and one Redis (kept on
disk, as production keeps it) for the suite, a `deploy` factory per test, the check that
no log line holds a participant's phone number or email address, and the summary table
(`TEND_RELIABILITY_REPORT=docs/reliability.md` rewrites it there)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text

from service.storage.db import make_engine
from tests.reliability.checks import Tally
from tests.reliability.harness import TWILIO_FROM, Deployment
from tests.services import PostgresServer, RedisServer

BEGIN = "<!-- reliability-table:begin -->"
END = "<!-- reliability-table:end -->"


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(persist=True)
    try:
        server.start()
        yield server
    finally:
        server.close()


@dataclass
class Summary:
    rows: list[dict[str, object]] = field(default_factory=list)
    log_lines: int = 0

    def add(self, fault: str, injected: int, tally: Tally) -> None:
        self.rows.append({"fault": fault, "injected": injected, **tally.row()})

    def markdown(self) -> str:
        head = (
            "| fault | injected | due | sent | failed | expired | cancelled "
            "| messages checked | duplicates | lost | after opt-out |\n"
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
        )
        lines = [
            f"| {r['fault']} | {r['injected']} | {r['due']} | {r['sent']} | {r['failed']} "
            f"| {r['expired']} | {r['cancelled']} | {r['messages']} | {r['duplicates']} "
            f"| {r['lost']} | {r['after_opt_out']} |"
            for r in self.rows
        ]
        total = {
            key: sum(int(r[key]) for r in self.rows)  # type: ignore[call-overload]
            for key in ("injected", "due", "messages", "duplicates", "lost", "after_opt_out")
        }
        lines.append(
            f"| **all {len(self.rows)} runs** | {total['injected']} | {total['due']} | | | | "
            f"| {total['messages']} | {total['duplicates']} | {total['lost']} "
            f"| {total['after_opt_out']} |"
        )
        tail = f"\n\nLog lines checked for unmasked phone numbers and email addresses: {self.log_lines:,}, none found.\n"
        return head + "\n".join(lines) + tail


@pytest.fixture(scope="session")
def summary() -> Iterator[Summary]:
    found = Summary()
    yield found
    target = os.environ.get("TEND_RELIABILITY_REPORT")
    if not target or not found.rows:
        return
    path = Path(target)
    Path("test-artifacts").mkdir(exist_ok=True)
    Path("test-artifacts/reliability.json").write_text(json.dumps(found.rows, indent=2))
    doc = path.read_text()
    if BEGIN in doc and END in doc:
        before, rest = doc.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        path.write_text(f"{before}{BEGIN}\n{found.markdown()}{END}{after}")


def assert_logs_masked(deployment: Deployment, summary: Summary) -> None:
    """No process wrote a participant's whole phone number or email address (nor the
    sender's number) in any log line; and the processes did write lines."""
    engine = make_engine(deployment.database_url)
    try:
        with engine.connect() as conn:
            people = conn.execute(text("SELECT phone, email FROM participants")).all()
    finally:
        engine.dispose()
    secrets = {TWILIO_FROM, TWILIO_FROM.lstrip("+")}
    for phone, email in people:
        if phone:
            secrets |= {phone, phone.lstrip("+"), phone[2:]}  # E.164, digits, national
        if email:
            secrets.add(email.lower())
    pattern = re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))
    count = 0
    leaks = []
    for name, line in deployment.log_lines():
        count += 1
        found = pattern.search(line.lower())
        if found:
            leaks.append(f"{name}: {line[:300]}")
    assert count > 0, "the processes wrote no log lines: the check would prove nothing"
    assert not leaks, f"{len(leaks)} log lines hold a phone number or email address:\n" + "\n".join(
        leaks[:10]
    )
    summary.log_lines += count


@pytest.fixture
def deploy(
    tmp_path: Path, pg: PostgresServer, redis_server: RedisServer, summary: Summary
) -> Iterator[Callable[..., Deployment]]:
    made: list[Deployment] = []

    def make(plans: dict[str, str], **options: object) -> Deployment:
        if not pg.started:  # a test that stopped it for good
            pg.start()
        if redis_server.process is None:
            redis_server.start()
        deployment = Deployment.create(
            tmp_path / f"d{len(made)}", pg, redis_server, plans, **options
        )  # type: ignore[arg-type]
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.close()
    for deployment in made:
        if any(deployment.logs):
            assert_logs_masked(deployment, summary)
