"""Turn a pipeline result into OpenAI responses or SSE chunk streams (the result is computed first,
then streamed: choices are reranked, so nothing can be sent before all N candidates are scored)."""

from __future__ import annotations

from collections.abc import Iterator

from app.openai.protocol import (
    ChatChoice,
    ChatCompletionResponse,
    ChatMessageOut,
    CompletionChoice,
    CompletionResponse,
    EpisodeOut,
    L2TChoiceInfo,
    OpenAIUsage,
    sse,
)
from l2t_core.pipeline import PipelineResult, RankedCandidate


def choice_info(ranked: RankedCandidate) -> L2TChoiceInfo:
    score = ranked.score
    return L2TChoiceInfo(
        score=score.score,
        answer=score.answer,
        target=score.target,
        tagged=score.tagged,
        candidate_index=ranked.index,
        completion_tokens=ranked.generated_tokens,
        mean_logprob=score.mean_logprob,
        episodes=[EpisodeOut.model_validate(e.to_dict()) for e in score.episodes],
    )


def usage_of(result: PipelineResult) -> OpenAIUsage:
    u = result.usage
    return OpenAIUsage(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.total_tokens,
        scoring_tokens=u.scoring_tokens,
    )


def chat_response(request_id: str, created: int, model: str, result: PipelineResult) -> ChatCompletionResponse:
    choices = [
        ChatChoice(
            index=rank, message=ChatMessageOut(content=r.score.text), finish_reason=r.finish_reason, l2t=choice_info(r)
        )
        for rank, r in enumerate(result.ranked)
    ]
    return ChatCompletionResponse(id=request_id, created=created, model=model, choices=choices, usage=usage_of(result))


def completion_response(
    request_id: str, created: int, model: str, result: PipelineResult, strip: tuple[str, ...]
) -> CompletionResponse:
    choices = [
        CompletionChoice(
            index=rank, text=_strip_stop(r.score.text, strip), finish_reason=r.finish_reason, l2t=choice_info(r)
        )
        for rank, r in enumerate(result.ranked)
    ]
    return CompletionResponse(id=request_id, created=created, model=model, choices=choices, usage=usage_of(result))


def _strip_stop(text: str, stops: tuple[str, ...]) -> str:
    for stop in stops:
        if text.endswith(stop):
            return text[: -len(stop)]
    return text


def chat_stream(response: ChatCompletionResponse, include_usage: bool) -> Iterator[str]:
    base = {"id": response.id, "object": "chat.completion.chunk", "created": response.created, "model": response.model}
    for choice in response.choices:
        delta = {"role": "assistant", "content": choice.message.content}
        extra = {"l2t": choice.l2t.model_dump()}
        yield sse({**base, "choices": [{"index": choice.index, "delta": delta, "finish_reason": None, **extra}]})
    for choice in response.choices:
        yield sse({**base, "choices": [{"index": choice.index, "delta": {}, "finish_reason": choice.finish_reason}]})
    if include_usage:
        yield sse({**base, "choices": [], "usage": response.usage.model_dump()})
    yield sse("[DONE]")


def completion_stream(response: CompletionResponse, include_usage: bool) -> Iterator[str]:
    base = {"id": response.id, "object": "text_completion", "created": response.created, "model": response.model}
    for choice in response.choices:
        chunk = {
            "index": choice.index,
            "text": choice.text,
            "logprobs": None,
            "finish_reason": None,
            "l2t": choice.l2t.model_dump(),
        }
        yield sse({**base, "choices": [chunk]})
    for choice in response.choices:
        chunk = {"index": choice.index, "text": "", "logprobs": None, "finish_reason": choice.finish_reason}
        yield sse({**base, "choices": [chunk]})
    if include_usage:
        yield sse({**base, "choices": [], "usage": response.usage.model_dump()})
    yield sse("[DONE]")
