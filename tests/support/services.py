"""Throwaway servers for tests: redis-server and PostgreSQL on free ports.

Each starts from the binaries on this machine (PostgreSQL's from `pg_config --bindir`
or Debian's versioned folder) in a temporary folder, and is stopped and removed after.
Without the binaries a test skips with the reason, except when TEND_REQUIRE_SERVICES=1
(as in CI), where it fails instead.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRED = os.environ.get("TEND_REQUIRE_SERVICES") == "1"
START_TIMEOUT = 60.0


def unavailable(reason: str) -> None:
    """Skip, or under TEND_REQUIRE_SERVICES=1 fail, with `reason`."""
    if REQUIRED:
        pytest.fail(f"{reason} (TEND_REQUIRE_SERVICES=1: services are required here)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: object, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `condition()` until it is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _Exited(Exception):
    """The server's process ended while starting (as when its port was taken)."""


class RedisServer:
    """`persist`: an append-only file synced on every write, as production runs Redis
    (compose.yaml), so that a restart keeps the queues."""

    def __init__(self, *, persist: bool = False) -> None:
        self.persist = persist
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed (Debian: apt-get install redis-server)")
        self.binary = str(binary)
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tend-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self._started = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start on `port`; the first time, on another free port if `port` was taken
        meanwhile (by another test process: the server answering there must be this one)."""
        for _ in range(5):
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "yes" if self.persist else "no",
                    "--appendfsync",
                    "always",
                    "--dir",
                    self.dir,
                    "--daemonize",
                    "no",
                    "--loglevel",
                    "warning",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_for(self._serving, START_TIMEOUT, f"redis on port {self.port}")
            except _Exited:
                self.process = None
                if self._started:
                    raise RuntimeError(f"redis could not start again on port {self.port}") from None
                self.port = free_port()
                continue
            self._started = True
            return
        raise RuntimeError("redis could not find a free port to start on")

    def _serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise _Exited
        if not _port_open(self.port):
            return False
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            found = client.config_get("dir").get("dir", "")
        except redis.RedisError:
            return False
        finally:
            client.close()
        return os.path.realpath(str(found)) == os.path.realpath(self.dir)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: pg_config's answer, else Debian's newest version."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
            candidates.append(Path(out))
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        candidates.append(Path(found))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


class PostgresServer:
    """A PostgreSQL cluster in a temporary folder. As root, it runs as `postgres`
    (PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            unavailable(
                "PostgreSQL's initdb and pg_ctl were not found (Debian: apt-get install postgresql)"
            )
        assert bindir is not None
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tend-pg-"))
        self.data = self.root / "data"
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root and there is no 'postgres' user to run PostgreSQL")
            self.user = "postgres"
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.started = False
        self.ever_started = False

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            list(args), capture_output=True, text=True, user=self.user, cwd=self.root
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr.strip() or result.stdout}")

    def start(self, retries: int = 3) -> None:
        if not self.data.exists():
            self._run(
                str(self.bindir / "initdb"),
                "-D", str(self.data),
                "-U", "postgres",
                "--auth=trust",
                "-E", "UTF8",
                "--no-sync",
                "--no-instructions",
            )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        try:
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
                "-l", str(self.root / "log"), "-w", "-t", str(int(START_TIMEOUT)), "start",
            )  # fmt: skip
        except RuntimeError:
            if self.ever_started or retries == 0:
                raise
            self.port = free_port()  # the port was taken meanwhile, by another test process
            self.start(retries - 1)
            return
        self.started = self.ever_started = True

    def stop(self, mode: str = "fast") -> None:
        if self.started:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
            self.started = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            suffix = f" TEMPLATE {template}" if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{suffix}')
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


# --- fixtures (a plugin of tests/conftest.py) --------------------------------------------
# One PostgreSQL and one Redis for a test process (each xdist worker has its own, on its
# own free ports and in its own temporary folders), started when a test first asks.

TEMPLATE_DATABASE = "tend_template"
_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The process's throwaway PostgreSQL, with a migrated database to copy
    (`CREATE DATABASE ... TEMPLATE tend_template` takes milliseconds). A test may stop or
    restart it; the fixtures that hand it out start it again when it is down."""
    from service.storage.db import make_engine, upgrade

    with postgres_server() as server:
        engine = make_engine(server.create_database(TEMPLATE_DATABASE))
        upgrade(engine)
        engine.dispose()
        yield server


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    """The process's throwaway Redis, kept on disk as production keeps it (so that a test
    that restarts it keeps the queues). A test may stop it; `redis_url` starts it again."""
    server = RedisServer(persist=True)
    try:
        server.start()
        yield server
    finally:
        server.close()


def running(server: PostgresServer | RedisServer) -> None:
    """Start `server` again if a test before stopped it."""
    if isinstance(server, PostgresServer):
        if not server.started:
            server.start()
    elif server.process is None:
        server.start()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A new migrated, empty PostgreSQL database."""
    running(postgres)
    return postgres.create_database(f"t{next(_databases)}", template=TEMPLATE_DATABASE)


@pytest.fixture
def redis_url(redis_session: RedisServer) -> str:
    """The Redis, emptied."""
    import redis

    running(redis_session)
    client = redis.Redis.from_url(redis_session.url)
    client.flushall()
    client.close()
    return redis_session.url
