"""Inbound SMS webhooks: `POST /twilio/sms` served by uvicorn, against a bare endpoint.

Tend's app runs on a runtime whose clock stands inside the open check-in windows of a
few hundred enrolled participants, so that every request does the whole job: signature
checked, message stored once per MessageSid, matched to an open window, check-in
recorded, TwiML answer rendered. The baseline, in the same run: a bare FastAPI app whose
`POST /twilio/sms` reads the same urlencoded form and answers a constant TwiML document.
Both are served the same way (uvicorn in a process of its own, one worker, h11 on the
asyncio loop, no access log) and loaded from this process over keep-alive connections.

1. Throughput: a fixed number of requests (or as many as are answered in a few seconds,
   so that a slow side cannot stretch the run) over N concurrent connections, best of a
   few interleaved runs of each side. Target: at least 0.5 of the baseline.
2. Latency: requests sent at a steady rate at fixed times, each one's latency counted
   from the moment it was due (open loop: a backlog counts against the server).
   Target: p99 under 50 ms at 500 a second.

On SQLite in a temporary folder, and on a throwaway PostgreSQL server when its binaries
are on this machine. Afterwards the database must hold one reply per answered request,
each matched and answered; any answer but 200 with TwiML fails the run.

    python -m bench.webhook [--requests N] [--connections C] [--rate R] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from bench.report import write_section
from service.actions import enrollments as enrolling
from service.actions.plans import push
from service.clock import ManualClock
from service.logging import configure_logging
from service.runtime import Runtime
from service.settings import Settings, load_settings
from service.storage import participants as participant_rows
from service.storage.db import make_engine, transaction, upgrade
from service.storage.tables import occurrences, replies
from service.web.app import create_app
from tests.support.services import free_port, postgres_server, wait_for

TOKEN = "bench-twilio-auth-token"
PUBLIC_URL = "https://tend.bench"
PATH = "/twilio/sms"
TEND_NUMBER = "+15005550006"
ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "templates"
NY = ZoneInfo("America/New_York")
START_DAY = date(2026, 3, 2)  # a Monday
ENROLLED_AT = datetime(2026, 3, 1, 12, tzinfo=UTC)  # before the first reminder
# Thursday 10:00 in New York: the walk's window (07:00) and the mood check's (08:00) are
# open, with three days of the plan behind them for the streak to read.
NOW = datetime(2026, 3, 5, 10, tzinfo=NY).astimezone(UTC)
PLAN = """\
plan: bench-replies
title: Bench replies
weeks: 2
practices:
  - id: walk
    category: movement
    title: Morning walk
    at: "07:00"
    check_in: done
  - id: mood
    category: other
    title: Mood check
    at: "08:00"
    message: "How is your mood, 1 to 5?"
    check_in: {kind: rating, scale: [1, 5]}
"""
# What people text back; each one lands on an open window (the newest that fits, or the
# practice it names) and is recorded.
BODIES = ("DONE", "4", "walk done", "skip", "done", "mood 3", "Done!")
MATCHED = ("done", "skipped", "rating")  # replies.understood when a check-in was recorded
BARE_TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Logged: Morning walk.'
    "</Message></Response>"
)
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
INF = float("inf")


# --- the servers -----------------------------------------------------------------------


def settings_for(db_url: str, folder: Path) -> Settings:
    return load_settings(
        database_url=db_url,
        schedules_dir=folder / "schedules",
        templates_dir=folder / "templates",
        secret_key="bench",
        public_url=PUBLIC_URL,
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=TOKEN,
        twilio_from=TEND_NUMBER,
    )


def build_runtime(db_url: str, folder: Path, now: datetime) -> Runtime:
    # No channels: answering a text sends nothing, the TwiML is the answer.
    runtime = Runtime.build(settings_for(db_url, folder), clock=ManualClock(now), channels={})
    push(runtime, by="bench")
    return runtime


def bare_app() -> FastAPI:
    """The baseline: the same route on the same framework, reading the same form."""
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.post(PATH, include_in_schema=False)
    async def inbound_sms(request: Request) -> Response:
        form = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
        if not form:
            return Response(status_code=400)
        return Response(BARE_TWIML, media_type="application/xml")

    return app


def app_for(kind: str, db_url: str, folder: Path | None) -> tuple[FastAPI, Runtime | None]:
    """Tend's app (`kind` "tend") on a runtime of its own, or the bare one."""
    if kind == "tend":
        assert folder is not None
        runtime = build_runtime(db_url, folder, NOW)
        return create_app(runtime), runtime
    return bare_app(), None


def uvicorn_server(app: FastAPI, port: int) -> uvicorn.Server:
    """As `tend web` serves: no access log; logging at warning here, since the per-reply
    lines are not what is measured. One worker, the same loop and HTTP for both."""
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
    """`python -m bench.webhook serve ...` in a process of its own, on a free port; or,
    with `in_process`, uvicorn in a thread of this one (quick to start, for the test)."""

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
            command = [sys.executable, "-m", "bench.webhook", "serve", kind, str(self.port)]
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
    """The servers' ports once all of them answer (they start side by side); each is
    stopped on the way out."""
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


def phone(i: int) -> str:
    return f"+1415555{i:04d}"


def prepare(db_url: str, folder: Path, people: int) -> None:
    """The plan and templates in `folder`, and a migrated database with `people`
    participants enrolled in the plan."""
    (folder / "schedules").mkdir(parents=True, exist_ok=True)
    (folder / "schedules" / "bench-replies.yaml").write_text(PLAN, encoding="utf-8")
    # Answers to replies are Tend's own words: the shipped ones, as they are now.
    for shipped in ("replies", "_partials"):
        shutil.copytree(SHIPPED / shipped, folder / "templates" / shipped, dirs_exist_ok=True)
    (folder / "templates" / "default").mkdir(exist_ok=True)
    for category in ("movement", "other"):
        (folder / "templates" / "default" / f"{category}.sms.j2").write_text(
            "{{ practice.title }}, {{ participant.first_name }}.", encoding="utf-8"
        )
    engine = make_engine(db_url)
    upgrade(engine)
    engine.dispose()
    runtime = build_runtime(db_url, folder, ENROLLED_AT)
    plan = runtime.plans.get("bench-replies")
    if plan is None:
        raise SystemExit("the benchmark's plan did not load")
    for i in range(people):
        with transaction(runtime.engine) as conn:
            person = participant_rows.add_participant(
                conn,
                name=f"Person {i}",
                timezone="America/New_York",
                phone=phone(i),
                now=ENROLLED_AT,
                welcomed_at=ENROLLED_AT,
            )
        enrolling.enroll(runtime, person.id, plan, START_DAY, {})
    runtime.close()


class _Form(dict[str, list[str]]):
    """Repeated keys as Twilio's validator reads them."""

    def getall(self, name: str) -> list[str]:
        return self[name]


class Requests:
    """Raw HTTP/1.1 requests, as Twilio sends them: a fresh MessageSid each, signed."""

    def __init__(self, port: int, people: int, prefix: str) -> None:
        self.host = f"127.0.0.1:{port}"
        self.people = people
        self.prefix = prefix
        self.count = itertools.count()
        self.validator = RequestValidator(TOKEN)

    def take(self, n: int) -> list[bytes]:
        return [self._one(next(self.count)) for _ in range(n)]

    def _one(self, i: int) -> bytes:
        sid = f"SM{self.prefix}{i:031x}"  # 34 characters, as Twilio's
        params = [
            ("ToCountry", "US"),
            ("ToState", "CA"),
            ("SmsMessageSid", sid),
            ("NumMedia", "0"),
            ("ToCity", "SAN FRANCISCO"),
            ("FromZip", "94105"),
            ("SmsSid", sid),
            ("FromState", "CA"),
            ("SmsStatus", "received"),
            ("FromCity", "SAN FRANCISCO"),
            ("Body", BODIES[i % len(BODIES)]),
            ("FromCountry", "US"),
            ("To", TEND_NUMBER),
            ("ToZip", "94105"),
            ("NumSegments", "1"),
            ("MessageSid", sid),
            ("AccountSid", "AC" + "0" * 32),
            ("From", phone(i % self.people)),
            ("ApiVersion", "2010-04-01"),
        ]
        form = _Form()
        for key, value in params:
            form.setdefault(key, []).append(value)
        signature = self.validator.compute_signature(f"{PUBLIC_URL}{PATH}", form)
        body = urlencode(params).encode()
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {self.host}\r\n"
            "User-Agent: TwilioProxy/1.1\r\nAccept: */*\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


# --- the load --------------------------------------------------------------------------


class Connection:
    """One keep-alive connection; one request at a time on it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, data: bytes) -> tuple[int, bytes]:
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"connection" and b"close" in value.lower():
                raise SystemExit("the server closed a keep-alive connection")
        if length is None:
            raise SystemExit(f"an answer without Content-Length: {head!r}")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@dataclass
class Outcome:
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # inf: never sent
    failures: list[str] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return sum(1 for value in self.latencies_ms if value != INF)

    @property
    def rate(self) -> float:
        return self.answered / self.seconds

    def note(self, status: int, body: bytes) -> None:
        if status != 200 or not body.startswith(b"<?xml") or b"<Response" not in body:
            self.failures.append(f"HTTP {status}: {body[:200]!r}")


async def closed_loop(
    port: int, requests: Sequence[bytes], connections: int, limit: float
) -> Outcome:
    """`requests` as fast as they are answered over `connections` connections, or as
    many as are answered in `limit` seconds."""
    pool = [await Connection.open(port) for _ in range(connections)]
    outcome = Outcome()
    queue = iter(requests)
    began = time.perf_counter()
    deadline = began + limit

    async def run(conn: Connection) -> None:
        for data in queue:
            sent = time.perf_counter()
            status, body = await conn.request(data)
            done = time.perf_counter()
            outcome.latencies_ms.append((done - sent) * 1000)
            outcome.note(status, body)
            if done > deadline:
                return

    await asyncio.gather(*(run(conn) for conn in pool))
    outcome.seconds = time.perf_counter() - began
    for conn in pool:
        await conn.close()
    return outcome


async def open_loop(
    port: int, requests: Sequence[bytes], rate: float, connections: int, patience: float
) -> Outcome:
    """`requests` sent at a steady `rate`, each at its own time whatever the answers to
    the others. A request waits for a free connection when all are busy, and that wait
    counts, since latency runs from the moment it was due; one that has waited
    `patience` seconds is not sent at all (latency inf), so that a server slower than the
    rate cannot make the run last for ever."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Connection.open(port))
    outcome = Outcome(latencies_ms=[INF] * len(requests))

    async def one(i: int, data: bytes, due: float) -> None:
        try:
            conn = idle.get_nowait()
        except asyncio.QueueEmpty:
            try:
                conn = await asyncio.wait_for(idle.get(), due + patience - time.perf_counter())
            except TimeoutError:
                return
        status, body = await conn.request(data)
        outcome.latencies_ms[i] = (time.perf_counter() - due) * 1000
        outcome.note(status, body)
        idle.put_nowait(conn)

    start = time.perf_counter() + 0.05
    tasks = []
    for i, data in enumerate(requests):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, data, due)))
    await asyncio.gather(*tasks)
    outcome.seconds = time.perf_counter() - start
    while not idle.empty():
        await idle.get_nowait().close()
    return outcome


def checked(outcome: Outcome, what: str) -> Outcome:
    if outcome.failures:
        shown = "\n  ".join(outcome.failures[:5])
        raise SystemExit(f"{what}: {len(outcome.failures)} requests failed, e.g.\n  {shown}")
    return outcome


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# --- one database ----------------------------------------------------------------------


@dataclass
class Result:
    database: str
    tend_rate: float
    bare_rate: float
    latency: list[float]
    replies: int
    check_ins: int

    @property
    def ratio(self) -> float:
        return self.tend_rate / self.bare_rate

    @property
    def p99(self) -> float:
        return percentile(self.latency, 0.99)


def measure(
    database: str, db_url: str, folder: Path, bare: Server, args: argparse.Namespace
) -> Result:
    """Tend on one database against the bare endpoint: interleaved throughput runs, then
    the steady rate, then what the database holds."""
    print(f"{database}: enrolling {args.people} participants", flush=True)
    prepare(db_url, folder, args.people)
    with running(Server("tend", db_url, folder, args.in_process)) as (port,):
        bare_port = bare.ready()
        to_tend = Requests(port, args.people, "0")
        to_bare = Requests(bare_port, args.people, "1")
        warm = asyncio.run(closed_loop(port, to_tend.take(args.warmup), args.connections, 2))
        sent = checked(warm, "Tend, warming up").answered
        warm = asyncio.run(closed_loop(bare_port, to_bare.take(args.warmup), args.connections, 2))
        checked(warm, "baseline, warming up")
        best_tend = best_bare = 0.0
        for _ in range(args.rounds):
            batch = to_tend.take(args.requests)
            run = checked(
                asyncio.run(closed_loop(port, batch, args.connections, args.limit)), "Tend"
            )
            sent += run.answered
            batch = to_bare.take(args.requests)
            base = checked(
                asyncio.run(closed_loop(bare_port, batch, args.connections, args.limit)),
                "baseline",
            )
            best_tend, best_bare = max(best_tend, run.rate), max(best_bare, base.rate)
            print(f"  Tend {run.rate:,.0f}/s, baseline {base.rate:,.0f}/s", flush=True)
        batch = to_tend.take(int(args.rate * args.seconds))
        late = asyncio.run(open_loop(port, batch, args.rate, args.pool, args.patience))
        sent += checked(late, f"Tend at {args.rate:g}/s").answered
        print(f"  Tend at {args.rate:g}/s: p99 {percentile(late.latencies_ms, 0.99):.1f} ms")
    engine = make_engine(db_url)
    with transaction(engine) as conn:
        stored = conn.execute(select(func.count()).select_from(replies)).scalar_one()
        matched = conn.execute(
            select(func.count())
            .select_from(replies)
            .where(replies.c.understood.in_(MATCHED))
            .where(replies.c.occurrence_id.is_not(None))
            .where(replies.c.answer.is_not(None))
        ).scalar_one()
        check_ins = conn.execute(
            select(func.count())
            .select_from(occurrences)
            .where(occurrences.c.check_in_source == "sms")
        ).scalar_one()
    engine.dispose()
    if stored != sent:
        raise SystemExit(f"{database}: {sent} requests answered, {stored} replies stored")
    if matched != sent:
        raise SystemExit(f"{database}: only {matched} of {sent} replies were recorded check-ins")
    if check_ins == 0:
        raise SystemExit(f"{database}: no check-in was recorded")
    return Result(database, best_tend, best_bare, late.latencies_ms, stored, check_ins)


def bare_latency(port: int, args: argparse.Namespace) -> list[float]:
    batch = Requests(port, args.people, "2").take(int(args.rate * args.seconds))
    late = asyncio.run(open_loop(port, batch, args.rate, args.pool, args.patience))
    return checked(late, f"baseline at {args.rate:g}/s").latencies_ms


# --- the report ------------------------------------------------------------------------


def report(
    results: list[Result], bare: list[float], args: argparse.Namespace, skipped: str | None
) -> str:
    rows = "\n".join(
        f"| {r.database} | {r.bare_rate:,.0f} /s | {r.tend_rate:,.0f} /s | **{r.ratio:.2f}** |"
        for r in results
    )

    def ms(value: float, bold: bool = False) -> str:
        text = f"{value:.1f}" if value != INF else "not sent"
        return f"**{text}**" if bold else text

    def line(name: str, values: list[float], bold: bool) -> str:
        p50, p95, p99 = (percentile(values, s) for s in (0.5, 0.95, 0.99))
        answered = [v for v in values if v != INF]
        worst = max(answered) if answered else INF
        unsent = len(values) - len(answered)
        return f"| {name} | {ms(p50)} | {ms(p95)} | {ms(p99, bold)} | {ms(worst)} | {unsent:,} |"

    latency = "\n".join(
        [line("baseline", bare, False)]
        + [line(f"Tend, {r.database}", r.latency, True) for r in results]
    )
    ratio_ok = all(r.ratio >= TARGET_RATIO for r in results)
    p99_ok = all(r.p99 < TARGET_P99_MS for r in results)
    total = sum(r.replies for r in results)
    check_ins = sum(r.check_ins for r in results)
    databases = " and ".join(r.database for r in results)
    note = f"\n\nPostgreSQL was not measured: {skipped}." if skipped else ""
    short = [r for r in results if r.tend_rate < args.rate]
    behind = (
        "\nTend's best rate ("
        + ", ".join(f"{r.tend_rate:,.0f} /s on {r.database}" for r in short)
        + ") is below the rate offered,\nso its backlog grows for as long as the run lasts."
        if short
        else ""
    )
    steady = int(args.rate * args.seconds)
    return f"""## Inbound SMS webhook

`python -m bench.webhook`: `POST /twilio/sms` as Twilio sends it (19 form fields, a fresh
MessageSid each, signed) from {args.people} enrolled participants texting "DONE", "4", "walk
done", "skip" and the like while two check-in windows are open, so that every request is
checked, stored, matched, recorded and answered with TwiML. The baseline is a bare FastAPI
endpoint that reads the same form and answers a constant TwiML document. Each runs under
uvicorn in a process of its own (one worker, h11 on asyncio, no access log, logging at
warning); the load comes from one client process over keep-alive connections, on a machine
with {os.cpu_count()} CPUs. Throughput: {args.requests:,} requests over {args.connections}
connections (or as many as are answered in {args.limit:g} s), best of {args.rounds}
interleaved runs of each side.

| database | baseline | Tend | ratio |
|---|---:|---:|---:|
{rows}

Target: at least {TARGET_RATIO} of the baseline; this run {"meets" if ratio_ok else "MISSES"} it.

| ms, {args.rate:g} requests/s for {args.seconds:g} s | p50 | p95 | p99 | max | not sent |
|---|---:|---:|---:|---:|---:|
{latency}

{steady:,} requests at fixed times over a pool of {args.pool} connections, whatever the
answers to earlier ones; latency runs from the moment each was due, and one that found no
free connection within {args.patience:g} s was not sent ("not sent").{behind}
Target: p99 under {TARGET_P99_MS:.0f} ms; this run {"meets" if p99_ok else "MISSES"} it.

Checked after the load on {databases}: every request answered 200 with TwiML, and the
{total:,} answered left {total:,} replies stored, each matched to an open window and
answered ({check_ins:,} check-ins recorded by SMS).{note}"""


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per throughput run")
    parser.add_argument("--limit", type=float, default=4, help="seconds, at most, per run")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput runs")
    parser.add_argument("--rate", type=float, default=500, help="requests a second, steady")
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--pool", type=int, default=64, help="connections at the steady rate")
    parser.add_argument("--patience", type=float, default=3, help="seconds to find one")
    parser.add_argument("--people", type=int, default=200)
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
                    url = pg.create_database("bench_webhook")
                    results.append(measure("PostgreSQL", url, root / "pg", bare, args))
        bare_late = bare_latency(bare.ready(), args)
    return results, report(results, bare_late, args, skipped)


def main() -> None:
    args = options()
    configure_logging("json", "warning")  # as in production, less the per-reply lines
    _, body = run(args)
    print(body)
    if not args.no_write:
        write_section("webhook", body)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(*sys.argv[2:])
    else:
        main()
