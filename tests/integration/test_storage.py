"""Storage: migrations match the tables, on SQLite and PostgreSQL; claims are exclusive."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect

from service.storage import deliveries as delivery_rows
from service.storage import participants as participant_rows
from service.storage.db import (
    DatabaseError,
    current_revision,
    ensure_current,
    head_revision,
    make_engine,
    transaction,
    upgrade,
)
from service.storage.tables import deliveries, enrollments, metadata, occurrences, participants

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_the_migrations_create_exactly_the_tables_the_code_uses(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == []
        ensure_current(engine)
        upgrade(engine)  # a second upgrade changes nothing
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_an_empty_database_is_refused_with_a_hint(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/empty.db")
    try:
        with pytest.raises(DatabaseError, match="tend db upgrade"):
            ensure_current(engine)
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/wal.db")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def _due(conn: object, count: int) -> None:
    person = participant_rows.add_participant(conn, name="A", timezone="UTC", now=NOW)  # type: ignore[arg-type]
    conn.execute(  # type: ignore[attr-defined]
        insert(enrollments).values(
            id="e_1",
            participant_id=person.id,
            plan_id="p",
            plan_hash="h",
            start_date=date(2026, 3, 2),
            variables={},
            status="active",
            horizon=date(2026, 3, 3),
            end_date=date(2026, 3, 3),
            not_before=NOW,
            created_at=NOW,
            updated_at=NOW,
        )
    )
    for i in range(count):
        occurrence_id = conn.execute(  # type: ignore[attr-defined]
            insert(occurrences)
            .values(
                enrollment_id="e_1",
                key=f"p{i}:2026-03-02",
                practice_id=f"p{i}",
                local_date=date(2026, 3, 2),
                week=1,
                seq=0,
                instant=NOW,
                duration_minutes=15,
                window_end=NOW + timedelta(hours=12),
                channels=["sms"],
                fingerprint="x",
                state="scheduled",
                sequence=0,
                updated_at=NOW,
            )
            .returning(occurrences.c.id)
        ).scalar_one()
        conn.execute(  # type: ignore[attr-defined]
            insert(deliveries).values(
                occurrence_id=occurrence_id,
                channel="sms",
                kind="reminder",
                state="pending",
                due_at=NOW + timedelta(seconds=i),
                attempts=0,
                updated_at=NOW,
            )
        )


def test_claims_are_exclusive_and_in_due_order(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with transaction(engine) as conn:
            _due(conn, 5)
        lease = timedelta(minutes=2)
        later = NOW + timedelta(seconds=10)
        with transaction(engine) as conn:
            first = delivery_rows.claim_due(conn, now=later, limit=3, lease=lease)
        with transaction(engine) as conn:
            second = delivery_rows.claim_due(conn, now=later, limit=3, lease=lease)
            third = delivery_rows.claim_due(conn, now=later, limit=3, lease=lease)
        assert len(first) == 3
        assert len(second) == 2
        assert set(first).isdisjoint(second)
        assert third == []
        # Until the lease runs out nothing is claimed again; then everything unsent is.
        with transaction(engine) as conn:
            assert delivery_rows.claim_due(conn, now=later + lease, limit=10, lease=lease) == []
            again = delivery_rows.claim_due(
                conn, now=later + lease + timedelta(seconds=1), limit=10, lease=lease
            )
        assert sorted(again) == sorted(first + second)
    finally:
        engine.dispose()


def test_timestamps_come_back_as_utc(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        aware = datetime(2026, 3, 8, 3, 30, tzinfo=UTC)
        with transaction(engine) as conn:
            person = participant_rows.add_participant(conn, name="Z", timezone="UTC", now=aware)
            back = participant_rows.get_participant(conn, person.id).created_at
        assert back == aware
        assert back is not None
        assert back.utcoffset() == timedelta(0)
        with pytest.raises(Exception, match="naive"), transaction(engine) as conn:
            participant_rows.add_participant(
                conn, name="N", timezone="UTC", now=datetime(2026, 1, 1)
            )
        assert "participants" in inspect(engine).get_table_names()
        assert participants.c.phone.unique
    finally:
        engine.dispose()
