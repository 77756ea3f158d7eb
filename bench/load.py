"""Load: 10,000 participants on the shipped plans, a day of their reminders compressed
into minutes, through Tend as production runs it.

Throwaway PostgreSQL and Redis servers; the reliability harness's deployment (two
schedulers, two workers of 8 threads and the web app, each a process of its own, on a
shared clock), with the fake Twilio API and a real SMTP server in this process. The
people are spread over ten time zones and the four shipped plans, with their own wake,
bed and walk times (tests/reliability/population.py), enrolled two weeks before the day.
The clock then runs through the day's window (Auckland's midnight to Los Angeles' end of
the day, about 44 hours of UTC) in `--minutes` of real time, while a thread samples each
process's memory. Afterwards every delivery due in the window is counted against the
providers (tests/reliability/load.py): sent once, or failed, expired or cancelled with a
reason; duplicates; lost; lateness; sends per real second; the calendar invitations.

Baseline, in the same run: the same messages (the SMS texts and the emails Tend sent)
posted straight to the same fake Twilio and SMTP servers by two processes of 8 threads
each (as many as the workers run), with the twilio library and smtplib, without Tend.

    python -m bench.load [--people N] [--minutes M] [--day YYYY-MM-DD] [--no-write]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import smtplib
import statistics
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from twilio.rest import Client  # type: ignore[import-untyped]

from bench.report import write_section
from service.channels.base import Channel, OutgoingMessage, Receipt
from service.engine import enrollment, invitations, summaries, windows
from service.engine.scheduler import Scheduler
from service.logging import configure_logging
from service.runtime import Runtime
from tests.reliability.harness import TWILIO_FROM, Deployment
from tests.reliability.load import (
    Outcome,
    Sampler,
    Window,
    busiest,
    calendar_plans,
    largest_backlog,
    measure,
    percentile,
    prepare,
    run_day,
)
from tests.reliability.population import enrollees, populate_one_by_one, shipped_plans
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.support.services import PostgresServer, RedisServer

WORKERS = 2  # worker processes in the deployment
THREADS = 8  # each one's threads (tests/reliability/proc.py's default, `tend worker`'s)
REFERENCE = 200  # people enrolled one by one through `enroll`, to time the population
PROCESSES = ("scheduler-1", "scheduler-2", "worker-1", "worker-2", "web", "bench")


# --- the baseline -------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One message to post: an SMS (`to`, `body`) or an email (`to`, the raw `data`)."""

    channel: str
    to: str
    body: str = ""
    data: bytes = b""


def _post_all(jobs: list[Job], twilio_url: str, smtp_port: int, threads: int) -> None:
    """Post `jobs` from `threads` threads: SMS with the twilio library (a client each,
    keep-alive), email with smtplib (a connection a message, as Tend's channel)."""
    work: queue.SimpleQueue[Job] = queue.SimpleQueue()
    for job in jobs:
        work.put(job)

    def run() -> None:
        client = Client(ACCOUNT_SID, AUTH_TOKEN)
        client.edge = client.region = None
        client.api.base_url = twilio_url
        while True:
            try:
                job = work.get_nowait()
            except queue.Empty:
                return
            if job.channel == "sms":
                client.messages.create(to=job.to, from_=TWILIO_FROM, body=job.body)
            else:
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=20) as smtp:
                    smtp.sendmail("tend@reliability.test", [job.to], job.data)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def _baseline_process(
    jobs: list[Job],
    twilio_url: str,
    smtp_port: int,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """One baseline process: ready, wait for the start, post, report (start, end)."""
    ready.release()
    go.wait()
    began = time.time()
    _post_all(jobs, twilio_url, smtp_port, THREADS)
    results.put((began, time.time()))


def baseline_rate(deployment: Deployment, jobs: list[Job]) -> float:
    """Messages a second: `jobs` split over WORKERS processes of THREADS threads each,
    from the start signal to the last one's end."""
    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Semaphore(0), context.Event(), context.Queue()
    shares = [jobs[i::WORKERS] for i in range(WORKERS)]
    processes = [
        context.Process(
            target=_baseline_process,
            args=(share, deployment.twilio.url, deployment.smtp.port, ready, go, results),
        )
        for share in shares
    ]
    for process in processes:
        process.start()
    for _ in processes:
        if not ready.acquire(timeout=300):
            for process in processes:
                process.kill()
            raise SystemExit("the baseline processes did not start")
    go.set()
    spans: list[tuple[float, float]] = [results.get(timeout=1800) for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"a baseline process failed ({process.exitcode})")
    began, ended = min(s[0] for s in spans), max(s[1] for s in spans)
    return len(jobs) / (ended - began)


def same_messages(deployment: Deployment, outcome: Outcome) -> list[Job]:
    """The reminders Tend sent in the window, as they reached the providers, in the
    order they went."""
    wanted = {m.ref for messages in outcome.messages.values() for m in messages}
    jobs = [
        Job("sms", str(m.resource["to"]), body=str(m.resource["body"]))
        for m in deployment.twilio.accepted()
        if m.sid in wanted
    ]
    for mail in deployment.smtp.received:
        if str(mail.message["Message-ID"]).strip().strip("<>") in wanted:
            jobs.extend(Job("email", to, data=mail.data) for to in mail.rcpt_tos)
    return jobs


# --- the run ------------------------------------------------------------------------------


@dataclass
class Figures:
    people: int
    minutes: float
    grace_minutes: int
    window: Window
    outcome: Outcome
    populate_seconds: float
    reference_ms: float  # enroll, one by one, a person
    stored: dict[str, int]
    baseline: float
    baseline_sms: int
    baseline_email: int
    maintenance: dict[str, float]
    calendar_enrollments: int
    load: list[float]  # the machine's load average, sampled during the day
    total_seconds: float


def reference_enroll_ms(pg: PostgresServer, redis: RedisServer, folder: Path, day: date) -> float:
    """Milliseconds a person for REFERENCE people through `enroll`, one at a time."""
    deployment = Deployment.create(folder, pg, redis, shipped_plans())
    try:
        window = Window.of(day)
        deployment.clock.start(window.start, rate=0)
        people = enrollees(REFERENCE, deployment.runtime.plans.all())
        began = time.perf_counter()
        populate_one_by_one(deployment.runtime, people, day - timedelta(weeks=2))
        return (time.perf_counter() - began) / REFERENCE * 1000
    finally:
        deployment.close()


def time_maintenance(deployment: Deployment, passes: int = 3) -> dict[str, float]:
    """Seconds one scheduler maintenance pass takes on the loaded database, after the day
    (a first pass catches up, then the median of `passes`), and some of its chores alone
    (medians too)."""
    channel = NoChannel()
    runtime = Runtime.build(
        deployment.settings(), clock=deployment.clock, channels={"sms": channel, "email": channel}
    )
    scheduler = Scheduler(runtime, lambda _ids: None, enqueue_weekly=lambda _ids: None)
    scheduler.maintain(force=True)
    chores: dict[str, Callable[[Runtime], object]] = {
        "pass": lambda _runtime: scheduler.maintain(force=True),
        "weekly messages": summaries.plan_weekly,
        "invitations": invitations.sync_invitations,
        "horizons": enrollment.extend_horizons,
        "closed windows": windows.close_windows,
    }
    timed: dict[str, list[float]] = {name: [] for name in chores}
    for _ in range(passes):
        for name, chore in chores.items():
            began = time.perf_counter()
            chore(runtime)
            timed[name].append(time.perf_counter() - began)
    runtime.close()
    return {name: statistics.median(values) for name, values in timed.items()}


class NoChannel(Channel):
    """Sends nothing (the invitations a timed maintenance pass finds still to send)."""

    def send(self, message: OutgoingMessage) -> Receipt:
        return Receipt(provider_id=None)


def calendar_enrollments(deployment: Deployment) -> int:
    with deployment.runtime.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM enrollments WHERE plan_id = ANY(:plans)"),
                {"plans": calendar_plans(deployment)},
            ).scalar_one()
        )


def stored_rows(deployment: Deployment) -> dict[str, int]:
    with deployment.runtime.engine.connect() as conn:
        return {
            table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("participants", "enrollments", "occurrences", "deliveries")
        }


def run(args: argparse.Namespace) -> Figures:
    began = time.perf_counter()
    pg, redis = PostgresServer(), RedisServer(persist=True)
    pg.start()
    redis.start()
    try:
        with tempfile.TemporaryDirectory(prefix="tend-load-") as tmp:
            reference = reference_enroll_ms(pg, redis, Path(tmp) / "reference", args.day)
            window = Window.of(args.day)
            deployment = Deployment.create(
                Path(tmp) / "load", pg, redis, shipped_plans(), grace_minutes=args.grace
            )
            try:
                people, populate_seconds = prepare(deployment, args.people, window)
                stored = stored_rows(deployment)
                print(
                    f"{len(people):,} people enrolled in {populate_seconds:.1f} s "
                    f"({stored['deliveries']:,} deliveries stored); running the day",
                    flush=True,
                )
                sampler = Sampler(deployment, interval=args.sample)
                rate = window.rate_for(args.minutes * 60)
                timeline = run_day(
                    deployment, window, rate, sampler, settle_timeout=args.settle, invitations=False
                )
                during = [
                    n
                    for (at, _, _), n in zip(sampler.counts, sampler.load, strict=True)
                    if at <= timeline.day_over
                ]
                load = during or sampler.load
                timeline.populate_seconds = populate_seconds
                outcome = measure(deployment, window, timeline, sampler, len(people))
                calendar = calendar_enrollments(deployment)
                maintenance = time_maintenance(deployment)
                jobs = same_messages(deployment, outcome)
                print(f"day over; baseline: {len(jobs):,} messages straight", flush=True)
                baseline = baseline_rate(deployment, jobs)
            finally:
                deployment.close()
    finally:
        pg.close()
        redis.close()
    kinds = Counter(job.channel for job in jobs)
    return Figures(
        people=len(people),
        minutes=args.minutes,
        grace_minutes=args.grace,
        window=window,
        outcome=outcome,
        populate_seconds=populate_seconds,
        reference_ms=reference,
        stored=stored,
        baseline=baseline,
        baseline_sms=kinds["sms"],
        baseline_email=kinds["email"],
        maintenance=maintenance,
        calendar_enrollments=calendar,
        load=load,
        total_seconds=time.perf_counter() - began,
    )


# --- the report ---------------------------------------------------------------------------


def mb(kilobytes: int | None) -> str:
    return f"{kilobytes / 1024:,.0f}" if kilobytes else "-"


def minutes_text(seconds: float) -> str:
    return f"{seconds / 60:,.1f} min"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def memory_total_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def render(f: Figures) -> tuple[str, str]:
    """The docs section, and a one-screen summary for the terminal."""
    o, t, tally = f.outcome, f.outcome.timeline, f.outcome.tally
    day_seconds = f.window.span.total_seconds() / o.rate
    hours = f.window.span.total_seconds() / 3600
    sent = tally.states["sent"]
    peak, _ = busiest(o.sent_real)
    offered, _ = busiest(o.due_real)
    backlog = largest_backlog(o.due_real, o.sent_real)
    tend_peak, overall = peak / 60, sent / day_seconds
    ratio = tend_peak / f.baseline
    late, real = o.late_clock, o.late_real()
    shares = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
    pct = {name: (percentile(late, s), percentile(real, s)) for name, s in shares}
    kinds: Counter[str] = Counter()
    for (kind, channel, state), count in o.by_kind.items():
        kinds[f"{kind} {channel}"] += count
        kinds[f"{kind} {channel} {state}"] += count
    due_rows = "\n".join(
        f"| {name} | {kinds[name]:,} | {kinds[name + ' sent']:,} | "
        f"{kinds[name + ' failed'] + kinds[name + ' expired'] + kinds[name + ' cancelled']:,} |"
        for name in ("reminder sms", "reminder email", "nudge sms")
        if kinds[name]
    )
    reasons = (
        "; ".join(f"{count:,} {reason}" for reason, count in tally.reasons.most_common()) or "none"
    )
    anyway = (
        f" Of those, {tally.went_anyway:,} reached the provider all the same"
        f" ({tally.uncertain_email:,} emails whose send outlived its lease: SMTP cannot tell"
        " whether one went, so the worker fails it rather than send it twice)."
        if tally.went_anyway
        else ""
    )
    dates = ", ".join(f"{d}: {n:,}" for d, n in sorted(o.by_date.items()))
    late_rows = "\n".join(
        f"| {name} | {minutes_text(c)} | {r:,.2f} s |" for name, (c, r) in pct.items()
    )
    memory_rows = "\n".join(
        f"| {name} | {mb(t.hwm.get(name))} | {mb(o.peak_rss.get(name))} |" for name in PROCESSES
    )
    invitations_by = (
        f"{o.invitations_done_real - t.clock_started:,.0f} s after the clock started"
        if o.invitations_done_real
        else "n/a"
    )
    pace = (
        f", {o.invitations / (o.invitations_done_real - t.clock_started):.1f} a second"
        if o.invitations_done_real and o.invitations_done_real > t.clock_started
        else ""
    )
    invitation_line = (
        f"{o.invitations:,} invitation emails to {o.invited:,} of the "
        f"{f.calendar_enrollments:,} participants in plans with calendar practices "
        f"({o.invitation_duplicates:,} of them a second time, the same version), the last "
        f"{invitations_by}{pace}; {t.invitations_left:,} not yet invited when the day had "
        "settled"
    )
    load = f.load
    machine = (
        f"{os.cpu_count()} CPUs ({cpu_model()}), {memory_total_gb():.0f} GB, shared by the "
        "five processes, PostgreSQL, Redis and this process (fake Twilio, SMTP server), and "
        "by whatever else ran: the 1-minute load average during the day was "
        f"{sum(load) / len(load):.1f} on average, {max(load):.1f} at most"
    )
    chores = ", ".join(f"{k} {v:.2f} s" for k, v in f.maintenance.items() if k != "pass")
    maintenance = f"{f.maintenance['pass']:.2f} s ({chores} of it)"
    ended = sum(tally.states[s] for s in ("sent", "failed", "expired", "cancelled"))
    problems = {
        "duplicates": tally.duplicates,
        "lost": tally.lost,
        "unexplained messages": len(o.strays),
        "early": tally.early,
        "without a reason": tally.unexplained,
        "without an end": tally.due - ended,
    }
    broken = ", ".join(f"{v:,} {k}" for k, v in problems.items() if v)
    body = f"""## Load: {f.people:,} participants, a day in {f.minutes:g} minutes

`python -m bench.load --people {f.people} --minutes {f.minutes:g}`: throwaway PostgreSQL and
Redis; Tend as production runs it (two schedulers, two workers of {THREADS} threads and the
web app, each a process, on the reliability harness's shared clock) against the fake Twilio
API and a real SMTP server. {f.people:,} participants over ten time zones (Los Angeles to
Auckland) and the four shipped plans, each with their own wake, bed and walk times, enrolled
two weeks before Friday {f.window.day} ({f.stored["deliveries"]:,} deliveries stored). The
clock then ran through that day everywhere, from Auckland's midnight to Los Angeles' end of
the day ({hours:.0f} hours), in {day_seconds / 60:.1f} minutes: {o.rate:.0f} times real speed.
Reminders fell due {o.rate:.0f} times as fast as in real time (as many a second as
{f.people * o.rate:,.0f} participants would bring), and the schedulers' maintenance (every
30 clock seconds: horizons, invitations, weekly messages, closed windows) ran {o.rate:.0f}
times as often; the leases (2 and 3 clock minutes) were {120 / o.rate:.2f} and
{180 / o.rate:.2f} s of real time. Grace period: {f.grace_minutes} clock minutes
({f.grace_minutes * 60 / o.rate:.0f} s real). Machine: {machine}.

Every delivery due in the window, checked against the providers (each SMS by its Twilio SID,
each email by its Message-ID): {tally.due:,} due ({dates}), {sent:,} sent once;
duplicates {tally.duplicates}, lost {tally.lost}, unexplained messages {len(o.strays)},
early {tally.early}. Not sent, with their reasons: {reasons}.{anyway} Weekly messages sent:
{o.weekly:,} (the window holds no Sunday evening).

| due in the window | due | sent | not sent |
|---|---:|---:|---:|
{due_rows}

Throughput: the baseline posts the same {f.baseline_sms + f.baseline_email:,} messages
({f.baseline_sms:,} SMS, {f.baseline_email:,} emails) straight to the same fake Twilio and
SMTP server from {WORKERS} processes of {THREADS} threads, without Tend. Tend's busiest real
minute is bounded by what fell due in it ({offered / 60:,.1f} a second at most); the largest
backlog (due, not yet sent) was {backlog:,}.

| sends a second | rate | ratio to baseline |
|---|---:|---:|
| baseline: the same messages, straight | {f.baseline:,.1f} /s | 1.00 |
| Tend, the busiest real minute | {tend_peak:,.1f} /s | **{ratio:.2f}** |
| Tend, over the compressed day | {overall:,.1f} /s | {overall / f.baseline:.2f} |

| lateness, sent_at - due_at | clock | real (clock / {o.rate:.0f}) |
|---|---:|---:|
{late_rows}

One scheduler maintenance pass on the loaded database, timed in this process after the
day (medians of three): {maintenance}. A scheduler claims due reminders only between passes; at
{o.rate:.0f} times real speed a pass is due (30 clock seconds) on every loop, so a reminder
that falls due while both schedulers are in theirs waits for the first to finish.

| process | peak RSS (VmHWM), MB | largest sample, MB |
|---|---:|---:|
{memory_rows}

The bench process holds the fake Twilio (every message kept), the SMTP server, the cohort
and the sampler; its figure is for reference. Calendar invitations (emailed by the
schedulers after enrollment, at most 10 a maintenance pass each): {invitation_line}.

Run times: population {f.populate_seconds:.1f} s
({f.populate_seconds / f.people * 1000:.1f} ms a person, batched; `enroll` one by one took
{f.reference_ms:.1f} ms a person for {REFERENCE}); the five processes started in
{t.start_seconds:.0f} s; the day {day_seconds:.0f} s; settled {t.settled - t.day_over:.0f} s
after it; the whole bench {f.total_seconds / 60:.1f} minutes.
Invariants: {f"BROKEN: {broken}" if broken else "all held"}."""
    states = "  ".join(
        f"{s} {tally.states[s]:,}" for s in ("sent", "failed", "expired", "cancelled")
    )
    memory = "  ".join(f"{n} {mb(t.hwm.get(n))}" for n in PROCESSES)
    summary = "\n".join(
        [
            f"load: {f.people:,} people, a {hours:.0f} h day in {day_seconds:.0f} s "
            f"(x{o.rate:.0f}), grace {f.grace_minutes} clock min",
            f"due {tally.due:,}  {states}",
            f"duplicates {tally.duplicates}  lost {tally.lost}  strays {len(o.strays)}  "
            f"early {tally.early}  invariants: {broken or 'all held'}",
            f"not sent: {reasons}",
            f"throughput: busiest minute {tend_peak:,.1f}/s (offered {offered / 60:,.1f}/s, "
            f"largest backlog {backlog:,}), overall {overall:,.1f}/s",
            f"baseline {f.baseline:,.1f}/s ({f.baseline_sms:,} SMS, {f.baseline_email:,} "
            f"emails); ratio {ratio:.2f}",
            "lateness clock  " + "  ".join(f"{n} {minutes_text(c)}" for n, (c, _) in pct.items()),
            "lateness real   " + "  ".join(f"{n} {r:.2f} s" for n, (_, r) in pct.items()),
            f"maintenance pass: {maintenance}",
            f"memory MB (VmHWM): {memory}",
            f"invitations: {invitation_line}",
            f"times: populate {f.populate_seconds:.1f} s (enroll: {f.reference_ms:.1f} ms a "
            f"person), start {t.start_seconds:.0f} s, settle {t.settled - t.day_over:.0f} s, "
            f"total {f.total_seconds / 60:.1f} min",
        ]
    )
    return reflow(body), summary


def reflow(markdown: str) -> str:
    """Each paragraph (not tables, not headings) filled to 92 columns."""
    blocks = []
    for block in markdown.split("\n\n"):
        if block.startswith(("|", "#")):
            blocks.append(block)
        else:
            blocks.append(
                textwrap.fill(
                    " ".join(block.split()),
                    width=92,
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
    return "\n\n".join(blocks)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=10.0, help="real minutes for the day")
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 3, 13))
    parser.add_argument("--grace", type=int, default=120, help="grace period, clock minutes")
    parser.add_argument("--settle", type=float, default=900.0, help="real seconds to settle")
    parser.add_argument("--sample", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--no-write", action="store_true", help="print the section instead")
    args = parser.parse_args(argv)
    configure_logging("json", "warning")
    figures = run(args)
    body, summary = render(figures)
    if args.no_write:
        print(body, end="\n\n")
    else:
        write_section("load", body)
    print(summary)


if __name__ == "__main__":
    main()
