"""POST /v1/chat/completions and /v1/completions (thin: parse, call the serving layer, shape or stream)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app.core.deps import RequestIdDep, ServingDep
from app.core.errors import APIError
from app.openai.protocol import ChatCompletionRequest, ChatCompletionResponse, CompletionRequest, CompletionResponse
from app.openai.service import chat_response, chat_stream, completion_response, completion_stream
from app.openai.streaming import streams_tokens, token_stream
from app.serving import Serving
from l2t_core.episodes import RenderedPrompt
from l2t_core.tokens import check_token_ids

router = APIRouter(prefix="/v1")


def raw_prompt(serving: Serving, prompt: str | list[int]) -> RenderedPrompt:
    """A `/v1/completions` prompt, continued as given: text tokenized the one way, or ids as they are."""
    tokenizer = serving.pipeline.tokenizer
    if isinstance(prompt, str):
        return RenderedPrompt.raw(tokenizer, prompt)
    check_token_ids(prompt, len(tokenizer))
    return RenderedPrompt.of_ids(tokenizer, prompt)


@router.post("/chat/completions", response_model=ChatCompletionResponse)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, serving: ServingDep, request_id: RequestIdDep
) -> ChatCompletionResponse | StreamingResponse:
    pipeline = serving.pipeline
    prompt = pipeline.prompt(messages=[m.to_message() for m in body.messages], prompt_format=body.l2t_prompt_format)
    streaming = streams_tokens(body)
    core = body.to_core(serving, prompt, streaming)
    if streaming:
        events = await token_stream(serving, request, body, core, f"chatcmpl-{request_id}", int(time.time()), chat=True)
        return StreamingResponse(events, media_type="text/event-stream")
    (result,) = await serving.generate(request, [core])
    tokenizer = pipeline.scorer_tokenizer if body.wants_logprobs else None
    response = chat_response(
        f"chatcmpl-{request_id}", int(time.time()), serving.settings.model_id, result, core.sampling.stop, tokenizer
    )
    if body.stream:
        return StreamingResponse(chat_stream(response, body.include_usage), media_type="text/event-stream")
    return response


@router.post("/completions", response_model=CompletionResponse)
async def completions(
    body: CompletionRequest, request: Request, serving: ServingDep, request_id: RequestIdDep
) -> CompletionResponse | StreamingResponse:
    prompts = body.prompts
    if len(prompts) * body.candidates > serving.settings.max_n:
        sampled = f"best_of={body.best_of}" if body.best_of else f"n={body.n}"
        message = f"{len(prompts)} prompts × {sampled} exceeds this server's limit of {serving.settings.max_n}"
        raise APIError(400, message, param="prompt", code="too_large")
    streaming = streams_tokens(body, len(prompts))
    # continued as given: no template, no prompt format
    cores = [body.to_core(serving, raw_prompt(serving, p), streaming) for p in prompts]
    if streaming:
        events = await token_stream(
            serving, request, body, cores[0], f"cmpl-{request_id}", int(time.time()), chat=False
        )
        return StreamingResponse(events, media_type="text/event-stream")
    results = await serving.generate(request, cores)
    strip = () if body.include_stop_str_in_output else cores[0].sampling.stop
    tokenizer = serving.pipeline.scorer_tokenizer if body.wants_logprobs else None
    response = completion_response(
        f"cmpl-{request_id}",
        int(time.time()),
        serving.settings.model_id,
        results,
        body.n,
        strip,
        tokenizer,
        [core.prompt.engine_ids for core in cores] if body.return_token_ids else None,
    )
    if body.stream:
        return StreamingResponse(completion_stream(response, body.include_usage), media_type="text/event-stream")
    return response
