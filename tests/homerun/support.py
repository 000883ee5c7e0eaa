"""`homerun standalone` as a child process, started and stopped as the README runs it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 240  # docker may build images on a first start
STOP_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def fresh_data_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="hrsa", dir="/tmp"))


@dataclass
class Standalone:
    """One data directory served by `homerun standalone` on a loopback port; `start` and
    `stop` may alternate, and every start appends to `standalone.log` in the data directory.
    `banner` is what the latest start printed."""

    sandbox: str
    env: dict[str, str] = field(default_factory=dict)  # more variables for it
    data_dir: Path = field(default_factory=fresh_data_dir)
    port: int = field(default_factory=free_port)
    banner: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir / "standalone.log"

    def start(self) -> None:
        """Start and wait for the banner; the environment has no `HOMERUN_*` but ours."""
        env = (
            {k: v for k, v in os.environ.items() if not k.startswith("HOMERUN_")}
            | {
                "HOMERUN_DATA_DIR": str(self.data_dir),
                "HOMERUN_PORT": str(self.port),
                "HOMERUN_INVOKER_SANDBOX": self.sandbox,
            }
            | self.env
        )
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("a") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "homerun.cli", "standalone"],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        text = ""
        while time.monotonic() < deadline and self.process.poll() is None:
            text = self.log.read_bytes()[offset:].decode(errors="replace")
            if "actions/hello -H" in text:
                break
            time.sleep(0.2)
        assert "serving on" in text, text
        if self.sandbox == "docker":
            assert "using the docker sandbox" in text, text
        self.banner = text

    def stop(self) -> int | None:
        """SIGTERM, as an operator stops it; killed if it has not exited within a minute.
        Returns the exit status (None if it was not running)."""
        process, self.process = self.process, None
        if process is None:
            return None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def value(self, label: str) -> str:
        """A value the banner prints after `label` (`invoker id`, `guest auth`, ...)."""
        found = re.search(rf"{label}\s+(\S+)", self.banner)
        assert found, self.banner
        return found[1]

    @property
    def invoker_id(self) -> str:
        return self.value("invoker id")

    @property
    def seed_headers(self) -> dict[str, str]:
        """The operator's headers for the seed API."""
        return {
            "Authorization": f"Bearer {self.value('operator token')}",
            "X-Api-Key": self.value("operator API key"),
        }


@contextlib.contextmanager
def running(sandbox: str, **env: str) -> Iterator[Standalone]:
    """A started standalone with a fresh data directory and port (and these variables),
    stopped on exit."""
    server = Standalone(sandbox, env)
    try:
        server.start()
        yield server
    finally:
        server.stop()
