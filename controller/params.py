"""Parameter merging for an invocation (pure; shared/spec/openwhisk.md §2.4)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from controller.domain import KeyValue
from controller.errors import InvalidInput

FINAL_PARAMS = "Request defines parameters that are not allowed (e.g., reserved properties)."


@dataclass(frozen=True)
class MergedParams:
    run: dict[str, Any]  # the /run `value`
    init_env: dict[str, str]  # init parameters, as environment strings


def env_string(value: Any) -> str:
    """OpenWhisk's stringification of init parameters: null -> "", scalars -> text,
    objects -> compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"))


def merge(
    layers: Iterable[Iterable[KeyValue]], request: dict[str, Any], *, final: bool = False
) -> MergedParams:
    """Merge parameter layers (lowest first: package, binding, action) under the request.
    With `final`, a request may not override a parameter that already has a non-null value."""
    run: dict[str, Any] = {}
    init: dict[str, Any] = {}
    for layer in layers:
        for kv in layer:  # a higher layer replaces a key whichever kind it was
            if kv.init:
                init[kv.key] = kv.value
                run.pop(kv.key, None)
            else:
                run[kv.key] = kv.value
                init.pop(kv.key, None)
    if final:
        fixed = {k for k, v in (*run.items(), *init.items()) if v is not None}
        if fixed & set(request):
            raise InvalidInput(FINAL_PARAMS)
    run.update(request)
    return MergedParams(run=run, init_env={k: env_string(v) for k, v in init.items()})
