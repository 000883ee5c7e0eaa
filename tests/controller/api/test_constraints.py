"""The schema fragments the OpenAPI documents state the server's checks with."""

from __future__ import annotations

import re

import pytest

from controller.actionspec import parse_version
from controller.api.constraints import ACTION_NAME, ENTITY_NAME, VERSION, any_case, digits_between
from controller.errors import InvalidInput
from controller.names import ActionName, is_valid_name


@pytest.mark.parametrize(
    ("low", "high"), [(0, 0), (0, 10), (1, 500), (7, 123), (19, 20), (99, 1000), (128, 4096)]
)
def test_digits_between_matches_exactly_the_range(low: int, high: int) -> None:
    pattern = re.compile(f"^{digits_between(low, high)}$")

    for n in range(high * 2 + 20):
        assert bool(pattern.match(str(n))) == (low <= n <= high), n
    assert pattern.match("00" + str(high))


@pytest.mark.parametrize(
    "name", ["a", "_", "hello", "a b", "x@y.z", "a&b", "a-", "a ", " a", "-a", "héllo", "a/b",
             "x" * 256, "x" * 257],
)  # fmt: skip
def test_entity_name_pattern_is_the_server_rule(name: str) -> None:
    documented = bool(re.match(ENTITY_NAME["pattern"], name)) and len(name) <= 256
    assert documented == is_valid_name(name)


@pytest.mark.parametrize("name", ["a", "pkg/a", "pkg/", "/a", "a/b/c", "pkg/a b", "p!/a"])
def test_action_name_pattern_is_the_server_rule(name: str) -> None:
    try:
        ActionName.parse(name)
        valid = True
    except InvalidInput:
        valid = False
    assert bool(re.match(ACTION_NAME["pattern"], name)) == valid


@pytest.mark.parametrize("version", ["0.0.1", "1.2.3", "0.0.0", "01.0.0", "1.0", "1.0.0-rc"])
def test_version_pattern_is_the_server_rule(version: str) -> None:
    try:
        parse_version(version)
        valid = True
    except InvalidInput:
        valid = False
    assert bool(re.match(VERSION["pattern"], version)) == valid


def test_any_case() -> None:
    pattern = re.compile(any_case("enabled", "disabled")["pattern"])

    assert all(pattern.match(s) for s in ["enabled", "DISABLED", "EnAbLeD"])
    assert not any(pattern.match(s) for s in ["enable", "enabledx", "on"])
