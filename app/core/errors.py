"""One error envelope for every failure: {"error": {"message", "type", "param", "code"}} with a 4xx/5xx.

Validation errors echo at most a bounded slice of the offending input, never the whole body. On the
OpenAI routes (`/v1/…`) they are 400, as OpenAI and vLLM answer (the SDK raises `BadRequestError`);
the native routes keep 422. An exception nobody expected is answered by the middleware (500 with the
request id, connection kept), not here: FastAPI's catch-all handler re-raises after answering, which
makes the server drop the keep-alive connection.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from l2t_core.errors import InvalidRequest

logger = logging.getLogger(__name__)

ECHO_CHARS = 200
OPENAI_PREFIX = "/v1/"


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body is read, once it passes the limit (a chunked body has no Content-Length)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, body_too_large_message(f"more than {limit}", limit), {"Connection": "close"})


def body_too_large_message(size: str, limit: int) -> str:
    return f"request body is {size} bytes; the limit is {limit}"


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def internal_error(request_id: str | None, exc: BaseException) -> JSONResponse:
    """The 500 for an exception nobody expected: logged with its traceback, answered with the request id."""
    logger.error("unhandled error in request %s", request_id, exc_info=exc)
    message = f"internal error ({type(exc).__name__}); request id {request_id}"
    return JSONResponse(error_body(message, "server_error", code="internal_error"), 500)


def _echo(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


def validation_message(error: dict[str, Any]) -> tuple[str, str | None]:
    """A message a person understands, and the parameter it is about, for one pydantic/FastAPI error."""
    if error.get("type") == "json_invalid":
        position = error["loc"][-1] if len(error.get("loc", ())) > 1 else "?"
        reason = error.get("ctx", {}).get("error", "malformed")
        return f"the request body is not valid JSON: {reason} (at character {position})", None
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    param = ".".join(loc) or None
    msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    message = f"{param}: {msg}" if param else msg
    if "input" in error:
        message += f" (got {_echo(error['input'])})"
    return message, param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.type, exc.param, exc.code), exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        message, param = validation_message(errors[0]) if errors else ("invalid request", None)
        status = 400 if request.url.path.startswith(OPENAI_PREFIX) else 422
        return JSONResponse(error_body(message, "invalid_request_error", param, "invalid_value"), status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        code = "body_too_large" if isinstance(exc, BodyTooLarge) else None
        body = error_body(str(exc.detail), type_, code=code)
        return JSONResponse(body, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(InvalidRequest)
    async def invalid_request(_request: Request, exc: InvalidRequest) -> JSONResponse:
        """The one place a caller's error from the core (raised at the edge or in a worker) becomes a 400."""
        return JSONResponse(error_body(str(exc), "invalid_request_error", exc.param, exc.code or "invalid_value"), 400)
