"""The OpenAPI schema, made to say what the server really does, so that clients and fuzzers built
from it agree with the server.

FastAPI's generated schema is edited once, at first request for it: every operation declares the
error envelope for the statuses it can answer (and not FastAPI's own 422 body, which we never send;
the OpenAI routes answer validation errors with 400), /metrics is text and the OpenAI routes may
answer with an SSE stream, and the server's limits (L2T_MAX_N, L2T_MAX_TOKENS_LIMIT,
L2T_MAX_PROMPT_CHARS) appear as maxima.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from app.core.config import Settings
from app.core.errors import OPENAI_PREFIX

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
ERROR_STATUSES = {
    "400": "invalid input: the message says what to change",
    "404": "model not served here",
    "413": "request body over L2T_MAX_BODY_BYTES",
    "422": "invalid input (native routes): the message says what to change",
    "500": "internal error; the message carries the request id",
    "502": "the generation engine failed",
    "503": "not ready, engine not healthy, or busy (with Retry-After)",
    "504": "request timed out (L2T_REQUEST_TIMEOUT_S)",
}
TEXT = {"schema": {"type": "string"}}
# One server-sent event: `data` is a JSON chunk (chat.completion.chunk or text_completion), last "[DONE]".
SSE_EVENT = {"schema": {"type": "object", "properties": {"data": {"type": "string"}}, "required": ["data"]}}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def install_openapi(app: FastAPI, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = honest(schema, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def honest(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs"))
    components["ErrorResponse"] = error_schema
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            _declare_errors(path, method, operation, settings)
    _declare_content(schema["paths"])
    _declare_limits(components, settings)
    return schema


def _declare_errors(path: str, method: str, operation: dict[str, Any], settings: Settings) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    statuses = ["500"]
    if method == "post":
        statuses += ["413", "502", "503", "504"]
        statuses += ["400", "404"] if path.startswith(OPENAI_PREFIX) else ["400", "422"]
    if path == "/v1/models" or method == "post":
        statuses += ["401"] if settings.api_key else []
    for status in statuses:
        description = ERROR_STATUSES.get(status, "missing or wrong API key")
        responses.setdefault(
            status, {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}
        )


def _declare_content(paths: dict[str, Any]) -> None:
    paths["/metrics"]["get"]["responses"]["200"]["content"] = {"text/plain": TEXT}
    health = paths["/health"]["get"]["responses"]
    health["200"]["content"] = {"application/json": {"schema": {"type": "object"}}}
    health["503"] = {"description": "not ready or engine not healthy", "content": health["200"]["content"]}
    for path in ("/v1/chat/completions", "/v1/completions"):
        paths[path]["post"]["responses"]["200"]["content"]["text/event-stream"] = SSE_EVENT


def _declare_limits(components: dict[str, Any], settings: Settings) -> None:
    limits = {
        "n": settings.max_n,
        "max_tokens": settings.max_tokens_limit,
        "max_completion_tokens": settings.max_tokens_limit,
    }
    for name in ("GenerateRequest", "ChatCompletionRequest", "CompletionRequest"):
        properties = components[name]["properties"]
        for field, limit in limits.items():
            if field in properties:
                _set_maximum(properties[field], limit)
    for name, field in (("GenerateRequest", "prompt"), ("ScoreRequest", "question"), ("CompletionRequest", "prompt")):
        _set_max_length(components[name]["properties"][field], settings.max_prompt_chars)
    _set_maximum(components["BeamOptions"]["properties"]["token_budget"], settings.max_n * settings.max_tokens_limit)
    prompt = components["CompletionRequest"]["properties"]["prompt"]
    for option in prompt.get("anyOf", []):
        if option.get("type") == "array":
            option["maxItems"] = settings.max_n


def _set_maximum(schema: dict[str, Any], limit: int) -> None:
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "integer":
            option["maximum"] = min(option.get("maximum", limit), limit)


def _set_max_length(schema: dict[str, Any], limit: int) -> None:
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "string":
            option["maxLength"] = limit
        elif option.get("type") == "array":
            option["items"]["maxLength"] = limit
