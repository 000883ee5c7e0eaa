"""The JSON that messages between controllers and invokers carry: every payload that enters
(an API body, an action's result) is checked here once, so that no message is ever refused by
the codec after it was accepted (pydantic's codec stops at 200 levels of nesting, and no
UTF-8 codec takes a lone surrogate)."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 100  # levels of arrays and objects in a body, parameters or a result

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class Unfit(ValueError):
    """Valid JSON that no message can carry."""


TOO_DEEP = f"the JSON is nested more than {MAX_DEPTH} levels deep"
LONE_SURROGATE = "the JSON contains a lone surrogate escape (not valid Unicode)"


def loads(raw: bytes, **options: Any) -> Any:
    """Parse the JSON text `raw` (`options` as for `json.loads`): ValueError if it is not
    JSON, Unfit if it is nested more than MAX_DEPTH levels deep or holds a lone surrogate.
    Only a text with a surrogate escape, or with more brackets than the limit, is walked."""
    try:
        value = json.loads(raw, **options)
    except RecursionError:
        raise Unfit(TOO_DEEP) from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and depth(value) > MAX_DEPTH:
        raise Unfit(TOO_DEEP)
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise Unfit(LONE_SURROGATE) from None
    return value


def depth(value: Any) -> int:
    """Levels of arrays and objects in `value` (a scalar has none), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest
