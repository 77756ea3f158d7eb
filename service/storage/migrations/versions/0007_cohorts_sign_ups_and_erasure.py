"""cohorts, sign-ups, the confirmation SMS, languages and erasure

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 20:50:00.000000

Participants who were already here have been texted already: their confirmation counts
as sent (`welcomed_at` = when they were added), so nobody gets one out of the blue.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.storage.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC = service.storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cohorts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("coach_id", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("plan_id", sa.String(length=64), nullable=True),
        sa.Column("keyword", sa.String(length=32), nullable=True),
        sa.Column("signup_token", sa.String(length=32), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cohorts")),
        sa.UniqueConstraint("coach_id", "name", name=op.f("uq_cohorts_coach_id_name")),
        sa.UniqueConstraint("keyword", name=op.f("uq_cohorts_keyword")),
        sa.UniqueConstraint("signup_token", name=op.f("uq_cohorts_signup_token")),
    )
    with op.batch_alter_table("cohorts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cohorts_coach_id"), ["coach_id"], unique=False)

    op.create_table(
        "signups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("cohort_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("asked_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["cohort_id"],
            ["cohorts.id"],
            name=op.f("fk_signups_cohort_id_cohorts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signups")),
        sa.UniqueConstraint("phone", name=op.f("uq_signups_phone")),
    )
    with op.batch_alter_table("signups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signups_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "suppressed_numbers",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_suppressed_numbers")),
    )

    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cohort_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("welcomed_at", UTC, nullable=True))
        batch_op.create_index(batch_op.f("ix_participants_cohort_id"), ["cohort_id"], unique=False)
    op.execute("UPDATE participants SET welcomed_at = created_at WHERE phone IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participants_cohort_id"))
        batch_op.drop_column("welcomed_at")
        batch_op.drop_column("language")
        batch_op.drop_column("cohort_id")
    op.drop_table("suppressed_numbers")
    with op.batch_alter_table("signups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signups_expires_at"))
    op.drop_table("signups")
    with op.batch_alter_table("cohorts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cohorts_coach_id"))
    op.drop_table("cohorts")
