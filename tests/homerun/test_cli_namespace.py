"""`homerun admin namespace keep-blocking-successes`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

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
