"""`homerun admin namespace create` and `keep-blocking-successes`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from controller.services import namespaces
from controller.settings import Settings
from controller.setup import run_in_transaction
from homerun.cli import main


@dataclass
class Cli:
    """`homerun` over a migrated database of its own."""

    settings: Settings
    env: dict[str, str]

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=self.env)


@pytest.fixture(params=["sqlite", "postgresql"])
def cli(
    request: pytest.FixtureRequest, fresh_database_url: Callable[[str], str], tmp_path: Path
) -> Cli:
    url = fresh_database_url(request.param)
    made = Cli(
        Settings(data_dir=tmp_path, database_url=url),
        {"HOMERUN_DATABASE_URL": url, "HOMERUN_DATA_DIR": str(tmp_path)},
    )
    assert made("db", "upgrade").exit_code == 0
    return made


def test_option_is_stored(cli: Cli) -> None:
    settings = cli.settings
    run_in_transaction(settings, lambda s: namespaces.ensure(s, "acme", "int1"))

    dropped = cli("admin", "namespace", "keep-blocking-successes", "acme-int1", "false")
    assert dropped.exit_code == 0, dropped.output
    assert "dropped" in dropped.output
    options = run_in_transaction(
        settings, lambda s: namespaces.set_option(s, "acme-int1", "probe", 1)
    )
    assert options["dropBlockingSuccesses"] is True

    missing = cli("admin", "namespace", "keep-blocking-successes", "nope", "true")
    assert missing.exit_code != 0 and "No namespace named 'nope'" in missing.output


KNOWN = (
    "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:"
    + "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
)


def test_create_with_known_credentials(cli: Cli) -> None:
    """As `wskadmin user create NAME -u UUID:KEY`: the namespace authenticates with them."""
    settings = cli.settings

    def create(*args: str) -> Result:
        return cli("admin", "namespace", "create", *args)

    created = create("ci", "--auth", KNOWN)
    assert created.exit_code == 0, created.output
    assert created.output.strip() == KNOWN
    uuid_, key = KNOWN.split(":")
    found = run_in_transaction(settings, lambda s: namespaces.authenticate_basic(s, uuid_, key))
    assert found is not None and found.name == "ci"
    assert create("ci", "--auth", KNOWN).output.strip() == KNOWN  # again: unchanged
    assert create("ci").output.strip() == KNOWN

    other = uuid_ + ":" + "x" * 64
    refused = create("ci", "--auth", other)
    assert refused.exit_code != 0 and "exists with other credentials" in refused.output
    taken = create("ci2", "--auth", KNOWN)
    assert taken.exit_code != 0 and "another namespace's" in taken.output
    for bad in ("no-colon", "not-a-uuid:" + "k" * 64, uuid_ + ":short", uuid_.upper() + ":" + key):
        malformed = create("ci3", "--auth", bad)
        assert malformed.exit_code != 0 and "UUID:KEY" in malformed.output, bad
    fresh = create("ci4")
    assert fresh.exit_code == 0 and fresh.output.strip() != KNOWN
    assert run_in_transaction(settings, lambda s: namespaces.get_by_name(s, "ci3")) is None
