"""The action runtimes: the proxies that run inside action containers (or as host processes in
the process sandbox) and speak OpenWhisk's /init and /run protocol on a unix socket.

- `nodejs/proxy.js`: run as `node proxy.js`; `python/proxy.py`: run as `python3 -u proxy.py`.
- Both listen on the unix socket at env `HOMERUN_SOCKET` (default `DEFAULT_SOCKET`), answer
  `GET /health`, and write `SENTINEL` once to stdout and once to stderr after every /run, before
  the response is sent. They use only their language's standard library.
- The images that carry them are built by deploy/runtimes/build.sh.
"""

from __future__ import annotations

from pathlib import Path

RUNTIMES_DIR = Path(__file__).resolve().parent
DEFAULT_SOCKET = "/run/homerun/action.sock"
SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
PROXIES = {
    "nodejs": RUNTIMES_DIR / "nodejs" / "proxy.js",
    "python": RUNTIMES_DIR / "python" / "proxy.py",
}


def proxy_path(kind: str) -> Path:
    """The proxy for a kind such as `nodejs:18` or `python:3.11`; KeyError for other families."""
    return PROXIES[kind.split(":", 1)[0]]
