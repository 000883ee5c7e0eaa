"""Revision 0002 (triggers and rules) upgrades and downgrades cleanly on each backend, and
leaves the schema exactly as the models describe it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.db import migrate
from tests.controller.db.test_migrations import revision, schema_differences, tables

NEW_TABLES = {"triggers", "rules"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, fresh_database_url: Callable[[str], str]) -> str:
    return fresh_database_url(request.param)


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    migrate.upgrade(empty_database, "head")
    assert NEW_TABLES <= tables(empty_database)

    migrate.downgrade(empty_database, "0001")

    assert revision(empty_database) == "0001"
    assert not NEW_TABLES & tables(empty_database)
    assert "namespaces" in tables(empty_database)

    migrate.upgrade(empty_database, "head")

    assert NEW_TABLES <= tables(empty_database)
    assert schema_differences(empty_database) == []
