"""CORS on the OpenWhisk API: every response carries OpenWhisk's headers, and OPTIONS on any
`/api/v1` path answers 200 (shared/spec/openwhisk.md §1)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIXES = ("/api/v1", "/runtime/api/v1")
HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (
        b"access-control-allow-headers",
        b"Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent",
    ),
    (b"access-control-allow-methods", b"GET, DELETE, POST, PUT, HEAD"),
]


class CorsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PREFIXES) or path.startswith("/api/v1/web/"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_cors)
