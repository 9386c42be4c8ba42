"""Turn pipeline results into OpenAI responses or SSE chunk streams.

With reranking the result is computed first, then streamed: the order of the choices (and which one
is best) is known only once all N candidates are generated and scored, so no token can be sent
before that. A request with one candidate and nothing to rank streams tokens as they are generated
instead (`token_stream` in the router).

OpenAI never returns the stop string in the text, so it is stripped from chat content (and from
completions unless `include_stop_str_in_output`). Log-probs are the scorer's per-token log-probs of
the returned text (the same model that generated it), cut where the text is cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.openai.protocol import (
    ChatChoice,
    ChatCompletionResponse,
    ChatLogprobs,
    ChatMessageOut,
    CompletionChoice,
    CompletionLogprobs,
    CompletionResponse,
    EpisodeOut,
    L2TChoiceInfo,
    OpenAIUsage,
    TokenLogprob,
    sse,
)
from l2t_core.pipeline import PipelineResult, RankedCandidate
from l2t_core.scoring import CandidateScore


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


def usage_of(results: list[PipelineResult]) -> OpenAIUsage:
    prompt = sum(r.usage.prompt_tokens for r in results)
    completion = sum(r.usage.completion_tokens for r in results)
    return OpenAIUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        scoring_tokens=sum(r.usage.scoring_tokens for r in results),
    )


def strip_stop(text: str, stops: tuple[str, ...]) -> str:
    for stop in stops:
        if text.endswith(stop):
            return text[: -len(stop)]
    return text


def returned_tokens(tokenizer: Any, score: CandidateScore, text: str) -> list[tuple[str, float, int]]:
    """(token text, log-prob, character offset) of the scored tokens that make up `text`, a prefix of
    the scored completion (the stop string stripped from its end)."""
    tokens: list[tuple[str, float, int]] = []
    offset = 0
    for token_id, logprob in zip(score.token_ids, score.token_logprobs, strict=True):
        if offset >= len(text):
            break
        piece = tokenizer.decode([token_id])
        tokens.append((piece, logprob, offset))
        offset += len(piece)
    return tokens


def chat_logprobs(tokenizer: Any, score: CandidateScore, text: str) -> ChatLogprobs:
    content = [
        TokenLogprob(token=piece, logprob=logprob, bytes=list(piece.encode("utf-8", "replace")))
        for piece, logprob, _ in returned_tokens(tokenizer, score, text)
    ]
    return ChatLogprobs(content=content)


def completion_logprobs(tokenizer: Any, score: CandidateScore, text: str) -> CompletionLogprobs:
    tokens = returned_tokens(tokenizer, score, text)
    return CompletionLogprobs(
        tokens=[piece for piece, _, _ in tokens],
        token_logprobs=[logprob for _, logprob, _ in tokens],
        text_offset=[offset for _, _, offset in tokens],
    )


def chat_response(
    request_id: str,
    created: int,
    model: str,
    result: PipelineResult,
    stops: tuple[str, ...],
    tokenizer: Any | None = None,
) -> ChatCompletionResponse:
    """`tokenizer` given: each choice carries the log-probs of its tokens."""
    choices: list[ChatChoice] = []
    for rank, r in enumerate(result.ranked):
        content = strip_stop(r.score.text, stops)
        logprobs = chat_logprobs(tokenizer, r.score, content) if tokenizer is not None else None
        choices.append(
            ChatChoice(
                index=rank,
                message=ChatMessageOut(content=content),
                logprobs=logprobs,
                finish_reason=r.finish_reason,
                l2t=choice_info(r),
            )
        )
    return ChatCompletionResponse(
        id=request_id, created=created, model=model, choices=choices, usage=usage_of([result])
    )


def completion_response(
    request_id: str,
    created: int,
    model: str,
    results: list[PipelineResult],
    n: int,
    strip: tuple[str, ...],
    tokenizer: Any | None = None,
    prompt_ids: list[tuple[int, ...]] | None = None,
) -> CompletionResponse:
    """One result per prompt, of which the `n` best are returned (`best_of` sampled more; usage counts
    them all, as OpenAI's does); prompt i's choices are indices i·n … i·n + n − 1, each best first. With
    `prompt_ids` (one per prompt: `return_token_ids`) every choice carries its prompt's and its sampled ids."""
    choices: list[CompletionChoice] = []
    for i, result in enumerate(results):
        for r in result.ranked[:n]:
            text = strip_stop(r.score.text, strip)
            logprobs = completion_logprobs(tokenizer, r.score, text) if tokenizer is not None else None
            ids = {"token_ids": list(r.token_ids), "prompt_token_ids": list(prompt_ids[i])} if prompt_ids else {}
            choices.append(
                CompletionChoice(
                    index=len(choices),
                    text=text,
                    logprobs=logprobs,
                    finish_reason=r.finish_reason,
                    l2t=choice_info(r),
                    **ids,
                )
            )
    return CompletionResponse(id=request_id, created=created, model=model, choices=choices, usage=usage_of(results))


def chat_stream(response: ChatCompletionResponse, include_usage: bool) -> Iterator[str]:
    base = {"id": response.id, "object": "chat.completion.chunk", "created": response.created, "model": response.model}
    for choice in response.choices:
        delta = {"role": "assistant", "content": choice.message.content}
        extra = {"l2t": choice.l2t.model_dump()}
        logprobs = choice.logprobs.model_dump() if choice.logprobs is not None else None
        chunk = {"index": choice.index, "delta": delta, "logprobs": logprobs, "finish_reason": None, **extra}
        yield sse({**base, "choices": [chunk]})
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
            "logprobs": choice.logprobs.model_dump() if choice.logprobs is not None else None,
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
