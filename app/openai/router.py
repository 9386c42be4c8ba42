"""POST /v1/chat/completions and /v1/completions (thin: parse, call the pipeline, shape or stream)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app.core.deps import RequestIdDep, RuntimeDep
from app.core.errors import APIError
from app.core.runtime import Runtime
from app.openai.protocol import ChatCompletionRequest, ChatCompletionResponse, CompletionRequest, CompletionResponse
from app.openai.service import chat_response, chat_stream, completion_response, completion_stream
from app.schemas import check_text_limit, sampling_params
from l2t_core.episodes import RenderedPrompt
from l2t_core.pipeline import PipelineResult

router = APIRouter(prefix="/v1")
DEFAULT_MAX_TOKENS = 256


async def _run(
    runtime: Runtime,
    request: Request,
    body: ChatCompletionRequest | CompletionRequest,
    prompt: RenderedPrompt,
    max_tokens: int | None,
) -> PipelineResult:
    settings = runtime.settings
    if body.model and body.model not in (settings.model_id, "default"):
        raise APIError(
            404,
            f"model {body.model!r} is not served here; GET /v1/models lists {settings.model_id!r}",
            "not_found_error",
            param="model",
            code="model_not_found",
        )
    check_text_limit(prompt.text, settings.max_prompt_chars, "prompt")
    pipeline = runtime.require_pipeline()
    params = sampling_params(
        settings, body.n, max_tokens or DEFAULT_MAX_TOKENS, body.temperature, body.top_p, body.seed, body.stop_strings()
    )
    config = body.reward_config(pipeline.reward_config)
    result = await runtime.run(
        request, lambda cancel: pipeline.run(prompt, params, body.l2t_strategy, config, body.reference, cancel=cancel)
    )
    runtime.record(result.usage, result.timings, [r.score for r in result.ranked])
    return result


@router.post("/chat/completions", response_model=ChatCompletionResponse)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, runtime: RuntimeDep, request_id: RequestIdDep
) -> ChatCompletionResponse | StreamingResponse:
    pipeline = runtime.require_pipeline()
    prompt = pipeline.prompt(messages=[m.model_dump() for m in body.messages], prompt_format=body.l2t_prompt_format)
    result = await _run(runtime, request, body, prompt, body.max_completion_tokens or body.max_tokens)
    response = chat_response(f"chatcmpl-{request_id}", int(time.time()), runtime.settings.model_id, result)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(chat_stream(response, include_usage), media_type="text/event-stream")
    return response


@router.post("/completions", response_model=CompletionResponse)
async def completions(
    body: CompletionRequest, request: Request, runtime: RuntimeDep, request_id: RequestIdDep
) -> CompletionResponse | StreamingResponse:
    result = await _run(runtime, request, body, RenderedPrompt(body.prompt), body.max_tokens)
    strip = () if body.include_stop_str_in_output else body.stop_strings()
    response = completion_response(f"cmpl-{request_id}", int(time.time()), runtime.settings.model_id, result, strip)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(completion_stream(response, include_usage), media_type="text/event-stream")
    return response
