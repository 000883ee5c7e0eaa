"""`homerun admin namespace create` and `keep-blocking-successes`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from controller.services import namespaces
from controller.settings import Settings
from controller.setup import run_in_transaction
from homerun.cli import main


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_option_is_stored(
    backend: str, fresh_database_url: Callable[[str], str], tmp_path: Path
) -> None:
    url = fresh_database_url(backend)
    env = {"HOMERUN_DATABASE_URL": url, "HOMERUN_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    settings = Settings(data_dir=tmp_path, database_url=url)
    run_in_transaction(settings, lambda s: namespaces.ensure(s, "acme", "int1"))

    dropped = runner.invoke(
        main, ["admin", "namespace", "keep-blocking-successes", "acme-int1", "false"], env=env
    )
    assert dropped.exit_code == 0, dropped.output
    assert "dropped" in dropped.output
    options = run_in_transaction(
        settings, lambda s: namespaces.set_option(s, "acme-int1", "probe", 1)
    )
    assert options["dropBlockingSuccesses"] is True

    missing = runner.invoke(
        main, ["admin", "namespace", "keep-blocking-successes", "nope", "true"], env=env
    )
    assert missing.exit_code != 0 and "No namespace named 'nope'" in missing.output


KNOWN = (
    "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:"
    + "123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_create_with_known_credentials(
    backend: str, fresh_database_url: Callable[[str], str], tmp_path: Path
) -> None:
    """As `wskadmin user create NAME -u UUID:KEY`: the namespace authenticates with them."""
    url = fresh_database_url(backend)
    env = {"HOMERUN_DATABASE_URL": url, "HOMERUN_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    settings = Settings(data_dir=tmp_path, database_url=url)

    def create(*args: str) -> Result:
        return runner.invoke(main, ["admin", "namespace", "create", *args], env=env)

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
