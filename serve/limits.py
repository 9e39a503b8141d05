"""Request body size limit, enforced while the body streams in (before any parsing)."""

from __future__ import annotations

import json
from typing import Any

from serve.metrics import ASGIApp, Message, Scope


class BodySizeLimit:
    """Answers 413 when a request body is over ``max_bytes`` (by header, or once it grows past it)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_large = int(value) > self.max_bytes
                except ValueError:
                    await _reject(send, 400, "Content-Length is not a number")
                    return
                if too_large:
                    await _reject(send, 413, self._message())
                    return
        if any(name == b"content-length" for name, _ in scope.get("headers", [])):
            # The server (h11/httptools) stops reading at Content-Length, so the check above holds.
            await self.app(scope, receive, send)
            return
        # Chunked upload: read it here, up to the limit, then hand the buffered body on.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await _reject(send, 413, self._message())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    def _message(self) -> str:
        return f"request body is over the limit of {self.max_bytes} bytes"


async def _reject(send: Any, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
