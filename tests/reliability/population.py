"""Many participants, fast: the load test's and the load benchmark's population.

`enrollees` describes a cohort spread over the shipped plans and ten time zones, each
person's plan variables (wake, bedtime, walk) moved a little from the plan's defaults so
that the load is not one spike. `populate` stores it with the rows `enroll` would write
(service/tracking/enrolling.py), built by the same functions (`plan_changes` for what to
store, `occurrence_rows._insert_occurrences` for the occurrence and delivery rows), but a batch of
people per transaction, the occurrences and deliveries sent with PostgreSQL's COPY: about
3 ms a person instead of `enroll`'s 15-20 on a loaded 2-CPU machine. PostgreSQL only.
test_load.py checks that the two write the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from sqlalchemy import Connection, Insert, Table, insert

from service.actions.enrollments import plan_changes, variables_for
from service.core.expand import resolve_plan_variables
from service.core.plan import Plan
from service.core.schedule import plan_end
from service.runtime import Runtime
from service.storage import enrollments as enrollment_rows
from service.storage import occurrences as occurrence_rows
from service.storage import participants as participant_rows
from service.storage.db import new_id, transaction
from service.storage.tables import deliveries, enrollments, occurrences, participants
from tests.reliability.harness import ROOT, Person

# Ten real zones, west to east: a day of reminders rolls around the world.
ZONES = (
    "America/Los_Angeles",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Africa/Nairobi",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
)
# How far (minutes, either way, in steps of 5) each person's times move from the plan's
# default; other variables move by DEFAULT_JITTER.
JITTER = {"wake": 45, "bedtime": 60, "walk": 90}
DEFAULT_JITTER = 30
BATCH = 250  # people per transaction


def shipped_plans() -> dict[str, str]:
    """The plans in schedules/, as `Deployment.create` takes them: name -> YAML text."""
    return {path.stem: path.read_text() for path in sorted((ROOT / "schedules").glob("*.yaml"))}


@dataclass(frozen=True)
class Enrollee:
    """One person to enroll: who, where, in which plan, with which variables."""

    index: int
    zone: str
    plan: str
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"Person{self.index} Load"

    @property
    def phone(self) -> str:
        return f"+1415{self.index:07d}"

    @property
    def email(self) -> str:
        return f"person{self.index}@people.test"


def clock_text(minutes: int) -> str:
    minutes %= 24 * 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def enrollees(
    count: int,
    plans: Mapping[str, Plan],
    *,
    zones: Sequence[str] = ZONES,
    seed: int = 9,
) -> list[Enrollee]:
    """`count` people, round-robin over `zones` and then over the plans (so that every
    zone has every plan), each plan variable moved by up to its JITTER from the default."""
    rng = random.Random(seed)
    names = sorted(plans)
    people = []
    for i in range(count):
        plan = plans[names[(i // len(zones)) % len(names)]]
        defaults = resolve_plan_variables(plan)
        variables = {}
        for name in sorted(plan.variables):
            spread = JITTER.get(name, DEFAULT_JITTER) // 5
            variables[name] = clock_text(defaults[name] + 5 * rng.randint(-spread, spread))
        people.append(Enrollee(i, zones[i % len(zones)], plan.id, variables))
    return people


def populate(
    runtime: Runtime, people: Sequence[Enrollee], start: date, *, batch: int = BATCH
) -> list[Person]:
    """Store `people`, each enrolled in their plan from `start` as `enroll` would at the
    runtime clock's now (with the person's variables as the enrollment's overrides)."""
    plans: dict[str, Plan] = {}
    for person in people:
        if person.plan not in plans:
            found = runtime.plans.get(person.plan)
            if found is None:
                raise ValueError(f"plan {person.plan} did not load")
            plans[person.plan] = found
    out: list[Person] = []
    for first in range(0, len(people), batch):
        out.extend(_populate_batch(runtime, people[first : first + batch], start, plans))
    return out


class _Recorder:
    """Stands in for the connection while `plan_changes` and `occurrence_rows._insert_occurrences`
    work out an enrollment's rows: it reads no stored occurrences (the enrollment is new)
    and keeps each insert's rows instead of running it, answering RETURNING with
    stand-in ids (-1, -2, ...) that `flush` replaces with the real ones. So the rows are
    exactly the ones those functions build, and a batch of people takes one COPY a
    table instead of several statements a person."""

    def __init__(self) -> None:
        self.occurrences: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []

    def execute(self, statement: Any, rows: Any = None) -> Any:
        if not isinstance(statement, Insert):
            return []  # stored_occurrences: none yet
        if statement.table is occurrences:
            first = len(self.occurrences)
            self.occurrences.extend(rows)
            return _Rows([(-(first + i + 1), row["key"]) for i, row in enumerate(rows)])
        if statement.table is deliveries:
            self.deliveries.extend(rows)
            return None
        raise AssertionError(f"unexpected insert into {statement.table}")

    def flush(self, conn: Connection) -> None:
        """Insert what was recorded, each delivery pointing at its real occurrence."""
        if not self.occurrences:
            return
        ids = _copy(conn, occurrences, self.occurrences, with_ids=True)
        rows = [{**row, "occurrence_id": ids[-row["occurrence_id"] - 1]} for row in self.deliveries]
        _copy(conn, deliveries, rows, with_ids=False)


def _copy(
    conn: Connection, table: Table, rows: list[dict[str, Any]], *, with_ids: bool
) -> list[int]:
    """Insert `rows` into `table` with PostgreSQL's COPY, each value bound as SQLAlchemy
    binds it (the same column types as an insert's); with `with_ids`, each row gets the
    next id of the table's sequence, and the ids come back in the rows' order. (A
    multi-row INSERT of this size spends most of its time in psycopg parsing the query.)"""
    if not rows:
        return []
    raw: Any = conn.connection.driver_connection
    names = list(rows[0])
    # The columns an insert would fill from their (Python-side) defaults.
    defaults = {}
    for column in table.c:
        if column.name in names or column.name == "id" or column.default is None:
            continue
        if not column.default.is_scalar:
            raise AssertionError(f"{table.name}.{column.name}: a default COPY cannot apply")
        defaults[column.name] = column.default.arg  # type: ignore[attr-defined]
    rows = [{**defaults, **row} for row in rows]
    names += list(defaults)
    binders = [table.c[name].type._cached_bind_processor(conn.dialect) for name in names]
    ids: list[int] = []
    with raw.cursor() as cursor:
        if with_ids:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                (table.name, len(rows)),
            )
            ids = [int(found) for (found,) in cursor.fetchall()]
        columns = ", ".join([*names, *(["id"] if with_ids else [])])
        with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for i, row in enumerate(rows):
                values = [
                    bind(row[name]) if bind is not None else row[name]
                    for name, bind in zip(names, binders, strict=True)
                ]
                copy.write_row([*values, ids[i]] if with_ids else values)
    return ids


@dataclass(frozen=True)
class _Rows:
    rows: list[tuple[int, str]]

    def all(self) -> list[tuple[int, str]]:
        return self.rows


def _populate_batch(
    runtime: Runtime, people: Sequence[Enrollee], start: date, plans: Mapping[str, Plan]
) -> list[Person]:
    now = runtime.clock.now()
    new_participants: list[dict[str, Any]] = []
    new_enrollments: list[dict[str, Any]] = []
    recorder = _Recorder()
    stand_in = cast(Connection, recorder)
    out = []
    for person in people:
        plan = plans[person.plan]
        # participant_rows.add_participant's row, without the read back.
        prow: dict[str, Any] = {
            "id": new_id("p"),
            "name": person.name,
            "phone": person.phone,
            "email": person.email,
            "timezone": person.zone,
            "variables": {},
            "sms_state": "subscribed",
            "email_unsubscribed": False,
            "feed_version": 1,
            "created_at": now,
            "coach_id": None,
            "cohort_id": None,
            "language": None,
            "discreet": False,
            "quiet_hours": None,
            "welcomed_at": now,  # in Tend already: their confirmation went before the day
        }
        participant = participant_rows.participant_from_row({**prow, "paused_until": None})  # type: ignore[arg-type]
        # enroll's check of the variables, then enrollment_rows.add_enrollment's row.
        try:
            resolve_plan_variables(plan, variables_for(plan, participant, person.variables))
        except ValueError as exc:
            raise ValueError(str(exc)) from exc
        erow: dict[str, Any] = {
            "id": new_id("e"),
            "participant_id": prow["id"],
            "plan_id": plan.id,
            "plan_hash": plan.content_hash,
            "plan_version": plan.version,
            "start_date": start,
            "variables": dict(person.variables),
            "status": "active",
            "horizon": start,
            "end_date": plan_end(plan, start),
            "not_before": now,
            "created_at": now,
            "updated_at": now,
        }
        enrollment = enrollment_rows.enrollment_from_row(erow)  # type: ignore[arg-type]
        # refresh(): the changes and the horizon, then apply_changes' inserts (recorded);
        # set_horizon would write the horizon with the same end date, hash and time.
        changes, horizon = plan_changes(stand_in, enrollment, participant, plan, now)
        assert not changes.moved
        assert not changes.cancelled
        if changes.added:
            occurrence_rows._insert_occurrences(
                stand_in, enrollment.id, changes.added, now, plan.version
            )
        erow["horizon"] = horizon
        new_participants.append(prow)
        new_enrollments.append(erow)
        out.append(Person(prow["id"], erow["id"], person.phone, person.email))
    with transaction(runtime.engine) as conn:
        conn.execute(insert(participants), new_participants)
        conn.execute(insert(enrollments), new_enrollments)
        recorder.flush(conn)
    return out


def populate_one_by_one(runtime: Runtime, people: Sequence[Enrollee], start: date) -> list[Person]:
    """The same people through `participant_rows.add_participant` and `enroll`, one at a time, as the
    API does: the reference `populate` is checked against."""
    from service.actions.enrollments import enroll

    out = []
    for person in people:
        plan = runtime.plans.get(person.plan)
        assert plan is not None, f"plan {person.plan} did not load"
        with transaction(runtime.engine) as conn:
            participant = participant_rows.add_participant(
                conn,
                name=person.name,
                timezone=person.zone,
                phone=person.phone,
                email=person.email,
                now=runtime.clock.now(),
                welcomed_at=runtime.clock.now(),  # in Tend already: confirmed before
            )
        enrollment = enroll(runtime, participant.id, plan, start, dict(person.variables))
        out.append(Person(participant.id, enrollment.id, person.phone, person.email))
    return out


def snapshot(runtime: Runtime) -> dict[str, list[tuple[str, ...]]]:
    """Every row `enroll` writes, every column but the generated ids, each row named by
    its participant's name (and occurrence key), sorted: two populations of the same
    people compare equal when they stored the same rows."""
    from sqlalchemy import select

    def columns(table: Any, *skip: str) -> list[Any]:
        return [c for c in table.c if c.name not in skip]

    p, e, o, d = participants, enrollments, occurrences, deliveries
    queries = {
        "participants": select(*columns(p, "id")),
        "enrollments": select(p.c.name, *columns(e, "id", "participant_id")).join(
            p, p.c.id == e.c.participant_id
        ),
        "occurrences": select(p.c.name, *columns(o, "id", "enrollment_id"))
        .join(e, e.c.id == o.c.enrollment_id)
        .join(p, p.c.id == e.c.participant_id),
        "deliveries": select(p.c.name, o.c.key, *columns(d, "id", "occurrence_id"))
        .join(o, o.c.id == d.c.occurrence_id)
        .join(e, e.c.id == o.c.enrollment_id)
        .join(p, p.c.id == e.c.participant_id),
    }
    with runtime.engine.connect() as conn:
        return {
            table: sorted(tuple(repr(v) for v in row) for row in conn.execute(query))
            for table, query in queries.items()
        }
