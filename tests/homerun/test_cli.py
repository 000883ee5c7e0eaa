"""`homerun db ...` and `homerun admin ...` through Click, against a fresh database of each
backend. These tests are synchronous: the CLI runs its own event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import inspect

from controller.db.engine import create_engine
from controller.db.sealed import Keyring
from controller.domain import Principal, TokenScope
from controller.errors import NotAuthenticated
from controller.names import SYSTEM_NAMESPACE
from controller.services import credentials, namespaces
from controller.settings import Settings
from controller.setup import run_in_transaction
from homerun.cli import main
from tests.conftest import BACKENDS

KINDS = ["token", "apikey"]


@dataclass
class Cli:
    """Runs `homerun` with the environment of one database."""

    settings: Settings
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, **env: str) -> Result:
        return CliRunner().invoke(main, list(args), env={**self.env, **env})

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    def create(self, kind: str, *options: str) -> str:
        """Issue a credential; returns the secret, checking it is all that was printed."""
        output = self.ok("admin", kind, "create", *options)
        lines = output.splitlines()
        assert len(lines) == 1, output
        secret = lines[0]
        assert len(secret) >= 32 and secret.isprintable() and " " not in secret
        return secret

    def listed(self, kind: str) -> list[dict[str, Any]]:
        listing: list[dict[str, Any]] = json.loads(self.ok("admin", kind, "list", "--json"))
        return listing

    def entry(self, kind: str, secret: str) -> dict[str, Any]:
        """The listing of the credential whose secret is `secret` (matched by prefix)."""
        found = [e for e in self.listed(kind) if secret.startswith(e["prefix"])]
        assert len(found) == 1, found
        return found[0]

    def authenticate(self, token: str, api_key: str) -> Principal:
        return run_in_transaction(
            self.settings, lambda s: credentials.authenticate(s, token, api_key)
        )


@pytest.fixture(params=BACKENDS)
def empty_database_url(
    request: pytest.FixtureRequest, fresh_database_url: Callable[[str], str]
) -> str:
    return fresh_database_url(request.param)


@pytest.fixture
def cli(empty_database_url: str, tmp_path: Path) -> Cli:
    """A CLI over a fresh database, migrated with `homerun db upgrade`."""
    env = {"HOMERUN_DATABASE_URL": empty_database_url, "HOMERUN_DATA_DIR": str(tmp_path)}
    runner = Cli(Settings(data_dir=tmp_path, database_url=empty_database_url), env)
    assert "head" in runner.ok("db", "upgrade")
    return runner


@pytest.fixture
def offline_cli(tmp_path: Path) -> Cli:
    """A CLI whose database (a SQLite file) does not exist yet: for commands that must fail
    before touching it."""
    url = f"sqlite:///{tmp_path / 'untouched.db'}"
    env = {"HOMERUN_DATABASE_URL": url, "HOMERUN_DATA_DIR": str(tmp_path)}
    return Cli(Settings(data_dir=tmp_path, database_url=url), env)


def table_names(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                names = await connection.run_sync(lambda c: inspect(c).get_table_names())
                return set(names)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def system_namespace_exists(settings: Settings) -> bool:
    found = run_in_transaction(settings, lambda s: namespaces.get_by_name(s, SYSTEM_NAMESPACE))
    return found is not None


# Tokens.


def test_admin_token_is_printed_once_and_authenticates(cli: Cli) -> None:
    token = cli.create("token", "--admin")
    api_key = cli.create("apikey")
    principal = cli.authenticate(token, api_key)
    assert principal.scope is TokenScope.ADMIN and principal.org_id is None
    assert cli.create("token", "--admin") != token
    for listing in (cli.ok("admin", "token", "list"), cli.ok("admin", "token", "list", "--json")):
        assert token not in listing


def test_org_token_is_scoped_to_its_org(cli: Cli) -> None:
    token = cli.create("token", "--org", "acme")
    principal = cli.authenticate(token, cli.create("apikey"))
    assert principal.scope is TokenScope.ORG and principal.org_id == "acme"
    assert principal.can_access_org("acme") and not principal.can_access_org("other")


@pytest.mark.parametrize(
    "options",
    [["--org", "acme", "--admin"], [], ["--org", ""], ["--description", "no scope"]],
    ids=["both", "neither", "empty-org", "description-only"],
)
def test_token_create_needs_exactly_one_scope(cli: Cli, options: list[str]) -> None:
    result = cli.run("admin", "token", "create", *options)
    assert result.exit_code == 2, result.output
    assert "--org" in result.output and "--admin" in result.output
    assert cli.listed("token") == []


def test_token_list_shows_metadata_but_never_secrets(cli: Cli) -> None:
    admin = cli.create("token", "--admin")
    org = cli.create("token", "--org", "acme", "--description", "ci deploys")

    listing = cli.listed("token")
    assert [e["scope"] for e in listing] == ["admin", "org"]
    admin_entry, org_entry = cli.entry("token", admin), cli.entry("token", org)
    assert admin_entry["org_id"] is None
    assert org_entry["org_id"] == "acme" and org_entry["description"] == "ci deploys"
    for entry in listing:
        assert isinstance(entry["id"], int) and entry["revoked"] is None
        assert 0 < len(entry["prefix"]) <= 16

    table = cli.ok("admin", "token", "list")
    for secret in (admin, org):
        assert secret not in table
        assert secret[16:] not in table
    header, *rows = table.splitlines()
    assert header.split()[:4] == ["ID", "PREFIX", "SCOPE", "ORG"]
    by_id = {row.split()[0]: row.split() for row in rows}
    assert set(by_id) == {str(admin_entry["id"]), str(org_entry["id"])}
    org_row = by_id[str(org_entry["id"])]
    assert org_row[1].startswith(org_entry["prefix"])
    assert org_row[2:5] == ["org", "acme", "active"]
    assert by_id[str(admin_entry["id"])][2:5] == ["admin", "-", "active"]


def test_revoked_token_no_longer_authenticates(cli: Cli) -> None:
    revoked, kept = cli.create("token", "--org", "acme"), cli.create("token", "--org", "acme")
    api_key = cli.create("apikey")
    assert cli.authenticate(revoked, api_key).org_id == "acme"
    token_id = cli.entry("token", revoked)["id"]

    assert str(token_id) in cli.ok("admin", "token", "revoke", str(token_id))

    assert cli.entry("token", revoked)["revoked"] is not None
    assert cli.entry("token", kept)["revoked"] is None
    row = next(
        r for r in cli.ok("admin", "token", "list").splitlines() if r.split()[0] == str(token_id)
    )
    assert "revoked" in row.split()
    with pytest.raises(NotAuthenticated):
        cli.authenticate(revoked, api_key)
    assert cli.authenticate(kept, api_key).org_id == "acme"


# API keys.


def test_apikey_is_printed_once_and_authenticates(cli: Cli) -> None:
    token = cli.create("token", "--admin")
    api_key = cli.create("apikey")
    assert cli.create("apikey") != api_key
    assert cli.authenticate(token, api_key).scope is TokenScope.ADMIN
    with pytest.raises(NotAuthenticated):
        cli.authenticate(token, api_key[:-1])


def test_apikey_list_shows_metadata_but_never_secrets(cli: Cli) -> None:
    first = cli.create("apikey")
    second = cli.create("apikey", "--description", "partner")
    listing = cli.listed("apikey")
    assert len(listing) == 2
    assert cli.entry("apikey", second)["description"] == "partner"
    for entry in listing:
        assert entry["scope"] is None and entry["org_id"] is None and entry["revoked"] is None
        assert 0 < len(entry["prefix"]) <= 16
    table = cli.ok("admin", "apikey", "list")
    for secret in (first, second):
        assert secret not in table and secret[16:] not in table
        assert secret not in json.dumps(listing)
    ids = {str(e["id"]) for e in listing}
    assert {row.split()[0] for row in table.splitlines()[1:]} == ids


def test_revoked_apikey_no_longer_authenticates(cli: Cli) -> None:
    token = cli.create("token", "--admin")
    revoked, kept = cli.create("apikey"), cli.create("apikey")
    key_id = cli.entry("apikey", revoked)["id"]
    assert cli.authenticate(token, revoked).scope is TokenScope.ADMIN

    assert str(key_id) in cli.ok("admin", "apikey", "revoke", str(key_id))

    assert cli.entry("apikey", revoked)["revoked"] is not None
    assert cli.entry("apikey", kept)["revoked"] is None
    with pytest.raises(NotAuthenticated):
        cli.authenticate(token, revoked)
    assert cli.authenticate(token, kept).scope is TokenScope.ADMIN


# Both kinds.


@pytest.mark.parametrize("kind", KINDS)
def test_revoking_an_unknown_id_fails(cli: Cli, kind: str) -> None:
    secret = cli.create(kind, "--admin") if kind == "token" else cli.create(kind)
    result = cli.run("admin", kind, "revoke", "9999")
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "9999" in result.output and "no " in result.output.lower()
    assert cli.entry(kind, secret)["revoked"] is None


@pytest.mark.parametrize("kind", KINDS)
def test_revoke_needs_a_numeric_id(offline_cli: Cli, kind: str) -> None:
    result = offline_cli.run("admin", kind, "revoke", "abc")
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize("kind", KINDS)
def test_empty_lists(cli: Cli, kind: str) -> None:
    assert cli.listed(kind) == []
    assert len(cli.ok("admin", kind, "list").splitlines()) == 1  # the header only


# Migrations.


def test_downgrade_to_base_then_upgrade(cli: Cli, empty_database_url: str) -> None:
    old_token, old_key = cli.create("token", "--admin"), cli.create("apikey")
    tables = table_names(empty_database_url)
    assert {"namespaces", "actions", "operator_tokens", "api_keys"} <= tables
    assert system_namespace_exists(cli.settings)

    assert "base" in cli.ok("db", "downgrade", "base")
    assert not (tables - {"alembic_version"}) & table_names(empty_database_url)

    assert "head" in cli.ok("db", "upgrade")
    assert tables <= table_names(empty_database_url)
    assert system_namespace_exists(cli.settings)
    assert cli.listed("token") == [] and cli.listed("apikey") == []
    with pytest.raises(NotAuthenticated):
        cli.authenticate(old_token, old_key)
    token, api_key = cli.create("token", "--admin"), cli.create("apikey")
    assert cli.authenticate(token, api_key).is_admin


def test_upgrade_is_idempotent(cli: Cli) -> None:
    token, api_key = cli.create("token", "--org", "acme"), cli.create("apikey")
    assert "head" in cli.ok("db", "upgrade")
    assert cli.authenticate(token, api_key).org_id == "acme"
    assert system_namespace_exists(cli.settings)


# Configuration errors.

COMMANDS = [
    ["db", "upgrade"],
    ["db", "downgrade", "base"],
    ["admin", "token", "create", "--admin"],
    ["admin", "token", "list"],
    ["admin", "apikey", "create"],
    ["admin", "apikey", "revoke", "1"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HOMERUN_PORT", "notaport"),
        ("HOMERUN_LOG_LEVEL", "loud"),
        ("HOMERUN_LIMITS__MEMORY_MAX", "x"),
    ],
)
def test_bad_setting_is_named(
    offline_cli: Cli, tmp_path: Path, command: list[str], variable: str, value: str
) -> None:
    result = offline_cli.run(*command, **{variable: value})
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert variable in result.output
    assert value in result.output
    assert list(tmp_path.iterdir()) == []  # it stopped before touching the database


def test_bad_database_url_is_named(offline_cli: Cli) -> None:
    result = offline_cli.run("admin", "token", "list", HOMERUN_DATABASE_URL="mysql://nowhere/db")
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "HOMERUN_DATABASE_URL" in result.output


# The sealing keys.


def test_secret_key_prints_a_key_the_settings_take(offline_cli: Cli) -> None:
    key = offline_cli.ok("admin", "secret-key").strip()

    assert Settings(secret_keys=key).keyring().keys == (key.encode(),)


def test_upgrade_with_a_stranger_key_is_refused_by_name(cli: Cli) -> None:
    result = cli.run("db", "upgrade", HOMERUN_SECRET_KEYS=Keyring.new_key())

    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "HOMERUN_SECRET_KEYS" in result.output
