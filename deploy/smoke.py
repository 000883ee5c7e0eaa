"""The driver of deploy/smoke.sh. Standard library only: it runs with the machine's python3,
before and beside the virtualenv under test.

`port PREFERRED` prints PREFERRED when it is free on loopback, else a free port.
`run` waits for the banner of `homerun standalone` in its log, then creates and invokes a
nodejs and a python action through both the OpenWhisk API and the seed API, checks every
result and the activation record of every invocation, and appends timings to a summary file.
It exits non-zero, saying what failed, on the first failure.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BANNER_HEAD = "Homerun standalone is serving on"
REQUIRED = {
    "url": re.compile(rf"^{BANNER_HEAD} (http://\S+?)/?$"),
    "auth": re.compile(r"^  guest auth +(\S+:\S+)$"),
    "token": re.compile(r"^  operator token +(\S+)$"),
    "api_key": re.compile(r"^  operator API key +(\S+)$"),
}
INVOKER = re.compile(r"^  invoker id +(\S+)$")
SANDBOX = re.compile(r"using the (docker|process) sandbox")
# Lines that mark the phases: deploy/standalone.sh's last step is `exec homerun standalone`,
# whose first line is this one.
SERVER_START = "preparing the database"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
REQUEST_TIMEOUT = 180  # a cold start may pull a runtime image into the docker sandbox
RECORD_WAIT = 15  # seconds an activation record may take to be readable after the result

# Opens without any proxy from the environment: everything here is on loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SmokeFailure(Exception):
    """A check that did not hold; the message says which and what was seen."""


@dataclass(frozen=True)
class Case:
    api: str  # "openwhisk" or "seed"
    kind: str
    name: str
    code: str
    expected: dict[str, Any]


def cases() -> list[Case]:
    made = []
    for api in ("openwhisk", "seed"):
        made.append(
            Case(
                api,
                "nodejs:22",
                f"smoke-{api}-node",
                "function main(p) { return {hi: p.name, rt: 'node'}; }",
                {"hi": api, "rt": "node"},
            )
        )
        made.append(
            Case(
                api,
                "python:3.11",
                f"smoke-{api}-python",
                "def main(args):\n    return {'hi': args.get('name'), 'rt': 'python'}\n",
                {"hi": api, "rt": "python"},
            )
        )
    return made


def say(message: str) -> None:
    print(f"smoke: {message}", flush=True)


def free_port(preferred: int) -> int:
    """`preferred` if a server could listen on it (as uvicorn does, with SO_REUSEADDR)."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(OSError):
                probe.bind(("127.0.0.1", port))
                found: int = probe.getsockname()[1]
                return found
    raise SmokeFailure("no free port on 127.0.0.1")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Banner:
    url: str
    auth: str
    token: str
    api_key: str
    invoker: str | None
    sandbox: str | None
    setup_s: float | None  # launch until `homerun standalone` starts (venv and install)
    server_s: float | None  # `homerun standalone` start until the banner
    total_s: float  # launch until the banner


def parse_banner(lines: list[str]) -> dict[str, str] | None:
    found: dict[str, str] = {}
    head = next((i for i, line in enumerate(lines) if line.startswith(BANNER_HEAD)), None)
    if head is None:
        return None
    for line in lines[head:]:
        for key, pattern in (*REQUIRED.items(), ("invoker", INVOKER)):
            match = pattern.match(line)
            if match and key not in found:
                found[key] = match[1]
    return found if all(key in found for key in REQUIRED) else None


def wait_for_banner(log: Path, pid: int, started: float, timeout: float) -> Banner:
    """Follow the log, echoing its `==>` progress lines, until the whole banner is there."""
    seen = 0
    server_at: float | None = None
    sandbox: str | None = None
    next_note = time.time() + 30
    last = ""
    while True:
        now = time.time()
        text = ANSI.sub("", log.read_text(errors="replace")) if log.exists() else ""
        lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
        for line in lines[seen:]:
            if line.startswith("==>"):
                say(f"[{now - started:6.1f} s] {line}")
            if server_at is None and SERVER_START in line:
                server_at = now
            match = SANDBOX.search(line)
            if match:
                sandbox = match[1]
        seen = max(seen, len(lines))
        last = lines[-1] if lines else last
        found = parse_banner(lines)
        if found:
            return Banner(
                url=found["url"],
                auth=found["auth"],
                token=found["token"],
                api_key=found["api_key"],
                invoker=found.get("invoker"),
                sandbox=sandbox,
                setup_s=None if server_at is None else server_at - started,
                server_s=None if server_at is None else now - server_at,
                total_s=now - started,
            )
        if not alive(pid):
            raise SmokeFailure("`bash deploy/standalone.sh` exited before printing its banner")
        if now - started > timeout:
            raise SmokeFailure(f"no banner within {timeout:.0f} s")
        if now >= next_note:
            say(
                f"[{now - started:6.1f} s] still waiting for the banner ('{BANNER_HEAD} ...'); "
                f"last log line: {last[:160]!r}"
            )
            next_note = now + 30
        time.sleep(0.1)


class Client:
    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.base = base
        self.headers = headers

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={**self.headers, "Content-Type": "application/json", "Accept": "*/*"},
        )
        try:
            with OPENER.open(request, timeout=REQUEST_TIMEOUT) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except OSError as error:
            raise SmokeFailure(f"{method} {path}: {error}") from error
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def expect(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        if status != 200:
            raise SmokeFailure(f"{method} {path} answered {status}: {answer!r}"[:2000])
        return answer


def check_result(what: str, answer: Any, expected: dict[str, Any]) -> str:
    """The activation id of a blocking invocation's answer whose result is `expected`."""
    response = answer.get("response") if isinstance(answer, dict) else None
    if not isinstance(response, dict) or response.get("result") != expected:
        raise SmokeFailure(f"{what}: expected result {expected}, got {answer!r}"[:2000])
    if response.get("status") != "success" or response.get("success") is not True:
        raise SmokeFailure(f"{what}: not a success: {response!r}")
    activation_id = answer.get("activationId")
    if not isinstance(activation_id, str) or not activation_id:
        raise SmokeFailure(f"{what}: no activationId in {answer!r}")
    return activation_id


def invoke(case: Case, openwhisk: Client, seed: Client) -> str:
    """Create and invoke the case's action through its API; return the activation id."""
    if case.api == "openwhisk":
        path = f"/api/v1/namespaces/_/actions/{case.name}"
        exec_ = {"kind": case.kind, "code": case.code}
        openwhisk.expect("PUT", f"{path}?overwrite=true", {"exec": exec_})
        answer = openwhisk.expect("POST", f"{path}?blocking=true", {"name": case.api})
    else:
        path = "/runtime/namespaces/guest/guest/actions"
        body = {"name": case.name, "exec": {"kind": case.kind}, "code": case.code}
        seed.expect("POST", path, body)
        answer = seed.expect("POST", f"{path}/{case.name}", {"name": case.api})
    return check_result(f"{case.api} {case.kind} {case.name}", answer, case.expected)


def check_record(openwhisk: Client, case: Case, activation_id: str) -> None:
    path = f"/api/v1/namespaces/_/activations/{activation_id}"
    deadline = time.monotonic() + RECORD_WAIT
    while True:
        status, record = openwhisk.call("GET", path)
        if status != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if status != 200 or not isinstance(record, dict):
        raise SmokeFailure(f"GET {path} answered {status}: {record!r}"[:2000])
    response = record.get("response") or {}
    if (
        record.get("name") != case.name
        or record.get("activationId") != activation_id
        or response.get("status") != "success"
        or response.get("result") != case.expected
    ):
        raise SmokeFailure(
            f"activation {activation_id} of {case.name}: expected name {case.name}, status "
            f"success, result {case.expected}; got {record!r}"[:2000]
        )


def exercise(banner: Banner, port: int) -> list[str]:
    """Every case through its API, then every activation record; returns summary lines."""
    if not banner.url.endswith(f":{port}"):
        raise SmokeFailure(f"the banner says {banner.url}, expected port {port}")
    basic = base64.b64encode(banner.auth.encode()).decode()
    openwhisk = Client(banner.url, {"Authorization": f"Basic {basic}"})
    seed = Client(
        banner.url, {"Authorization": f"Bearer {banner.token}", "X-Api-Key": banner.api_key}
    )
    lines = []
    started = time.monotonic()
    done: list[tuple[Case, str]] = []
    for case in cases():
        begun = time.monotonic()
        activation_id = invoke(case, openwhisk, seed)
        took = time.monotonic() - begun
        say(f"{case.api:9} {case.kind:11} {case.name}: {took:5.2f} s, activation {activation_id}")
        lines.append(f"  {case.api:9} {case.kind:11} create + invoke {took:6.2f} s")
        done.append((case, activation_id))
    invoked = time.monotonic() - started
    for case, activation_id in done:
        check_record(openwhisk, case, activation_id)
    say(f"{len(done)} activation records: name, status success and result as returned")
    lines.append(f"  {len(done)} invocations {invoked:6.2f} s; their activation records checked")
    return lines


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:6.1f} s"


def run(args: argparse.Namespace) -> int:
    log = Path(args.log)
    try:
        banner = wait_for_banner(log, args.pid, args.started, args.timeout)
        say(
            f"banner after {banner.total_s:.1f} s: {banner.url}, invoker id "
            f"{banner.invoker or '(none printed)'}, {banner.sandbox or 'unknown'} sandbox"
        )
        lines = [
            f"  venv creation + install  {seconds(banner.setup_s)}  (launch to `homerun "
            "standalone`)",
            f"  start to banner          {seconds(banner.server_s)}  (`homerun standalone` "
            f"to banner; {banner.sandbox or 'unknown'} sandbox)",
            f"  launch to banner         {seconds(banner.total_s)}",
            *exercise(banner, args.port),
        ]
    except SmokeFailure as failure:
        say(f"FAILED: {failure}")
        return 1
    with Path(args.summary).open("a") as summary:
        summary.write("\n".join(lines) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    port = commands.add_parser("port", help="print a port to serve on")
    port.add_argument("preferred", type=int)
    go = commands.add_parser("run", help="wait for the banner, then invoke and check")
    go.add_argument("--log", required=True, help="the standalone's log file")
    go.add_argument("--pid", type=int, required=True, help="the standalone's process id")
    go.add_argument("--port", type=int, required=True, help="the port it serves on")
    go.add_argument("--started", type=float, required=True, help="launch time (epoch s)")
    go.add_argument("--timeout", type=float, default=360, help="seconds to wait for it")
    go.add_argument("--summary", required=True, help="append timing lines to this file")
    args = parser.parse_args()
    if args.command == "port":
        print(free_port(args.preferred))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
