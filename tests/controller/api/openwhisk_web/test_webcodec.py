"""The pure rules of web actions: URL segments, annotations, arguments and transcoding."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from controller.api.openwhisk.webcodec import (
    CORS_ALLOW_HEADERS,
    Extension,
    MediaType,
    WebAnnotations,
    WebRequest,
    WebResponse,
    WebTarget,
    action_arguments,
    cors_headers,
    decode_base64,
    http_response,
    parse_target,
    response_value,
    transcode,
)
from controller.domain import KeyValue
from controller.errors import HomerunError, InvalidInput, NotFound
from invoker.protocol import Outcome

FINAL_PARAMS = "Request defines parameters that are not allowed (e.g., reserved properties)."
INVALID_HTTP = "Response is not valid 'message/http'."
PNG = b"\x89PNG\r\n\x1a\n\x00\xff"
PNG64 = base64.b64encode(PNG).decode()


def raises(exc: type[HomerunError], message: str) -> Any:
    return pytest.raises(exc, match=f"^{re.escape(message)}$")


# The URL.


@pytest.mark.parametrize(
    ("package", "rest", "expected"),
    [
        ("default", "hello", WebTarget("ns", "", "hello", Extension.HTTP, "")),
        ("default", "hello.json", WebTarget("ns", "", "hello", Extension.JSON, "")),
        ("pkg", "hello.html/a/b", WebTarget("ns", "pkg", "hello", Extension.HTML, "/a/b")),
        ("pkg", "hello.svg/", WebTarget("ns", "pkg", "hello", Extension.SVG, "/")),
        ("default", "a.b.text", WebTarget("ns", "", "a.b", Extension.TEXT, "")),
        ("default", "hello.http", WebTarget("ns", "", "hello", Extension.HTTP, "")),
        ("default", "hello.xml", WebTarget("ns", "", "hello.xml", Extension.HTTP, "")),
        ("default", "hello.JSON", WebTarget("ns", "", "hello.JSON", Extension.HTTP, "")),
    ],
)
def test_parse_target(package: str, rest: str, expected: WebTarget) -> None:
    assert parse_target("ns", package, rest) == expected


@pytest.mark.parametrize(
    ("namespace", "package", "rest"),
    [
        ("_", "default", "hello"),  # the namespace must be explicit
        ("ns", "default", ""),
        ("ns", "default", ".json"),
        ("ns", "default", "a .json"),  # the name may not end with a space
        ("ns", "bad$", "hello"),
        ("bad ns ", "default", "hello"),
    ],
)
def test_parse_target_refuses_invalid_segments(namespace: str, package: str, rest: str) -> None:
    with raises(NotFound, "The requested resource does not exist."):
        parse_target(namespace, package, rest)


# Annotations and CORS.


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ([], WebAnnotations()),
        ([("web-export", True)], WebAnnotations(exported=True)),
        ([("web-export", "true")], WebAnnotations()),  # only a JSON true counts
        (
            [("web-export", True), ("raw-http", True), ("web-custom-options", True)],
            WebAnnotations(exported=True, raw=True, custom_options=True),
        ),
    ],
)
def test_web_annotations(annotations: list[tuple[str, Any]], expected: WebAnnotations) -> None:
    assert WebAnnotations.of(KeyValue(k, v) for k, v in annotations) == expected


@pytest.mark.parametrize(
    ("required", "authenticated", "secret", "allowed"),
    [
        (None, False, None, True),  # no annotation
        (False, False, None, True),
        (True, False, None, False),
        (True, True, None, True),
        ("s3cret", False, "s3cret", True),
        ("s3cret", True, None, False),  # credentials are no substitute for the secret
        ("s3cret", False, "S3CRET", False),
        (1234, False, "1234", True),
        (1234, False, "1234.0", False),
        ({"a": 1}, True, "x", False),  # any other JSON: nobody
        ([], True, None, False),
    ],
)
def test_require_whisk_auth(
    required: Any, authenticated: bool, secret: str | None, allowed: bool
) -> None:
    pairs = [] if required is None else [KeyValue("require-whisk-auth", required)]
    annotations = WebAnnotations.of(pairs)
    assert annotations.allows(authenticated=authenticated, secret=secret) is allowed


@pytest.mark.parametrize(
    ("requested", "allow_headers"),
    [(None, CORS_ALLOW_HEADERS), ("", CORS_ALLOW_HEADERS), ("X-Mine", "X-Mine")],
)
def test_cors_headers(requested: str | None, allow_headers: str) -> None:
    assert dict(cors_headers(requested)) == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH",
        "Access-Control-Allow-Headers": allow_headers,
    }


# Media types.


@pytest.mark.parametrize(
    ("value", "binary", "json", "header"),
    [
        ("text/html", False, False, "text/html; charset=UTF-8"),
        ("Text/Plain; charset=ISO-8859-1", False, False, "text/plain; charset=ISO-8859-1"),
        ("application/json", False, True, "application/json"),
        ("application/vnd.api+json", False, True, "application/vnd.api+json"),
        ("application/xml", False, False, "application/xml; charset=UTF-8"),
        ("application/atom+xml", False, False, "application/atom+xml; charset=UTF-8"),
        ("application/javascript", False, False, "application/javascript; charset=UTF-8"),
        ("application/octet-stream", True, False, "application/octet-stream"),
        ("application/pdf", True, False, "application/pdf"),
        ("image/png", True, False, "image/png"),
        ("image/svg+xml", True, False, "image/svg+xml"),
        ("multipart/form-data; boundary=xyz", True, False, "multipart/form-data; boundary=xyz"),
        (
            "application/x-custom; charset=utf-8",
            False,
            False,
            "application/x-custom; charset=utf-8",
        ),
    ],
)
def test_media_types(value: str, binary: bool, json: bool, header: str) -> None:
    media = MediaType.parse(value)
    assert media is not None
    assert (media.is_binary, media.is_json, media.header()) == (binary, json, header)


@pytest.mark.parametrize("value", ["", "text", "text/", "/html", "text/html; charset", "a b/c"])
def test_unparsable_media_types(value: str) -> None:
    assert MediaType.parse(value) is None


@pytest.mark.parametrize(
    ("text", "decoded"),
    [
        (PNG64, PNG),
        (" aGk= \n", b"hi"),
        ("aGVsbG8=", b"hello"),
        ("", None),
        ("hello", None),  # not a multiple of four
        ("<p>hi</p>", None),
        ("aGk", None),  # unpadded
        ("a===", None),
    ],
)
def test_decode_base64(text: str, decoded: bytes | None) -> None:
    assert decode_base64(text) == decoded


# Arguments.


def request(
    body: bytes = b"",
    content_type: str | None = None,
    query: str = "",
    method: str = "POST",
) -> WebRequest:
    headers = [("Host", "example.com"), ("X-Custom", "yes")]
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    return WebRequest(method, tuple(headers), "/rest", query, body)


def test_context_arguments() -> None:
    args = action_arguments(request(method="PATCH"), raw=False, user="acme")
    assert args == {
        "__ow_method": "patch",
        "__ow_headers": {"host": "example.com", "x-custom": "yes"},
        "__ow_path": "/rest",
        "__ow_user": "acme",
    }
    assert "__ow_user" not in action_arguments(request(), raw=False, user=None)


@pytest.mark.parametrize(
    ("body", "content_type", "query", "expected"),
    [
        (b"", None, "a=1&b=x%20y&b=last", {"a": "1", "b": "last"}),
        (b'{"a": 2, "c": null}', "application/json", "a=1", {"a": 2, "c": None}),
        (b'{"a": 2}', "application/vnd.api+json", "", {"a": 2}),
        (b"[1, 2]", "application/json", "a=1", {"a": "1", "__ow_body": [1, 2]}),
        (b'"text"', "application/json", "", {"__ow_body": "text"}),
        (b"null", "application/json", "", {"__ow_body": None}),
        (
            b"a=2&b=two+words",
            "application/x-www-form-urlencoded",
            "a=1",
            {"a": "2", "b": "two words"},
        ),
        (b"hello", "text/plain", "", {"__ow_body": "hello"}),
        (b"<a/>", "application/xml", "", {"__ow_body": "<a/>"}),
        (PNG, "image/png", "", {"__ow_body": PNG64}),
        (PNG, None, "", {"__ow_body": PNG64}),  # no Content-Type: bytes
        (PNG, "not a type", "", {"__ow_body": PNG64}),
        (b"", "application/json", "", {}),
    ],
)
def test_query_and_body_arguments(
    body: bytes, content_type: str | None, query: str, expected: dict[str, Any]
) -> None:
    args = action_arguments(request(body, content_type, query), raw=False, user=None)
    assert {
        k: v for k, v in args.items() if k not in {"__ow_method", "__ow_headers", "__ow_path"}
    } == expected


@pytest.mark.parametrize(
    ("body", "content_type", "query", "ow_body"),
    [
        (
            b'{"a": 1}',
            "application/json",
            "a=1&__ow_body=x",
            base64.b64encode(b'{"a": 1}').decode(),
        ),
        (b'{"a": 1}', "application/vnd.api+json", "", '{"a": 1}'),
        (b"a=1", "application/x-www-form-urlencoded", "", "a=1"),
        (b"hello", "text/plain", "", "hello"),
        (PNG, "image/png", "", PNG64),
        (b"", None, "x=1", ""),
    ],
)
def test_raw_http_arguments(
    body: bytes, content_type: str | None, query: str, ow_body: str
) -> None:
    args = action_arguments(request(body, content_type, query), raw=True, user=None)
    assert args["__ow_query"] == query
    assert args["__ow_body"] == ow_body
    assert set(args) == {"__ow_method", "__ow_headers", "__ow_path", "__ow_query", "__ow_body"}


@pytest.mark.parametrize(
    ("body", "content_type", "query"),
    [
        (b"", None, "__ow_method=get"),
        (b"", None, "__ow_query=x"),
        (b'{"__ow_path": "/x"}', "application/json", ""),
        (b'{"__ow_user": "me"}', "application/merge-patch+json", ""),
        (b"__ow_body=x", "application/x-www-form-urlencoded", ""),
        (b"__ow_headers=x", "application/x-www-form-urlencoded", ""),
    ],
)
def test_reserved_names_are_refused(body: bytes, content_type: str | None, query: str) -> None:
    with raises(InvalidInput, FINAL_PARAMS):
        action_arguments(request(body, content_type, query), raw=False, user=None)


@pytest.mark.parametrize("body", [b"{nope", b"NaN", b'{"a": Infinity}'])
def test_malformed_json_bodies(body: bytes) -> None:
    with pytest.raises(InvalidInput, match=r"^The request content was malformed:"):
        action_arguments(request(body, "application/json"), raw=False, user=None)


# Responses.


@pytest.mark.parametrize(
    ("outcome", "result", "value"),
    [
        (Outcome.SUCCESS, {"a": 1}, {"a": 1}),
        (Outcome.SUCCESS, [1], [1]),
        (Outcome.APPLICATION_ERROR, {"error": {"statusCode": 400}}, {"statusCode": 400}),
        (Outcome.APPLICATION_ERROR, {"error": "bad"}, "bad"),
    ],
)
def test_response_value(outcome: Outcome, result: Any, value: Any) -> None:
    assert response_value(outcome, result) == value


@pytest.mark.parametrize(
    ("outcome", "result", "exc", "message"),
    [
        (
            Outcome.APPLICATION_ERROR,
            {"other": 1},
            NotFound,
            "Response does not include requested property.",
        ),
        (
            Outcome.DEVELOPER_ERROR,
            {"error": "boom"},
            InvalidInput,
            "There was an error processing your request.",
        ),
        (
            Outcome.INTERNAL_ERROR,
            {"error": "lost"},
            InvalidInput,
            "There was an error processing your request.",
        ),
    ],
)
def test_failed_response_values(
    outcome: Outcome, result: Any, exc: type[HomerunError], message: str
) -> None:
    with raises(exc, message):
        response_value(outcome, result)


HTML = "text/html; charset=UTF-8"
TEXT = "text/plain; charset=UTF-8"


@pytest.mark.parametrize(
    ("extension", "value", "expected"),
    [
        (Extension.JSON, {"a": "ü"}, WebResponse(200, '{"a":"ü"}'.encode(), "application/json")),
        (Extension.JSON, [], WebResponse(200, b"[]", "application/json")),
        (Extension.HTML, {"html": "<p/>"}, WebResponse(200, b"<p/>", HTML)),
        (Extension.HTML, {"body": "<b/>", "html": "<p/>"}, WebResponse(200, b"<b/>", HTML)),
        (Extension.HTML, "<i/>", WebResponse(200, b"<i/>", HTML)),
        (Extension.SVG, {"svg": "<svg/>"}, WebResponse(200, b"<svg/>", "image/svg+xml")),
        (Extension.SVG, {"body": "<svg/>"}, WebResponse(200, b"<svg/>", "image/svg+xml")),
        (Extension.TEXT, {"text": "hi"}, WebResponse(200, b"hi", TEXT)),
        (Extension.TEXT, {"body": "b", "text": "t"}, WebResponse(200, b"b", TEXT)),
        (Extension.TEXT, {"text": {"a": 1}}, WebResponse(200, b'{\n  "a": 1\n}', TEXT)),
        (Extension.TEXT, {"text": [1]}, WebResponse(200, b"[\n  1\n]", TEXT)),
        (Extension.TEXT, {"text": 4.5}, WebResponse(200, b"4.5", TEXT)),
        (Extension.TEXT, {"text": False}, WebResponse(200, b"false", TEXT)),
        (Extension.TEXT, {"text": None}, WebResponse(200, b"null", TEXT)),
        (Extension.TEXT, "bare", WebResponse(200, b"bare", TEXT)),
        (Extension.HTTP, {"body": "hi"}, WebResponse(200, b"hi", HTML)),
    ],
)
def test_transcode(extension: Extension, value: Any, expected: WebResponse) -> None:
    assert transcode(extension, value) == expected


@pytest.mark.parametrize(
    ("extension", "value", "exc", "message"),
    [
        (Extension.JSON, "text", InvalidInput, "Response is not valid 'application/json'."),
        (Extension.JSON, 5, InvalidInput, "Response is not valid 'application/json'."),
        (Extension.HTML, {"html": 5}, InvalidInput, "Response is not valid 'text/html'."),
        (
            Extension.HTML,
            {"body": None, "html": "<p/>"},
            InvalidInput,
            "Response is not valid 'text/html'.",
        ),
        (Extension.HTML, {}, InvalidInput, "Response is not valid 'text/html'."),
        (Extension.SVG, {"html": "<svg/>"}, InvalidInput, "Response is not valid 'image/svg+xml'."),
        (Extension.TEXT, {"html": "x"}, NotFound, "Response does not include requested property."),
        (Extension.HTTP, [1], InvalidInput, INVALID_HTTP),
    ],
)
def test_transcode_refuses(
    extension: Extension, value: Any, exc: type[HomerunError], message: str
) -> None:
    with raises(exc, message):
        transcode(extension, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({}, WebResponse(204)),
        ({"body": ""}, WebResponse(204)),
        ({"body": None, "statusCode": 200}, WebResponse(200)),
        (
            {"statusCode": 302, "headers": {"Location": "/x"}},
            WebResponse(302, headers=(("Location", "/x"),)),
        ),
        ({"statusCode": "404", "body": "gone"}, WebResponse(404, b"gone", HTML)),
        ({"statusCode": 201.0, "body": "made"}, WebResponse(201, b"made", HTML)),
        ({"statusCode": 204, "body": "dropped"}, WebResponse(204)),
        (
            {"headers": {"Content-Type": "text/plain"}, "body": "aGk="},
            WebResponse(200, b"aGk=", TEXT),  # text stays text, even if it looks like base64
        ),
        (
            {"headers": {"content-type": "image/png"}, "body": PNG64},
            WebResponse(200, PNG, "image/png"),
        ),
        (
            {"headers": {"Content-Type": "image/svg+xml"}, "body": "<svg/>"},
            WebResponse(200, b"<svg/>", "image/svg+xml"),  # binary type, not base64: as is
        ),
        (
            {"headers": {"Content-Type": "application/json"}, "body": "eyJhIjoxfQ=="},
            WebResponse(200, b'{"a":1}', "application/json"),
        ),
        (
            {"headers": {"Content-Type": "application/json"}, "body": '{"a":1}'},
            WebResponse(200, b'{"a":1}', "application/json"),
        ),
        ({"body": {"a": [1, 2]}}, WebResponse(200, b'{"a":[1,2]}', "application/json")),
        ({"body": False}, WebResponse(200, b"false", "application/json")),
        ({"body": 0}, WebResponse(200, b"0", "application/json")),
        (
            {"headers": {"Content-Type": "application/hal+json"}, "body": {"a": 1}},
            WebResponse(200, b'{\n  "a": 1\n}', "application/hal+json"),
        ),
        (
            {"headers": {"Set-Cookie": ["a=1", ["b=2"]], "X-N": 1.5, "X-B": True}, "body": "x"},
            WebResponse(
                200,
                b"x",
                HTML,
                (("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-N", "1.5"), ("X-B", "true")),
            ),
        ),
        (
            {"headers": {"Content-Length": "99", "Transfer-Encoding": "chunked"}, "body": "x"},
            WebResponse(200, b"x", HTML),  # framing headers are the server's
        ),
    ],
)
def test_http_response(value: dict[str, Any], expected: WebResponse) -> None:
    assert http_response(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "text",
        None,
        {"statusCode": None},
        {"statusCode": True},
        {"statusCode": 200.5},
        {"statusCode": "20x"},
        {"statusCode": 99},
        {"statusCode": 199},
        {"statusCode": 299},
        {"statusCode": 1000},
        {"headers": None},
        {"headers": "X-A: 1"},
        {"headers": {"X-A": {"nested": 1}}},
        {"headers": {"X-A": None}},
        {"headers": {"Bad Name": "1"}},
        {"headers": {"X-A": "one\r\nX-Injected: two"}},
        {"headers": {"X-A": "snow ☃"}},
    ],
)
def test_invalid_http_responses(value: Any) -> None:
    with raises(InvalidInput, INVALID_HTTP):
        http_response(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"headers": {"Content-Type": "text/html"}, "body": {"a": 1}},
            "Response type in header did not match generated content type.",
        ),
        (
            {"headers": {"Content-Type": "image/png"}, "body": [1]},
            "Response type in header did not match generated content type.",
        ),
        (
            {"headers": {"Content-Type": "html"}, "body": "x"},
            "Response did not specify a known content-type.",
        ),
        (
            {"headers": {"Content-Type": "text/html;"}, "body": {"a": 1}},
            "Response did not specify a known content-type.",
        ),
    ],
)
def test_http_content_type_errors(value: dict[str, Any], message: str) -> None:
    with raises(InvalidInput, message):
        http_response(value)
