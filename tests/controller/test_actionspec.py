"""Pure rules for action writes (controller/actionspec.py)."""

from __future__ import annotations

import base64

import pytest

from controller import messages
from controller.actionspec import (
    ExecSpec,
    LimitsSpec,
    bump_version,
    check_kv_size,
    infer_binary,
    key_values,
    kv_size,
    merge_annotations,
    parse_version,
    resolve_exec,
    resolve_limits,
    with_server_annotations,
)
from controller.domain import ActionLimits, Exec, KeyValue
from controller.errors import InvalidInput, TooLarge
from controller.limits import SystemLimits
from controller.runtimes import Manifest, Runtime

SYSTEM = SystemLimits()
MANIFEST = Manifest(
    {
        "nodejs": (
            Runtime(kind="nodejs:16", image="node16", deprecated=True),
            Runtime(kind="nodejs:18", image="node18", default=True),
        ),
        "python": (Runtime(kind="python:3.11", image="py311", default=True),),
    }
)
ZIP_BASE64 = base64.b64encode(b"PK\x03\x04 a zip file, more or less \x00\xff").decode()


def kv(key: str, value: object) -> KeyValue:
    return KeyValue(key, value)


# infer_binary


@pytest.mark.parametrize(
    "code",
    # Any non-empty base64 text counts, even a word that happens to be valid base64.
    ["abcd", "main", "ab==", "abc=", "UEsDBA==", ZIP_BASE64, f"  {ZIP_BASE64}\n", "A+/9" * 100],
)
def test_base64_code_is_binary(code: str) -> None:
    assert infer_binary(code)


@pytest.mark.parametrize(
    "code",
    [
        "",
        "   ",
        "abc",
        "a===",
        "abcde",
        "ab=c",
        "ab-_",
        "abcd efgh",
        "function main(params) { return params }",
        "def main(args):\n    return args\n",
    ],
)
def test_text_code_is_not_binary(code: str) -> None:
    assert not infer_binary(code)


# versions


@pytest.mark.parametrize(
    ("version", "parsed"),
    [("0.0.1", (0, 0, 1)), ("1.2.3", (1, 2, 3)), ("10.20.30", (10, 20, 30)), ("0.1.0", (0, 1, 0))],
)
def test_parse_version(version: str, parsed: tuple[int, int, int]) -> None:
    assert parse_version(version) == parsed


@pytest.mark.parametrize(
    "version",
    ["0.0.0", "", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "v1.2.3", "1.2.3-beta",
     " 1.2.3", "1.2.3\n", "-1.2.3", "a.b.c"],
)  # fmt: skip
def test_parse_version_rejects(version: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_version(version)
    assert caught.value.message == f"version '{version}' is not a semantic version such as 0.0.1"


@pytest.mark.parametrize(
    ("old", "new"),
    [("0.0.1", "0.0.2"), ("0.0.9", "0.0.10"), ("1.2.3", "1.2.4"), ("2.0.99", "2.0.100")],
)
def test_bump_version_increments_patch(old: str, new: str) -> None:
    assert bump_version(old) == new


def test_bump_version_rejects_invalid() -> None:
    with pytest.raises(InvalidInput):
        bump_version("0.0.0")


# sizes and keys


@pytest.mark.parametrize(
    ("pairs", "size"),
    [
        ([], 0),
        ([kv("a", "b")], 1 + 3),
        ([kv("a", None)], 1 + 4),
        ([kv("a", True)], 1 + 4),
        ([kv("n", 12345)], 1 + 5),
        ([kv("key", {"x": [1, 2]})], 3 + len('{"x":[1,2]}')),
        ([kv("a", "b"), kv("cd", [])], 4 + 4),
        ([kv("q", 'say "hi"')], 1 + len('"say \\"hi\\""')),
    ],
)
def test_kv_size_counts_keys_and_compact_json(pairs: list[KeyValue], size: int) -> None:
    assert kv_size(pairs) == size


def test_kv_size_counts_utf8_bytes() -> None:
    # OpenWhisk measures the UTF-8 bytes of the key and of the compact JSON value; compact
    # JSON keeps non-ASCII characters as they are (no \uXXXX escapes).
    key, value = "ключ", "значение"
    assert kv_size([kv(key, value)]) == len(key.encode()) + len(f'"{value}"'.encode())


def test_check_kv_size_allows_the_limit_and_refuses_one_byte_more() -> None:
    pairs = [kv("a", "bc")]  # 1 + 4 = 5 bytes
    check_kv_size("parameters", pairs, 5)
    with pytest.raises(TooLarge) as caught:
        check_kv_size("parameters", pairs, 4)
    assert caught.value.message == "parameters larger than allowed: 5 > 4 bytes."


def test_a_key_given_twice_keeps_its_last_value_at_its_first_place() -> None:
    given = [KeyValue("a", 1, True), KeyValue("b", 2), KeyValue("A", 3), KeyValue("a", 4)]
    assert key_values(given) == (KeyValue("a", 4), KeyValue("b", 2), KeyValue("A", 3))
    assert key_values([KeyValue("p", 1, True)]) == (KeyValue("p", 1, True),)
    assert key_values([KeyValue("p", 1, True)], keep_init=False) == (KeyValue("p", 1),)
    assert key_values(None) is None


# limits


def test_resolve_limits_defaults() -> None:
    # Adobe's defaults: 200 activations at once in a container of a kind that can
    assert resolve_limits(None, None, SYSTEM) == ActionLimits(60_000, 256, 10, 200)
    assert resolve_limits(LimitsSpec(), None, SYSTEM) == ActionLimits(60_000, 256, 10, 200)


def test_resolve_limits_defaults_follow_system_limits() -> None:
    system = SystemLimits(timeout_default=1000, memory_default=512, logs_default=0)
    assert resolve_limits(None, None, system) == ActionLimits(1000, 512, 0, 200)


def test_resolve_limits_supplied_values_win() -> None:
    requested = LimitsSpec(timeout=100, memory=4096, logs=0)
    assert resolve_limits(requested, None, SYSTEM) == ActionLimits(100, 4096, 0, 200)


def test_resolve_limits_keeps_current_values_not_supplied() -> None:
    current = ActionLimits(timeout=5000, memory=1024, logs=2)
    assert resolve_limits(LimitsSpec(memory=128), current, SYSTEM) == ActionLimits(5000, 128, 2, 1)
    assert resolve_limits(None, current, SYSTEM) == current


@pytest.mark.parametrize(
    ("requested", "resolved"),
    [
        (LimitsSpec(timeout=100), ActionLimits(100, 256, 10, 200)),
        (LimitsSpec(timeout=10_800_000), ActionLimits(10_800_000, 256, 10, 200)),
        (LimitsSpec(memory=128), ActionLimits(60_000, 128, 10, 200)),
        (LimitsSpec(memory=4096), ActionLimits(60_000, 4096, 10, 200)),
        (LimitsSpec(logs=0), ActionLimits(60_000, 256, 0, 200)),
        (LimitsSpec(logs=10), ActionLimits(60_000, 256, 10, 200)),
        (LimitsSpec(concurrency=1), ActionLimits(60_000, 256, 10, 1)),
    ],
)
def test_resolve_limits_accepts_bounds(requested: LimitsSpec, resolved: ActionLimits) -> None:
    assert resolve_limits(requested, None, SYSTEM) == resolved


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        (LimitsSpec(timeout=99), "limits.timeout: duration 99 milliseconds below allowed "
         "threshold of 100 milliseconds"),
        (LimitsSpec(timeout=10_800_001), "limits.timeout: duration 10800001 milliseconds exceeds "
         "allowed threshold of 10800000 milliseconds"),
        (LimitsSpec(memory=127), "limits.memory: memory size 127 MB below allowed threshold of "
         "128 MB"),
        (LimitsSpec(memory=4097), "limits.memory: memory size 4097 MB exceeds allowed threshold "
         "of 4096 MB"),
        (LimitsSpec(logs=-1), "limits.logs: log size -1 MB below allowed threshold of 0 MB"),
        (LimitsSpec(logs=11), "limits.logs: log size 11 MB exceeds allowed threshold of 10 MB"),
        (LimitsSpec(concurrency=0), "limits.concurrency: concurrency 0 below allowed threshold "
         "of 1"),
        (LimitsSpec(concurrency=501), "limits.concurrency: concurrency 501 exceeds allowed "
         "threshold of 500"),
    ],
)  # fmt: skip
def test_resolve_limits_rejects_out_of_range(requested: LimitsSpec, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_limits(requested, ActionLimits(60_000, 256, 10), SYSTEM)
    assert caught.value.message == message


def test_a_kind_that_runs_one_activation_at_a_time_has_concurrency_1() -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_limits(LimitsSpec(concurrency=5), None, SYSTEM, concurrent=False)
    assert caught.value.message == (
        "limits.concurrency: concurrency 5 exceeds allowed threshold of 1"
    )
    openwhisk = SystemLimits(concurrency_default=1)
    assert resolve_limits(None, None, openwhisk).concurrency == 1
    assert resolve_limits(None, None, SYSTEM).concurrency == 200
    assert resolve_limits(None, None, SYSTEM, concurrent=False).concurrency == 1
    kept = ActionLimits(60_000, 256, 10, concurrency=50)  # a nodejs action turned python
    assert resolve_limits(None, kept, SYSTEM, concurrent=False).concurrency == 1
    assert (
        resolve_limits(LimitsSpec(concurrency=1), kept, SYSTEM, concurrent=False).concurrency == 1
    )


def test_resolve_limits_uses_configured_ranges() -> None:
    system = SystemLimits(memory_max=512, timeout_max=300_000)
    with pytest.raises(InvalidInput) as caught:
        resolve_limits(LimitsSpec(memory=1024), None, system)
    assert caught.value.message == (
        "limits.memory: memory size 1024 MB exceeds allowed threshold of 512 MB"
    )
    with pytest.raises(InvalidInput) as caught:
        resolve_limits(LimitsSpec(timeout=600_000), None, system)
    assert caught.value.message == (
        "limits.timeout: duration 600000 milliseconds exceeds allowed threshold of 300000 "
        "milliseconds"
    )


# exec


@pytest.mark.parametrize("kind", [None, ""])
def test_resolve_exec_requires_a_kind(kind: str | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_exec(ExecSpec(kind=kind, code="x"), MANIFEST, SYSTEM)
    assert caught.value.message == "exec.kind: 'kind' must be a string defined in 'exec'"


@pytest.mark.parametrize(
    ("kind", "resolved"),
    [("nodejs:18", "nodejs:18"), ("nodejs:default", "nodejs:18"), ("python:3.11", "python:3.11")],
)
def test_resolve_exec_code_action(kind: str, resolved: str) -> None:
    spec = ExecSpec(kind=kind, code="function main() {}", main="handler")
    assert resolve_exec(spec, MANIFEST, SYSTEM) == Exec(
        kind=resolved, code="function main() {}", binary=False, main="handler"
    )


def test_resolve_exec_infers_binary() -> None:
    resolved = resolve_exec(ExecSpec(kind="nodejs:18", code=ZIP_BASE64), MANIFEST, SYSTEM)
    assert resolved.binary
    assert resolved.code == ZIP_BASE64


def test_resolve_exec_unknown_kind() -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_exec(ExecSpec(kind="cobol:85", code="x"), MANIFEST, SYSTEM)
    assert caught.value.message == (
        "The specified runtime 'cobol:85' is not supported by this platform. Valid values are: "
        "'blackbox', 'nodejs:16', 'nodejs:18', 'python:3.11', 'sequence'."
    )


def test_resolve_exec_deprecated_kind() -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_exec(ExecSpec(kind="nodejs:16", code="x"), MANIFEST, SYSTEM)
    assert caught.value.message == messages.deprecated_kind("nodejs:16")


def test_resolve_exec_requires_code() -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_exec(ExecSpec(kind="nodejs:default", code=None), MANIFEST, SYSTEM)
    assert caught.value.message == (
        "code: 'code' must be a string or attachment object defined in 'exec' for 'nodejs:18' "
        "actions"
    )


def test_empty_code_is_code_as_in_openwhisk() -> None:
    resolved = resolve_exec(ExecSpec(kind="nodejs:default", code=""), MANIFEST, SYSTEM)
    assert (resolved.code, resolved.binary) == ("", False)


def test_resolve_exec_code_size_limit_counts_utf8_bytes() -> None:
    system = SystemLimits(code_max_bytes=10)
    resolve_exec(ExecSpec(kind="nodejs:18", code="x" * 10), MANIFEST, system)
    resolve_exec(ExecSpec(kind="nodejs:18", code="é" * 5), MANIFEST, system)
    with pytest.raises(TooLarge) as caught:
        resolve_exec(ExecSpec(kind="nodejs:18", code="x" * 11), MANIFEST, system)
    assert caught.value.message == "exec larger than allowed: 11 > 10 bytes."
    with pytest.raises(TooLarge) as caught:
        resolve_exec(ExecSpec(kind="nodejs:18", code="é" * 6), MANIFEST, system)
    assert caught.value.message == "exec larger than allowed: 12 > 10 bytes."


def test_resolve_exec_sequence() -> None:
    spec = ExecSpec(kind="sequence", components=("/ns/a", "pkg/b"))
    assert resolve_exec(spec, MANIFEST, SYSTEM) == Exec(
        kind="sequence", components=("/ns/a", "pkg/b")
    )


@pytest.mark.parametrize("components", [None, ()])
def test_resolve_exec_sequence_needs_components(components: tuple[str, ...] | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_exec(ExecSpec(kind="sequence", components=components), MANIFEST, SYSTEM)
    assert caught.value.message == "exec.components: No component specified for the sequence."


def test_resolve_exec_sequence_refuses_code() -> None:
    spec = ExecSpec(kind="sequence", code="x", components=("a",))
    with pytest.raises(InvalidInput) as caught:
        resolve_exec(spec, MANIFEST, SYSTEM)
    assert caught.value.message.startswith("code: ")


def test_resolve_exec_components_only_for_sequences() -> None:
    spec = ExecSpec(kind="nodejs:18", code="x", components=("a",))
    with pytest.raises(InvalidInput) as caught:
        resolve_exec(spec, MANIFEST, SYSTEM)
    assert caught.value.message.startswith("exec.components: ")


def test_resolve_exec_blackbox() -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_exec(ExecSpec(kind="blackbox"), MANIFEST, SYSTEM)
    assert caught.value.message.startswith("exec.image: ")
    spec = ExecSpec(kind="blackbox", image="user/img:1")
    resolved = resolve_exec(spec, MANIFEST, SYSTEM, blackbox_images=("user/*",))
    assert resolved == Exec(kind="blackbox", image="user/img:1")


@pytest.mark.parametrize(
    ("image", "patterns", "allowed"),
    [
        ("user/img:1", (), False),  # none allowed unless the operator says so
        ("user/img:1", ("user/img:1",), True),
        ("user/img:1", ("other/*", "user/img:*"), True),
        ("user/img:1", ("user/img",), False),
        ("registry.example/team/sub/img", ("registry.example/team/*",), True),
        ("User/img:1", ("user/*",), False),  # case counts
        ("user/img:1", ("*",), True),
    ],
)
def test_resolve_exec_allows_only_the_operators_blackbox_images(
    image: str, patterns: tuple[str, ...], allowed: bool
) -> None:
    spec = ExecSpec(kind="blackbox", image=image)
    if allowed:
        assert resolve_exec(spec, MANIFEST, SYSTEM, blackbox_images=patterns).image == image
        return
    with pytest.raises(InvalidInput) as caught:
        resolve_exec(spec, MANIFEST, SYSTEM, blackbox_images=patterns)
    assert caught.value.message == (
        f"exec.image: The image '{image}' is not one blackbox actions may use here: the "
        "operator allows images in HOMERUN_BLACKBOX_IMAGES."
    )


# annotations


@pytest.mark.parametrize(
    ("old", "new", "merged"),
    [
        ([kv("a", 1)], None, [kv("a", 1)]),
        ([kv("a", 1)], [], [kv("a", 1)]),
        ([], [kv("a", 1)], [kv("a", 1)]),
        ([kv("a", 1), kv("b", 2)], [kv("a", 9)], [kv("a", 9), kv("b", 2)]),
        ([kv("a", 1), kv("b", 2)], [kv("c", 3), kv("b", None)],
         [kv("a", 1), kv("b", None), kv("c", 3)]),
    ],
)  # fmt: skip
def test_merge_annotations(
    old: list[KeyValue], new: list[KeyValue] | None, merged: list[KeyValue]
) -> None:
    assert merge_annotations(old, new) == tuple(merged)


EXEC = kv("exec", "nodejs:18")
NO_API_KEY = kv("provide-api-key", False)


@pytest.mark.parametrize(
    ("given", "creating", "result"),
    [
        ([], True, [NO_API_KEY, EXEC]),
        ([], False, [EXEC]),
        ([kv("d", "x")], True, [kv("d", "x"), NO_API_KEY, EXEC]),
        ([kv("provide-api-key", True)], True, [kv("provide-api-key", True), EXEC]),
        ([kv("exec", "python:3.11"), kv("d", "x")], False, [kv("d", "x"), EXEC]),
        ([kv("exec", "bogus"), NO_API_KEY], False, [NO_API_KEY, EXEC]),
    ],
)
def test_with_server_annotations(
    given: list[KeyValue], creating: bool, result: list[KeyValue]
) -> None:
    assert with_server_annotations(given, "nodejs:18", creating=creating) == tuple(result)
