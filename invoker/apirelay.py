"""The door from action containers to the Homerun API, and to nothing else.

Containers have no network by default (loopback only) or, with egress allowed, a bridge that
does not reach the invoker's host loopback, where the API usually listens. So the invoker
serves a unix socket, bind-mounted read-only into every container of our runtime images, and
pipes each connection made to it to the API: the target is fixed by the invoker (the
operator's `HOMERUN_INVOKER_API_URL`, else the API host of the activations it runs), never by
the action. Inside the container the proxy listens on `127.0.0.1:API_PORT_IN_CONTAINER` and
pipes to the socket, and `__OW_API_HOST` names that address, so the `openwhisk` client and any
HTTP client reach the API as on Adobe I/O Runtime. An `https` target is reached over TLS, the
certificate checked against the system's trust store.

Bytes are piped as they come, both ways, half-closes included; at most `max_connections` are
open at a time (more are closed unanswered), so containers cannot exhaust the invoker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

API_PORT_IN_CONTAINER = 3233
API_HOST_IN_CONTAINER = f"http://127.0.0.1:{API_PORT_IN_CONTAINER}"
_CHUNK = 64 * 1024


class ApiRelay:
    def __init__(self, path: Path, target: str | None = None, max_connections: int = 512) -> None:
        self.path = path
        self.max_connections = max_connections
        self._target = target
        self._server: asyncio.Server | None = None
        self._starting = asyncio.Lock()
        self._open = 0

    @property
    def target(self) -> str | None:
        return self._target

    def learn(self, api_host: str) -> None:
        """Without a configured target, the API host of the activations the invoker runs."""
        if api_host and self._target is None:
            self._target = api_host

    async def start(self) -> None:
        """Serve the socket (once; a stale one from an earlier run is replaced)."""
        async with self._starting:
            if self._server is not None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.parent.chmod(0o755)
            self.path.unlink(missing_ok=True)
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
            self.path.chmod(0o666)  # containers run as another uid

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
            self.path.unlink(missing_ok=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._open >= self.max_connections or self._target is None:
            client_w.close()
            return
        self._open += 1
        try:
            api_r, api_w = await self._connect(self._target)
        except (OSError, ValueError) as exc:
            log.warning("api relay: cannot reach %s: %s", self._target, exc)
            client_w.close()
            self._open -= 1
            return
        try:
            await asyncio.gather(_pipe(client_r, api_w), _pipe(api_r, client_w))
        finally:
            self._open -= 1
            for writer in (api_w, client_w):
                writer.close()

    @staticmethod
    async def _connect(target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        url = urlsplit(target)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {target!r}")
        tls = url.scheme == "https"
        port = url.port or (443 if tls else 80)
        context = ssl.create_default_context() if tls else None
        return await asyncio.wait_for(
            asyncio.open_connection(url.hostname, port, ssl=context), timeout=10
        )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close the other side."""
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        writer.close()  # one side went away: so does the other
