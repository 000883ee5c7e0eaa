"""Web actions over HTTP, end to end on the process sandbox (shared/spec/openwhisk.md §8):
lookup, arguments, authentication, response mapping per extension, CORS and OPTIONS."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from controller.api.openwhisk.webcodec import CORS_ALLOW_HEADERS, CORS_ALLOW_METHODS
from invoker import wirejson
from tests.conftest import Engine

WEB = "/api/v1/web/acme-int1"
FINAL_PARAMS = "Request defines parameters that are not allowed (e.g., reserved properties)."
NOT_FOUND = "The requested resource does not exist."
AUTH_FAILED = "Authentication is possible but has failed or not yet been provided."
ERROR_PROCESSING = "There was an error processing your request."
ACTIVATION_HEADER = "x-openwhisk-activation-id"

ECHO = "function main(p) { return p; }"  # the arguments, as the action got them
GIVE = "function main(p) { return p.out; }"  # whatever the body's `out` says
FAIL = "function main(p) { return {error: p.out}; }"  # an application error
THROW = "function main() { throw new Error('boom'); }"  # a developer error
SLEEPY = "function main(p) { return new Promise(r => setTimeout(() => r({done: true}), 1500)); }"
PNG = bytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0xFF])


@pytest.fixture
def engine_transport() -> str:
    """Web actions are tested over real HTTP: a uvicorn server on a loopback port."""
    return "http"


@pytest.fixture
def sandbox_kind() -> str:
    return "process"


def annotated(**annotations: Any) -> list[dict[str, Any]]:
    """Annotations from keywords: `web_export=True` is `web-export: true`."""
    return [{"key": k.replace("_", "-"), "value": v} for k, v in annotations.items()]


async def web(engine: Engine, name: str, code: str, **annotations: Any) -> None:
    """Create a web action (`web-export: true` unless overridden)."""
    annotations.setdefault("web_export", True)
    await engine.create(name, code, annotations=annotated(**annotations))


async def give(engine: Engine, url: str, out: Any) -> httpx.Response:
    """POST `{"out": out}` to a GIVE (or FAIL) action's `url`."""
    return await engine.client.post(url, json={"out": out}, timeout=60)


async def basic_auth(engine: Engine) -> dict[str, str]:
    """The Basic `Authorization` header of the namespace `acme-int1`."""
    found = await engine.client.get("/runtime/admin/namespaces/acme/int1", headers=engine.headers)
    assert found.status_code == 200, found.text
    token = base64.b64encode(found.json()["auth"].encode()).decode()
    return {"Authorization": f"Basic {token}"}


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    """An error in OpenWhisk's shape: exactly `{error, code}`, `code` the request id."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body == {"error": message, "code": response.headers["x-request-id"]}


def assert_cors(response: httpx.Response, allow_headers: str = CORS_ALLOW_HEADERS) -> None:
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == CORS_ALLOW_METHODS
    assert response.headers["access-control-allow-headers"] == allow_headers


# Lookup.


async def test_only_exported_actions_are_found(engine: Engine) -> None:
    await web(engine, "echo", ECHO)
    await web(engine, "hidden", ECHO, web_export=False)
    await engine.create("plain", ECHO)
    await engine.create("demo/hello", ECHO, annotations=annotated(web_export=True))
    assert (await engine.client.get(f"{WEB}/default/echo.json")).status_code == 200
    assert (await engine.client.get(f"{WEB}/demo/hello.json")).status_code == 200
    for url in [
        f"{WEB}/default/hidden.json",  # web-export: false
        f"{WEB}/default/plain",  # not annotated at all
        f"{WEB}/default/nope.json",  # does not exist
        f"{WEB}/default/hello.json",  # in a package, not the default one
        f"{WEB}/demo/echo.json",  # in the default package, not `demo`
        "/api/v1/web/_/default/echo.json",  # the namespace must be explicit
        "/api/v1/web/nobody-here/default/echo.json",
    ]:
        response = await engine.client.get(url)
        assert_error(response, 404, NOT_FOUND)
        assert "access-control-allow-origin" not in response.headers


async def test_packages_and_bindings_pass_their_parameters(engine: Engine) -> None:
    await engine.create("demo/echo", ECHO, annotations=annotated(web_export=True))
    auth = await basic_auth(engine)
    packages = "/api/v1/namespaces/acme-int1/packages"
    params = [{"key": "p", "value": "package"}, {"key": "q", "value": "package"}]
    updated = await engine.client.put(
        f"{packages}/demo?overwrite=true", json={"parameters": params}, headers=auth
    )
    assert updated.status_code == 200, updated.text
    binding = {
        "binding": {"namespace": "acme-int1", "name": "demo"},
        "parameters": [{"key": "p", "value": "binding"}],
    }
    bound = await engine.client.put(f"{packages}/bound", json=binding, headers=auth)
    assert bound.status_code == 200, bound.text
    direct = await engine.client.get(f"{WEB}/demo/echo.json")
    assert (direct.json()["p"], direct.json()["q"]) == ("package", "package")
    through = await engine.client.get(f"{WEB}/bound/echo.json?q=query")
    assert (through.json()["p"], through.json()["q"]) == ("binding", "query")


# Arguments.


async def test_context_query_and_json_body(engine: Engine) -> None:
    params = [{"key": "a", "value": "action"}, {"key": "b", "value": "action"}]
    await engine.create("echo", ECHO, annotations=annotated(web_export=True), params=params)
    response = await engine.client.put(
        f"{WEB}/default/echo.json/some/path?b=query&c=query&c=last",
        json={"c": "body", "d": [1]},
        headers={"X-Custom": "Yes"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers[ACTIVATION_HEADER]
    assert_cors(response)
    args = response.json()
    headers = args.pop("__ow_headers")
    assert args == {
        "__ow_method": "put",
        "__ow_path": "/some/path",
        "a": "action",  # action parameter < query < body
        "b": "query",
        "c": "body",
        "d": [1],
    }
    assert headers["x-custom"] == "Yes"
    assert headers["content-type"] == "application/json"
    assert headers["host"] == engine.client.base_url.netloc.decode()
    for method in ["GET", "POST", "PATCH", "DELETE"]:
        other = await engine.client.request(method, f"{WEB}/default/echo.json")
        assert other.json()["__ow_method"] == method.lower()
    head = await engine.client.head(f"{WEB}/default/echo.json")
    assert head.status_code == 200 and head.headers[ACTIVATION_HEADER]


async def test_form_text_binary_and_non_object_bodies(engine: Engine) -> None:
    await web(engine, "echo", ECHO)
    url = f"{WEB}/default/echo.json"
    form = await engine.client.post(url + "?a=query", data={"a": "form", "b": "two words"})
    assert form.json()["a"] == "form" and form.json()["b"] == "two words"
    assert "__ow_body" not in form.json()
    text = await engine.client.post(url, content="hi there", headers={"content-type": "text/plain"})
    assert text.json()["__ow_body"] == "hi there"
    binary = await engine.client.post(url, content=PNG, headers={"content-type": "image/png"})
    assert base64.b64decode(binary.json()["__ow_body"]) == PNG
    untyped = await engine.client.post(url, content=b"\x00\x01")
    assert untyped.json()["__ow_body"] == base64.b64encode(b"\x00\x01").decode()
    array = await engine.client.post(url, json=[1, "two"])
    assert array.json()["__ow_body"] == [1, "two"]
    empty = await engine.client.post(url, content=b"", headers={"content-type": "text/plain"})
    assert "__ow_body" not in empty.json()
    malformed = await engine.client.post(
        url, content=b"{nope", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"].startswith("The request content was malformed:")
    # JSON no message to an invoker could carry: refused, with the reason.
    for raw, problem in [
        (b'{"s": "x\\ud800"}', wirejson.LONE_SURROGATE),
        (b'{"a":' * 300 + b"1" + b"}" * 300, wirejson.TOO_DEEP),
    ]:
        unfit = await engine.client.post(
            url, content=raw, headers={"content-type": "application/json"}
        )
        assert unfit.status_code == 400, unfit.text
        assert unfit.json()["error"] == f"The request content was malformed:\n{problem}"


async def test_raw_http_gets_the_query_and_body_undecoded(engine: Engine) -> None:
    await web(engine, "raw", ECHO, raw_http=True)
    url = f"{WEB}/default/raw.json"
    as_json = await engine.client.post(url + "?x=1&y=a%20b", json={"name": "Jane"})
    args = as_json.json()
    assert args["__ow_query"] == "x=1&y=a%20b"
    assert base64.b64decode(args["__ow_body"]) == b'{"name":"Jane"}'
    assert "x" not in args and "name" not in args
    text = await engine.client.post(url, content="plain", headers={"content-type": "text/plain"})
    assert text.json()["__ow_body"] == "plain"
    bare = await engine.client.get(url + "?__ow_body=not-checked")
    assert bare.json()["__ow_body"] == "" and bare.json()["__ow_query"] == "__ow_body=not-checked"


async def test_reserved_and_final_parameters_are_refused(engine: Engine) -> None:
    params = [{"key": "fixed", "value": "mine"}, {"key": "unset", "value": None}]
    await engine.create(
        "final", ECHO, annotations=annotated(web_export=True, final=True), params=params
    )
    url = f"{WEB}/default/final.json"
    for response in [
        await engine.client.get(url + "?__ow_method=post"),
        await engine.client.post(url, json={"__ow_headers": {}}),
        await engine.client.post(url, data={"__ow_user": "someone"}),
        await engine.client.get(url + "?fixed=yours"),
        await engine.client.post(url, json={"fixed": "yours"}),
    ]:
        assert_error(response, 400, FINAL_PARAMS)
        assert_cors(response)
    allowed = await engine.client.get(url + "?unset=now&other=1")
    assert allowed.status_code == 200
    assert allowed.json()["unset"] == "now" and allowed.json()["fixed"] == "mine"


async def test_payload_over_the_limit_is_413(engine: Engine) -> None:
    await web(engine, "echo", ECHO)
    big = b"x" * (1024 * 1024 + 1)
    response = await engine.client.post(
        f"{WEB}/default/echo.json", content=big, headers={"content-type": "text/plain"}
    )
    assert_error(response, 413, f"Request larger than allowed: {len(big)} > 1048576 bytes.")


# Authentication.


async def test_user_is_passed_only_with_valid_credentials(engine: Engine) -> None:
    await web(engine, "echo", ECHO)
    url = f"{WEB}/default/echo.json"
    good = await engine.client.get(url, headers=await basic_auth(engine))
    assert good.json()["__ow_user"] == "acme-int1"
    wrong = base64.b64encode(b"nobody:wrong").decode()
    anonymous = await engine.client.get(url, headers={"Authorization": f"Basic {wrong}"})
    assert anonymous.status_code == 200 and "__ow_user" not in anonymous.json()


async def test_require_whisk_auth_true_needs_credentials(engine: Engine) -> None:
    await web(engine, "secure", ECHO, require_whisk_auth=True)
    url = f"{WEB}/default/secure.json"
    missing = await engine.client.get(url)
    assert_error(missing, 401, AUTH_FAILED)
    assert_cors(missing)
    assert "www-authenticate" not in missing.headers
    wrong = base64.b64encode(b"nobody:wrong").decode()
    assert_error(
        await engine.client.get(url, headers={"Authorization": f"Basic {wrong}"}), 401, AUTH_FAILED
    )
    allowed = await engine.client.get(url, headers=await basic_auth(engine))
    assert allowed.status_code == 200 and allowed.json()["__ow_user"] == "acme-int1"
    preflight = await engine.client.options(url)  # OPTIONS is never auth-checked
    assert preflight.status_code == 200


async def test_require_whisk_auth_secret(engine: Engine) -> None:
    await web(engine, "secret", ECHO, require_whisk_auth="s3cret")
    await web(engine, "number", ECHO, require_whisk_auth=1234)
    for name, header, status in [
        ("secret", "s3cret", 200),
        ("secret", "S3CRET", 401),  # compared exactly
        ("secret", None, 401),
        ("number", "1234", 200),  # a number is compared as its text
        ("number", "1235", 401),
    ]:
        headers = {} if header is None else {"X-Require-Whisk-Auth": header}
        response = await engine.client.get(f"{WEB}/default/{name}.json", headers=headers)
        if status == 401:
            assert_error(response, 401, AUTH_FAILED)
        else:
            assert response.status_code == 200, (name, header, response.text)


# Responses, by extension.


async def test_json_extension(engine: Engine) -> None:
    await web(engine, "give", GIVE)
    await web(engine, "fail", FAIL)
    array = await give(engine, f"{WEB}/default/give.json", [1, {"b": "ü"}])
    assert array.status_code == 200
    assert array.headers["content-type"] == "application/json"
    assert array.content == '[1,{"b":"ü"}]'.encode()
    error_object = await give(engine, f"{WEB}/default/fail.json", {"why": "bad"})
    assert error_object.status_code == 200 and error_object.json() == {"why": "bad"}
    error_string = await give(engine, f"{WEB}/default/fail.json", "bad")
    assert_error(error_string, 400, "Response is not valid 'application/json'.")
    assert error_string.headers[ACTIVATION_HEADER]


async def test_html_extension(engine: Engine) -> None:
    await web(engine, "give", GIVE)
    await web(engine, "fail", FAIL)
    url = f"{WEB}/default/give.html"
    html = await give(engine, url, {"html": "<p>hi</p>"})
    assert html.status_code == 200
    assert html.headers["content-type"] == "text/html; charset=UTF-8"
    assert html.text == "<p>hi</p>"
    body_first = await give(engine, url, {"body": "<b>body</b>", "html": "<i>html</i>"})
    assert body_first.text == "<b>body</b>"
    assert_error(await give(engine, url, {"html": 5}), 400, "Response is not valid 'text/html'.")
    oops = await give(engine, f"{WEB}/default/fail.html", "<p>oops</p>")
    assert oops.status_code == 200 and oops.text == "<p>oops</p>"


async def test_svg_extension(engine: Engine) -> None:
    await web(engine, "give", GIVE)
    url = f"{WEB}/default/give.svg"
    svg = await give(engine, url, {"svg": "<svg/>"})
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert svg.text == "<svg/>"
    missing = await give(engine, url, {"other": "<svg/>"})
    assert_error(missing, 400, "Response is not valid 'image/svg+xml'.")


async def test_text_extension(engine: Engine) -> None:
    await web(engine, "give", GIVE)
    url = f"{WEB}/default/give.text"
    text = await give(engine, url, {"text": "plain"})
    assert text.status_code == 200
    assert text.headers["content-type"] == "text/plain; charset=UTF-8"
    assert text.text == "plain"
    pretty = await give(engine, url, {"body": {"a": 1}})
    assert json.loads(pretty.text) == {"a": 1} and "\n" in pretty.text
    assert (await give(engine, url, {"text": 5})).text == "5"
    missing = await give(engine, url, {"other": 1})
    assert_error(missing, 404, "Response does not include requested property.")


async def test_http_extension(engine: Engine) -> None:
    await web(engine, "give", GIVE)
    url = f"{WEB}/default/give.http"
    full = await give(
        engine,
        url,
        {
            "statusCode": "201",
            "headers": {"Set-Cookie": ["a=1", "b=2"], "X-Count": 3, "X-Flag": True},
            "body": "<h1>made</h1>",
        },
    )
    assert full.status_code == 201
    assert full.headers["content-type"] == "text/html; charset=UTF-8"
    assert full.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert full.headers["x-count"] == "3" and full.headers["x-flag"] == "true"
    assert full.text == "<h1>made</h1>"
    assert full.headers[ACTIVATION_HEADER]
    assert_cors(full)
    image = await give(
        engine,
        url,
        {"headers": {"Content-Type": "image/png"}, "body": base64.b64encode(PNG).decode()},
    )
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content == PNG
    as_json = await give(engine, url, {"statusCode": 200, "body": {"ok": True}})
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json() == {"ok": True}
    empty = await give(engine, url, {"headers": {"X-Empty": "yes"}})
    assert empty.status_code == 204 and empty.content == b""
    assert empty.headers["x-empty"] == "yes"


async def test_http_extension_refuses_invalid_results(engine: Engine) -> None:
    await web(engine, "give", GIVE)
    invalid = "Response is not valid 'message/http'."
    for out, message in [
        ([1, 2], invalid),  # an array is a fine result, but not an HTTP response
        ({"statusCode": "abc"}, invalid),
        ({"statusCode": 999}, invalid),
        ({"headers": ["x"]}, invalid),
        (
            {"headers": {"Content-Type": "text/plain"}, "body": {"a": 1}},
            "Response type in header did not match generated content type.",
        ),
        (
            {"headers": {"Content-Type": "nonsense"}, "body": "x"},
            "Response did not specify a known content-type.",
        ),
    ]:
        response = await give(engine, f"{WEB}/default/give.http", out)
        assert_error(response, 400, message)


async def test_no_extension_is_http_and_errors_are_mapped(engine: Engine) -> None:
    await web(engine, "give", GIVE)
    await web(engine, "fail", FAIL)
    await web(engine, "throw", THROW)
    plain = await give(engine, f"{WEB}/default/give", {"body": "hello"})
    assert plain.status_code == 200 and plain.text == "hello"
    teapot = await give(engine, f"{WEB}/default/fail", {"statusCode": 418, "body": "teapot"})
    assert teapot.status_code == 418 and teapot.text == "teapot"
    thrown = await engine.client.get(f"{WEB}/default/throw")
    assert_error(thrown, 400, ERROR_PROCESSING)
    assert thrown.headers[ACTIVATION_HEADER]
    assert_cors(thrown)


# CORS and OPTIONS.


async def test_options_answers_without_invoking(engine: Engine) -> None:
    await web(engine, "throw", THROW)
    response = await engine.client.options(
        f"{WEB}/default/throw", headers={"Access-Control-Request-Headers": "X-Mine, Content-Type"}
    )
    assert response.status_code == 200 and response.content == b""
    assert ACTIVATION_HEADER not in response.headers
    assert_cors(response, "X-Mine, Content-Type")


async def test_custom_options_invokes_the_action_and_adds_no_cors(engine: Engine) -> None:
    code = (
        "function main(p) { return {statusCode: p.__ow_method === 'options' ? 204 : 200,"
        " headers: {'Access-Control-Allow-Origin': 'https://example.com', Allow: 'GET'},"
        " body: p.__ow_method === 'options' ? '' : 'got'}; }"
    )
    await web(engine, "custom", code, web_custom_options=True)
    options = await engine.client.options(f"{WEB}/default/custom")
    assert options.status_code == 204
    assert options.headers[ACTIVATION_HEADER]
    assert options.headers["allow"] == "GET"
    assert options.headers["access-control-allow-origin"] == "https://example.com"
    assert "access-control-allow-methods" not in options.headers
    get = await engine.client.get(f"{WEB}/default/custom")
    assert get.status_code == 200 and get.text == "got"
    assert "access-control-allow-methods" not in get.headers


class TestSlowAction:
    @pytest.fixture
    def blocking_wait_ms(self) -> int:
        return 500

    async def test_not_done_within_the_wait_is_202(self, engine: Engine) -> None:
        await web(engine, "sleepy", SLEEPY)
        response = await engine.client.get(f"{WEB}/default/sleepy.json")
        assert_error(response, 202, "Response not yet ready.")
        assert_cors(response)
        record = await engine.activation(response.headers[ACTIVATION_HEADER])
        assert record is not None and record.response["result"] == {"done": True}
        assert record.namespace == "acme-int1"
