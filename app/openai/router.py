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
from app.openai.streaming import streams_tokens, token_stream
from app.schemas import check_text_limit, check_token_budget, sampling_params
from l2t_core.engines import SamplingParams
from l2t_core.episodes import RenderedPrompt
from l2t_core.pipeline import PipelineResult

router = APIRouter(prefix="/v1")
DEFAULT_MAX_TOKENS = 256


def _params(
    runtime: Runtime, body: ChatCompletionRequest | CompletionRequest, max_tokens: int | None
) -> SamplingParams:
    settings = runtime.settings
    if body.model and body.model not in (settings.model_id, "default"):
        raise APIError(
            404,
            f"model {body.model!r} is not served here; GET /v1/models lists {settings.model_id!r}",
            "not_found_error",
            param="model",
            code="model_not_found",
        )
    return sampling_params(
        settings,
        body.n,
        max_tokens or DEFAULT_MAX_TOKENS,
        body.temperature,
        body.top_p,
        body.seed,
        body.stop_strings(),
        defaulted=() if max_tokens else ("max_tokens",),
    )


async def _run(
    runtime: Runtime,
    request: Request,
    body: ChatCompletionRequest | CompletionRequest,
    prompts: list[RenderedPrompt],
    params: SamplingParams,
) -> list[PipelineResult]:
    """Answer each prompt with `params.n` candidates and the strategy (one admission slot for all of them)."""
    for prompt in prompts:
        check_text_limit(prompt.text, runtime.settings.max_prompt_chars, "prompt")
    pipeline = runtime.require_pipeline()
    config = body.reward_config(pipeline.reward_config)
    beam, adaptive = body.search_options()
    check_token_budget(runtime.settings, (beam or {}).get("token_budget"))
    results = await runtime.run(
        request,
        lambda cancel: [
            pipeline.run(prompt, params, body.l2t_strategy, config, body.reference, beam, cancel, adaptive)
            for prompt in prompts
        ],
    )
    for result in results:
        runtime.record(result.usage, result.timings, [r.score for r in result.ranked])
    return results


@router.post("/chat/completions", response_model=ChatCompletionResponse)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, runtime: RuntimeDep, request_id: RequestIdDep
) -> ChatCompletionResponse | StreamingResponse:
    pipeline = runtime.require_pipeline()
    prompt = pipeline.prompt(messages=[m.to_message() for m in body.messages], prompt_format=body.l2t_prompt_format)
    params = _params(runtime, body, body.max_completion_tokens or body.max_tokens)
    if streams_tokens(body):
        check_text_limit(prompt.text, runtime.settings.max_prompt_chars, "prompt")
        events = await token_stream(
            runtime, request, body, prompt, params, f"chatcmpl-{request_id}", int(time.time()), chat=True
        )
        return StreamingResponse(events, media_type="text/event-stream")
    (result,) = await _run(runtime, request, body, [prompt], params)
    tokenizer = pipeline.scorer_tokenizer if body.wants_logprobs else None
    response = chat_response(
        f"chatcmpl-{request_id}", int(time.time()), runtime.settings.model_id, result, params.stop, tokenizer
    )
    if body.stream:
        return StreamingResponse(chat_stream(response, body.include_usage), media_type="text/event-stream")
    return response


@router.post("/completions", response_model=CompletionResponse)
async def completions(
    body: CompletionRequest, request: Request, runtime: RuntimeDep, request_id: RequestIdDep
) -> CompletionResponse | StreamingResponse:
    prompts = body.prompts
    params = _params(runtime, body, body.max_tokens)
    if len(prompts) * params.n > runtime.settings.max_n:
        message = f"{len(prompts)} prompts × n={params.n} exceeds this server's limit of {runtime.settings.max_n}"
        raise APIError(400, message, param="prompt", code="too_large")
    rendered = [RenderedPrompt(p) for p in prompts]  # continued as given: no template, no prompt format
    if streams_tokens(body, len(prompts)):
        check_text_limit(rendered[0].text, runtime.settings.max_prompt_chars, "prompt")
        events = await token_stream(
            runtime, request, body, rendered[0], params, f"cmpl-{request_id}", int(time.time()), chat=False
        )
        return StreamingResponse(events, media_type="text/event-stream")
    results = await _run(runtime, request, body, rendered, params)
    strip = () if body.include_stop_str_in_output else params.stop
    tokenizer = runtime.require_pipeline().scorer_tokenizer if body.wants_logprobs else None
    response = completion_response(
        f"cmpl-{request_id}", int(time.time()), runtime.settings.model_id, results, strip, tokenizer
    )
    if body.stream:
        return StreamingResponse(completion_stream(response, body.include_usage), media_type="text/event-stream")
    return response
