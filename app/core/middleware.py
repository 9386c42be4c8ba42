"""Cross-cutting HTTP concerns as one pure ASGI middleware: request ids, body-size limit, bearer auth,
the last-resort 500, request metrics. (Pure ASGI, not `@app.middleware`: Starlette's
BaseHTTPMiddleware wraps `receive` in a way that hides client disconnects from the endpoint, and we
cancel work on disconnect.)

The body limit holds twice: a declared Content-Length over it is refused before anything is read,
and a body without one (chunked) is cut off with a 413 the moment it passes the limit while read.
An exception no handler turned into a response is answered here with the error envelope, not
re-raised: re-raising makes the server log "Exception in ASGI application" and drop the keep-alive
connection, so the client's next request on it would fail.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import BodyTooLarge, body_too_large_message, error_body, internal_error
from l2t_core.request_context import REQUEST_ID

logger = logging.getLogger(__name__)

OPEN_PATHS = {"/health", "/metrics"}
REQUEST_ID_MAX_CHARS = 128
REQUEST_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:")


def _request_id(given: str | None) -> str:
    """The client's `X-Request-Id` when it is a plausible id (at most 128 characters of letters, digits and
    `-_.:`), else one of ours: an id is echoed in headers, logs and the remote engine's requests, so an
    arbitrary string (a megabyte, a newline that forges a log line) is not taken."""
    if given and len(given) <= REQUEST_ID_MAX_CHARS and set(given) <= REQUEST_ID_CHARS:
        return given
    made = f"req-{uuid.uuid4().hex}"
    if given:
        logger.info("X-Request-Id %.40r… is not a valid request id; using %s", given, made)
    return made


class L2TMiddleware:
    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime = self.fastapi_app.state.runtime
        headers = Headers(scope=scope)
        request_id = _request_id(headers.get("x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        REQUEST_ID.set(request_id)  # for the engines; the ASGI server runs each request in its own task
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        max_body = runtime.settings.max_body_bytes
        refusal = _refuse(scope["path"], headers, max_body, runtime.settings.api_key)
        try:
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
            else:
                await self.app(scope, _limit_body(receive, max_body), send_with_id)
        except Exception as exc:
            if status["sent"]:  # a stream broke half-way: nothing can be added to it
                logger.error("request %s failed after its response started", request_id, exc_info=exc)
            else:
                await internal_error(request_id, exc)(scope, receive, send_with_id)
        route: Any = scope.get("route")
        path = getattr(route, "path", "unmatched")
        runtime.metrics.requests.labels(path, str(status["code"])).inc()
        runtime.metrics.latency.labels(path).observe(time.perf_counter() - started)


def _limit_body(receive: Receive, limit: int) -> Receive:
    """`receive`, raising `BodyTooLarge` (a 413) as soon as the body read so far passes `limit` bytes."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return limited


def _refuse(path: str, headers: Headers, max_body_bytes: int, api_key: str | None) -> JSONResponse | None:
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_body_bytes:
        body = error_body(
            body_too_large_message(length, max_body_bytes), "invalid_request_error", code="body_too_large"
        )
        return JSONResponse(body, 413, headers={"Connection": "close"})
    if path not in OPEN_PATHS and not authorized(headers.get("authorization"), api_key):
        return JSONResponse(
            error_body("missing or wrong API key", "authentication_error", code="invalid_api_key"),
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return None


def authorized(authorization: str | None, api_key: str | None) -> bool:
    """Whether an Authorization header carries the server's key (every request is, when no key is set)."""
    if not api_key:
        return True
    return secrets.compare_digest((authorization or "").encode(), f"Bearer {api_key}".encode())


def install_middleware(app: FastAPI) -> None:
    app.add_middleware(L2TMiddleware, fastapi_app=app)
