"""The action runtimes: the proxies that run inside action containers (or as host processes in
the process sandbox) and speak OpenWhisk's /init and /run protocol on a unix socket.

- `nodejs/proxy.js`: run as `node proxy.js`; `python/proxy.py`: run as `python3 -u proxy.py`.
- Both listen on the unix socket at env `HOMERUN_SOCKET` (default `DEFAULT_SOCKET`), answer
  `GET /health`, and write `SENTINEL` once to stdout and once to stderr after every /run, before
  the response is sent. They use only their language's standard library.
- The images that carry them are built by deploy/runtimes/build.sh. `build.sh --host` lays out
  the same Node versions and preinstalled modules on this host for the process sandbox, one
  tree per kind under `HOST_RUNTIMES` (`nodejs-22/bin/node`, `nodejs-22/node_modules`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

RUNTIMES_DIR = Path(__file__).resolve().parent
DEFAULT_SOCKET = "/run/homerun/action.sock"
# Where build.sh --host puts its trees (as HOMERUN_RUNTIME_CACHE/host).
RUNTIME_CACHE = Path(os.environ.get("HOMERUN_RUNTIME_CACHE", "/var/cache/homerun/runtimes"))
HOST_RUNTIMES = RUNTIME_CACHE / "host"
SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
PROXIES = {
    "nodejs": RUNTIMES_DIR / "nodejs" / "proxy.js",
    "python": RUNTIMES_DIR / "python" / "proxy.py",
}


def proxy_path(kind: str) -> Path:
    """The proxy for a kind such as `nodejs:18` or `python:3.11`; KeyError for other families."""
    return PROXIES[kind.split(":", 1)[0]]


@dataclass(frozen=True)
class HostNode:
    """A node binary on this host for one nodejs kind, and the preinstalled modules, if any."""

    node: Path
    modules: Path | None


def host_node(kind: str, root: Path = HOST_RUNTIMES) -> HostNode | None:
    """The node that runs `kind` (`nodejs:22`) on this host: the tree `build.sh --host` made
    for it, else the `node` on PATH when its major version is the kind's; None otherwise."""
    major = kind.partition(":")[2]
    tree = root / f"nodejs-{major}"
    modules = tree / "node_modules"
    if (tree / "bin" / "node").is_file():
        return HostNode(tree / "bin" / "node", modules if modules.is_dir() else None)
    found = shutil.which("node") or shutil.which("nodejs")
    if found is None or node_major(Path(found)) != major:
        return None
    return HostNode(Path(found), modules if modules.is_dir() else None)


def node_major(node: Path) -> str | None:
    """The major version of the node binary at `node` (`"22"`), or None if it does not run."""
    try:
        out = subprocess.run(
            [str(node), "-p", "process.versions.node"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().split(".", 1)[0] or None
