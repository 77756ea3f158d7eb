"""Calendar feeds: `GET /calendar/{token}.ics` served by uvicorn, against a bare endpoint.

One participant is enrolled in a plan with two calendar practices a day (a morning walk
and an evening wind-down, by SMS and calendar), its occurrences materialised for a whole
year instead of the usual 14 days, and the clock stands at the enrollment, so that the
feed holds every one of them (checked before anything is timed). The baseline, in the
same run: a bare FastAPI app whose `GET /calendar/{token}.ics` compares If-None-Match
with a constant ETag and answers 304. Both are served the same way (uvicorn in a process
of its own, one worker, h11 on the asyncio loop, no access log) and loaded from this
process over keep-alive connections.

1. Full render: GET without If-None-Match, one request at a time after a warm-up; the
   latency of each, the first one (caches empty) apart. Target: p95 under 10 ms.
   The same work is then timed in this process, step by step (the state statement, the
   rows, the events, the text), so that what the server adds is visible.
2. The 304 path: GET with If-None-Match set to the feed's ETag, a fixed number of
   requests over N concurrent connections (or as many as are answered in a few
   seconds), best of a few interleaved runs of each side. Target: at least 0.5 of the
   baseline's rate.

On SQLite in a temporary folder, and on a throwaway PostgreSQL server when its binaries
are on this machine.

    python -m bench.feed [--days D] [--renders N] [--requests N] [--connections C]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from bench.report import write_section
from service.actions import enrollments as enrolling
from service.actions.links import feed_link
from service.actions.plans import push
from service.clock import ManualClock
from service.core import feed as core_feed
from service.core.schedule import desired, reconcile
from service.logging import configure_logging
from service.runtime import Runtime
from service.settings import Settings, load_settings
from service.storage import enrollments as enrollment_rows
from service.storage import feeds
from service.storage import occurrences as occurrence_rows
from service.storage import participants as participant_rows
from service.storage.db import make_engine, transaction, upgrade
from service.web import calendar
from service.web.app import create_app
from tests.support.services import free_port, postgres_server, wait_for

PUBLIC_URL = "https://tend.bench"
ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "templates"
ZONE = "America/New_York"
START_DAY = date(2026, 3, 2)  # a Monday
ENROLLED_AT = datetime(2026, 3, 1, 12, tzinfo=UTC)  # before the first reminder
NOW = ENROLLED_AT  # the clock stands here: every occurrence is ahead, none is dropped
PLAN = """\
plan: bench-feed
title: Bench feed
weeks: 53
practices:
  - id: walk
    category: movement
    title: Morning walk
    at: "07:00"
    duration: 30m
    channels: [sms, calendar]
    check_in: done
  - id: wind-down
    category: sleep
    title: Evening wind-down
    at: "21:30"
    duration: 30m
    channels: [sms, calendar]
    check_in: done
"""
PRACTICES = 2
BARE_ETAG = '"0123456789abcdef0123456789abcdef"'
TARGET_P95_MS = 10.0
TARGET_RATIO = 0.5


# --- the servers -----------------------------------------------------------------------


def settings_for(db_url: str, folder: Path) -> Settings:
    return load_settings(
        database_url=db_url,
        schedules_dir=folder / "schedules",
        templates_dir=folder / "templates",
        secret_key="bench",
        public_url=PUBLIC_URL,
    )


def build_runtime(db_url: str, folder: Path) -> Runtime:
    runtime = Runtime.build(settings_for(db_url, folder), clock=ManualClock(NOW), channels={})
    push(runtime, by="bench")
    return runtime


def bare_app() -> FastAPI:
    """The baseline: the same route on the same framework, answering a constant 304."""
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.get("/calendar/{token}.ics", include_in_schema=False)
    async def calendar_feed(token: str, request: Request) -> Response:
        headers = {**calendar.HEADERS, "ETag": BARE_ETAG}
        if request.headers.get("if-none-match") == BARE_ETAG:
            return Response(status_code=304, headers=headers)
        return Response(b"", headers=headers, media_type=calendar.MEDIA_TYPE)

    return app


def app_for(kind: str, db_url: str, folder: Path | None) -> tuple[FastAPI, Runtime | None]:
    """Tend's app (`kind` "tend") on a runtime of its own, or the bare one."""
    if kind == "tend":
        assert folder is not None
        runtime = build_runtime(db_url, folder)
        return create_app(runtime), runtime
    return bare_app(), None


def uvicorn_server(app: FastAPI, port: int) -> uvicorn.Server:
    """As `tend web` serves: no access log. One worker, the same loop and HTTP for both."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        http="h11",
        workers=1,
        log_config=None,
        log_level="warning",
        access_log=False,
    )
    return uvicorn.Server(config)


def serve(kind: str, port: str, db_url: str = "", folder: str = "") -> None:
    """The body of a server process."""
    configure_logging("json", "warning")
    app, _ = app_for(kind, db_url, Path(folder) if folder else None)
    uvicorn_server(app, int(port)).run()


class Server:
    """`python -m bench.feed serve ...` in a process of its own, on a free port; or, with
    `in_process`, uvicorn in a thread of this one (quick to start, for the test)."""

    def __init__(
        self, kind: str, db_url: str = "", folder: Path | None = None, in_process: bool = False
    ) -> None:
        self.kind = kind
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.thread: threading.Thread | None = None
        self.runtime: Runtime | None = None
        if in_process:
            app, self.runtime = app_for(kind, db_url, folder)
            self.server = uvicorn_server(app, self.port)
            self.thread = threading.Thread(target=self.server.run, daemon=True)
            self.thread.start()
        else:
            command = [sys.executable, "-m", "bench.feed", "serve", kind, str(self.port)]
            if folder is not None:
                command += [db_url, str(folder)]
            self.process = subprocess.Popen(command, cwd=ROOT)

    def alive(self) -> bool:
        if self.thread is not None:
            return self.thread.is_alive()
        assert self.process is not None
        return self.process.poll() is None

    def ready(self) -> int:
        """Waits until it accepts connections; returns its port."""
        wait_for(lambda: _answers(self.port) or not self.alive(), 60, f"the {self.kind} server")
        if not self.alive():
            raise SystemExit(f"the {self.kind} server did not start")
        return self.port

    def stop(self) -> None:
        if self.thread is not None:
            self.server.should_exit = True
            self.thread.join(10)
            if self.runtime is not None:
                self.runtime.close()
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[list[int]]:
    """The servers' ports once all of them answer; each is stopped on the way out."""
    try:
        yield [server.ready() for server in servers]
    finally:
        for server in servers:
            server.stop()


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- the data --------------------------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    participant_id: str
    path: str  # /calendar/<token>.ics
    events: int  # occurrences stored for the feed


def prepare(db_url: str, folder: Path, days: int) -> Feed:
    """The plan and Tend's shipped templates in `folder`, and a migrated database with one
    participant enrolled in the plan, its occurrences stored for `days` days."""
    (folder / "schedules").mkdir(parents=True, exist_ok=True)
    (folder / "schedules" / "bench-feed.yaml").write_text(PLAN, encoding="utf-8")
    # Event descriptions are Tend's own calendar texts, as shipped.
    shutil.copytree(SHIPPED, folder / "templates", dirs_exist_ok=True)
    engine = make_engine(db_url)
    upgrade(engine)
    engine.dispose()
    runtime = build_runtime(db_url, folder)
    plan = runtime.plans.get("bench-feed")
    if plan is None:
        raise SystemExit("the benchmark's plan did not load")
    with transaction(runtime.engine) as conn:
        person = participant_rows.add_participant(
            conn,
            name="Robin Feedwell",
            timezone=ZONE,
            phone="+14155550100",
            now=NOW,
            welcomed_at=NOW,
        )
    enrollment = enrolling.enroll(runtime, person.id, plan, START_DAY, {})
    # Enrolling stores the next 14 days; the scheduler would add the rest day by day.
    # Here the rest of the year is stored at once, just as a refresh would store it.
    until = START_DAY + timedelta(days=days)
    with transaction(runtime.engine) as conn:
        wanted = desired(plan, START_DAY, ZoneInfo(ZONE), {}, until, enrollment.not_before)
        changes = reconcile(occurrence_rows.stored_occurrences(conn, enrollment.id), wanted, NOW)
        occurrence_rows.apply_changes(conn, enrollment.id, changes, NOW, plan.version)
        enrollment_rows.set_horizon(
            conn,
            enrollment.id,
            horizon=until,
            end_date=enrollment.end_date,
            plan_hash=plan.content_hash,
            plan_version=plan.version,
            now=NOW,
        )
        stored = len(occurrence_rows.stored_occurrences(conn, enrollment.id))
        state = feeds.feed_state(conn, person.id, since=NOW - timedelta(days=30), now=NOW)
    link = feed_link(runtime, person.id, person.feed_version)
    runtime.close()
    if stored != days * PRACTICES or state is None or state.shown != stored:
        shown = state.shown if state else None
        raise SystemExit(f"{stored} occurrences stored for {days} days, the feed shows {shown}")
    return Feed(person.id, link.removeprefix(PUBLIC_URL), stored)


# --- the load --------------------------------------------------------------------------


class Connection:
    """One keep-alive connection; one request at a time on it. Reads answers with a
    Content-Length, and 304s, which have no body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, data: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers: dict[bytes, bytes] = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if b"close" in headers.get(b"connection", b"").lower():
            raise SystemExit("the server closed a keep-alive connection")
        if status == 304:
            return status, headers, b""
        if b"content-length" not in headers:
            raise SystemExit(f"an answer without Content-Length: {head!r}")
        return status, headers, await self.reader.readexactly(int(headers[b"content-length"]))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def get(port: int, path: str, etag: str | None = None) -> bytes:
    """A raw GET, as a calendar app sends it when it polls."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "User-Agent: Bench-Calendar/1.0",
        "Accept: text/calendar, */*",
    ]
    if etag is not None:
        lines.append(f"If-None-Match: {etag}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Outcome:
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return len(self.latencies_ms)

    @property
    def rate(self) -> float:
        return self.answered / self.seconds


Check = Callable[[int, dict[bytes, bytes], bytes], str | None]


async def sequential(port: int, data: bytes, count: int, check: Check) -> Outcome:
    """`count` requests one after the other on one connection."""
    conn = await Connection.open(port)
    outcome = Outcome()
    began = time.perf_counter()
    for _ in range(count):
        sent = time.perf_counter()
        status, headers, body = await conn.request(data)
        outcome.latencies_ms.append((time.perf_counter() - sent) * 1000)
        if (problem := check(status, headers, body)) is not None:
            outcome.failures.append(problem)
    outcome.seconds = time.perf_counter() - began
    await conn.close()
    return outcome


async def closed_loop(
    port: int, data: bytes, count: int, connections: int, limit: float, check: Check
) -> Outcome:
    """`count` requests as fast as they are answered over `connections` connections, or
    as many as are answered in `limit` seconds."""
    pool = [await Connection.open(port) for _ in range(connections)]
    outcome = Outcome()
    left = iter(range(count))
    began = time.perf_counter()
    deadline = began + limit

    async def run(conn: Connection) -> None:
        for _ in left:
            sent = time.perf_counter()
            status, headers, body = await conn.request(data)
            done = time.perf_counter()
            outcome.latencies_ms.append((done - sent) * 1000)
            if (problem := check(status, headers, body)) is not None:
                outcome.failures.append(problem)
            if done > deadline:
                return

    await asyncio.gather(*(run(conn) for conn in pool))
    outcome.seconds = time.perf_counter() - began
    for conn in pool:
        await conn.close()
    return outcome


def checked(outcome: Outcome, what: str) -> Outcome:
    if outcome.failures:
        shown = "\n  ".join(outcome.failures[:5])
        raise SystemExit(f"{what}: {len(outcome.failures)} requests failed, e.g.\n  {shown}")
    return outcome


def full_feed(events: int) -> Check:
    def check(status: int, headers: dict[bytes, bytes], body: bytes) -> str | None:
        if status != 200 or b"etag" not in headers:
            return f"HTTP {status}, ETag {headers.get(b'etag')!r}: {body[:200]!r}"
        if not body.startswith(b"BEGIN:VCALENDAR") or body.count(b"BEGIN:VEVENT") != events:
            return f"{body.count(b'BEGIN:VEVENT')} events in the feed, not {events}"
        return None

    return check


def not_modified(etag: str) -> Check:
    def check(status: int, headers: dict[bytes, bytes], body: bytes) -> str | None:
        if status != 304 or headers.get(b"etag") != etag.encode() or body:
            return f"HTTP {status}, ETag {headers.get(b'etag')!r}, not a 304 with {etag}"
        return None

    return check


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# --- in process ------------------------------------------------------------------------


def clear_caches() -> None:
    """What a fresh process starts without: the written feeds, each event's text, each
    description, the VTIMEZONEs."""
    calendar._BODIES = calendar._Bodies(calendar._BODIES.max_bytes)
    core_feed.event_text.cache_clear()
    core_feed.vtimezone.cache_clear()
    with calendar._DESCRIPTIONS_LOCK:
        calendar._DESCRIPTIONS.clear()


def _request(app: FastAPI, path: str, etag: str | None) -> Request:
    headers = [(b"host", b"tend.bench")]
    if etag is not None:
        headers.append((b"if-none-match", etag.encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": headers,
        "app": app,
    }
    return Request(scope)


STEPS = ("state", "rows", "events", "text")


@dataclass
class InProcess:
    cold_ms: float  # the handler, caches empty
    full_ms: list[float]  # the handler, warm, without If-None-Match
    not_modified_ms: list[float]  # the handler, with the ETag
    steps_ms: dict[str, list[float]]  # the full render's work, one step at a time


def in_process(db_url: str, folder: Path, feed: Feed, etag: str, count: int) -> InProcess:
    """The handler called directly, as the route would call it (no HTTP, no threadpool),
    then its work one step at a time."""
    runtime = build_runtime(db_url, folder)
    app = create_app(runtime)
    token = feed.path.removeprefix("/calendar/").removesuffix(".ics")
    plain = _request(app, feed.path, None)
    cached = _request(app, feed.path, etag)

    loop = asyncio.new_event_loop()

    def handler(request: Request) -> tuple[float, Response]:
        began = time.perf_counter()
        response = loop.run_until_complete(calendar.calendar_feed(token, request))
        return (time.perf_counter() - began) * 1000, response

    try:
        clear_caches()
        cold, response = handler(plain)
        if response.status_code != 200 or bytes(response.body).count(b"BEGIN:VEVENT") != (
            feed.events
        ):
            raise SystemExit(f"in process: HTTP {response.status_code}, not the whole feed")
        full = [handler(plain)[0] for _ in range(count)]
        cached_ms = []
        for _ in range(count):
            ms, response = handler(cached)
            if response.status_code != 304:
                raise SystemExit(f"in process: HTTP {response.status_code} with the ETag")
            cached_ms.append(ms)
        steps: dict[str, list[float]] = {step: [] for step in STEPS}
        now = runtime.clock.now()
        since = now - timedelta(days=calendar.DAYS_BACK)
        for _ in range(count):
            t0 = time.perf_counter()
            with transaction(runtime.engine) as conn:
                feeds.feed_state(conn, feed.participant_id, since=since, now=now)
            t1 = time.perf_counter()
            with transaction(runtime.engine) as conn:
                participant = participant_rows.get_participant(conn, feed.participant_id)
                rows = feeds.feed_rows(conn, feed.participant_id, since=since, now=now)
            t2 = time.perf_counter()
            events = [calendar._event(runtime, participant, row) for row in rows]
            t3 = time.perf_counter()
            core_feed.write_feed(
                [e for e in events if e is not None],
                name="Tend: Robin's practices",
                refresh=calendar.REFRESH,
                description="Your practices, as Tend reminds you of them.",
            )
            t4 = time.perf_counter()
            for step, (a, b) in zip(STEPS, ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True):
                steps[step].append((b - a) * 1000)
    finally:
        loop.close()
        runtime.close()
    return InProcess(cold, full, cached_ms, steps)


# --- one database ----------------------------------------------------------------------


@dataclass
class Result:
    database: str
    events: int
    feed_bytes: int
    cold_ms: float
    full_ms: list[float]
    tend_rate: float
    bare_rate: float
    local: InProcess

    @property
    def ratio(self) -> float:
        return self.tend_rate / self.bare_rate

    @property
    def p95(self) -> float:
        return percentile(self.full_ms, 0.95)


def measure(
    database: str, db_url: str, folder: Path, bare: Server, args: argparse.Namespace
) -> Result:
    """Tend on one database against the bare endpoint: the first render, the full
    renders, interleaved 304 runs; then the same work in this process."""
    print(f"{database}: storing {args.days} days of occurrences", flush=True)
    feed = prepare(db_url, folder, args.days)
    with running(Server("tend", db_url, folder, args.in_process)) as (port,):
        bare_port = bare.ready()
        whole = full_feed(feed.events)
        first = checked(asyncio.run(sequential(port, get(port, feed.path), 1, whole)), "cold")
        cold = first.latencies_ms[0]
        # The ETag and size of the feed, from one more full answer.
        _, headers, body = asyncio.run(_one(port, get(port, feed.path)))
        etag = headers[b"etag"].decode()
        checked(asyncio.run(sequential(port, get(port, feed.path), args.warmup, whole)), "warm")
        full = checked(
            asyncio.run(sequential(port, get(port, feed.path), args.renders, whole)), "Tend"
        )
        print(
            f"  {feed.events} events, {len(body):,} bytes; first render {cold:.1f} ms, "
            f"then p50 {percentile(full.latencies_ms, 0.5):.1f} ms, "
            f"p95 {percentile(full.latencies_ms, 0.95):.1f} ms",
            flush=True,
        )
        tend_304 = get(port, feed.path, etag)
        bare_304 = get(bare_port, feed.path, BARE_ETAG)
        tend_ok, bare_ok = not_modified(etag), not_modified(BARE_ETAG)
        load = (args.requests, args.connections, args.limit)
        for data, p, ok in ((tend_304, port, tend_ok), (bare_304, bare_port, bare_ok)):
            checked(
                asyncio.run(closed_loop(p, data, args.warmup304, args.connections, 2, ok)),
                "304, warming up",
            )
        best_tend = best_bare = 0.0
        for _ in range(args.rounds):
            run = checked(asyncio.run(closed_loop(port, tend_304, *load, tend_ok)), "Tend, 304")
            base = checked(
                asyncio.run(closed_loop(bare_port, bare_304, *load, bare_ok)), "baseline, 304"
            )
            best_tend, best_bare = max(best_tend, run.rate), max(best_bare, base.rate)
            print(f"  304: Tend {run.rate:,.0f}/s, baseline {base.rate:,.0f}/s", flush=True)
    local = in_process(db_url, folder, feed, etag, args.local)
    print(
        f"  in process: handler p50 {percentile(local.full_ms, 0.5):.2f} ms, "
        f"304 p50 {percentile(local.not_modified_ms, 0.5):.2f} ms",
        flush=True,
    )
    return Result(
        database, feed.events, len(body), cold, full.latencies_ms, best_tend, best_bare, local
    )


async def _one(port: int, data: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    conn = await Connection.open(port)
    try:
        return await conn.request(data)
    finally:
        await conn.close()


# --- the report ------------------------------------------------------------------------


def report(results: list[Result], args: argparse.Namespace, skipped: str | None) -> str:
    def ms(values: Sequence[float]) -> tuple[float, float, float]:
        return percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)

    full_rows = []
    for r in results:
        p50, p95, p99 = ms(r.full_ms)
        full_rows.append(
            f"| {r.database} | {r.cold_ms:.1f} | {p50:.1f} | **{p95:.1f}** | {p99:.1f} "
            f"| {max(r.full_ms):.1f} |"
        )
    local_rows = []
    for r in results:
        cells = [f"{percentile(r.local.steps_ms[step], 0.5):.2f}" for step in STEPS]
        local_rows.append(
            f"| {r.database} | {r.local.cold_ms:.1f} | "
            f"{percentile(r.local.full_ms, 0.5):.2f} | {percentile(r.local.full_ms, 0.95):.2f} | "
            + " | ".join(cells)
            + f" | {percentile(r.local.not_modified_ms, 0.5):.2f} |"
        )
    rate_rows = "\n".join(
        f"| {r.database} | {r.bare_rate:,.0f} /s | {r.tend_rate:,.0f} /s | **{r.ratio:.2f}** |"
        for r in results
    )
    p95_ok = all(r.p95 < TARGET_P95_MS for r in results)
    ratio_ok = all(r.ratio >= TARGET_RATIO for r in results)
    first = results[0]
    note = f"\nPostgreSQL was not measured: {skipped}." if skipped else ""
    full_table = "\n".join(full_rows)
    local_table = "\n".join(local_rows)
    return f"""## Calendar feed

`python -m bench.feed`: `GET /calendar/{{token}}.ics` for one participant whose plan has
two calendar practices a day (a morning walk and an evening wind-down, by SMS and
calendar), with {args.days} days of occurrences stored and the clock at the enrollment, so
that the feed holds all {first.events:,} of them ({first.feed_bytes:,} bytes; every answer
is checked for the whole count). Descriptions come from Tend's shipped calendar templates,
each with its check-in link. The baseline is a bare FastAPI endpoint on the same route that
compares If-None-Match with a constant ETag and answers 304. Each runs under uvicorn in a
process of its own (one worker, h11 on asyncio, no access log, logging at warning); the
load comes from one client process over keep-alive connections, on a machine with
{os.cpu_count()} CPUs.

Full render (no If-None-Match), one request at a time: the first request to a fresh
server (every cache empty), then {args.renders} after {args.warmup} to warm up.

| ms, full render | first | p50 | p95 | p99 | max |
|---|---:|---:|---:|---:|---:|
{full_table}

Target: p95 under {TARGET_P95_MS:.0f} ms; this run {"meets" if p95_ok else "MISSES"} it.

The same handler called in the client's process without HTTP or threadpool ({args.local}
times each), and its full render taken apart: the state statement (the ETag's), the
participant and the event rows, the events (descriptions cached, each check-in link
signed), the text (`write_feed`, each event's text cached). Medians but for "full p95",
ms; "first" with every cache emptied.

| ms, in process | first | full p50 | full p95 | state | rows | events | text | 304 p50 |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{local_table}

The 304 path: If-None-Match set to the feed's ETag, {args.requests:,} requests over
{args.connections} connections (or as many as are answered in {args.limit:g} s), best of
{args.rounds} interleaved runs of each side.

| database | baseline | Tend | ratio |
|---|---:|---:|---:|
{rate_rows}

Target: at least {TARGET_RATIO} of the baseline; this run {"meets" if ratio_ok else "MISSES"} it.
{note}"""


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365, help="of occurrences in the feed")
    parser.add_argument("--renders", type=int, default=300, help="full renders timed")
    parser.add_argument("--warmup", type=int, default=20, help="full renders first")
    parser.add_argument("--local", type=int, default=50, help="in-process calls timed")
    parser.add_argument("--requests", type=int, default=3000, help="per 304 run")
    parser.add_argument("--warmup304", type=int, default=500)
    parser.add_argument("--limit", type=float, default=3, help="seconds, at most, per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved 304 runs")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="serve from threads of this process: quick to start, but sharing its GIL "
        "with the load (for the test, not for figures)",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> tuple[list[Result], str]:
    """Measure on SQLite, then PostgreSQL when it can be started; the results, and the
    section for docs/benchmarks.md."""
    results = []
    skipped = None
    bare = Server("bare", in_process=args.in_process)  # starts while SQLite is filled
    with tempfile.TemporaryDirectory() as tmp, running(bare):
        root = Path(tmp)
        sqlite = f"sqlite:///{root / 'sqlite' / 'tend.db'}"
        results.append(measure("SQLite", sqlite, root / "sqlite", bare, args))
        if args.sqlite_only:
            skipped = "--sqlite-only"
        else:
            with contextlib.ExitStack() as stack:
                try:
                    pg = stack.enter_context(postgres_server())
                except pytest.skip.Exception as exc:
                    skipped = str(exc.msg)
                else:
                    url = pg.create_database("bench_feed")
                    results.append(measure("PostgreSQL", url, root / "pg", bare, args))
    return results, report(results, args, skipped)


def main() -> None:
    args = options()
    configure_logging("json", "warning")
    _, body = run(args)
    print(body)
    if not args.no_write:
        write_section("feed", body)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(*sys.argv[2:])
    else:
        main()
