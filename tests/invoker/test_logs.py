"""Activation logs (spec/openwhisk.md §5.3): the line format, sentinel framing across chunks and
threads, the size limit and its truncation line."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime

import pytest

from invoker.logs import (
    COLLECTION_FAILED_LINE,
    DEVELOPER_ERROR_LINE,
    LINE_MAX_CHARS,
    SENTINEL,
    WINDOW_MAX_CHARS,
    LogBuffer,
    LogCollection,
    LogLine,
    format_line,
    timestamp,
    truncation_line,
)

STAMP = "2016-02-11T16:46:56.842065025Z"
STAMP_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
LINE_RE = re.compile(rf"^(?P<time>{STAMP_RE}) (?P<stream>stdout|stderr): (?P<text>.*)$")


def epoch_ns(stamp: str) -> int:
    base, fraction = stamp[:-1].split(".")
    seconds = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return int(seconds) * 1_000_000_000 + int(fraction)


def parsed(lines: list[str]) -> list[tuple[str, str]]:
    """(stream, text) of each formatted line, checking the format on the way."""
    out = []
    for line in lines:
        match = LINE_RE.match(line)
        assert match is not None, f"badly formatted log line: {line!r}"
        out.append((match["stream"], match["text"]))
    return out


def expecting() -> LogBuffer:
    """A buffer of an unshared container, sent a /run: its output is expected."""
    buffer = LogBuffer()
    buffer.expect_request("/run", {"activation_id": "a"})
    return buffer


def concurrent(*activations: str) -> LogBuffer:
    """A buffer of a container initialised to run activations concurrently, then sent a /run
    for each of `activations`."""
    buffer = LogBuffer()
    buffer.expect_request("/init", {"value": {"env": {"__OW_ALLOW_CONCURRENT": "true"}}})
    for activation in activations:
        buffer.expect_request("/run", {"activation_id": activation})
    return buffer


def end_activation(buffer: LogBuffer) -> None:
    buffer.feed("stdout", SENTINEL + "\n")
    buffer.feed("stderr", SENTINEL + "\n")


# Timestamps and lines.


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (1_455_209_216_842_065_025, STAMP),
        (0, "1970-01-01T00:00:00.000000000Z"),
        (5, "1970-01-01T00:00:00.000000005Z"),
        (1_700_000_000_100_000_000, "2023-11-14T22:13:20.100000000Z"),
    ],
)
def test_timestamp_is_rfc3339_with_nanoseconds(epoch: int, expected: str) -> None:
    assert timestamp(epoch) == expected
    assert len(timestamp(epoch)) == 30


def test_timestamp_defaults_to_now() -> None:
    before = time.time_ns()
    stamp = timestamp()
    after = time.time_ns()
    assert re.fullmatch(STAMP_RE, stamp)
    assert len(stamp) == 30
    assert before <= epoch_ns(stamp) <= after


@pytest.mark.parametrize(
    ("time_", "stream", "text", "expected"),
    [
        (STAMP, "stdout", "hello", f"{STAMP} stdout: hello"),
        (STAMP, "stderr", "", f"{STAMP} stderr: "),
        (STAMP, "stdout", "  spaced  ", f"{STAMP} stdout:   spaced  "),
        ("short", "stdout", "x", "short" + " " * 25 + " stdout: x"),
    ],
)
def test_format_line(time_: str, stream: str, text: str, expected: str) -> None:
    assert format_line(time_, stream, text) == expected


def test_fixed_lines_are_worded_as_openwhisk_words_them() -> None:
    assert DEVELOPER_ERROR_LINE == (
        "The action did not initialize or run as expected. Log data might be missing."
    )
    assert COLLECTION_FAILED_LINE == (
        "There was an issue while collecting your logs. Data might be missing."
    )
    assert truncation_line(10_485_760) == (
        "Logs were truncated because the total bytes size exceeds the limit of 10485760 bytes."
    )


# LogCollection.add: the size limit.


def test_add_formats_lines_and_counts_bytes_with_their_newline() -> None:
    collection = LogCollection()
    collection.add(LogLine(STAMP, "stdout", "abc"), 100)
    collection.add(LogLine(STAMP, "stderr", "é"), 100)  # two bytes in UTF-8
    assert collection.lines == [f"{STAMP} stdout: abc", f"{STAMP} stderr: é"]
    assert collection.size == 4 + 3
    assert not collection.truncated
    assert collection.complete


@pytest.mark.parametrize(
    ("texts", "kept", "truncated"),
    [
        (["12345", "678"], ["12345", "678"], False),  # 6 + 4 bytes: exactly the limit
        (["12345", "6789"], ["12345"], True),  # 6 + 5 bytes: one over
        (["1234567890"], [], True),  # 11 bytes alone
        (["12345", "6789", "x", "y"], ["12345"], True),  # nothing after the truncation
        (["ééééé"], [], True),  # bytes, not characters, count: 11
    ],
)
def test_add_stops_at_the_limit_with_one_truncation_line(
    texts: list[str], kept: list[str], truncated: bool
) -> None:
    collection = LogCollection()
    for text in texts:
        collection.add(LogLine(STAMP, "stdout", text), 10)
    assert collection.truncated is truncated
    expected = [("stdout", text) for text in kept]
    if truncated:
        expected.append(
            ("stderr", "Logs were truncated because the total bytes size exceeds the limit of "
             "10 bytes.")
        )  # fmt: skip
    assert parsed(collection.lines) == expected


# LogBuffer: framing.


async def test_partial_lines_are_joined_across_chunks_per_stream() -> None:
    buffer = expecting()
    buffer.feed("stdout", "hel")
    buffer.feed("stderr", "war")
    buffer.feed("stdout", "lo\nwor")
    buffer.feed("stderr", "ning\n")
    buffer.feed("stdout", "ld\n\nlast")
    buffer.feed("stdout", "\n" + SENTINEL[:10])
    buffer.feed("stdout", SENTINEL[10:] + "\n")
    buffer.feed("stderr", SENTINEL + "\n")
    collection = await buffer.collect(1 << 20, wait_s=1.0)
    assert collection.complete
    assert sorted(parsed(collection.lines)) == sorted(
        [
            ("stdout", "hello"),
            ("stdout", "world"),
            ("stdout", ""),
            ("stdout", "last"),
            ("stderr", "warning"),
        ]
    )
    stdout = [text for stream, text in parsed(collection.lines) if stream == "stdout"]
    assert stdout == ["hello", "world", "", "last"]


async def test_feed_uses_the_given_time() -> None:
    buffer = expecting()
    buffer.feed("stdout", "one\ntwo\n", STAMP)
    end_activation(buffer)
    collection = await buffer.collect(1 << 20, wait_s=1.0)
    assert collection.lines == [f"{STAMP} stdout: one", f"{STAMP} stdout: two"]


async def test_collect_returns_one_activation_at_a_time() -> None:
    buffer = expecting()
    buffer.feed("stdout", "first\n")
    end_activation(buffer)
    one = await buffer.collect(1 << 20, wait_s=1.0)
    buffer.expect_request("/run", {"activation_id": "b"})
    buffer.feed("stderr", "second\n")
    end_activation(buffer)
    two = await buffer.collect(1 << 20, wait_s=1.0)
    assert (one.complete, parsed(one.lines)) == (True, [("stdout", "first")])
    assert (two.complete, parsed(two.lines)) == (True, [("stderr", "second")])


async def test_collect_waits_for_lines_that_arrive_later() -> None:
    buffer = expecting()
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, buffer.feed, "stdout", "late\n")
    loop.call_later(0.1, end_activation, buffer)
    collection = await buffer.collect(1 << 20, wait_s=10.0)
    assert collection.complete
    assert parsed(collection.lines) == [("stdout", "late")]


@pytest.mark.parametrize("streams", [(), ("stdout",), ("stderr",)], ids=["none", "out", "err"])
async def test_collect_without_both_sentinels_times_out_incomplete(
    streams: tuple[str, ...],
) -> None:
    buffer = expecting()
    buffer.feed("stdout", "partial output\n")
    for stream in streams:
        buffer.feed(stream, SENTINEL + "\n")
    started = time.monotonic()
    collection = await buffer.collect(1 << 20, wait_s=0.2)
    assert 0.15 <= time.monotonic() - started < 2.0
    assert not collection.complete
    assert parsed(collection.lines) == [("stdout", "partial output")]


async def test_a_sentinel_twice_on_one_stream_does_not_end_the_activation() -> None:
    buffer = expecting()
    buffer.feed("stdout", f"{SENTINEL}\n{SENTINEL}\n")
    collection = await buffer.collect(1 << 20, wait_s=0.1)
    assert not collection.complete


async def test_truncation_keeps_reading_to_the_sentinels() -> None:
    buffer = expecting()
    buffer.feed("stdout", "0123456789\n" * 5)
    end_activation(buffer)
    one = await buffer.collect(25, wait_s=1.0)
    assert one.complete and one.truncated
    assert parsed(one.lines) == [
        ("stdout", "0123456789"),
        ("stdout", "0123456789"),
        ("stderr", truncation_line(25)),
    ]
    buffer.expect_request("/run", {"activation_id": "b"})
    buffer.feed("stdout", "next activation\n")
    end_activation(buffer)
    two = await buffer.collect(25, wait_s=1.0)
    assert (two.complete, two.truncated) == (True, False)
    assert parsed(two.lines) == [("stdout", "next activation")]


async def test_close_flushes_unterminated_lines() -> None:
    buffer = expecting()
    buffer.feed("stdout", "no newline")
    buffer.feed("stderr", "done\n")
    buffer.close()
    collection = buffer.drain(1 << 20)
    assert sorted(parsed(collection.lines)) == [("stderr", "done"), ("stdout", "no newline")]


async def test_drain_takes_what_is_buffered_without_waiting() -> None:
    buffer = expecting()
    buffer.feed("stdout", "a\n")
    buffer.feed("stdout", SENTINEL + "\n")
    buffer.feed("stderr", "b\n")
    started = time.monotonic()
    collection = buffer.drain(1 << 20)
    assert time.monotonic() - started < 0.1
    assert not collection.complete  # no sentinels are coming after a crash
    assert parsed(collection.lines) == [("stdout", "a"), ("stderr", "b")]
    assert buffer.drain(1 << 20).lines == []


async def test_drain_applies_the_limit() -> None:
    buffer = expecting()
    buffer.feed("stderr", "abcdefghij\n" * 3)
    collection = buffer.drain(15)
    assert collection.truncated
    assert parsed(collection.lines) == [("stderr", "abcdefghij"), ("stderr", truncation_line(15))]
    assert buffer.drain(15).lines == []


# Activations sharing a container: lines tagged \x1e<id>\x1f by the proxy.


def tag(activation: str, text: str) -> str:
    return f"\x1e{activation}\x1f{text}\n"


async def test_tagged_lines_are_collected_per_activation() -> None:
    buffer = concurrent("a", "b")
    buffer.feed("stdout", "untagged, from the initialisation\n")
    buffer.feed("stdout", tag("a", "one of a") + tag("b", "one of b"))
    buffer.feed("stderr", tag("b", "two of b") + tag("b", SENTINEL))
    buffer.feed("stdout", tag("b", SENTINEL) + tag("a", "two of a"))
    buffer.feed("stdout", tag("a", SENTINEL))
    buffer.feed("stderr", tag("a", SENTINEL))

    b = await buffer.collect(1 << 20, wait_s=1.0, activation="b")
    a = await buffer.collect(1 << 20, wait_s=1.0, activation="a")
    assert (a.complete, b.complete) == (True, True)
    assert parsed(a.lines) == [("stdout", "one of a"), ("stdout", "two of a")]
    assert sorted(parsed(b.lines)) == [("stderr", "two of b"), ("stdout", "one of b")]
    untagged = buffer.drain(1 << 20)
    assert parsed(untagged.lines) == [("stdout", "untagged, from the initialisation")]


async def test_lines_after_an_activation_was_collected_are_dropped() -> None:
    buffer = concurrent("a", "b")
    buffer.feed("stdout", tag("a", "mine") + tag("a", SENTINEL))
    buffer.feed("stderr", tag("a", SENTINEL))
    assert parsed((await buffer.collect(1 << 20, 1.0, "a")).lines) == [("stdout", "mine")]
    buffer.feed("stdout", tag("a", "a timer it left behind"))
    assert buffer.drain(1 << 20, "a").lines == []
    assert buffer.drain(1 << 20).lines == []  # nor does it land among the untagged ones


async def test_an_activation_whose_sentinels_never_come_times_out_alone() -> None:
    buffer = concurrent("a", "b")
    buffer.feed("stdout", tag("a", "started") + tag("b", "done") + tag("b", SENTINEL))
    buffer.feed("stderr", tag("b", SENTINEL))
    a = await buffer.collect(1 << 20, wait_s=0.1, activation="a")
    b = await buffer.collect(1 << 20, wait_s=0.1, activation="b")
    assert (a.complete, parsed(a.lines)) == (False, [("stdout", "started")])
    assert (b.complete, parsed(b.lines)) == (True, [("stdout", "done")])


# What is buffered, and for how long.


async def test_output_between_activations_is_dropped() -> None:
    # A process the last activation left behind keeps writing while the container is idle.
    buffer = expecting()
    buffer.feed("stdout", "mine\n")
    end_activation(buffer)
    assert parsed((await buffer.collect(1 << 20, 1.0)).lines) == [("stdout", "mine")]
    buffer.feed("stdout", "left behind\n" * 1000)
    buffer.feed("stderr", "x" * 1000)
    buffer.expect_request("/run", {"activation_id": "b"})
    buffer.feed("stderr", "next\n")
    end_activation(buffer)
    assert parsed((await buffer.collect(1 << 20, 1.0)).lines) == [("stderr", "next")]


async def test_output_before_any_request_is_dropped() -> None:
    buffer = LogBuffer()  # a stem cell, say: started, never sent anything
    buffer.feed("stdout", "booting\n")
    buffer.expect_request("/init", {"value": {"env": {}}})
    buffer.feed("stdout", "initialised\n")
    end_activation(buffer)
    assert parsed((await buffer.collect(1 << 20, 1.0)).lines) == [("stdout", "initialised")]


async def test_lines_tagged_with_an_activation_that_does_not_run_here_are_dropped() -> None:
    buffer = concurrent("a")
    buffer.feed("stdout", tag("b", "forged") + tag("a", "real") + tag("a", SENTINEL))
    buffer.feed("stderr", tag("a", SENTINEL))
    assert parsed((await buffer.collect(1 << 20, 1.0, "a")).lines) == [("stdout", "real")]
    assert buffer.drain(1 << 20, "b").lines == []


async def test_a_window_holds_at_most_its_bound_and_says_it_was_truncated() -> None:
    buffer = expecting()
    line = "y" * 1023
    for _ in range(WINDOW_MAX_CHARS // 1024 + 500):
        buffer.feed("stdout", line + "\n")
    window = buffer._untagged
    assert window is not None and window.size <= WINDOW_MAX_CHARS + 1024
    end_activation(buffer)  # the sentinels still pass
    collection = await buffer.collect(WINDOW_MAX_CHARS, 1.0)
    assert collection.complete and collection.truncated


async def test_a_line_without_an_end_is_cut_at_the_maximum_length() -> None:
    buffer = expecting()
    buffer.feed("stdout", "z" * (LINE_MAX_CHARS * 2 + 10))
    assert len(buffer._partial["stdout"]) == 10
    buffer.feed("stdout", "\n")
    end_activation(buffer)
    lines = parsed((await buffer.collect(1 << 30, 1.0)).lines)
    assert [len(text) for _, text in lines] == [LINE_MAX_CHARS, LINE_MAX_CHARS, 10]
