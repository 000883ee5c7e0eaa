"""Shared by the runtime tests: equivalent action sources per runtime, zip building, and a small
client for a proxy's unix socket."""

from __future__ import annotations

import base64
import io
import json
import socket
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
RUNTIMES = ("nodejs", "python")

# Each case: the same behaviour written for every runtime.
SOURCES: dict[str, dict[str, str]] = {
    "echo": {
        "nodejs": "function main(params) {\n  return {params};\n}\n",
        "python": "def main(params):\n    return {'params': params}\n",
    },
    "env": {  # the init env and the __OW_ variables the action sees
        "nodejs": (
            "function main() {\n"
            "  const env = {};\n"
            "  for (const [key, value] of Object.entries(process.env)) {\n"
            "    if (key.startsWith('__OW_') || key.startsWith('MY_')) env[key] = value;\n"
            "  }\n"
            "  return env;\n"
            "}\n"
        ),
        "python": (
            "import os\n\n"
            "def main(params):\n"
            "    return {k: v for k, v in os.environ.items() if k.startswith(('__OW_', 'MY_'))}\n"
        ),
    },
    "logs": {
        "nodejs": (
            "function main(params) {\n"
            "  console.log(`out ${params.n}`);\n"
            "  console.error(`err ${params.n}`);\n"
            "  return {n: params.n};\n"
            "}\n"
        ),
        "python": (
            "import sys\n\n"
            "def main(params):\n"
            "    print(f\"out {params['n']}\")\n"
            "    print(f\"err {params['n']}\", file=sys.stderr)\n"
            "    return {'n': params['n']}\n"
        ),
    },
    "returns": {  # returns params.result as it is; a missing one is undefined / None
        "nodejs": "function main(params) {\n  return params.result;\n}\n",
        "python": "def main(params):\n    return params.get('result')\n",
    },
    "unserialisable": {
        "nodejs": "function main() {\n  const loop = {};\n  loop.self = loop;\n  return loop;\n}\n",
        "python": "def main(params):\n    return {'set': {1, 2}}\n",
    },
    "throws": {  # throws when params.fail, else answers
        "nodejs": (
            "function main(params) {\n"
            "  if (params.fail) throw new Error('boom');\n"
            "  return {ok: params.n};\n"
            "}\n"
        ),
        "python": (
            "def main(params):\n"
            "    if params.get('fail'):\n"
            "        raise ValueError('boom')\n"
            "    return {'ok': params.get('n')}\n"
        ),
    },
    "async": {
        "nodejs": (
            "async function main(params) {\n"
            "  await new Promise((resolve) => setTimeout(resolve, 5));\n"
            "  return {later: params.x};\n"
            "}\n"
        ),
        "python": (
            "import asyncio\n\n"
            "async def main(params):\n"
            "    await asyncio.sleep(0.005)\n"
            "    return {'later': params['x']}\n"
        ),
    },
    "rejects": {
        "nodejs": (
            "function main() {\n"
            "  return new Promise((resolve, reject) => {\n"
            "    setTimeout(() => reject(new Error('nope')), 5);\n"
            "  });\n"
            "}\n"
        ),
        "python": (
            "import asyncio\n\n"
            "async def main(params):\n"
            "    await asyncio.sleep(0.005)\n"
            "    raise RuntimeError('nope')\n"
        ),
    },
    "greet": {  # the entry point is not called main
        "nodejs": "function greet(params) {\n  return {greeting: `hello ${params.name}`};\n}\n",
        "python": "def greet(params):\n    return {'greeting': f\"hello {params['name']}\"}\n",
    },
    "syntax_error": {
        "nodejs": "function main(params) {\n  return {;\n}\n",
        "python": "def main(params):\n    return {;\n",
    },
    "no_main": {
        "nodejs": "function other() {\n  return {};\n}\n",
        "python": "def other(params):\n    return {}\n",
    },
    "exits": {
        "nodejs": "function main() {\n  process.exit(3);\n}\n",
        "python": "import sys\n\ndef main(params):\n    sys.exit(3)\n",
    },
    "identity": {  # who runs the action, and where it may write
        "nodejs": (
            "const fs = require('fs');\n"
            "function writable(path) {\n"
            "  try { fs.writeFileSync(path, 'x'); return true; } catch (e) { return false; }\n"
            "}\n"
            "function main() {\n"
            "  return {uid: process.getuid(), gid: process.getgid(),\n"
            "          tmp: writable('/tmp/probe'), root: writable('/homerun/probe')};\n"
            "}\n"
        ),
        "python": (
            "import os\n\n"
            "def writable(path):\n"
            "    try:\n"
            "        with open(path, 'w') as f:\n"
            "            f.write('x')\n"
            "        return True\n"
            "    except OSError:\n"
            "        return False\n\n"
            "def main(params):\n"
            "    return {'uid': os.getuid(), 'gid': os.getgid(),\n"
            "            'tmp': writable('/tmp/probe'), 'root': writable('/homerun/probe')}\n"
        ),
    },
}

# A zipped action per runtime whose entry point imports a sibling module: returns {doubled: 2n}.
ZIPPED: dict[str, dict[str, str]] = {
    "nodejs": {
        "package.json": '{"name": "zipped", "version": "1.0.0", "main": "lib/entry.js"}\n',
        "lib/entry.js": (
            "const { double } = require('./helper');\n"
            "exports.main = (params) => ({doubled: double(params.n)});\n"
        ),
        "lib/helper.js": "exports.double = (n) => 2 * n;\n",
    },
    "python": {
        "__main__.py": (
            "from helper import double\n\n"
            "def main(params):\n"
            "    return {'doubled': double(params['n'])}\n"
        ),
        "helper.py": "def double(n):\n    return 2 * n\n",
    },
}


def zip_base64(files: dict[str, str], stored: frozenset[str] = frozenset()) -> str:
    """A zip of `files` (deflated, except the names in `stored`), base64-encoded."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            method = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            archive.writestr(name, text, compress_type=method)
    return base64.b64encode(buffer.getvalue()).decode()


def run_message(value: Any = None, **context: str) -> dict[str, Any]:
    return {"value": {} if value is None else value, **context}


class ProxyClient:
    """HTTP to a proxy over its unix socket."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket_path)),
            base_url="http://action",
            timeout=30,
        )

    def wait_healthy(self, alive: Callable[[], bool], timeout_s: float, describe: str) -> None:
        """Poll GET /health until it answers 200; fail if the proxy dies or takes too long."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not alive():
                raise AssertionError(f"the proxy exited during start-up: {describe}")
            if self._accepts_connections():
                try:
                    response = self.http.get("/health", timeout=1)
                    if response.status_code == 200:
                        assert response.json() == {"ok": True}
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.02)
        raise AssertionError(f"the proxy did not answer /health within {timeout_s} s: {describe}")

    def _accepts_connections(self) -> bool:
        # Probe with a plain socket: httpx leaks the socket of a refused unix connection.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket_path))
            except OSError:
                return False
            return True

    def init(
        self,
        code: str,
        *,
        main: str | None = None,
        binary: bool = False,
        env: dict[str, str] | None = None,
    ) -> httpx.Response:
        value: dict[str, Any] = {"name": "test", "code": code, "binary": binary}
        if main is not None:
            value["main"] = main
        if env is not None:
            value["env"] = env
        return self.http.post("/init", content=json.dumps({"value": value}))

    def run(self, value: Any = None, **context: str) -> httpx.Response:
        return self.http.post("/run", json=run_message(value, **context))

    def close(self) -> None:
        self.http.close()
