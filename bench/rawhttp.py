"""A minimal HTTP/1.1 client over asyncio streams, TCP or unix socket: a request is bytes
formatted once, a response is its status and body. It costs tens of microseconds a request
(httpx costs about a millisecond), so latency samples measure the server, not the client."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: `host:port`, or a unix socket."""

    host: str = "127.0.0.1"
    port: int = 0
    uds: Path | None = None

    @property
    def authority(self) -> str:
        return "action" if self.uds else f"{self.host}:{self.port}"


def format_request(
    endpoint: Endpoint, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {endpoint.authority}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive connection; `exchange` sends a request and reads its response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.reusable = True

    @classmethod
    async def open(cls, endpoint: Endpoint) -> Connection:
        if endpoint.uds is not None:
            reader, writer = await asyncio.open_unix_connection(str(endpoint.uds))
        else:
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length: int | None = None
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection" and value.strip().lower() == b"close":
                self.reusable = False
        if chunked:
            return status, await self._chunks()
        if length is None:
            self.reusable = False
            return status, await self._reader.read()
        return status, await self._reader.readexactly(length)

    async def _chunks(self) -> bytes:
        body = bytearray()
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await self._reader.readexactly(size + 2)
            if size == 0:
                return bytes(body)
            body += chunk[:-2]

    def close(self) -> None:
        self.reusable = False
        self._writer.close()


class Client:
    """Requests one after another on one connection, reconnecting when the server closes it."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._connection: Connection | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self._connection is None or not self._connection.reusable:
            self._connection = await Connection.open(self.endpoint)
        try:
            return await self._connection.exchange(request)
        except BaseException:
            self._connection.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
