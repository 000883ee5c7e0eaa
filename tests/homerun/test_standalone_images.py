"""`homerun standalone` brings the runtime images up to date as it starts, not only when one
is missing: an image an older checkout built has an older proxy (the logs of concurrent
activations, say, need the current one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.runtimes import load_manifest
from controller.settings import Settings
from homerun import standalone
from invoker.settings import load_invoker_settings


class Present:
    """A docker sandbox that has every image already."""

    def image_exists(self, image: str) -> bool:
        return True


def test_the_build_script_runs_for_every_kind_at_each_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls"
    script = tmp_path / "build.sh"
    script.write_text(f'echo "$@" >> {calls}\n')
    monkeypatch.setattr(standalone, "BUILD_SCRIPT", script)
    monkeypatch.setattr(standalone.DockerSandbox, "available", staticmethod(lambda: True))
    monkeypatch.setattr(standalone, "docker_sandbox", lambda invoker: Present())
    settings = Settings(data_dir=tmp_path)

    chosen = standalone.choose_sandbox(settings, load_invoker_settings(sandbox="auto"))

    assert isinstance(chosen, Present)
    manifest = load_manifest(settings.runtimes_manifest)
    every_kind = [rt.kind for runtimes in manifest.families.values() for rt in runtimes]
    assert calls.read_text().split() == every_kind  # though none was missing
