"""Web actions without HTTP (shared/spec/openwhisk.md §8): the URL's action segment, the web
annotations, an action's arguments built from a request, and its result transcoded by the
URL's extension. Every function here is pure."""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from controller import messages
from controller.api.http import parse_json
from controller.domain import KeyValue
from controller.errors import InvalidInput, NotFound
from controller.names import DEFAULT_PACKAGE, is_valid_name
from controller.params import FINAL_PARAMS
from invoker.protocol import Outcome

CALLER_NAMESPACE = "_"  # means the caller's own elsewhere; a web URL has no caller
RESERVED = frozenset(
    {"__ow_method", "__ow_headers", "__ow_path", "__ow_user", "__ow_query", "__ow_body"}
)
CORS_ALLOW_METHODS = "OPTIONS, GET, DELETE, POST, PUT, HEAD, PATCH"
CORS_ALLOW_HEADERS = "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent"
# Headers that describe the body: the server sets them (Content-Type from the action's own).
_ENTITY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})
_STATUSES = frozenset(s.value for s in HTTPStatus if s.value >= 200)
_NO_BODY_STATUSES = frozenset({204, 304})


class Extension(enum.StrEnum):
    """The response type a web URL asks for; `.http` when the action segment names none."""

    HTTP = ".http"
    JSON = ".json"
    HTML = ".html"
    SVG = ".svg"
    TEXT = ".text"


@dataclass(frozen=True)
class WebTarget:
    """What `/api/v1/web/{namespace}/{package}/{action}[.ext][/rest]` addresses."""

    namespace: str
    package: str  # "" for `default`, the namespace's own actions
    name: str
    extension: Extension
    path: str  # the unmatched rest (`__ow_path`), "" if none


def split_extension(segment: str) -> tuple[str, Extension]:
    """`hello.json` -> (`hello`, .json); an unknown or missing extension is part of the name."""
    for extension in Extension:
        if segment.endswith(extension.value):
            return segment[: -len(extension.value)], extension
    return segment, Extension.HTTP


def parse_target(namespace: str, package: str, action_and_rest: str) -> WebTarget:
    """NotFound unless each segment is a valid name (`_` is no namespace here)."""
    segment, slash, rest = action_and_rest.partition("/")
    name, extension = split_extension(segment)
    valid = all(is_valid_name(s) for s in (namespace, package, segment, name))
    if not valid or namespace == CALLER_NAMESPACE:
        raise NotFound(messages.ENTITY_NOT_FOUND)
    return WebTarget(
        namespace=namespace,
        package="" if package == DEFAULT_PACKAGE else package,
        name=name,
        extension=extension,
        path=slash + rest,
    )


_ABSENT: Any = object()


@dataclass(frozen=True)
class WebAnnotations:
    """The annotations that make an action a web action and shape how it is served."""

    exported: bool = False  # web-export
    raw: bool = False  # raw-http
    custom_options: bool = False  # web-custom-options
    require_whisk_auth: Any = _ABSENT

    @classmethod
    def of(cls, annotations: Iterable[KeyValue]) -> WebAnnotations:
        found = {kv.key: kv.value for kv in annotations}
        return cls(
            exported=found.get("web-export") is True,
            raw=found.get("raw-http") is True,
            custom_options=found.get("web-custom-options") is True,
            require_whisk_auth=found.get("require-whisk-auth", _ABSENT),
        )

    def allows(self, *, authenticated: bool, secret: str | None) -> bool:
        """`require-whisk-auth`: absent or false lets anyone in; true needs valid Basic
        credentials; a string or number must equal the `X-Require-Whisk-Auth` header."""
        required = self.require_whisk_auth
        if required is _ABSENT or required is False:
            return True
        if required is True:
            return authenticated
        if isinstance(required, int | float):
            required = json.dumps(required)
        if isinstance(required, str):
            return secret is not None and hmac.compare_digest(secret.encode(), required.encode())
        return False


def cors_headers(requested_headers: str | None) -> tuple[tuple[str, str], ...]:
    """The automatic CORS headers; Allow-Headers echoes `Access-Control-Request-Headers`."""
    return (
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", CORS_ALLOW_METHODS),
        ("Access-Control-Allow-Headers", requested_headers or CORS_ALLOW_HEADERS),
    )


# Media types.

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")
_PARAMETER = re.compile(rf"({_TOKEN})=({_TOKEN}|\"[^\"\\\r\n]*\")")
# Application types that carry text although their main type is not `text`.
_TEXTUAL_APPLICATION = frozenset(
    {
        "javascript",
        "x-javascript",
        "ecmascript",
        "xml",
        "x-www-form-urlencoded",
        "graphql",
        "sql",
        "x-sh",
        "yaml",
        "x-yaml",
    }
)


@dataclass(frozen=True)
class MediaType:
    main: str  # lower case
    sub: str  # lower case
    parameters: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str) -> MediaType | None:
        """`type/subtype; name=value`, or None when that is not what `value` is."""
        head, *rest = value.split(";")
        match = _MEDIA_TYPE.fullmatch(head.strip())
        if match is None:
            return None
        parameters = []
        for raw in rest:
            param = _PARAMETER.fullmatch(raw.strip())
            if param is None:
                return None
            parameters.append((param.group(1).lower(), param.group(2).strip('"')))
        return cls(match.group(1).lower(), match.group(2).lower(), tuple(parameters))

    @property
    def essence(self) -> str:
        return f"{self.main}/{self.sub}"

    @property
    def charset(self) -> str | None:
        return next((v for k, v in self.parameters if k == "charset"), None)

    @property
    def is_json(self) -> bool:
        return self.essence == "application/json" or self.sub.endswith("+json")

    @property
    def is_binary(self) -> bool:
        """Bytes rather than text: everything but text/*, JSON, XML, a few textual
        application types, and any type that names its charset."""
        if self.main == "text" or self.is_json or self.charset is not None:
            return False
        if self.main == "application":
            return not (self.sub in _TEXTUAL_APPLICATION or self.sub.endswith("+xml"))
        return True

    def header(self) -> str:
        """The Content-Type to answer with: text types get UTF-8 unless they name a
        charset; JSON and binary types go without one."""
        parameters = list(self.parameters)
        if not (self.is_binary or self.is_json or self.charset):
            parameters.append(("charset", "UTF-8"))
        return "; ".join([self.essence, *(f"{k}={v}" for k, v in parameters)])


OCTET_STREAM = MediaType("application", "octet-stream")
APPLICATION_JSON = MediaType("application", "json")
TEXT_HTML = MediaType("text", "html")
TEXT_PLAIN = MediaType("text", "plain")
IMAGE_SVG = MediaType("image", "svg+xml")

_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def decode_base64(text: str) -> bytes | None:
    """The bytes `text` encodes, if it is non-empty padded standard base64."""
    stripped = text.strip()
    if not stripped or not _BASE64.fullmatch(stripped):
        return None
    try:
        return base64.b64decode(stripped, validate=True)
    except binascii.Error:
        return None


# Action arguments.


@dataclass(frozen=True)
class WebRequest:
    """The parts of an HTTP request a web action sees."""

    method: str
    headers: tuple[tuple[str, str], ...]
    path: str
    query: str  # raw, undecoded
    body: bytes = b""

    @property
    def media_type(self) -> MediaType:
        """The body's type; a missing or unparsable Content-Type means bytes."""
        value = next((v for k, v in self.headers if k.lower() == "content-type"), None)
        parsed = MediaType.parse(value) if value is not None else None
        return parsed or OCTET_STREAM


@dataclass(frozen=True)
class _Opaque:
    """A body that is not a JSON object: it reaches the action as `__ow_body`."""

    value: Any


def body_string(body: bytes, media: MediaType) -> str:
    """An opaque body as a string: base64 for bytes (and, as OpenWhisk has it, for
    `application/json`), else the text."""
    if media.is_binary or media.essence == "application/json":
        return base64.b64encode(body).decode()
    return body.decode(errors="replace")


def _parsed_body(body: bytes, media: MediaType) -> dict[str, Any] | _Opaque | None:
    if not body:
        return None
    if media.is_json:
        value = parse_json(body)
        return value if isinstance(value, dict) else _Opaque(value)
    if media.essence == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
    return _Opaque(body_string(body, media))


def context_arguments(request: WebRequest, user: str | None) -> dict[str, Any]:
    """`__ow_method`, `__ow_headers` (lower-case names), `__ow_path`, and `__ow_user` when
    the request carried valid credentials."""
    args: dict[str, Any] = {
        "__ow_method": request.method.lower(),
        "__ow_headers": {k.lower(): v for k, v in request.headers},
        "__ow_path": request.path,
    }
    if user is not None:
        args["__ow_user"] = user
    return args


def action_arguments(request: WebRequest, *, raw: bool, user: str | None) -> dict[str, Any]:
    """The arguments of a web action: the context, then query parameters, then the body's
    fields (a JSON object or a form) or the body itself as `__ow_body`. A `raw-http` action
    gets the query string and the body undecoded instead. The query and the body may not
    name a context argument (400)."""
    args = context_arguments(request, user)
    if raw:
        args["__ow_query"] = request.query
        args["__ow_body"] = body_string(request.body, request.media_type) if request.body else ""
        return args
    query = dict(parse_qsl(request.query, keep_blank_values=True))
    body = _parsed_body(request.body, request.media_type)
    fields = body if isinstance(body, dict) else {}
    if RESERVED.intersection(query) or RESERVED.intersection(fields):
        raise InvalidInput(FINAL_PARAMS)
    args.update(query)
    args.update(fields)
    if isinstance(body, _Opaque):
        args["__ow_body"] = body.value
    return args


# Responses.


@dataclass(frozen=True)
class WebResponse:
    """What a web action's result becomes on the wire."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def response_value(outcome: Outcome, result: Any) -> Any:
    """What to transcode: a success's result, an application error's `error`; any other
    failure is the developer's or ours, and shows as a generic 400."""
    if outcome is Outcome.SUCCESS:
        return result
    if outcome is Outcome.APPLICATION_ERROR:
        if isinstance(result, dict) and "error" in result:
            return result["error"]
        raise NotFound(messages.WEB_PROPERTY_NOT_FOUND)
    raise InvalidInput(messages.WEB_ERROR_PROCESSING)


def transcode(extension: Extension, value: Any) -> WebResponse:
    """The response for `value` as `extension` asks; InvalidInput or NotFound if `value`
    does not fit it."""
    if extension is Extension.HTTP:
        return http_response(value)
    if extension is Extension.JSON:
        if not isinstance(value, dict | list):
            raise InvalidInput(messages.web_invalid_media("application/json"))
        return WebResponse(body=_compact(value), content_type="application/json")
    if extension is Extension.TEXT:
        return _text_response(value)
    field, media = ("html", TEXT_HTML) if extension is Extension.HTML else ("svg", IMAGE_SVG)
    chosen = _field(value, "body", field) if isinstance(value, dict) else value
    if not isinstance(chosen, str):
        raise InvalidInput(messages.web_invalid_media(media.essence))
    return WebResponse(body=chosen.encode(), content_type=media.header())


def _field(value: dict[str, Any], first: str, second: str) -> Any:
    return value[first] if first in value else value.get(second)


def _compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _pretty(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2).encode()


def _text_response(value: Any) -> WebResponse:
    if isinstance(value, dict):
        if "body" not in value and "text" not in value:
            raise NotFound(messages.WEB_PROPERTY_NOT_FOUND)
        value = _field(value, "body", "text")
    if isinstance(value, str):
        body = value.encode()
    elif isinstance(value, dict | list):
        body = _pretty(value)
    else:
        body = _compact(value)
    return WebResponse(body=body, content_type=TEXT_PLAIN.header())


class _NotHttp(Exception):
    """The result is not a valid `message/http` response."""


def http_response(value: Any) -> WebResponse:
    """`.http`: `{statusCode, headers, body}`. A string body is text, or base64 of bytes for
    a binary or JSON Content-Type; another JSON body is serialized; no body is 204."""
    try:
        if not isinstance(value, dict):
            raise _NotHttp
        headers = _headers(value["headers"]) if "headers" in value else []
        status = _status(value["statusCode"]) if "statusCode" in value else None
    except _NotHttp:
        raise InvalidInput(messages.web_invalid_media("message/http")) from None
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    others = tuple((k, v) for k, v in headers if k.lower() not in _ENTITY_HEADERS)
    body = value.get("body")
    if body is None or body == "" or status in _NO_BODY_STATUSES:
        return WebResponse(status=status or 204, headers=others)
    media = _response_media(content_type, TEXT_HTML if isinstance(body, str) else APPLICATION_JSON)
    if isinstance(body, str):
        payload = _string_body(body, media)
    elif not media.is_json:
        raise InvalidInput(messages.WEB_CONTENT_TYPE_MISMATCH)
    else:
        payload = _compact(body) if media.essence == "application/json" else _pretty(body)
    return WebResponse(status or 200, payload, media.header(), others)


def _response_media(content_type: str | None, default: MediaType) -> MediaType:
    if content_type is None:
        return default
    media = MediaType.parse(content_type)
    if media is None:
        raise InvalidInput(messages.WEB_UNKNOWN_CONTENT_TYPE)
    return media


def _string_body(body: str, media: MediaType) -> bytes:
    if media.is_binary or media.is_json:
        decoded = decode_base64(body)
        if decoded is not None:
            return decoded
    return body.encode()


_HEADER_NAME = re.compile(_TOKEN)
_BAD_VALUE = re.compile(r"[\x00\r\n]")


def _headers(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, dict):
        raise _NotHttp
    headers: list[tuple[str, str]] = []
    for name, value in raw.items():
        if not _HEADER_NAME.fullmatch(name):
            raise _NotHttp
        headers.extend((name, v) for v in _header_values(value))
    return headers


def _header_values(value: Any) -> list[str]:
    """A header's values: strings, numbers and booleans; an array for several."""
    if isinstance(value, list):
        return [v for item in value for v in _header_values(item)]
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool | int | float):
        text = json.dumps(value)
    else:
        raise _NotHttp
    if _BAD_VALUE.search(text) or not _latin1(text):
        raise _NotHttp
    return [text]


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _status(raw: Any) -> int:
    """A number or numeric string naming a known status code from 200 up."""
    if isinstance(raw, bool):
        raise _NotHttp
    if isinstance(raw, float) and raw.is_integer():
        code = int(raw)
    elif isinstance(raw, int):
        code = raw
    elif isinstance(raw, str) and re.fullmatch(r"[+-]?[0-9]{1,10}", raw):
        code = int(raw)
    else:
        raise _NotHttp
    if code not in _STATUSES:
        raise _NotHttp
    return code
