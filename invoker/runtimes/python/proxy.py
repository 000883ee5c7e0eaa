"""Homerun action proxy for Python.

Speaks the OpenWhisk /init and /run JSON protocol over HTTP/1.1 on a unix socket (env
HOMERUN_SOCKET). Standard library only: it runs inside minimal images as `python3 -u proxy.py`.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import io
import json
import os
import queue
import signal
import socket
import socketserver
import sys
import tempfile
import threading
import traceback
import zipfile
from collections.abc import Callable
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, NoReturn, TypeVar

SOCKET = os.environ.get("HOMERUN_SOCKET", "/run/homerun/action.sock")
# With both set (the docker sandbox sets them), connections to 127.0.0.1:<port> are piped to
# the invoker's API relay socket: the container's one way out to the Homerun API.
API_SOCKET = os.environ.get("HOMERUN_API_SOCKET")
API_PORT = os.environ.get("HOMERUN_API_PORT")
SENTINEL = b"XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"
MAX_BODY = 64 * 1024 * 1024
THREAD_STACK = 2 * 1024 * 1024  # connection threads only parse HTTP and JSON
MODULE_NAME = "__action__"
NOT_A_DICTIONARY = "The action did not return a dictionary."

Action = Callable[[Any], Any]
T = TypeVar("T")


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class State:
    """The loaded action."""

    action: Action | None = None


class MainThread:
    """Runs the action's code in the main thread, one call at a time, on behalf of the connection
    threads: actions may use signal handlers, and sys.exit() ends the process as it should."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def call(self, function: Callable[[], T]) -> T:
        future: Future[T] = Future()

        def job() -> None:
            try:
                future.set_result(function())
            except Exception as error:
                future.set_exception(error)

        self._jobs.put(job)
        return future.result()

    def loop(self) -> None:
        while True:
            self._jobs.get()()


STATE = State()
MAIN = MainThread()


# ---- loading the action ------------------------------------------------------------------------


def _extract(archive: bytes, directory: Path) -> None:
    root = directory.resolve()
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        for name in zipped.namelist():
            target = (root / name).resolve()
            if target != root and root not in target.parents:
                raise ValueError(f"zip entry '{name}' points outside the archive")
        zipped.extractall(root)


def _load_module(directory: Path) -> ModuleType:
    entry = directory / "__main__.py"
    if not entry.is_file():
        raise FileNotFoundError("Zipped actions must contain __main__.py at the root.")
    sys.path.insert(0, str(directory))
    for site in sorted(directory.glob("virtualenv/lib/python3*/site-packages")):
        sys.path.insert(1, str(site))
    spec = importlib.util.spec_from_file_location(MODULE_NAME, entry)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {entry}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def _set_environment(env: dict[str, Any]) -> None:
    for key, value in env.items():
        if value is None:
            os.environ[str(key)] = ""
        else:
            os.environ[str(key)] = value if isinstance(value, str) else json.dumps(value)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def init(message: Any) -> None:
    if STATE.action is not None:
        raise HttpError(403, "Cannot initialize the action more than once.")
    value = message.get("value") if isinstance(message, dict) else None
    if not isinstance(value, dict) or not isinstance(value.get("code"), str) or not value["code"]:
        raise HttpError(502, "Missing main/no code to execute.")
    main = value.get("main") or "main"
    if isinstance(value.get("env"), dict):
        _set_environment(value["env"])
    try:
        directory = Path(tempfile.mkdtemp(prefix="action-"))
        if value.get("binary"):
            try:
                archive = base64.b64decode(value["code"], validate=True)
            except (binascii.Error, ValueError) as error:
                raise ValueError(f"the archive is not valid base64: {error}") from None
            _extract(archive, directory)
        else:
            (directory / "__main__.py").write_text(value["code"], encoding="utf-8")
        module = _load_module(directory)
    except SystemExit as exit_:
        _exit(exit_)
    except Exception as error:
        raise HttpError(502, f"Initialization has failed due to: {_describe(error)}") from None
    function = getattr(module, str(main), None)
    if not callable(function):
        raise HttpError(502, f"Action entrypoint '{main}' is not a function.")
    STATE.action = function


# ---- running it -------------------------------------------------------------------------------


def _serialize(result: Any) -> bytes | None:
    """The body for a result, or None when it is not a JSON object or array."""
    if not isinstance(result, dict | list):
        return None
    try:
        return json.dumps(result, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError, RecursionError):
        return None


def run(message: Any) -> tuple[int, bytes]:
    action = STATE.action
    if action is None:
        raise HttpError(403, "Cannot run the action before it is initialized.")
    if not isinstance(message, dict):
        raise HttpError(400, "The request body must be a JSON object.")
    for key, value in message.items():
        if key != "value":
            text = "" if value is None else value
            os.environ[f"__OW_{key.upper()}"] = text if isinstance(text, str) else json.dumps(text)
    try:
        result = action(message.get("value", {}))
        if hasattr(result, "__await__"):  # async def main
            import asyncio  # only when needed: it takes a while to import

            result = asyncio.run(_await(result))
    except SystemExit as exit_:
        _exit(exit_)
    except Exception as error:
        traceback.print_exc()
        return 502, _json({"error": f"An error has occurred: {str(error) or type(error).__name__}"})
    body = _serialize(result)
    return (502, _json({"error": NOT_A_DICTIONARY})) if body is None else (200, body)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _exit(exit_: SystemExit) -> NoReturn:
    """sys.exit() in the action ends the process, like process.exit() in Node.js: the invoker sees
    the connection drop. (In the main thread it would otherwise wait for the HTTP thread.)"""
    _flush()
    code = exit_.code
    os._exit(0 if code is None else code if isinstance(code, int) else 1)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _write_sentinels() -> None:
    """Writes the sentinel to fd 1 and fd 2, after everything the action printed."""
    _flush()
    for fd in (1, 2):
        data = SENTINEL
        while data:
            try:
                data = data[os.write(fd, data) :]
            except OSError:
                break


def _json(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


# ---- HTTP -------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the invoker reuses one connection

    def do_GET(self) -> None:
        if self._path() == "/health":
            self._send(200, b'{"ok":true}')
        else:
            self._not_routed()

    def do_POST(self) -> None:
        path = self._path()
        if path not in ("/init", "/run"):
            self._not_routed()
            return
        try:
            status, body = self._init() if path == "/init" else self._run()
        except HttpError as error:
            status, body = error.status, _json({"error": error.message})
        except Exception as error:  # a bug here must not print to the action's stderr
            status, body = 500, _json({"error": f"The proxy failed: {_describe(error)}"})
        self._send(status, body)

    def _init(self) -> tuple[int, bytes]:
        message = self._read_json()
        MAIN.call(lambda: init(message))
        return 200, b'{"ok":true}'

    def _run(self) -> tuple[int, bytes]:
        try:
            message = self._read_json()
            return MAIN.call(lambda: run(message))
        except HttpError as error:
            return error.status, _json({"error": error.message})
        finally:
            _write_sentinels()  # also when the request was refused: the invoker waits for them

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _not_routed(self) -> None:
        self.close_connection = True  # any request body was not read
        if self._path() in ("/health", "/init", "/run"):
            self._send(405, b'{"error":"Method not allowed."}')
        else:
            self._send(404, b'{"error":"Not found."}')

    def _read_json(self) -> Any:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = self._read_chunked()
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self.close_connection = True
                raise HttpError(400, "Invalid Content-Length.") from None
            if length > MAX_BODY:
                self.close_connection = True
                raise HttpError(413, "The request body is too large.")
            data = self.rfile.read(length)
        try:
            return json.loads(data)
        except ValueError as error:
            raise HttpError(400, f"The request body is not valid JSON: {error}") from None

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise HttpError(400, "Invalid chunked body.") from None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return bytes(data)
            if len(data) + size > MAX_BODY:
                self.close_connection = True
                raise HttpError(413, "The request body is too large.")
            data += self.rfile.read(size)
            self.rfile.readline(1024)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        """The proxy prints nothing: stdout and stderr belong to the action."""


class Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away mid-answer is not the action's business: print nothing
        (socketserver's default writes a traceback into the action's stderr)."""


def _copy(source: socket.socket, target: socket.socket) -> None:
    """Copy until end of stream, then half-close `target`."""
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ApiForwarder(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        client: socket.socket = self.request
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as relay:
            try:
                relay.connect(API_SOCKET or "")
            except OSError:
                return
            upstream = threading.Thread(target=_copy, args=(client, relay), daemon=True)
            upstream.start()
            _copy(relay, client)
            upstream.join()


class ApiServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Nothing in the action's stderr."""


def _forward_api() -> None:
    if not API_SOCKET or not API_PORT:
        return
    try:
        server = ApiServer(("127.0.0.1", int(API_PORT)), ApiForwarder)
    except (OSError, ValueError) as error:
        print(f"homerun proxy: cannot serve the API on port {API_PORT}: {error}", file=sys.stderr)
        return
    threading.Thread(target=server.serve_forever, name="api", daemon=True).start()


def _limit_malloc_arenas() -> None:
    """glibc gives each thread its own 64 MiB malloc arena. That address space counts against
    RLIMIT_AS, which the process sandbox uses as the memory limit, so keep one arena."""
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-8, 1)  # M_ARENA_MAX
    except (ImportError, OSError, AttributeError):
        pass  # not glibc, or no ctypes: only address space is wasted


def serve() -> None:
    _limit_malloc_arenas()
    threading.stack_size(THREAD_STACK)
    try:
        Path(SOCKET).parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass  # usually a bind-mounted directory that exists; binding says what is wrong
    try:
        os.unlink(SOCKET)  # a stale socket from an earlier proxy
    except FileNotFoundError:
        pass
    try:
        server = Server(SOCKET, Handler)
    except OSError as error:
        print(f"homerun proxy: cannot listen on {SOCKET}: {error}", file=sys.stderr)
        sys.exit(1)
    os.chmod(SOCKET, 0o666)

    def stop(signum: int, frame: FrameType | None) -> None:
        try:
            os.unlink(SOCKET)
        except OSError:
            pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _forward_api()
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    MAIN.loop()


if __name__ == "__main__":
    serve()
