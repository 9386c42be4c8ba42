"""Token streaming for the OpenAI routes, when the answer's order is known before scoring.

With n = 1, or strategy `first` (choices in generation order), each candidate's text is sent as it
is sampled; the L2T scores, the finish reasons and usage follow once scoring is done. With any
other reranker nothing can be sent early: which candidate is choice 0 is decided by scores that
need every finished candidate, so those requests stream the finished, reranked result instead
(`service.chat_stream`).

The request's first event (a token, or the end) is awaited before the response starts, so a bad
request still gets its 4xx status instead of a 200 stream that breaks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request

from app.openai.protocol import ChatCompletionRequest, CompletionRequest, sse
from app.openai.service import choice_info, strip_stop, usage_of
from app.serving import Serving
from l2t_core.engines import SamplingParams
from l2t_core.pipeline import PipelineResult
from l2t_core.request import GenerationRequest

logger = logging.getLogger(__name__)
Delta = tuple[int, str]


def streams_tokens(body: ChatCompletionRequest | CompletionRequest, n_prompts: int = 1) -> bool:
    """Whether tokens can go out as sampled (log-probs come from scoring, so they wait for it)."""
    order_known = body.n == 1 or body.l2t_strategy == "first"
    searching = body.l2t_beam is not None or body.l2t_adaptive is not None  # run, then stream the result
    return body.stream and n_prompts == 1 and order_known and not body.wants_logprobs and not searching


async def token_stream(
    serving: Serving,
    request: Request,
    body: ChatCompletionRequest | CompletionRequest,
    core: GenerationRequest,
    response_id: str,
    created: int,
    chat: bool,
) -> AsyncIterator[str]:
    """Start generating; return the SSE stream once the first text (or the end) is there."""
    loop = asyncio.get_running_loop()
    deltas: asyncio.Queue[Delta] = asyncio.Queue()

    def on_text(candidate: int, text: str) -> None:
        loop.call_soon_threadsafe(deltas.put_nowait, (candidate, text))

    task = asyncio.ensure_future(serving.stream(request, core, on_text))
    task.add_done_callback(_retrieve)
    first = await _next(deltas, task)
    if first is None:
        task.result()  # a failure before any text is the request's error status
    chunk = _chat_chunk if chat else _completion_chunk
    base = {
        "id": response_id,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": created,
        "model": serving.settings.model_id,
    }
    return _events(first, deltas, task, lambda i, text: chunk(base, i, text), base, body, core.sampling, chat)


async def _next(deltas: asyncio.Queue[Delta], task: asyncio.Future[Any]) -> Delta | None:
    """The next text, or None once generation and scoring are over and every text has been taken."""
    if not deltas.empty():
        return deltas.get_nowait()
    getter = asyncio.ensure_future(deltas.get())
    await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
    if getter.done():
        return getter.result()
    getter.cancel()
    return deltas.get_nowait() if not deltas.empty() else None


async def _events(
    first: Delta | None,
    deltas: asyncio.Queue[Delta],
    task: asyncio.Future[PipelineResult],
    chunk: Callable[[int, str], dict[str, Any]],
    base: dict[str, Any],
    body: ChatCompletionRequest | CompletionRequest,
    params: SamplingParams,
    chat: bool,
) -> AsyncIterator[str]:
    sent = [""] * params.n
    delta = first
    while delta is not None:
        candidate, text = delta
        sent[candidate] += text
        yield sse(chunk(candidate, text))
        delta = await _next(deltas, task)
    try:
        result = task.result()
    except Exception as exc:  # the stream has started: it can only end
        logger.warning("stream %s ended early: %s", base["id"], exc)
        return
    keep_stop = isinstance(body, CompletionRequest) and body.include_stop_str_in_output
    for ranked in result.ranked:
        final = ranked.score.text if keep_stop else strip_stop(ranked.score.text, params.stop)
        rest = final[len(sent[ranked.index]) :] if final.startswith(sent[ranked.index]) else ""
        if rest:
            yield sse(chunk(ranked.index, rest))
    for ranked in result.ranked:
        end: dict[str, Any] = {"index": ranked.index, "finish_reason": ranked.finish_reason}
        if chat:
            end["delta"] = {}
        else:
            end |= {"text": "", "logprobs": None}
        end["l2t"] = choice_info(ranked).model_dump()
        yield sse({**base, "choices": [end]})
    if body.include_usage:
        yield sse({**base, "choices": [], "usage": usage_of([result]).model_dump()})
    yield sse("[DONE]")


def _chat_chunk(base: dict[str, Any], index: int, text: str) -> dict[str, Any]:
    delta = {"role": "assistant", "content": text}
    return {**base, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}]}


def _completion_chunk(base: dict[str, Any], index: int, text: str) -> dict[str, Any]:
    return {**base, "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": None}]}


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
