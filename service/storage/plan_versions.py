"""Published plans: numbered versions per plan, written once and never changed.

Every function runs inside the caller's transaction (see `service.storage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.engine import RowMapping

from service.storage.db import NotFound, record
from service.storage.tables import plan_versions


@dataclass(frozen=True, slots=True)
class PlanVersion:
    """One published version of a plan, whole: its text and its templates' texts."""

    id: int  # grows with every publish, across plans
    plan_id: str
    version: int
    title: str
    yaml: str
    templates: dict[str, str]
    content_hash: str
    published_by: str
    published_at: datetime
    note: str | None


@dataclass(frozen=True, slots=True)
class VersionBrief:
    """A version without its texts, as a list of versions shows it."""

    plan_id: str
    version: int
    title: str
    content_hash: str
    published_by: str
    published_at: datetime
    note: str | None


_BRIEF = (
    plan_versions.c.plan_id,
    plan_versions.c.version,
    plan_versions.c.title,
    plan_versions.c.content_hash,
    plan_versions.c.published_by,
    plan_versions.c.published_at,
    plan_versions.c.note,
)


def _version(row: RowMapping) -> PlanVersion:
    return record(PlanVersion, row, templates=dict(row["templates"] or {}))


def add_version(
    conn: Connection,
    *,
    plan_id: str,
    title: str,
    yaml: str,
    templates: Mapping[str, str],
    content_hash: str,
    published_by: str,
    published_at: datetime,
    note: str | None,
) -> PlanVersion:
    """Store the next version of the plan. Two publishers at once: the second one's
    insert breaks the unique (plan_id, version) and its transaction is rolled back."""
    number = (
        conn.execute(
            select(func.coalesce(func.max(plan_versions.c.version), 0)).where(
                plan_versions.c.plan_id == plan_id
            )
        ).scalar_one()
        + 1
    )
    new_id = conn.execute(
        insert(plan_versions)
        .values(
            plan_id=plan_id,
            version=number,
            title=title,
            yaml=yaml,
            templates=dict(templates),
            content_hash=content_hash,
            published_by=published_by,
            published_at=published_at,
            note=note,
        )
        .returning(plan_versions.c.id)
    ).scalar_one()
    return get_version_by_id(conn, new_id)


def get_version_by_id(conn: Connection, version_id: int) -> PlanVersion:
    row = conn.execute(select(plan_versions).where(plan_versions.c.id == version_id)).mappings()
    found = row.first()
    if found is None:
        raise NotFound(f"no plan version #{version_id}")
    return _version(found)


def get_version(conn: Connection, plan_id: str, version: int) -> PlanVersion:
    found = (
        conn.execute(
            select(plan_versions)
            .where(plan_versions.c.plan_id == plan_id)
            .where(plan_versions.c.version == version)
        )
        .mappings()
        .first()
    )
    if found is None:
        raise NotFound(f"plan '{plan_id}' has no version {version}")
    return _version(found)


def latest_version(conn: Connection, plan_id: str) -> PlanVersion | None:
    found = (
        conn.execute(
            select(plan_versions)
            .where(plan_versions.c.plan_id == plan_id)
            .order_by(plan_versions.c.version.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return None if found is None else _version(found)


def latest_versions(conn: Connection, after_id: int = 0) -> list[PlanVersion]:
    """The newest version of every plan that has one published after `after_id` (all
    plans for 0), in plan order."""
    newest = (
        select(plan_versions.c.plan_id, func.max(plan_versions.c.id).label("id"))
        .group_by(plan_versions.c.plan_id)
        .subquery()
    )
    rows = conn.execute(
        select(plan_versions)
        .join(newest, plan_versions.c.id == newest.c.id)
        .where(newest.c.id > after_id)
        .order_by(plan_versions.c.plan_id)
    ).mappings()
    return [_version(r) for r in rows]


def last_id(conn: Connection) -> int:
    """The id of the last version published, of any plan (0: none): a process that
    has read the plans up to this id has read them all."""
    return int(conn.execute(select(func.coalesce(func.max(plan_versions.c.id), 0))).scalar_one())


def find_by_hash(conn: Connection, plan_id: str, content_hash: str) -> PlanVersion | None:
    """The newest version of the plan with that content."""
    found = (
        conn.execute(
            select(plan_versions)
            .where(plan_versions.c.plan_id == plan_id)
            .where(plan_versions.c.content_hash == content_hash)
            .order_by(plan_versions.c.version.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return None if found is None else _version(found)


def list_versions(conn: Connection, plan_id: str) -> list[VersionBrief]:
    """The plan's versions, oldest first."""
    rows = conn.execute(
        select(*_BRIEF).where(plan_versions.c.plan_id == plan_id).order_by(plan_versions.c.version)
    ).mappings()
    return [record(VersionBrief, r) for r in rows]
