"""Engines, transactions and migrations; and what every repository module shares: the
`NotFound` error, new ids, pages of rows.

`Connection` is exported from here, so that the layers above can name the type of the
connection they pass to storage functions without importing SQLAlchemy.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import secrets
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection as Connection
from sqlalchemy import Engine, Select, create_engine, event, func, select, text
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
Record = TypeVar("Record", bound="DataclassInstance")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class DatabaseError(Exception):
    """The database cannot be used as configured; the message says what to do."""


class NotFound(LookupError):
    """No row with that id."""


def new_id(prefix: str) -> str:
    """A short random id such as `p_k3m9x2q7hv4d`: 60 bits, lower case, no look-alikes."""
    raw = base64.b32encode(secrets.token_bytes(8)).decode().lower().rstrip("=")
    return f"{prefix}_{raw[:12]}"


def prefixed(row: Any, prefix: str) -> dict[str, Any]:
    """The columns of a joined row labelled `prefix...`, by their names without it."""
    return {key[len(prefix) :]: value for key, value in row.items() if key.startswith(prefix)}


@functools.cache
def _field_names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def record(cls: type[Record], row: Mapping[Any, Any], **given: Any) -> Record:
    """A record (a `core.records` dataclass) from a row: each field from the column of its
    name, except the fields `given` (those the caller converts)."""
    taken = {name: row[name] for name in _field_names(cls) if name not in given}
    return cls(**taken, **given)


def fetch_page(
    conn: Connection, query: Select[Any], limit: int, offset: int
) -> tuple[Sequence[RowMapping], int]:
    """The rows of `query` from `offset`, at most `limit` of them, and how many it has in all."""
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
    return rows, int(total)


def ping(conn: Connection) -> None:
    """One trivial query: raises when the database does not answer."""
    conn.execute(text("SELECT 1"))


def make_engine(url: str, **options: Any) -> Engine:
    """An engine for SQLite (WAL, foreign keys, a busy timeout) or PostgreSQL (psycopg 3)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"timeout": 30, "check_same_thread": False},
            poolclass=NullPool if database in ("", ":memory:") else None,
            # The connection used last has the warmest page cache; writers take turns.
            **({"pool_use_lifo": True} if database not in ("", ":memory:") else {}),
            **options,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling is off; BEGIN IMMEDIATE takes the write
        # lock up front so that two writers queue instead of failing half-way.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        # No pre-ping: a dropped connection fails its statement, the pool is invalidated,
        # and the caller's retry (the actor's, the scheduler's next pass) reconnects.
        options.setdefault("pool_size", 10)
        options.setdefault("max_overflow", 20)
        return create_engine(parsed, **options)
    raise DatabaseError(f"unsupported database '{parsed.drivername}'; use sqlite or postgresql")


def _sqlite_begin(conn: Connection) -> None:
    # A reading (see `reading`) begins deferred: it takes no write lock, and in WAL mode
    # sees a consistent snapshot while writers go on.
    read_only = conn.get_execution_options().get("tend_read_only", False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" hook issue BEGIN
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


# SQLite lets one writer in at a time, and a writer that finds the lock taken sleeps and
# polls (up to 100 ms a nap), so that under load the lock sits idle between writers.
# Within a process, writers queue on a lock of their own instead and are handed the
# database the moment it is free; between processes, SQLite's busy timeout still rules.
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def _writer_lock(engine: Engine) -> threading.RLock | None:
    if engine.dialect.name != "sqlite":
        return None
    with _WRITERS_LOCK:
        lock = _SQLITE_WRITERS.get(engine)
        if lock is None:
            lock = _SQLITE_WRITERS[engine] = threading.RLock()
        return lock


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    lock = _writer_lock(engine)
    if lock is None:
        with engine.begin() as connection:
            yield connection
        return
    with lock, engine.begin() as connection:
        yield connection


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction: one consistent snapshot, and on SQLite no write lock (the
    queue of writers is not joined), so it must not write."""
    options = {"tend_read_only": True} if engine.dialect.name == "sqlite" else {}
    with engine.connect().execution_options(**options) as connection, connection.begin():
        yield connection


Run = Callable[[Callable[[Connection], T]], T]


@contextmanager
def statements(engine: Engine) -> Iterator[Run[Any]]:
    """Run several statements, each atomic on its own, on one connection.

    On PostgreSQL the connection is in autocommit mode, which saves the round trips of
    BEGIN and COMMIT; SQLite is local and gives each statement a transaction of its own.
    """
    if engine.dialect.name == "postgresql":
        # Connected at the first statement, and again after one that found the
        # connection broken (a server restarted): the statements after it still run.
        held: list[Connection] = []

        def run_pg(statement: Callable[[Connection], Any]) -> Any:
            if not held:
                held.append(engine.connect().execution_options(isolation_level="AUTOCOMMIT"))
            connection = held[0]
            try:
                return statement(connection)
            except Exception:
                if _broken(connection):
                    held.clear()
                    _discard(connection)
                raise

        try:
            yield run_pg
        finally:
            for connection in held:
                connection.close()
    else:

        def run(statement: Callable[[Connection], Any]) -> Any:
            with transaction(engine) as connection:
                return statement(connection)

        yield run


def _broken(connection: Connection) -> bool:
    """Whether `connection` can no longer be used (statements run on its driver
    connection directly raise the driver's errors, which SQLAlchemy never sees)."""
    if connection.invalidated or connection.closed:
        return True
    try:
        driver: Any = connection.connection.driver_connection
    except Exception:
        return True
    return driver is None or bool(getattr(driver, "broken", False) or driver.closed)


def _discard(connection: Connection) -> None:
    """Throw a broken connection away, so that the pool does not hand it out again."""
    try:
        connection.invalidate()
        connection.close()
    except Exception:  # it is broken: there is nothing more to tidy
        return


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or migrate the database to `revision`."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def ensure_current(engine: Engine) -> None:
    """Raise DatabaseError unless the database is at the newest migration."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "is empty" if current is None else f"is at revision {current}"
        raise DatabaseError(f"the database {state}, not {head}; run `tend db upgrade`")
