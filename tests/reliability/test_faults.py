"""Faults, each a test: Tend runs as production does (two schedulers, two workers and the
web app as separate processes, PostgreSQL, Redis, Twilio's API, an SMTP server) and one
thing breaks in the middle of a burst of reminders. Afterwards every due reminder was
sent exactly once, or recorded as expired, failed or cancelled with its reason; none
twice, none early, none after the participant texted STOP (checks.py counts it all).

In each test a few participants text STOP through the web app just before the burst;
their SMS must all be cancelled.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from tests.reliability.checks import Tally, provider_messages, tally
from tests.reliability.harness import Deployment, Person
from tests.support.reliability_report import Summary
from tests.support.services import free_port, wait_for

pytestmark = [pytest.mark.services, pytest.mark.reliability, pytest.mark.timeout(600)]

ZONE = "America/New_York"
START = date(2026, 3, 2)
EIGHT = datetime(2026, 3, 2, 8, 0, tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
RATE = 10.0  # clock seconds a real second: a lease of 3 minutes runs out in 18 s
SETTLE = 240.0  # real seconds a run may take to settle

PLAN = """\
plan: burst
title: Burst
days: 2
practices:
  - id: first
    category: mindfulness
    title: First breath
    at: "08:00"
    channels: [sms, email]
    message: "First breath [{{ occurrence.key }}], {{ participant.first_name }}."
"""


@dataclass
class Run:
    deployment: Deployment
    people: list[Person]
    stopped: list[Person]

    @property
    def sms(self) -> int:
        return len(self.people)

    def count(self, sql: str) -> int:
        with self.deployment.runtime.engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())


def begin(
    deploy: Callable[..., Deployment],
    *,
    people: int = 60,
    stops: int = 3,
    grace_minutes: int = 120,
    start_processes: bool = True,
) -> Run:
    """Deploy, enroll `people` in New York, start the processes on a clock standing a
    minute before 8:00, and let `stops` of them text STOP. The clock is not yet running."""
    deployment = deploy({"burst": PLAN}, grace_minutes=grace_minutes)
    deployment.clock.start(EIGHT - timedelta(minutes=1), rate=0)
    everyone = deployment.add_people(people, "burst", START, ZONE)
    if start_processes:
        deployment.start_all()
    stopped = everyone[:stops]
    if start_processes:
        for person in stopped:
            answer = deployment.text(person, "stop")
            assert answer.status_code == 200, answer.text
            assert "unsubscribed" in answer.text.lower() or "stop" in answer.text.lower()
    return Run(deployment, everyone, stopped)


def go(run: Run, rate: float = RATE) -> None:
    """Start the clock two seconds before 8:00."""
    run.deployment.clock.start(EIGHT - timedelta(seconds=2), rate=rate)


def finish(run: Run, summary: Summary, fault: str, injected: int) -> Tally:
    """Wait until every due reminder has an end, stop every process, and count."""
    deployment = run.deployment
    wait_for(lambda: deployment.clock.now() > EIGHT, 60, "the clock to pass 8:00")
    deployment.wait_settled(SETTLE)
    deployment.stop_all()
    found = tally(
        deployment.runtime.engine,
        deployment.clock.now(),
        provider_messages(deployment.twilio, deployment.smtp.received),
    )
    summary.add(fault, injected, found)
    found.assert_clean()
    assert found.due == 2 * len(run.people), found
    # Everyone who texted STOP: each SMS cancelled, none sent; their email still goes.
    stoppers = {p.participant_id for p in run.stopped}
    cancelled_sms = run.count(
        "SELECT count(*) FROM deliveries d JOIN occurrences o ON o.id = d.occurrence_id "
        "JOIN enrollments e ON e.id = o.enrollment_id WHERE d.channel = 'sms' "
        "AND d.state = 'cancelled' AND e.participant_id IN ("
        + ",".join(f"'{p}'" for p in stoppers or {"none"})
        + ")"
    )
    assert cancelled_sms == len(stoppers) * 2, "every SMS of those who texted STOP, both days"
    return found


def gone_out_before(deployment: Deployment) -> int:
    """How often a worker found that a send it could not vouch for had gone out."""
    return sum("delivery had gone out before" in line for _, line in deployment.log_lines())


# --- the control -------------------------------------------------------------------------


def test_without_faults_every_reminder_goes_once(
    deploy: Callable[..., Deployment], summary: Summary
) -> None:
    run = begin(deploy)
    go(run)
    found = finish(run, summary, "none (control)", 0)
    assert found.states["sent"] == 2 * len(run.people) - len(run.stopped)
    assert found.messages == found.states["sent"]
    assert found.states["cancelled"] == len(run.stopped)


# --- processes dying ---------------------------------------------------------------------


def test_workers_killed_mid_send_again_and_again(
    deploy: Callable[..., Deployment], summary: Summary
) -> None:
    """Twilio takes 0.3 s to answer, so each kill lands with sends in flight: messages
    Twilio created that the worker never heard of."""
    run = begin(deploy, people=120)
    deployment = run.deployment
    deployment.twilio.latency = 0.3
    rng = random.Random(9)
    kills = 10
    go(run)
    for round_ in range(kills):
        # Kill only once more sends have begun since the last kill.
        seen = len(deployment.twilio.seen("POST"))
        deployment.twilio.wait_for_requests(len(deployment.twilio.seen()) + 3, timeout=120)
        name = rng.choice(["worker-1", "worker-2"])
        deployment.kill(name, signal.SIGKILL)
        assert not deployment.processes[name].alive
        deployment.start(name, "worker", wait=round_ == kills - 1)
        assert len(deployment.twilio.seen("POST")) >= seen
    for name in ("worker-1", "worker-2"):
        deployment.wait_ready(deployment.processes[name])
    found = finish(run, summary, f"worker SIGKILLed mid-send ({kills} times)", kills)
    assert found.states["sent"] + found.states["failed"] == 2 * len(run.people) - len(run.stopped)
    # The hard case happened: a send cut off by a kill was found at Twilio, not repeated.
    assert gone_out_before(deployment) >= 1


def test_scheduler_killed_while_holding_claims(
    deploy: Callable[..., Deployment], summary: Summary
) -> None:
    """scheduler-1 claims the burst but cannot hand it over (its broker address is dead);
    it is killed holding the claims; scheduler-2 takes them over when the leases end."""
    run = begin(deploy, start_processes=False)
    deployment = run.deployment
    deployment.start_all()
    for person in run.stopped:
        assert deployment.text(person, "STOP").status_code == 200
    deployment.pause("scheduler-2")
    deployment.kill("scheduler-1", signal.SIGKILL)
    deployment.start(
        "scheduler-1", "scheduler", TEND_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    go(run)

    def held() -> int:
        return run.count("SELECT count(*) FROM deliveries WHERE state = 'claimed'")

    wait_for(
        lambda: (
            held() > 0 and "could not enqueue" in deployment.processes["scheduler-1"].log_text()
        ),
        60,
        "scheduler-1 to claim and fail to enqueue",
    )
    claims = held()
    deployment.kill("scheduler-1", signal.SIGKILL)
    deployment.resume("scheduler-2")
    found = finish(run, summary, f"scheduler SIGKILLed holding {claims} claims", 1)
    assert found.states["sent"] == 2 * len(run.people) - len(run.stopped)


# --- the stores failing ------------------------------------------------------------------


def test_redis_stopped_and_restarted_mid_burst(
    deploy: Callable[..., Deployment], summary: Summary
) -> None:
    run = begin(deploy, people=80)
    deployment = run.deployment
    deployment.twilio.latency = 0.1
    go(run)
    deployment.twilio.wait_for_requests(len(deployment.twilio.seen()) + 10, timeout=60)
    deployment.redis.stop()
    # Down until the scheduler has met it (a failed hand-over), then back.
    wait_for(
        lambda: (
            any(
                "could not enqueue" in p.log_text()
                for n, p in deployment.processes.items()
                if n.startswith("scheduler")
            )
            or run.count("SELECT count(*) FROM deliveries WHERE state IN ('pending', 'claimed')")
            == 0
        ),
        60,
        "a scheduler to meet the stopped Redis",
    )
    deployment.redis.start()
    found = finish(run, summary, "Redis stopped and restarted mid-burst", 1)
    assert found.states["sent"] == 2 * len(run.people) - len(run.stopped)


def test_postgres_restarted_mid_burst(deploy: Callable[..., Deployment], summary: Summary) -> None:
    run = begin(deploy, people=80)
    deployment = run.deployment
    deployment.twilio.latency = 0.1
    go(run)
    deployment.twilio.wait_for_requests(len(deployment.twilio.seen()) + 10, timeout=60)
    deployment.pg.restart()
    found = finish(run, summary, "PostgreSQL restarted mid-burst", 1)
    assert found.states["sent"] + found.states["failed"] == 2 * len(run.people) - len(run.stopped)


# --- the providers failing ---------------------------------------------------------------


def test_twilio_429_500_timeouts_and_21610(
    deploy: Callable[..., Deployment], summary: Summary
) -> None:
    run = begin(deploy)
    deployment = run.deployment
    twilio = deployment.twilio
    refused = run.people[-2:]
    for person in refused:
        twilio.refuse_number(person.phone, 21610)
    twilio.rate_limit(retry_after="1", times=4)
    twilio.server_error(500, times=4)
    twilio.server_error(503, times=2)
    twilio.server_error(500, accept=True, times=3)  # Twilio took it; the client heard 500
    twilio.hang(12.0, accept=True, times=2)  # took it; the client timed out
    twilio.hang(12.0, accept=False, times=1)  # did not take it; the client timed out
    injected = 4 + 4 + 2 + 3 + 2 + 1 + len(refused)
    go(run)
    found = finish(run, summary, "Twilio 429, 500/503, timeouts, 21610", injected)
    assert found.states["sent"] == 2 * len(run.people) - len(run.stopped) - len(refused)
    assert found.messages == found.states["sent"]
    # 21610: the participant is opted out and not asked again (a POST before the one
    # refused may have met one of the other faults).
    for person in refused:
        posts = [r for r in twilio.seen("POST") if r.params.get("To") == person.phone]
        assert 1 <= len(posts) <= 2
    opted_out = run.count(
        "SELECT count(*) FROM consent_log WHERE action = 'opt_out' "
        "AND source = 'provider:twilio-21610'"
    )
    assert opted_out == len(refused)
    assert found.states["failed"] + found.states["cancelled"] == len(refused) + len(run.stopped)


def test_smtp_451_550_and_refused_connections(
    deploy: Callable[..., Deployment], summary: Summary
) -> None:
    run = begin(deploy)
    deployment = run.deployment
    smtp = deployment.smtp
    for _ in range(3):
        smtp.answer_next("DATA", "451 4.3.0 Try again later")
    for _ in range(2):
        smtp.answer_next("RCPT", "550 5.1.1 No such mailbox")
    smtp.stop()  # refused connections until the workers have met them
    go(run)
    wait_for(
        lambda: (
            run.count(
                "SELECT count(*) FROM deliveries WHERE channel = 'email' AND attempts > 0 "
                "AND last_error IS NOT NULL"
            )
            >= 3
        ),
        60,
        "email sends to meet the refused connections",
    )
    smtp.start()
    found = finish(run, summary, "SMTP 451, 550, refused connections", 3 + 2 + 1)
    assert found.states["failed"] == 2, found.reasons
    assert found.states["sent"] == 2 * len(run.people) - len(run.stopped) - 2
    assert len(smtp.refused) == 3


# --- time --------------------------------------------------------------------------------


def test_the_clock_jumping(deploy: Callable[..., Deployment], summary: Summary) -> None:
    """Forward past the grace period (everything due expires, nothing goes late), back an
    hour (nothing goes again), then on to the next morning (which goes, once)."""
    run = begin(deploy, people=40, grace_minutes=15)
    deployment = run.deployment
    clock = deployment.clock
    clock.start(EIGHT + timedelta(minutes=20), rate=1)  # the jump: 21 minutes at once
    deployment.wait_settled(SETTLE, "the first morning to expire")
    first = run.count("SELECT count(*) FROM deliveries WHERE state = 'expired'")
    assert first == 2 * len(run.people) - len(run.stopped)
    back = clock.jump(-timedelta(hours=1, minutes=20))  # back to before the first burst
    wait_for(lambda: clock.now() > back + timedelta(seconds=5), 60, "5 s on the rewound clock")
    deployment.wait_settled(SETTLE)
    clock.start(EIGHT + timedelta(days=1) - timedelta(seconds=2), rate=RATE)  # next morning
    wait_for(lambda: clock.now() > EIGHT + timedelta(days=1), 60, "the next 8:00")
    deployment.wait_settled(SETTLE)
    deployment.stop_all()
    found = tally(
        deployment.runtime.engine,
        clock.now(),
        provider_messages(deployment.twilio, deployment.smtp.received),
    )
    summary.add("clock jumps: +21 min, -80 min, +1 day", 3, found)
    found.assert_clean()
    assert found.due == 4 * len(run.people)
    assert found.states["expired"] == first
    assert found.states["sent"] == 2 * len(run.people) - len(run.stopped)
    assert found.messages == found.states["sent"]
    assert all("grace period" in reason for reason in found.reasons if reason.startswith("expired"))
