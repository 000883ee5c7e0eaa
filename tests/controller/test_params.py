"""Parameter merging for an invocation (shared/spec/openwhisk.md §2.4)."""

from __future__ import annotations

from typing import Any

import pytest

from controller.domain import KeyValue
from controller.errors import InvalidInput
from controller.params import FINAL_PARAMS, env_string, merge

FINAL_MESSAGE = "Request defines parameters that are not allowed (e.g., reserved properties)."


def layer(**values: Any) -> tuple[KeyValue, ...]:
    return tuple(KeyValue(key, value) for key, value in values.items())


def init_layer(**values: Any) -> tuple[KeyValue, ...]:
    return tuple(KeyValue(key, value, init=True) for key, value in values.items())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (42, "42"),
        (-7, "-7"),
        (1.5, "1.5"),
        ("", ""),
        ("text", "text"),
        ('with spaces and "quotes"', 'with spaces and "quotes"'),
        ("42", "42"),
        ({}, "{}"),
        ({"a": 1, "b": [1, 2]}, '{"a":1,"b":[1,2]}'),
        ({"nested": {"x": None, "y": True}}, '{"nested":{"x":null,"y":true}}'),
        ([], "[]"),
        ([1, "x", None, False], '[1,"x",null,false]'),
    ],
)
def test_env_string(value: Any, expected: str) -> None:
    assert env_string(value) == expected


@pytest.mark.parametrize(
    ("package", "binding", "action", "request_params", "expected"),
    [
        pytest.param({}, {}, {}, {}, {}, id="nothing"),
        pytest.param({"a": 1}, {}, {}, {}, {"a": 1}, id="package-only"),
        pytest.param({"a": 1}, {"a": 2}, {}, {}, {"a": 2}, id="binding-over-package"),
        pytest.param({"a": 1}, {"a": 2}, {"a": 3}, {}, {"a": 3}, id="action-over-binding"),
        pytest.param({"a": 1}, {}, {"a": 3}, {}, {"a": 3}, id="action-over-package"),
        pytest.param({"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}, {"a": 4}, id="request-over-all"),
        pytest.param({"a": 1}, {}, {}, {"a": None}, {"a": None}, id="request-null-wins"),
        pytest.param({"a": 1}, {}, {"a": None}, {}, {"a": None}, id="action-null-wins"),
        pytest.param(
            {"p": "pkg", "shared": "pkg"},
            {"b": "bind", "shared": "bind"},
            {"x": "act", "shared": "act"},
            {"r": "req"},
            {"p": "pkg", "b": "bind", "x": "act", "shared": "act", "r": "req"},
            id="union-of-keys",
        ),
        pytest.param(
            {},
            {},
            {"obj": {"a": 1}},
            {"obj": {"b": 2}},
            {"obj": {"b": 2}},
            id="objects-replaced-not-deep-merged",
        ),
    ],
)
def test_merge_precedence(
    package: dict[str, Any],
    binding: dict[str, Any],
    action: dict[str, Any],
    request_params: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    merged = merge([layer(**package), layer(**binding), layer(**action)], request_params)
    assert merged.run == expected
    assert merged.init_env == {}


def test_merge_does_not_mutate_the_request() -> None:
    request_params = {"a": 1}
    merge([layer(a=0, b=2)], request_params)
    assert request_params == {"a": 1}


def test_init_parameters_go_to_init_env_only() -> None:
    merged = merge(
        [
            init_layer(FROM_PACKAGE={"k": [1, 2]}),
            layer(visible="yes"),
            init_layer(TOKEN="secret", COUNT=3, FLAG=False, EMPTY=None),
        ],
        {"req": 1},
    )
    assert merged.run == {"visible": "yes", "req": 1}
    assert merged.init_env == {
        "FROM_PACKAGE": '{"k":[1,2]}',
        "TOKEN": "secret",
        "COUNT": "3",
        "FLAG": "false",
        "EMPTY": "",
    }
    assert all(isinstance(value, str) for value in merged.init_env.values())


def test_an_init_parameter_of_a_higher_layer_hides_a_run_parameter_of_a_lower_one() -> None:
    merged = merge([layer(KEY="package value"), init_layer(KEY="action env")], {})
    assert merged.run == {}
    assert merged.init_env == {"KEY": "action env"}


def test_a_run_parameter_of_a_higher_layer_replaces_an_init_parameter_of_a_lower_one() -> None:
    merged = merge([init_layer(KEY="package env"), layer(KEY="action value")], {})
    assert merged.run == {"KEY": "action value"}
    assert merged.init_env == {}


def test_init_parameters_keep_higher_layer_precedence() -> None:
    merged = merge(
        [init_layer(KEY="package"), init_layer(KEY="binding"), init_layer(KEY="act")], {}
    )
    assert merged.init_env == {"KEY": "act"}


@pytest.mark.parametrize(
    ("layers", "request_params"),
    [
        pytest.param([layer(a=1)], {"a": 2}, id="action-value"),
        pytest.param([layer(a=1)], {"a": 1}, id="same-value"),
        pytest.param([layer(a=1)], {"a": None}, id="request-null-over-value"),
        pytest.param([layer(a=False)], {"a": True}, id="false-is-a-value"),
        pytest.param([layer(a=0)], {"a": 1}, id="zero-is-a-value"),
        pytest.param([layer(a="")], {"a": "x"}, id="empty-string-is-a-value"),
        pytest.param([layer(a=1), layer(), layer()], {"a": 2}, id="package-value"),
        pytest.param([layer(), layer(a=1), layer()], {"a": 2}, id="binding-value"),
        pytest.param([layer(a=None), layer(), layer(a=1)], {"a": 2}, id="action-over-null"),
        pytest.param([layer(a=1, b=None)], {"a": 2, "b": 3}, id="one-of-several"),
        pytest.param([init_layer(A="x")], {"A": "y"}, id="init-value"),
    ],
)
def test_final_rejects_overriding_a_non_null_parameter(
    layers: list[tuple[KeyValue, ...]], request_params: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        merge(layers, request_params, final=True)
    assert caught.value.message == FINAL_MESSAGE
    assert FINAL_PARAMS == FINAL_MESSAGE


@pytest.mark.parametrize(
    ("layers", "request_params", "expected_run"),
    [
        pytest.param([layer(a=None)], {"a": 2}, {"a": 2}, id="null-value"),
        pytest.param([layer()], {"a": 2}, {"a": 2}, id="absent"),
        pytest.param([layer(a=1)], {"b": 2}, {"a": 1, "b": 2}, id="other-key"),
        pytest.param([layer(a=1)], {}, {"a": 1}, id="empty-request"),
        pytest.param(
            [layer(a=1), layer(), layer(a=None)], {"a": 2}, {"a": 2}, id="action-nulls-package"
        ),
        pytest.param([init_layer(A=None)], {"A": "y"}, {"A": "y"}, id="init-null"),
    ],
)
def test_final_allows_setting_null_or_absent_parameters(
    layers: list[tuple[KeyValue, ...]],
    request_params: dict[str, Any],
    expected_run: dict[str, Any],
) -> None:
    assert merge(layers, request_params, final=True).run == expected_run


def test_without_final_the_request_overrides_anything() -> None:
    merged = merge([layer(a=1), init_layer(B="x")], {"a": 2}, final=False)
    assert merged.run == {"a": 2}
    assert merged.init_env == {"B": "x"}
