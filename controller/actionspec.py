"""Pure rules for action writes: limits, sizes, binary inference, versions, merging.

Both API surfaces turn their DTOs into an `ActionSpec`; `controller.services.actions`
applies it. Nothing here touches the database or HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from controller import messages
from controller.domain import ActionLimits, Exec, KeyValue
from controller.errors import InvalidInput, TooLarge
from controller.limits import SystemLimits
from controller.runtimes import BLACKBOX_KIND, SEQUENCE_KIND, Manifest
from invoker.protocol import BLACKBOX_IMAGES_VARIABLE, image_allowed

_BASE64 = re.compile(
    r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$"
)
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


@dataclass(frozen=True)
class ExecSpec:
    kind: str | None = None
    code: str | None = None
    main: str | None = None
    image: str | None = None
    components: tuple[str, ...] | None = None


@dataclass(frozen=True)
class LimitsSpec:
    """Requested limits; None means 'default on create, unchanged on update'."""

    timeout: int | None = None
    memory: int | None = None
    logs: int | None = None
    concurrency: int | None = None


@dataclass(frozen=True)
class ActionSpec:
    """A create or update request, independent of the API surface it came from."""

    exec: ExecSpec | None = None
    parameters: tuple[KeyValue, ...] | None = None
    annotations: tuple[KeyValue, ...] | None = None
    limits: LimitsSpec | None = None
    publish: bool | None = None
    version: str | None = None


def infer_binary(code: str) -> bool:
    """OpenWhisk's rule: code that is non-empty base64 is a binary (zip) upload."""
    trimmed = code.strip()
    return len(trimmed) > 0 and len(trimmed) % 4 == 0 and bool(_BASE64.match(trimmed))


def bump_version(version: str) -> str:
    major, minor, patch = parse_version(version)
    return f"{major}.{minor}.{patch + 1}"


def parse_version(version: str) -> tuple[int, int, int]:
    match = _SEMVER.fullmatch(version)
    if not match or version == "0.0.0":
        raise InvalidInput(f"version '{version}' is not a semantic version such as 0.0.1")
    return int(match[1]), int(match[2]), int(match[3])


def kv_size(pairs: Iterable[KeyValue]) -> int:
    """OpenWhisk's size: the sum of key bytes and compact-JSON value bytes."""
    return sum(
        len(kv.key.encode())
        + len(json.dumps(kv.value, separators=(",", ":"), ensure_ascii=False).encode())
        for kv in pairs
    )


def check_kv_size(field: str, pairs: Iterable[KeyValue], limit: int) -> None:
    size = kv_size(pairs)
    if size > limit:
        raise TooLarge(messages.field_too_large(field, size, limit))


class KeyValueIn(Protocol):
    """A key/value pair as a request body gives it (either surface's model)."""

    key: str
    value: Any
    init: bool


def key_values(
    pairs: Iterable[KeyValueIn] | None, *, keep_init: bool = True
) -> tuple[KeyValue, ...] | None:
    """A body's parameters or annotations as stored. A key given twice keeps its last value,
    at its first place, as OpenWhisk (which reads them into a map) keeps it. Only actions and
    packages have `init` parameters."""
    if pairs is None:
        return None
    merged: dict[str, KeyValue] = {}
    for kv in pairs:
        merged[kv.key] = KeyValue(kv.key, kv.value, kv.init and keep_init)
    return tuple(merged.values())


def resolve_limits(
    requested: LimitsSpec | None,
    current: ActionLimits | None,
    system: SystemLimits,
    *,
    concurrent: bool = True,
) -> ActionLimits:
    """Validate requested limits and fill the rest from `current` or the defaults. A kind
    that is not `concurrent` runs one activation per container: its concurrency is 1."""
    req = requested or LimitsSpec()
    base = current or ActionLimits(
        timeout=system.timeout_default,
        memory=system.memory_default,
        logs=system.logs_default,
        concurrency=system.concurrency_default,
    )
    if not concurrent:
        base = replace(base, concurrency=1)
        if req.concurrency is not None and req.concurrency > 1:
            raise InvalidInput(
                f"limits.concurrency: {messages.concurrency_above(req.concurrency, 1)}"
            )
    checks = (
        ("timeout", req.timeout, system.timeout_min, system.timeout_max,
         messages.duration_below, messages.duration_above),
        ("memory", req.memory, system.memory_min, system.memory_max,
         messages.memory_below, messages.memory_above),
        ("logs", req.logs, system.logs_min, system.logs_max,
         messages.logs_below, messages.logs_above),
    )  # fmt: skip
    for name, value, low, high, below, above in checks:
        if value is None:
            continue
        if value < low:
            raise InvalidInput(f"limits.{name}: {below(value, low)}")
        if value > high:
            raise InvalidInput(f"limits.{name}: {above(value, high)}")
    if req.concurrency is not None and not (
        system.concurrency_min <= req.concurrency <= system.concurrency_max
    ):
        if req.concurrency < system.concurrency_min:
            message = messages.concurrency_below(req.concurrency, system.concurrency_min)
        else:
            message = messages.concurrency_above(req.concurrency, system.concurrency_max)
        raise InvalidInput(f"limits.concurrency: {message}")
    return ActionLimits(
        timeout=req.timeout if req.timeout is not None else base.timeout,
        memory=req.memory if req.memory is not None else base.memory,
        logs=req.logs if req.logs is not None else base.logs,
        concurrency=req.concurrency if req.concurrency is not None else base.concurrency,
    )


def resolve_exec(
    spec: ExecSpec,
    manifest: Manifest,
    system: SystemLimits,
    *,
    blackbox_images: Iterable[str] = (),
) -> Exec:
    """Validate an exec request into a stored Exec (kind resolved, binary inferred). A
    blackbox image must be one of `blackbox_images` (patterns; none: blackbox refused)."""
    if not spec.kind:
        raise InvalidInput(f"exec.kind: {messages.KIND_REQUIRED}")
    kind = manifest.resolve(spec.kind)
    if kind == SEQUENCE_KIND:
        if spec.code:
            raise InvalidInput(f"code: {messages.SEQUENCE_HAS_CODE}")
        if not spec.components:
            raise InvalidInput(f"exec.components: {messages.NO_COMPONENTS}")
        return Exec(kind=kind, components=tuple(spec.components))
    if spec.components:
        raise InvalidInput(f"exec.components: only a '{SEQUENCE_KIND}' action has components")
    if kind == BLACKBOX_KIND:
        if not spec.image:
            raise InvalidInput("exec.image: a blackbox action needs an image")
        if not image_allowed(spec.image, blackbox_images):
            message = messages.blackbox_image_refused(spec.image, BLACKBOX_IMAGES_VARIABLE)
            raise InvalidInput(f"exec.image: {message}")
    elif spec.code is None:  # "" is code, as OpenWhisk takes it (its /init then fails)
        raise InvalidInput(f"code: {messages.code_required(kind)}")
    code = spec.code
    if code is not None:
        size = len(code.encode())
        if size > system.code_max_bytes:
            raise TooLarge(messages.field_too_large("exec", size, system.code_max_bytes))
    return Exec(
        kind=kind,
        code=code,
        binary=infer_binary(code) if code else False,
        main=spec.main,
        image=spec.image,
    )


def merge_annotations(
    old: Iterable[KeyValue], new: Iterable[KeyValue] | None
) -> tuple[KeyValue, ...]:
    """OpenWhisk's update rule: old ++ new, the new value winning, old order kept."""
    if new is None:
        return tuple(old)
    merged = {kv.key: kv for kv in old}
    merged.update({kv.key: kv for kv in new})
    return tuple(merged.values())


def with_server_annotations(
    annotations: Iterable[KeyValue], kind: str, *, creating: bool
) -> tuple[KeyValue, ...]:
    """Set `exec` to the kind; on create, add `provide-api-key: false` unless given."""
    result = [kv for kv in annotations if kv.key != "exec"]
    if creating and not any(kv.key == "provide-api-key" for kv in result):
        result.append(KeyValue("provide-api-key", False))
    result.append(KeyValue("exec", kind))
    return tuple(result)


def without_code(exec_: Exec) -> Exec:
    return replace(exec_, code=None)
