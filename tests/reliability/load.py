"""A day of reminders for a large cohort, compressed: what test_load.py and
`python -m bench.load` share.

`prepare` enrolls a cohort (population.py) in the shipped plans, two weeks before the
day, with the clock standing still at the start of the day's window: the first local
midnight of the day anywhere (Auckland's) to the last (Los Angeles'), about 44 hours of
UTC (or a `lead` before it). `run_day` then runs the clock through that window at `rate`
times real speed while Tend's five processes work (after the lead, if any, at a gentler
rate while the calendar invitations go), waits until every delivery due in it has an
end, and stops them. A `Sampler` thread notes each process's memory and the providers'
message counts as it goes. `measure` counts what happened:

- every delivery due in the window, by state (with the reasons of those not sent), each
  sent one matched to its message at the provider: an SMS by its Twilio SID (the row's
  provider_id), an email by its Message-ID, which names the delivery (`tend.d{id}.`);
  the shipped plans' texts carry no occurrence key, so checks.tally's matching by key
  cannot be used;
- duplicates (a second message for one delivery), lost (a row "sent" without its
  message), strays (a message at a provider that no delivery, invitation or weekly
  message explains), early (recorded sent before due, or at the provider before due);
- lateness (sent_at - due_at, clock seconds, and real seconds: clock / rate), and sends
  per real second;
- the calendar invitations the scheduler emails after enrollment, apart.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from sqlalchemy import text

from service.channels import email as email_channel
from service.channels import sms as sms_channel
from service.core.invitation import calendar_practices
from tests.reliability.checks import (
    TERMINAL,
    UNCERTAIN_EMAIL,
    Sent,
    Tally,
    provider_messages,
)
from tests.reliability.harness import Deployment, Person
from tests.reliability.population import ZONES, enrollees, populate
from tests.support.services import wait_for

WEEKS_IN = 2  # the day falls in the plans' third week: weekend yoga, longer walks
DELIVERY_MESSAGE_ID = re.compile(r"^tend\.d(\d+)\.")
# A send begins within the grace period; it is recorded when the provider has answered,
# which can take up to the channel's timeout.
SEND_ALLOWANCE = max(sms_channel.DEFAULT_TIMEOUT, email_channel.DEFAULT_TIMEOUT)


# --- the window ------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The instants from the first local midnight of `day` in any of the zones to the
    last local end of it."""

    day: date
    start: datetime
    end: datetime

    @classmethod
    def of(cls, day: date, zones: Sequence[str] = ZONES) -> Window:
        starts = [datetime.combine(day, clock_time(), ZoneInfo(z)) for z in zones]
        ends = [datetime.combine(day + timedelta(days=1), clock_time(), ZoneInfo(z)) for z in zones]
        return cls(day, min(starts).astimezone(UTC), max(ends).astimezone(UTC))

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    def rate_for(self, real_seconds: float) -> float:
        """The clock rate that runs the window in `real_seconds`."""
        return self.span.total_seconds() / real_seconds


# --- memory and provider counts, sampled -------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (kB) of process `pid`; empty when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            lines = status.read().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


class Sampler(threading.Thread):
    """Every `interval` seconds: each process's resident memory, and how many messages
    the fake Twilio and the SMTP server hold (for when each arrived, in real time)."""

    def __init__(self, deployment: Deployment, interval: float = 0.5) -> None:
        super().__init__(name="load-sampler", daemon=True)
        self.deployment = deployment
        self.interval = interval
        self.stopping = threading.Event()
        self.rss: dict[str, list[int]] = {}  # kB, per process name ("bench": this one)
        self.counts: list[tuple[float, int, int]] = []  # (time, SMS, emails)
        self.load: list[float] = []  # the machine's 1-minute load average
        self._columns: list[tuple[int, int]] = []
        self._by_channel: dict[str, list[int]] = {}

    def pids(self) -> dict[str, int]:
        found = {n: p.popen.pid for n, p in self.deployment.processes.items() if p.alive}
        return {**found, "bench": os.getpid()}

    def sample(self) -> None:
        # The counts first and the time after: a message counted arrived by then.
        sms = len(self.deployment.twilio.messages)
        mail = len(self.deployment.smtp.handler.received)
        self.counts.append((time.time(), sms, mail))
        self.load.append(os.getloadavg()[0])
        for name, pid in self.pids().items():
            rss = proc_status(pid).get("VmRSS")
            if rss is not None:
                self.rss.setdefault(name, []).append(rss)

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, int]:
        """Stop sampling; each process's peak resident memory (VmHWM, kB), read now,
        while the processes still run."""
        self.stopping.set()
        self.join()
        self.sample()
        return {
            name: hwm
            for name, pid in self.pids().items()
            if (hwm := proc_status(pid).get("VmHWM")) is not None
        }

    def arrived_by(self, channel: str, index: int) -> float | None:
        """A real time by which the `index`-th message of `channel` had arrived."""
        if len(self._columns) != len(self.counts):  # sampled since: read them again
            self._columns = [(c[1], c[2]) for c in self.counts]
            self._by_channel = {
                "sms": [c[0] for c in self._columns],
                "email": [c[1] for c in self._columns],
            }
        at = bisect.bisect_right(self._by_channel[channel], index)
        return self.counts[at][0] if at < len(self.counts) else None


# --- running the day ---------------------------------------------------------------------


@dataclass
class Timeline:
    """Real times (time.time()) of the run, and how long its steps took (seconds)."""

    rate: float
    clock_started: float = 0.0  # the real time at which the clock read window.start
    day_over: float = 0.0
    settled: float = 0.0
    populate_seconds: float = 0.0
    start_seconds: float = 0.0
    hwm: dict[str, int] = field(default_factory=dict)
    invitations_left: int = 0  # enrollments whose invitation had not gone when it ended

    def real(self, window: Window, moment: datetime) -> float:
        """The real time at which the running clock read `moment` (in the window)."""
        return self.clock_started + (moment - window.start).total_seconds() / self.rate


def prepare(
    deployment: Deployment, count: int, window: Window, *, lead: timedelta = timedelta(0)
) -> tuple[list[Person], float]:
    """Enroll `count` people with the clock standing `lead` before the window's start,
    each plan started WEEKS_IN weeks before the day; returns them and the seconds it
    took."""
    deployment.clock.start(window.start - lead, rate=0)
    runtime = deployment.runtime
    people = enrollees(count, runtime.plans.all())
    began = time.perf_counter()
    stored = populate(runtime, people, window.day - timedelta(weeks=WEEKS_IN))
    return stored, time.perf_counter() - began


def run_day(
    deployment: Deployment,
    window: Window,
    rate: float,
    sampler: Sampler,
    *,
    settle_timeout: float,
    invitations: bool = True,
    lead: timedelta = timedelta(0),
    lead_rate: float = 60.0,
) -> Timeline:
    """Start the processes, run the clock through the window at `rate`, wait until every
    delivery due in it has an end (and with `invitations`, until every invitation went
    out or failed), read each process's peak memory, and stop them. The clock runs on
    until then.

    With a `lead` (the time `prepare` enrolled the people before the window), the clock
    first runs from then at the gentler `lead_rate` until the invitations have gone out
    (or the window is a minute away), then starts the window at `rate`: a lease of 3
    clock minutes is then seconds of real time, not a fraction of one, while the
    invitations go."""
    timeline = Timeline(rate)
    began = time.perf_counter()
    deployment.start_all()
    timeline.start_seconds = time.perf_counter() - began
    sampler.start()
    clock = deployment.clock
    if lead:
        clock.start(window.start - lead, rate=lead_rate)
        wait_for(
            lambda: (
                invitations_unsettled(deployment) == 0
                or clock.now() >= window.start - timedelta(minutes=1)
            ),
            lead.total_seconds() / lead_rate + 60,
            "the invitations before the day",
            interval=0.25,
        )
    clock.start(window.start, rate=rate)
    timeline.clock_started = json.loads(deployment.clock.path.read_text())["real"]
    span = window.span.total_seconds() / rate
    wait_for(lambda: clock.now() >= window.end, span * 1.5 + 60, "the day to pass")
    timeline.day_over = time.time()
    wait_for(
        lambda: (
            deployment.settled(window.end)
            and (not invitations or invitations_unsettled(deployment) == 0)
        ),
        settle_timeout,
        "every delivery due in the window to settle"
        + (" and every invitation to go" if invitations else ""),
        interval=0.25,
    )
    timeline.settled = time.time()
    timeline.hwm = sampler.stop()
    deployment.stop_all()
    timeline.invitations_left = invitations_unsettled(deployment)
    return timeline


def calendar_plans(deployment: Deployment) -> list[str]:
    return sorted(p.id for p in deployment.runtime.plans.all().values() if calendar_practices(p))


def invitations_unsettled(deployment: Deployment) -> int:
    """Enrollments in plans with calendar practices whose invitation has not gone out
    (nor failed for good)."""
    plans = calendar_plans(deployment)
    if not plans:
        return 0
    with deployment.runtime.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM enrollments e LEFT JOIN invitations i "
                    "ON i.enrollment_id = e.id WHERE e.plan_id = ANY(:plans) "
                    "AND e.status = 'active' AND NOT coalesce((i.state = 'idle' "
                    "AND i.sent_hash IS NOT NULL) OR i.state = 'failed', false)"
                ),
                {"plans": plans},
            ).scalar_one()
        )


# --- counting ----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a day came to. `tally` holds the invariants as checks.Tally counts them
    (for every delivery due in the window, reminders and nudges alike)."""

    window: Window
    timeline: Timeline
    people: int
    tally: Tally
    by_kind: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # kind, channel, state
    by_date: Counter[str] = field(default_factory=Counter)  # due in window, by local date
    strays: list[Sent] = field(default_factory=list)
    late_clock: list[float] = field(default_factory=list)  # seconds, sorted
    sent_real: list[float] = field(default_factory=list)  # real times of the sends, sorted
    due_real: list[float] = field(default_factory=list)  # real times the sent were due, sorted
    provider_sms: int = 0
    provider_email: int = 0
    invitations: int = 0  # invitation emails the SMTP server took
    invited: int = 0  # addresses they went to
    invitation_duplicates: int = 0  # beyond the first for one address
    invitation_states: Counter[str] = field(default_factory=Counter)
    invitations_done_real: float | None = None  # by when the last one had arrived
    weekly: int = 0  # weekly messages sent (none unless the window holds a Sunday evening)
    messages: dict[str, list[Sent]] = field(default_factory=dict)  # sent deliveries' messages
    peak_rss: dict[str, int] = field(default_factory=dict)  # kB, largest sample

    @property
    def rate(self) -> float:
        return self.timeline.rate

    @property
    def sent(self) -> int:
        return self.tally.states["sent"]

    def late_real(self) -> list[float]:
        return [s / self.rate for s in self.late_clock]

    def assert_clean(self, grace: timedelta) -> None:
        """The deliveries' invariants: checks.Tally's, no strays, and nothing recorded
        sent later than the grace period and the send's own time."""
        self.tally.assert_clean()
        assert not self.strays, f"{len(self.strays)} messages match nothing: {self.strays[:5]}"
        limit = (grace.total_seconds() + SEND_ALLOWANCE * self.rate) if self.late_clock else 0
        assert not self.late_clock or self.late_clock[-1] <= limit, (
            f"sent {self.late_clock[-1]:.0f} clock seconds late; the grace period is "
            f"{grace.total_seconds():.0f} s (+{SEND_ALLOWANCE * self.rate:.0f} s for the send)"
        )
        expired = [r for r in self.tally.reasons if r.startswith("expired")]
        assert all("grace period" in r for r in expired), expired


_ROWS = text(
    """
    SELECT d.id, d.channel, d.kind, d.state, d.last_error, d.provider_id, d.due_at,
           d.sent_at, o.local_date, p.phone, p.email
    FROM deliveries d
    JOIN occurrences o ON o.id = d.occurrence_id
    JOIN enrollments e ON e.id = o.enrollment_id
    JOIN participants p ON p.id = e.participant_id
    WHERE d.due_at <= :end OR d.state <> 'pending'
    """
)


def _is_invitation(data: bytes) -> bool:
    return b"text/calendar" in data


def measure(
    deployment: Deployment, window: Window, timeline: Timeline, sampler: Sampler, people: int
) -> Outcome:
    """Count what happened; run it once no process can send any more."""
    engine = deployment.runtime.engine
    with engine.connect() as conn:
        rows = conn.execute(_ROWS, {"end": window.end}).mappings().all()
        weekly_refs = {
            str(ref)
            for (ref,) in conn.execute(
                text("SELECT provider_id FROM summaries WHERE provider_id IS NOT NULL")
            )
        }
        invitation_states: Counter[str] = Counter(
            {
                str(state): int(count)
                for state, count in conn.execute(
                    text("SELECT state, count(*) FROM invitations GROUP BY state")
                )
            }
        )
    received = deployment.smtp.received
    sent = provider_messages(deployment.twilio, received)
    sms = [m for m in sent if m.channel == "sms"]
    mail = [m for m in sent if m.channel == "email"]
    assert len(mail) == sum(len(r.rcpt_tos) for r in received)
    invitation = [_is_invitation(r.data) for r in received for _ in r.rcpt_tos]
    origin = [i for i, r in enumerate(received) for _ in r.rcpt_tos]  # message of each

    # Each message, where it arrived (for `early`), and what it belongs to.
    arrived: dict[int, float | None] = {}
    by_sid: dict[str, list[Sent]] = {}
    for index, message in enumerate(sms):
        by_sid.setdefault(message.ref, []).append(message)
        arrived[id(message)] = sampler.arrived_by("sms", index)
    by_delivery: dict[int, list[Sent]] = {}
    invited: Counter[str] = Counter()
    strays: list[Sent] = []
    done_at: float | None = None
    weekly = 0
    for index, (message, is_invitation) in enumerate(zip(mail, invitation, strict=True)):
        arrived[id(message)] = sampler.arrived_by("email", origin[index])
        found = DELIVERY_MESSAGE_ID.match(message.ref)
        if is_invitation:
            invited[message.to] += 1
            at = arrived[id(message)]
            done_at = max(done_at or 0.0, at or 0.0)
        elif found:
            by_delivery.setdefault(int(found.group(1)), []).append(message)
        elif message.ref[:64] in weekly_refs:
            weekly += 1
        else:
            strays.append(message)

    tally = Tally()
    outcome = Outcome(window, timeline, people, tally, strays=strays)
    matched: set[int] = set()
    for row in rows:
        if row["channel"] == "sms":
            messages = by_sid.get(row["provider_id"] or "", []) if row["state"] == "sent" else []
        else:
            messages = by_delivery.get(row["id"], [])
        matched.update(id(m) for m in messages)
        due_real = timeline.real(window, row["due_at"])
        for message in messages:
            at = arrived.get(id(message))
            if at is not None and at < due_real and row["due_at"] >= window.start:
                tally.early += 1
        if not window.start <= row["due_at"] <= window.end:
            # Due before the window (in a lead) or after it (while the day settled):
            # matched, so that its message is no stray, but not counted.
            if row["state"] == "sent" and row["sent_at"] < row["due_at"]:
                tally.early += 1
            continue
        state = row["state"]
        tally.due += 1
        tally.states[state] += 1
        outcome.by_kind[row["kind"], row["channel"], state] += 1
        outcome.by_date[row["local_date"].isoformat()] += 1
        tally.messages += len(messages)
        tally.duplicates += max(len(messages) - 1, 0)
        if len(messages) > 1 and len(tally.examples) < 10:
            tally.examples.append(f"delivery {row['id']}: {[m.ref for m in messages]}")
        if state == "sent":
            if row["provider_id"] is None:
                tally.ref_unknown += 1
            if not messages:
                tally.lost += 1
            if row["sent_at"] < row["due_at"]:
                tally.early += 1
            outcome.late_clock.append((row["sent_at"] - row["due_at"]).total_seconds())
            outcome.sent_real.append(timeline.real(window, row["sent_at"]))
            outcome.due_real.append(due_real)
            outcome.messages.setdefault(row["channel"], []).extend(messages[:1])
        elif state in TERMINAL:
            reason = (row["last_error"] or "").strip()
            if not reason:
                tally.unexplained += 1
            tally.reasons[f"{state}: {re.sub(r'[0-9]{4,}', 'N', reason)[:80]}"] += 1
            if messages:
                tally.went_anyway += 1
                if row["channel"] == "email" and UNCERTAIN_EMAIL in reason:
                    tally.uncertain_email += 1  # SMTP cannot tell: failed rather than twice
        else:
            tally.lost += 1  # due, and without an end
    outcome.strays += [m for m in sms if id(m) not in matched and m.ref not in weekly_refs]
    weekly += sum(1 for m in sms if m.ref in weekly_refs)
    outcome.weekly = weekly
    outcome.late_clock.sort()
    outcome.sent_real.sort()
    outcome.due_real.sort()
    outcome.provider_sms, outcome.provider_email = len(sms), len(mail)
    outcome.invitations = sum(invited.values())
    outcome.invited = len(invited)
    outcome.invitation_duplicates = sum(n - 1 for n in invited.values())
    outcome.invitation_states = invitation_states
    outcome.invitations_done_real = done_at
    outcome.peak_rss = {name: max(values) for name, values in sampler.rss.items()}
    return outcome


# --- figures -----------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """Of sorted `values`; 0 when there are none."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(share * len(values)))]


def busiest(times: Sequence[float], span: float = 60.0) -> tuple[int, float]:
    """The most of sorted `times` in any `span` seconds, and where that span begins."""
    best, at, first = 0, times[0] if times else 0.0, 0
    for last, moment in enumerate(times):
        while moment - times[first] > span:
            first += 1
        if last - first + 1 > best:
            best, at = last - first + 1, times[first]
    return best, at


def largest_backlog(due: Sequence[float], sent: Sequence[float]) -> int:
    """The most deliveries due and not yet sent at any moment, of those that were sent
    (sorted real times: when each was due, when each was sent)."""
    worst = 0
    for moment in sent:
        waiting = bisect.bisect_right(due, moment) - bisect.bisect_right(sent, moment)
        worst = max(worst, waiting)
    return worst
