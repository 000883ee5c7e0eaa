"""The executor's invocation building (shared/spec/openwhisk.md §2.4, §5.4)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from controller.clock import now_ms
from controller.domain import Action, ActionLimits, Exec, KeyValue, Namespace
from controller.errors import InvalidInput
from controller.execution.service import (
    Executor,
    InvokeRequest,
    is_final,
    provides_api_key,
)
from controller.params import FINAL_PARAMS
from controller.runtimes import load_manifest
from invoker.protocol import ActionLimitsMsg, ActionRef, Keys
from tests.conftest import REDIS_URL

ACTIVATION_ID = "0123456789abcdef0123456789abcdef"
NAMESPACE = Namespace(
    id=7, name="acme-int1", org_id="acme", int_id="int1", uuid="the-uuid", key="the-key"
)


def action(
    *,
    kind: str = "nodejs:18",
    parameters: tuple[KeyValue, ...] = (),
    annotations: tuple[KeyValue, ...] = (),
    **exec_fields: Any,
) -> Action:
    return Action(
        namespace="acme-int1",
        package="tools",
        name="hello",
        exec=Exec(kind=kind, **exec_fields),
        limits=ActionLimits(timeout=30_000, memory=512, logs=5, concurrency=2),
        version="0.0.4",
        parameters=parameters,
        annotations=annotations,
        code_digest="d" * 64,
    )


def request(target: Action, **fields: Any) -> InvokeRequest:
    return InvokeRequest(
        namespace=NAMESPACE, action=target, params=fields.pop("params", {}), **fields
    )


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        pytest.param((), True, id="absent"),
        pytest.param((KeyValue("web-export", True),), True, id="other-annotations-only"),
        pytest.param((KeyValue("provide-api-key", False),), False, id="false"),
        pytest.param((KeyValue("provide-api-key", True),), True, id="true"),
    ],
)
def test_provides_api_key(annotations: tuple[KeyValue, ...], expected: bool) -> None:
    assert provides_api_key(action(annotations=annotations)) is expected


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        pytest.param((), False, id="absent"),
        pytest.param((KeyValue("final", True),), True, id="true"),
        pytest.param((KeyValue("final", False),), False, id="false"),
        pytest.param((KeyValue("web-export", True),), False, id="other"),
    ],
)
def test_is_final(annotations: tuple[KeyValue, ...], expected: bool) -> None:
    assert is_final(action(annotations=annotations)) is expected


@pytest.fixture
async def executor(redis_prefix: str) -> AsyncIterator[Executor]:
    redis = Redis.from_url(REDIS_URL)

    @contextlib.asynccontextmanager
    async def no_transaction() -> AsyncIterator[Any]:
        raise AssertionError("building an invocation must not touch the database")
        yield  # pragma: no cover

    async def no_code(digest: str) -> str | None:
        raise AssertionError("building an invocation must not load code")

    yield Executor(
        redis,
        Keys(redis_prefix),
        load_manifest(),
        no_transaction,
        no_code,
        api_host="https://runtime.example",
        controller_id="ctl-test",
    )
    await redis.aclose()


def test_build_produces_the_invocation(executor: Executor) -> None:
    target = action(
        parameters=(KeyValue("greeting", "hello"), KeyValue("SECRET", "s3", init=True)),
        main="entry",
    )
    req = request(
        target,
        params={"name": "World"},
        layers=((KeyValue("greeting", "package"), KeyValue("from_package", 1)),),
        blocking=True,
        transaction_id="tx-42",
        cause="c" * 32,
    )
    before = now_ms()
    invocation = executor.build(req, ACTIVATION_ID)
    after = now_ms()

    assert invocation.activation_id == ACTIVATION_ID
    assert invocation.transaction_id == "tx-42"
    assert invocation.namespace == invocation.subject == "acme-int1"
    assert invocation.action == ActionRef(
        namespace="acme-int1",
        package="tools",
        name="hello",
        version="0.0.4",
        kind="nodejs:18",
        image=load_manifest().get("nodejs:18").image,  # type: ignore[union-attr]
        main="entry",
        binary=False,
        code_digest="d" * 64,
        limits=ActionLimitsMsg(timeout=30_000, memory=512, logs=5, concurrency=2),
    )
    assert invocation.params == {"greeting": "hello", "from_package": 1, "name": "World"}
    assert invocation.init_env == {"SECRET": "s3"}
    assert invocation.api_key == "the-uuid:the-key"
    assert invocation.api_host == "https://runtime.example"
    assert invocation.cause == "c" * 32
    assert invocation.reply_to == "ctl-test"
    assert before <= invocation.accepted_at <= after


@pytest.mark.parametrize("kind", ["nodejs:18", "python:3.11"])
def test_build_takes_the_image_from_the_manifest(executor: Executor, kind: str) -> None:
    runtime = load_manifest().get(kind)
    assert runtime is not None
    invocation = executor.build(request(action(kind=kind)), ACTIVATION_ID)
    assert invocation.action.image == runtime.image
    assert invocation.action.kind == kind


def test_build_uses_a_blackbox_image(executor: Executor) -> None:
    target = action(kind="blackbox", image="example/custom:1.0")
    assert executor.build(request(target), ACTIVATION_ID).action.image == "example/custom:1.0"


def test_build_rejects_an_unknown_kind(executor: Executor) -> None:
    with pytest.raises(InvalidInput) as caught:
        executor.build(request(action(kind="cobol:85")), ACTIVATION_ID)
    assert "cobol:85" in caught.value.message


def test_build_defaults_the_transaction_id_to_the_activation_id(executor: Executor) -> None:
    invocation = executor.build(request(action()), ACTIVATION_ID)
    assert invocation.transaction_id == ACTIVATION_ID
    assert invocation.cause is None


@pytest.mark.parametrize(
    ("annotations", "api_key"),
    [
        pytest.param((), "the-uuid:the-key", id="absent"),
        pytest.param((KeyValue("provide-api-key", True),), "the-uuid:the-key", id="true"),
        pytest.param((KeyValue("provide-api-key", False),), None, id="false"),
    ],
)
def test_build_passes_the_api_key_only_when_provided(
    executor: Executor, annotations: tuple[KeyValue, ...], api_key: str | None
) -> None:
    invocation = executor.build(request(action(annotations=annotations)), ACTIVATION_ID)
    assert invocation.api_key == api_key


@pytest.mark.parametrize(("blocking", "reply_to"), [(True, "ctl-test"), (False, None)])
def test_build_asks_for_a_reply_only_when_blocking(
    executor: Executor, blocking: bool, reply_to: str | None
) -> None:
    invocation = executor.build(request(action(), blocking=blocking), ACTIVATION_ID)
    assert invocation.reply_to == reply_to


def test_build_enforces_final_parameters(executor: Executor) -> None:
    target = action(
        parameters=(KeyValue("fixed", "v"), KeyValue("open", None)),
        annotations=(KeyValue("final", True),),
    )
    with pytest.raises(InvalidInput) as caught:
        executor.build(request(target, params={"fixed": "other"}), ACTIVATION_ID)
    assert caught.value.message == FINAL_PARAMS

    allowed = executor.build(request(target, params={"open": "set"}), ACTIVATION_ID)
    assert allowed.params == {"fixed": "v", "open": "set"}


def test_build_applies_final_to_package_parameters(executor: Executor) -> None:
    target = action(annotations=(KeyValue("final", True),))
    req = request(target, params={"pkg": "other"}, layers=((KeyValue("pkg", "v"),),))
    with pytest.raises(InvalidInput):
        executor.build(req, ACTIVATION_ID)


def test_a_sequence_is_never_built_into_an_invocation(executor: Executor) -> None:
    # Sequences run in the controller (§7); only their components go to invokers.
    target = action(kind="sequence", components=("/acme-int1/a", "/acme-int1/b"))
    with pytest.raises(InvalidInput):
        executor.build(request(target), ACTIVATION_ID)
