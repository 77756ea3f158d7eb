"""participants' own say: discreet texts, quiet hours, reminders held for quiet hours

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 23:50:00.000000

Columns only (SQLite adds them in place; nothing is copied). A participant's
`quiet_hours` is NULL to follow the deployment's TEND_QUIET_HOURS, `off` for none, or
`HH:MM-HH:MM`. A delivery held for quiet hours keeps the time it was first due in
`held_from`. Repeats asked for by LATER are deliveries of kinds repeat1..repeat3, so
the unique key (occurrence, channel, kind) stands unchanged.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.storage.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UTC = service.storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("discreet", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("quiet_hours", sa.String(length=16), nullable=True))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_from", UTC, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("held_from")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("quiet_hours")
        batch_op.drop_column("discreet")
