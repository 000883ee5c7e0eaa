"""The process sandbox's runtimes: each nodejs kind runs with the node of its own major
version laid out on this host (`build.sh --host`), with its preinstalled modules, and a kind
with no node of its version is refused with a message saying how to lay one out."""

from __future__ import annotations

from pathlib import Path

import pytest

from invoker.process_sandbox import ProcessSandbox
from invoker.runtimes import host_node
from invoker.sandbox import ContainerSpec, ProvisionError


def spec(kind: str) -> ContainerSpec:
    return ContainerSpec(name="probe", kind=kind, image="unused", memory_mb=256)


async def test_a_nodejs_kind_without_a_node_of_its_version_is_refused(tmp_path: Path) -> None:
    sandbox = ProcessSandbox(tmp_path / "work")
    try:
        with pytest.raises(ProvisionError) as refused:
            await sandbox.start(spec("nodejs:7"))
    finally:
        await sandbox.close()
    assert "no node 7 for nodejs:7 actions" in str(refused.value)
    assert "deploy/runtimes/build.sh --host nodejs:7" in str(refused.value)
    assert list(sandbox.work_root.iterdir()) == []  # nothing left behind


def test_a_laid_out_tree_wins_over_the_node_on_path(tmp_path: Path) -> None:
    tree = tmp_path / "nodejs-7"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "node").write_text("#!/bin/sh\n")
    (tree / "node_modules").mkdir()
    found = host_node("nodejs:7", tmp_path)
    assert found is not None
    assert found.node == tree / "bin" / "node"
    assert found.modules == tree / "node_modules"
    assert host_node("nodejs:8", tmp_path) is None  # no tree, and no node 8 on PATH
