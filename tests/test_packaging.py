"""Homerun as `pip install` builds it, without the dev extras: every module imports from the
installed package, and the files shipped as package data are there.

The sources are copied to a temporary directory and installed (not editable) into a fresh
virtualenv of this interpreter; its python then runs isolated (`-I`) from a directory outside
the checkout, so neither the checkout nor this virtualenv can supply a missing dependency.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # a cold pip cache downloads

CHECKOUT = Path(__file__).resolve().parent.parent
PACKAGES = ("controller", "invoker", "homerun")
DEV_ONLY = ("pytest", "mypy", "ruff", "asgi_lifespan")

# Run by the installed python: import every module of PACKAGES (pkgutil skips directories
# without an __init__.py, such as the action proxies under invoker/runtimes), and say where
# each package was found.
IMPORT_ALL = """
import importlib, json, pkgutil, sys, traceback
failed, imported, found = {}, [], {}
def failure(name):
    failed[name] = "".join(traceback.format_exception_only(*sys.exc_info()[:2])).strip()
for package in sys.argv[1:]:
    try:
        module = importlib.import_module(package)
        found[package] = list(module.__path__)
        imported.append(package)
        for info in pkgutil.walk_packages(module.__path__, package + ".", onerror=failure):
            try:
                importlib.import_module(info.name)
                imported.append(info.name)
            except BaseException:
                failure(info.name)
    except BaseException:
        failure(package)
print(json.dumps({"failed": failed, "imported": imported, "found": found}))
"""

# Import the python action proxy as a module (not `__main__`): it must define its server and
# return, not listen on HOMERUN_SOCKET.
IMPORT_PROXY = """
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("homerun_proxy", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({"serve": callable(module.serve), "socket": os.path.exists(sys.argv[2])}))
"""


@dataclass(frozen=True)
class Installed:
    python: Path
    bin: Path
    site: Path  # the installed packages' directory
    cwd: Path  # outside the checkout
    env: dict[str, str] = field(repr=False)  # this process's, less the virtualenv's

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """What `python -I ARGS` printed as JSON; it must exit 0 within a minute."""
        done = subprocess.run(
            [str(self.python), "-I", *args],
            cwd=self.cwd,
            env=self.env | (env or {}),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def pyproject() -> dict[str, Any]:
    return tomllib.loads((CHECKOUT / "pyproject.toml").read_text())


def copy_sources(target: Path) -> None:
    """pyproject.toml, the readme it names and the top-level packages it includes."""
    project = pyproject()
    target.mkdir()
    shutil.copy2(CHECKOUT / "pyproject.toml", target)
    shutil.copy2(CHECKOUT / project["project"]["readme"], target)
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    tops = {pattern.split(".")[0].rstrip("*") for pattern in include}
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for top in sorted(tops):
        shutil.copytree(CHECKOUT / top, target / top, ignore=ignore)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("packaging")
    copy_sources(root / "src")
    venv = root / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-input"]
    done = subprocess.run(
        [*pip, str(root / "src")], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    cwd = root / "elsewhere"
    cwd.mkdir()
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Installed(python, venv / "bin", Path(site), cwd, env)


def test_every_module_imports_from_the_installed_packages(installed: Installed) -> None:
    report = installed.json("-c", IMPORT_ALL, *PACKAGES)
    failures = "\n".join(f"{name}: {error}" for name, error in report["failed"].items())
    assert not failures, f"modules that do not import without the dev extras:\n{failures}"
    for package, paths in report["found"].items():
        assert paths == [str(installed.site / package)], f"{package} came from {paths}"
    assert {"homerun.standalone", "invoker.docker_sandbox", "controller.api.app"} <= set(
        report["imported"]
    )


def test_dev_extras_are_not_installed(installed: Installed) -> None:
    probe = (
        "import importlib.util, json, sys\n"
        "print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m)]))"
    )
    assert installed.json("-c", probe, *DEV_ONLY) == []


def test_package_data_is_installed(installed: Installed) -> None:
    for package, patterns in pyproject()["tool"]["setuptools"]["package-data"].items():
        source = CHECKOUT.joinpath(*package.split("."))
        target = installed.site.joinpath(*package.split("."))
        for pattern in patterns:
            shipped = sorted(p.relative_to(source) for p in source.glob(pattern))
            there = sorted(p.relative_to(target) for p in target.glob(pattern))
            assert there == shipped, f"{package}: {pattern}"


def test_python_proxy_imports_without_serving(installed: Installed, tmp_path: Path) -> None:
    proxy = installed.site / "invoker" / "runtimes" / "python" / "proxy.py"
    socket = tmp_path / "proxy.sock"
    env = {"HOMERUN_SOCKET": str(socket)}
    report = installed.json("-c", IMPORT_PROXY, str(proxy), str(socket), env=env)
    assert report == {"serve": True, "socket": False}
    assert (installed.site / "invoker" / "runtimes" / "nodejs" / "proxy.js").is_file()


def test_console_script_runs(installed: Installed) -> None:
    done = subprocess.run(
        [str(installed.bin / "homerun"), "--version"],
        cwd=installed.cwd,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert pyproject()["project"]["version"] in done.stdout
