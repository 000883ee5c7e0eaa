"""The docker sandbox's reading of the engine's attach stream (the containers themselves are
driven in test_sandboxes.py)."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import cast

import docker
import pytest

from invoker.docker_sandbox import ACTION_UID, DockerSandbox, _Output
from invoker.logs import SENTINEL, LogBuffer
from invoker.sandbox import ProvisionError


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def expecting() -> LogBuffer:
    buffer = LogBuffer()
    buffer.expect_request("/run", {"activation_id": "a"})
    return buffer


async def collected(buffer: LogBuffer) -> list[tuple[str, str]]:
    collection = await buffer.collect(1 << 20, wait_s=1.0)
    assert collection.complete
    return [
        (line.split(" ", 2)[1].rstrip(":"), line.split(": ", 1)[1]) for line in collection.lines
    ]


STREAM = (
    frame(1, "héllo ".encode())
    + frame(2, b"oops\n")
    + frame(1, "wörld\n".encode())
    + frame(1, (SENTINEL + "\n").encode())
    + frame(2, (SENTINEL + "\n").encode())
)
EXPECTED = [("stderr", "oops"), ("stdout", "héllo wörld")]


async def test_frames_arriving_whole() -> None:
    buffer = expecting()
    _Output(buffer).data_received(STREAM)
    assert sorted(await collected(buffer)) == EXPECTED


async def test_frames_split_at_every_byte() -> None:
    """Chunks end anywhere: inside a header, inside a payload, inside a UTF-8 sequence."""
    for size in (1, 3, 7, 9):
        buffer = expecting()
        output = _Output(buffer)
        for start in range(0, len(STREAM), size):
            output.data_received(STREAM[start : start + size])
        assert sorted(await collected(buffer)) == EXPECTED, size


async def test_a_character_split_across_frames() -> None:
    buffer = expecting()
    output = _Output(buffer)
    word = "日本\n".encode()
    output.data_received(frame(1, word[:2]) + frame(1, word[2:]))
    output.data_received(
        frame(1, (SENTINEL + "\n").encode()) + frame(2, (SENTINEL + "\n").encode())
    )
    assert await collected(buffer) == [("stdout", "日本")]


def test_the_end_of_the_stream_is_the_end_of_the_container() -> None:
    output = _Output(LogBuffer.__new__(LogBuffer))
    assert not output.ended
    output.connection_lost(None)
    assert output.ended


def test_the_sandbox_refuses_to_run_as_its_containers_user(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Owning the socket directories, containers of its uid could make them writable again.
    monkeypatch.setattr(os, "geteuid", lambda: ACTION_UID)
    with pytest.raises(ProvisionError, match=f"uid {ACTION_UID}"):
        DockerSandbox(tmp_path, "inv", client=cast(docker.DockerClient, object()))
