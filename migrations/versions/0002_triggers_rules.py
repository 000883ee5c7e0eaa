"""triggers and rules (a rule's status lives on its trigger, in `triggers.rules`)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 14:59:28.482116
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("trigger_path", sa.String(length=256), nullable=False),
        sa.Column("trigger_name", sa.String(length=256), nullable=False),
        sa.Column("action_path", sa.String(length=513), nullable=False),
        sa.Column("action_name", sa.String(length=256), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("publish", sa.Boolean(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.id"],
            name=op.f("fk_rules_namespace_id_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules")),
        sa.UniqueConstraint("namespace_id", "name", name=op.f("uq_rules_namespace_id_name")),
    )
    op.create_table(
        "triggers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("publish", sa.Boolean(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.id"],
            name=op.f("fk_triggers_namespace_id_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triggers")),
        sa.UniqueConstraint("namespace_id", "name", name=op.f("uq_triggers_namespace_id_name")),
    )


def downgrade() -> None:
    op.drop_table("triggers")
    op.drop_table("rules")
