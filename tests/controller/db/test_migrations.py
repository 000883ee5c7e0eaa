"""Alembic migrations on each backend: up, down and up again cleanly, and a migrated schema
that matches the models exactly.

`migrate.upgrade` / `migrate.downgrade` run their own event loop, so these tests are sync."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from controller.db import migrate
from controller.db.engine import create_engine
from controller.db.models import Base
from controller.db.sealed import SealingError
from controller.services import namespaces
from controller.settings import Settings
from controller.setup import in_transaction, upgrade_database

BACKENDS = ["sqlite", "postgresql"]
APPLICATION_TABLES = set(Base.metadata.tables)
HEAD = ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_current_head()


def _on_connection(url: str, work: Callable[[Connection], Any]) -> Any:
    async def run() -> Any:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def tables(url: str) -> set[str]:
    return _on_connection(url, lambda c: set(inspect(c).get_table_names()))


def revision(url: str) -> str | None:
    return _on_connection(url, lambda c: MigrationContext.configure(c).get_current_revision())


def stored_keys(url: str) -> list[str]:
    return _on_connection(
        url, lambda c: list(c.execute(text("SELECT key FROM namespaces")).scalars())
    )


def schema_differences(url: str) -> list[Any]:
    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))

    return _on_connection(url, compare)


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, fresh_database_url: Callable[[str], str]) -> str:
    return fresh_database_url(request.param)


def test_there_is_one_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))

    assert len(script.get_heads()) == 1
    assert HEAD is not None


def test_upgrade_creates_every_model_table(empty_database: str) -> None:
    assert tables(empty_database) == set()

    migrate.upgrade(empty_database)

    assert tables(empty_database) == APPLICATION_TABLES | {"alembic_version"}
    assert revision(empty_database) == HEAD


def test_migrated_schema_matches_the_models(empty_database: str) -> None:
    migrate.upgrade(empty_database)

    assert schema_differences(empty_database) == []


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    migrate.upgrade(empty_database, "head")

    migrate.downgrade(empty_database, "base")

    assert tables(empty_database) - {"alembic_version"} == set()
    assert revision(empty_database) is None

    migrate.upgrade(empty_database, "head")

    assert tables(empty_database) == APPLICATION_TABLES | {"alembic_version"}
    assert revision(empty_database) == HEAD
    assert schema_differences(empty_database) == []


def test_upgrade_at_head_is_a_no_op(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    before = schema_differences(empty_database), tables(empty_database)

    migrate.upgrade(empty_database)

    assert (schema_differences(empty_database), tables(empty_database)) == before
    assert revision(empty_database) == HEAD


def test_a_downgrade_opens_the_sealed_secrets_with_the_keys(
    empty_database: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=empty_database)
    upgrade_database(settings)
    made = asyncio.run(in_transaction(settings, lambda s: namespaces.ensure(s, "acme", "int1")))
    assert made.key not in stored_keys(empty_database)

    with pytest.raises(SealingError, match="only with the operator's keys"):
        migrate.downgrade(empty_database, "0003")
    migrate.downgrade(empty_database, "0003", settings.keyring())

    assert made.key in stored_keys(empty_database)
    upgrade_database(settings)
    assert made.key not in stored_keys(empty_database)
