"""HTTP to an action proxy over its unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import aiohttp

from invoker.sandbox import Exchange, ProvisionError

_UNREAD = (errno.EPIPE, errno.ECONNRESET)
_JSON = {"Content-Type": "application/json"}


class ProxyClient:
    """One keep-alive connection pool per container (aiohttp: its pool stays cheap with a
    hundred connections to one container, as a concurrent action has)."""

    def __init__(
        self, socket_path: Path, *, owner: int | None = None, any_answer: bool = False
    ) -> None:
        """To the proxy's unix socket, whose owner, if given, must be `owner`. With
        `any_answer`, any HTTP answer to the health probe means the proxy is ready (standard
        OpenWhisk runtime images, reached through a relay, have no /health). Constructed on
        the event loop that uses it."""
        self.socket_path = socket_path
        self.owner = owner
        self.any_answer = any_answer
        self._pinned: int | None = None  # an O_PATH descriptor of the proxy's socket
        # Made once the proxy answered (`wait_ready`), to its socket.
        self._http: aiohttp.ClientSession | None = None
        self._base = "http://action"

    def _pin(self) -> None:
        """Hold the proxy's socket by its inode, as the proxy made it before any action code
        ran, and connect to that inode from now on, never to whatever the path names then:
        the action could write where the socket lives (the process sandbox's private
        directory; the docker sandbox's until it is sealed) and replace it with a symlink to
        any socket on the host."""
        try:
            fd = os.open(self.socket_path, os.O_PATH | os.O_NOFOLLOW)
        except OSError as exc:
            raise ProvisionError(f"the action proxy's socket is gone: {exc}") from None
        found = os.fstat(fd)
        if not stat.S_ISSOCK(found.st_mode) or self.owner not in (None, found.st_uid):
            os.close(fd)
            raise ProvisionError("the action proxy's socket is not a socket of its own")
        self._pinned = fd
        self._http = _session(aiohttp.UnixConnector(path=f"/proc/self/fd/{fd}", limit=0))

    async def post(self, path: str, payload: dict[str, Any], timeout_s: float) -> Exchange:
        body = json.dumps(payload, separators=(",", ":")).encode()
        started = time.monotonic()
        if self._http is None:  # the proxy never answered: nothing can reach it
            return Exchange(None, b"", 0, delivered=False)
        try:
            async with self._http.post(
                self._base + path, data=body, headers=_JSON,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:  # fmt: skip
                content = await response.read()
        except TimeoutError:
            return Exchange(None, b"", _ms_since(started), timed_out=True)
        except aiohttp.ClientError as exc:
            return Exchange(None, b"", _ms_since(started), delivered=_reached(exc))
        return Exchange(response.status, content, _ms_since(started))

    async def wait_ready(self, timeout_s: float, alive: Any = None) -> None:
        """Poll `GET /health` until the proxy answers; ProvisionError after `timeout_s`.

        `alive`, if given, is a callable returning False once the container has died."""
        deadline = time.monotonic() + timeout_s
        delay = 0.002
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise ProvisionError("the action container exited during start-up")
            if await self._healthy():
                self._pin()
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        raise ProvisionError(f"the action proxy did not answer within {timeout_s:.0f} s")

    async def _healthy(self) -> bool:
        """One bare health probe on its own connection, always closed (failed connects
        through the pooled client can leave sockets behind)."""
        if not self.socket_path.exists():
            return False
        try:
            connect = asyncio.open_unix_connection(str(self.socket_path))
            reader, writer = await asyncio.wait_for(connect, 1.0)
        except (OSError, TimeoutError):
            return False
        try:
            writer.write(b"GET /health HTTP/1.1\r\nHost: action\r\nConnection: close\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 1.0)  # to EOF: Connection: close
            if self.any_answer:
                # The relay accepts connections before the action listens, and closes them
                # unanswered until it does.
                return answer.startswith(b"HTTP/")
            return answer.split(b" ", 2)[1:2] == [b"200"]
        except (OSError, TimeoutError, IndexError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._pinned is not None:
            os.close(self._pinned)
            self._pinned = None


def _session(connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    )


def _reached(exc: aiohttp.ClientError) -> bool:
    """Whether a failed request may have reached the action. Not when the connection could
    not be made, the write found the peer gone (EPIPE), or the peer closed with our request
    unread in its buffer (ECONNRESET: a proxy that read it and then died closes cleanly)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return False
    return not (isinstance(exc, aiohttp.ClientOSError) and exc.errno in _UNREAD)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
