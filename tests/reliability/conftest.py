"""Fixtures of the reliability suite: a `deploy` factory per test, on the test process's
throwaway PostgreSQL and Redis (`postgres` and `redis_session`, tests/support/services.py),
and the check that no log line holds a participant's phone number or email address. The
summary table (`summary`) is tests/support/reliability_report.py's."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from service.storage.db import make_engine
from tests.reliability.harness import TWILIO_FROM, Deployment
from tests.support.reliability_report import Summary
from tests.support.services import PostgresServer, RedisServer, running


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
    tmp_path: Path, postgres: PostgresServer, redis_session: RedisServer, summary: Summary
) -> Iterator[Callable[..., Deployment]]:
    made: list[Deployment] = []

    def make(plans: dict[str, str], **options: object) -> Deployment:
        running(postgres)  # after a test that stopped it for good
        running(redis_session)
        deployment = Deployment.create(
            tmp_path / f"d{len(made)}", postgres, redis_session, plans, **options
        )  # type: ignore[arg-type]
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.close()
    for deployment in made:
        if any(deployment.logs):
            assert_logs_masked(deployment, summary)
