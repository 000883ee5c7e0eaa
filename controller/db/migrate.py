"""Run Alembic migrations programmatically (`homerun db upgrade`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from controller.db.sealed import Keyring

MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal '%' in a password must be doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str, keyring: Keyring | None = None) -> None:
    """Migrate down; below revision 0004 secrets are stored plain again, which `keyring`
    must open."""
    config = alembic_config(database_url)
    config.attributes["keyring"] = keyring
    command.downgrade(config, revision)
