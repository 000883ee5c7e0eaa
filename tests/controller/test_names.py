"""Entity names and reference paths (shared/spec/openwhisk.md §4)."""

from __future__ import annotations

import pytest

from controller import messages
from controller.errors import InvalidInput
from controller.names import MAX_NAME_LENGTH, ActionName, EntityPath, check_segment, is_valid_name


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "_",
        "Z9",
        "hello",
        "hello_world",
        "hello-world",
        "hello world",
        "me@example.com",
        "v1.2",
        "R&D",
        "ends-",
        "ends.",
        "ends@",
        "ends&",
        "_leading_underscore",
        "1starts-with-digit",
        "x" * MAX_NAME_LENGTH,
    ],
)
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)
    assert check_segment(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        " leading-space",
        "trailing-space ",
        "-leading-dash",
        ".leading-dot",
        "@leading-at",
        "&leading-amp",
        "slash/inside",
        "bang!",
        "question?",
        "hash#",
        "percent%",
        "colon:",
        "tab\there",
        "newline-at-end\n",
        "nul\x00",
        "héllo",
        "ünïcode",
        "x" * (MAX_NAME_LENGTH + 1),
    ],
)
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(InvalidInput):
        check_segment(name)


def test_check_segment_names_illegal_characters() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_segment("bad!")
    assert caught.value.message == messages.ILLEGAL_NAME
    assert caught.value.message == "The name of the entity contains illegal characters."


def test_check_segment_names_illegal_namespace() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_segment("bad!", namespace=True)
    assert caught.value.message == "The namespace contains illegal characters."


@pytest.mark.parametrize("namespace", [False, True])
def test_check_segment_reports_length_before_characters(namespace: bool) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_segment("!" * 300, namespace=namespace)
    assert caught.value.message == "Name segement longer than allowed: 300 > 256."


@pytest.mark.parametrize(
    ("text", "package", "name"),
    [
        ("hello", "", "hello"),
        ("pkg/hello", "pkg", "hello"),
        ("my pkg/my action", "my pkg", "my action"),
        ("pkg/default", "pkg", "default"),
        ("default", "", "default"),
        ("x" * 256 + "/" + "y" * 256, "x" * 256, "y" * 256),
    ],
)
def test_action_name_parse(text: str, package: str, name: str) -> None:
    parsed = ActionName.parse(text)
    assert parsed == ActionName(package, name)
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", messages.ILLEGAL_NAME),
        ("a/b/c", messages.ILLEGAL_NAME),
        ("/hello", messages.ILLEGAL_NAME),
        ("pkg/", messages.ILLEGAL_NAME),
        ("pkg//hello", messages.ILLEGAL_NAME),
        ("bad!/hello", messages.ILLEGAL_NAME),
        ("pkg/bad!", messages.ILLEGAL_NAME),
        ("default/hello", "Package name 'default' is reserved."),
        ("x" * 257, "Name segement longer than allowed: 257 > 256."),
        ("pkg/" + "x" * 257, "Name segement longer than allowed: 257 > 256."),
    ],
)
def test_action_name_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        ActionName.parse(text)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", EntityPath("me", "", "hello")),
        ("pkg/hello", EntityPath("me", "pkg", "hello")),
        ("/ns/hello", EntityPath("ns", "", "hello")),
        ("/ns/pkg/hello", EntityPath("ns", "pkg", "hello")),
        ("ns/pkg/hello", EntityPath("ns", "pkg", "hello")),
        ("/_/hello", EntityPath("me", "", "hello")),
        ("/_/pkg/hello", EntityPath("me", "pkg", "hello")),
        ("_/pkg/hello", EntityPath("me", "pkg", "hello")),
        ("/whisk.system/utils/echo", EntityPath("whisk.system", "utils", "echo")),
    ],
)
def test_entity_path_parse(text: str, expected: EntityPath) -> None:
    assert EntityPath.parse(text, "me") == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/",
        "//",
        "/hello",
        "a//b",
        "/ns//hello",
        "a/b/c/d",
        "/a/b/c/d",
        "bad!",
        "pkg/bad name ",
        "/bad ns!/pkg/hello",
        "x" * 257,
    ],
)
def test_entity_path_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        EntityPath.parse(text, "me")
    assert caught.value.message == messages.component_invalid(text)
    assert f"'{text}' is not a valid action path" in caught.value.message


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (EntityPath("ns", "", "hello"), "/ns/hello"),
        (EntityPath("ns", "pkg", "hello"), "/ns/pkg/hello"),
    ],
)
def test_entity_path_str_is_fully_qualified(path: EntityPath, text: str) -> None:
    assert str(path) == text
    assert EntityPath.parse(text, "other") == path


def test_entity_path_action_name() -> None:
    assert EntityPath.parse("/ns/pkg/hello", "me").action_name == ActionName("pkg", "hello")
    assert EntityPath.parse("hello", "me").action_name == ActionName("", "hello")
