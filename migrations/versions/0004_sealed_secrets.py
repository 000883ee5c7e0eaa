"""secrets sealed at rest: room for a sealed namespace key, and the sealing keys' fingerprints

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 14:20:00

The values themselves are sealed after the migration, by `homerun db upgrade`, which holds the
operator's keys (controller.db.sealing.seal_all).
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from controller.db.sealed import SEALED, Keyring, SealingError

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sealing_keys",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_sealing_keys")),
    )
    with op.batch_alter_table("namespaces") as batch:
        batch.alter_column("key", existing_type=sa.String(length=64), type_=sa.String(length=512))


# Where sealed values are kept: (table, primary key, column, holds JSON).
_SEALED = (
    ("namespaces", "id", "key", False),
    ("packages", "id", "parameters", True),
    ("actions", "id", "parameters", True),
    ("triggers", "id", "parameters", True),
    ("log_forwarding", "namespace_id", "config", True),
)


def _open_all(keyring: Keyring | None) -> None:
    """Store every sealed value plain again, as revision 0003 expects."""
    bind = op.get_bind()
    for name, pk, column, is_json in _SEALED:
        table = sa.table(
            name, sa.column(pk), sa.column(column, sa.JSON() if is_json else sa.Text())
        )
        for key, stored in bind.execute(sa.select(table.c[pk], table.c[column])).all():
            if not (isinstance(stored, str) and stored.startswith(SEALED)):
                continue
            if keyring is None:
                raise SealingError("sealed secrets can be opened only with the operator's keys")
            plain: object = keyring.open(stored)
            if is_json:
                plain = json.loads(str(plain))
            bind.execute(table.update().where(table.c[pk] == key).values({column: plain}))


def downgrade() -> None:
    _open_all(context.config.attributes.get("keyring"))
    with op.batch_alter_table("namespaces") as batch:
        batch.alter_column("key", existing_type=sa.String(length=512), type_=sa.String(length=64))
    op.drop_table("sealing_keys")
