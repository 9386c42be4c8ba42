"""Admission in tokens: a request's cost is bounded before any work starts, in the units that cost memory
and time, against the model that will run it.

Two limits, both in tokens. The model's context: no sequence the model would run (prompt + max_tokens;
for `/score`, the prompt and one completion) may exceed it, since positions past it are outside what the
model was trained on and its memory grows with them. And the request's work: every token the model reads
or writes for the request — n × (prompt + max_tokens) for sampling, every re-read prefix for beam-prune,
prompt + completions for scoring — may not exceed `request_tokens`, so one request cannot hold the
server for minutes while others wait. The default work limit is `WORK_CONTEXTS` contexts' worth.
Characters are no measure: 31,000 CJK characters are 83,000 tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from l2t_core.errors import InvalidRequest
from l2t_core.request import GenerationRequest

WORK_CONTEXTS = 16  # the default work limit, in model contexts (131,072 tokens for SmolLM2's 8,192)


@dataclass(frozen=True)
class TokenLimits:
    context: int  # the longest sequence the model runs: prompt + generated tokens
    request_tokens: int  # the most tokens one request may make the model read and write

    @classmethod
    def for_context(cls, context: int, request_tokens: int | None = None) -> TokenLimits:
        """The limits for a model of `context` tokens; `request_tokens` None takes the default."""
        return cls(context, request_tokens if request_tokens is not None else WORK_CONTEXTS * context)


def admit_generation(request: GenerationRequest, prompt_tokens: int, limits: TokenLimits) -> None:
    """Refuse `request` (its prompt measured at `prompt_tokens`) if a sequence would outgrow the model's
    context or its total work exceed the request limit; the error names the limit and the numbers."""
    longest = prompt_tokens + request.sampling.max_tokens
    if longest > limits.context:
        raise InvalidRequest(
            f"this model's context is {limits.context} tokens, but the prompt is {prompt_tokens} tokens and "
            f"max_tokens is {request.sampling.max_tokens} ({longest} in all); shorten the prompt or lower max_tokens",
            param="max_tokens" if prompt_tokens < limits.context else "prompt",
            code="context_length_exceeded",
        )
    work = request_work(request, prompt_tokens)
    if work > limits.request_tokens:
        raise InvalidRequest(
            f"this request would make the model run up to {work} tokens ({_work_formula(request)}); this "
            f"server's limit is {limits.request_tokens} (L2T_MAX_REQUEST_TOKENS): lower n or max_tokens",
            param="n",
            code="too_large",
        )


def admit_scoring(prompt_tokens: int, completion_tokens: Sequence[int], limits: TokenLimits) -> None:
    """Refuse a scoring call whose prompt + any completion outgrows the context, or whose sequences
    together exceed the request limit."""
    for i, tokens in enumerate(completion_tokens):
        if prompt_tokens + tokens > limits.context:
            raise InvalidRequest(
                f"this model's context is {limits.context} tokens, but the prompt ({prompt_tokens} tokens) and "
                f"completion {i} ({tokens} tokens) are {prompt_tokens + tokens}",
                param=f"completions.{i}",
                code="context_length_exceeded",
            )
    work = sum(prompt_tokens + tokens for tokens in completion_tokens)
    if work > limits.request_tokens:
        raise InvalidRequest(
            f"scoring these completions runs {work} tokens (prompt + each completion); this server's limit is "
            f"{limits.request_tokens} (L2T_MAX_REQUEST_TOKENS): send fewer or shorter completions",
            param="completions",
            code="too_large",
        )


def request_work(request: GenerationRequest, prompt_tokens: int) -> int:
    """An upper bound on the tokens the model reads and writes to generate for `request`: the strategy's
    settings bound a search's own work (beam-prune re-reads every prefix each round); sampling reads the
    prompt and writes up to max_tokens for each of n candidates."""
    search = request.search
    if search is not None:
        return search.work(request.sampling, prompt_tokens)
    return request.sampling.n * (prompt_tokens + request.sampling.max_tokens)


def _work_formula(request: GenerationRequest) -> str:
    if request.search is not None:
        return f"{request.strategy.name}'s bound for its settings"
    return f"n={request.sampling.n} × (prompt + max_tokens={request.sampling.max_tokens})"
