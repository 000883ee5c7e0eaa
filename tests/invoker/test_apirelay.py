"""The API relay: each connection to its unix socket is piped to the target it was given (or
learned), both ways with half-closes, and to nothing the client chooses."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from invoker.apirelay import ApiRelay


class Upstream:
    """A TCP server on loopback that answers each connection with what it read, once the
    client half-closed, prefixed with its name."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            data = await reader.read()  # to end of stream: the relay passes the half-close on
            writer.write(self.name + data)
            await writer.drain()
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    upstream = Upstream(b"api:")
    upstream.server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    yield upstream
    upstream.server.close()


@contextlib.asynccontextmanager
async def serving(relay: ApiRelay) -> AsyncIterator[ApiRelay]:
    await relay.start()
    try:
        yield relay
    finally:
        await relay.close()


@contextlib.contextmanager
def socket_bound() -> Iterator[int]:
    """A loopback TCP port that is bound but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def exchange(path: Path, data: bytes) -> bytes:
    """What the relay answers `data`; b"" when it closed the connection unanswered."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(data)
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:  # closed with `data` unread
        return b""
    finally:
        writer.close()


async def test_pipes_each_connection_to_its_target_both_ways(
    tmp_path: Path, upstream: Upstream
) -> None:
    async with serving(ApiRelay(tmp_path / "api" / "api.sock", upstream.url)) as relay:
        mode = relay.path.stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o666  # other uids connect
        payload = b"GET /api/v1 HTTP/1.1\r\n\r\n" + bytes(range(256)) * 1024
        answers = await asyncio.gather(*(exchange(relay.path, payload) for _ in range(5)))
        assert answers == [b"api:" + payload] * 5
        assert upstream.connections == 5
    assert not relay.path.exists()


async def test_without_a_target_it_learns_the_first_api_host_and_keeps_it(
    tmp_path: Path, upstream: Upstream
) -> None:
    async with serving(ApiRelay(tmp_path / "api.sock")) as relay:
        assert await exchange(relay.path, b"early") == b""  # nowhere to go yet: closed
        relay.learn(upstream.url)
        relay.learn("http://127.0.0.1:9")  # another activation's claim changes nothing
        assert relay.target == upstream.url
        assert await exchange(relay.path, b"hello") == b"api:hello"


async def test_a_configured_target_is_not_replaced_by_what_activations_say(
    tmp_path: Path, upstream: Upstream
) -> None:
    relay = ApiRelay(tmp_path / "api.sock", upstream.url)
    relay.learn("http://127.0.0.1:9")
    assert relay.target == upstream.url


async def test_an_unreachable_target_closes_the_connection(tmp_path: Path) -> None:
    with socket_bound() as port:  # bound, not listening: refused
        async with serving(ApiRelay(tmp_path / "api.sock", f"http://127.0.0.1:{port}")) as relay:
            assert await exchange(relay.path, b"hello") == b""


async def test_connections_beyond_the_cap_are_closed_unanswered(
    tmp_path: Path, upstream: Upstream
) -> None:
    async with serving(ApiRelay(tmp_path / "api.sock", upstream.url, max_connections=1)) as relay:
        held_r, held_w = await asyncio.open_unix_connection(str(relay.path))
        held_w.write(b"held")
        await asyncio.sleep(0.2)  # the first connection is piped (its upstream waits for EOF)
        assert await exchange(relay.path, b"second") == b""
        held_w.write_eof()
        assert await asyncio.wait_for(held_r.read(), 10) == b"api:held"
        held_w.close()
        await asyncio.sleep(0.1)
        assert await exchange(relay.path, b"third") == b"api:third"  # room again


async def test_a_stale_socket_from_an_earlier_run_is_replaced(
    tmp_path: Path, upstream: Upstream
) -> None:
    path = tmp_path / "api.sock"
    path.write_text("stale")
    async with serving(ApiRelay(path, upstream.url)):
        assert await exchange(path, b"x") == b"api:x"
