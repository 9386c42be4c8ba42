"""One interface for every generation engine: prompt token ids and sampling parameters in, N candidates out.

The engine knows nothing about episodes or rewards; the pipeline scores what it returns. The prompt is
tokenized once, by the pipeline (`RenderedPrompt`), and every engine continues exactly those ids (vLLM
as a `TokensPrompt`, a remote as a token-id prompt) instead of tokenizing text again with its own
defaults, which for Llama-family tokenizers adds a second BOS to a chat template that holds one. Each
candidate comes back as the token ids sampled (its end-of-sequence token included), so the scorer and
the trainer use the sequence the model produced, not a re-tokenization of its decoded text. Engines are
called from worker threads and must honour `cancel` (a client went away) between tokens or requests.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from l2t_core.errors import InvalidRequest


class EngineError(RuntimeError):
    """Generation failed for a reason the caller should report (e.g. a remote server kept failing)."""


class Cancelled(RuntimeError):
    """The request was cancelled (client disconnect or timeout) before it finished."""


SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1  # a signed 64-bit seed, as OpenAI, torch and vLLM take it
# Stop strings per request (OpenAI's limit) and characters per stop string. Every engine searches each
# new piece of text for the stop strings, and streaming holds back a tail that could still become one,
# so a step's cost grows with their length; 256 characters holds any closing tag or delimiter a prompt
# format uses, while a stop of thousands (a pasted document) is a cost, not a stop: transformers' own
# matcher took 10 s and kept 900 MB for one of 2,000 characters.
MAX_STOP_STRINGS = 4
MAX_STOP_CHARS = 256
# OpenAI's ranges: presence and frequency penalties in [-2, 2], a logit bias in [-100, 100] for each of at
# most 300 token ids. vLLM refuses the same penalty range; its logit bias is clamped, ours is refused.
MAX_PENALTY = 2.0
MAX_LOGIT_BIAS = 100.0
MAX_LOGIT_BIAS_TOKENS = 300


def check_stop_strings(stop: Sequence[str]) -> None:
    """Refuse a stop list that is empty-stringed, too long, or holds a stop string over the limit; every
    surface (the OpenAI edge for its message, `SamplingParams` for every engine) calls this one check."""
    if len(stop) > MAX_STOP_STRINGS:
        raise InvalidRequest(f"at most {MAX_STOP_STRINGS} stop strings are allowed, got {len(stop)}", param="stop")
    if any(not text for text in stop):
        raise InvalidRequest("a stop string is empty; every stop string needs at least one character", param="stop")
    longest = max((len(text) for text in stop), default=0)
    if longest > MAX_STOP_CHARS:
        raise InvalidRequest(f"a stop string is {longest} characters long; the limit is {MAX_STOP_CHARS}", param="stop")


def check_logit_bias_vocabulary(logit_bias: Sequence[tuple[int, float]], vocab_size: int) -> None:
    """Refuse a logit bias on a token id the model does not have: the ranges are `SamplingParams`' own
    check, but only the engine or the edge knows the vocabulary."""
    unknown = sorted(token for token, _ in logit_bias if token >= vocab_size)
    if unknown:
        raise InvalidRequest(
            f"logit_bias names token id(s) {unknown[:5]} outside the vocabulary of {vocab_size} tokens",
            param="logit_bias",
        )


@dataclass(frozen=True)
class SamplingParams:
    n: int = field(default=1, metadata={"help": "candidates sampled for the prompt"})
    max_tokens: int = field(default=256, metadata={"help": "tokens one candidate may generate"})
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature (0: greedy)"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling: the top tokens holding this mass"})
    seed: int | None = field(default=None, metadata={"help": "sampling seed (unset: unseeded)"})
    stop: tuple[str, ...] = field(default=(), metadata={"help": "strings that end a candidate"})
    presence_penalty: float = field(
        default=0.0, metadata={"help": "subtracted from a token's logit once it has been generated ([-2, 2])"}
    )
    frequency_penalty: float = field(
        default=0.0, metadata={"help": "subtracted from a token's logit per time it has been generated ([-2, 2])"}
    )
    logit_bias: tuple[tuple[int, float], ...] = field(
        default=(), metadata={"help": "(token id, bias in [-100, 100]) pairs added to the logits"}
    )

    def __post_init__(self) -> None:
        if self.n < 1:
            raise InvalidRequest(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise InvalidRequest(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise InvalidRequest(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InvalidRequest(f"top_p must be in (0, 1], got {self.top_p}")
        if self.seed is not None and not SEED_MIN <= self.seed <= SEED_MAX:
            raise InvalidRequest(f"seed must be a signed 64-bit integer, got {self.seed}", param="seed")
        check_stop_strings(self.stop)
        self._check_penalties()

    def _check_penalties(self) -> None:
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if not -MAX_PENALTY <= value <= MAX_PENALTY:  # NaN fails too
                raise InvalidRequest(f"{name} must be in [-{MAX_PENALTY:g}, {MAX_PENALTY:g}], got {value}", param=name)
        if len(self.logit_bias) > MAX_LOGIT_BIAS_TOKENS:
            raise InvalidRequest(
                f"logit_bias may name at most {MAX_LOGIT_BIAS_TOKENS} tokens, got {len(self.logit_bias)}",
                param="logit_bias",
            )
        tokens = [token for token, _ in self.logit_bias]
        if len(set(tokens)) != len(tokens):
            raise InvalidRequest("logit_bias names a token id twice", param="logit_bias")
        for token, bias in self.logit_bias:
            if token < 0:
                raise InvalidRequest(f"logit_bias token ids are >= 0, got {token}", param="logit_bias")
            if not -MAX_LOGIT_BIAS <= bias <= MAX_LOGIT_BIAS:
                raise InvalidRequest(
                    f"logit_bias values are in [-{MAX_LOGIT_BIAS:g}, {MAX_LOGIT_BIAS:g}]; token {token} has {bias}",
                    param="logit_bias",
                )

    @property
    def shapes_logits(self) -> bool:
        """Whether the raw logits are changed before sampling (a penalty or a bias is set)."""
        return bool(self.presence_penalty or self.frequency_penalty or self.logit_bias)

    def batch_key(self) -> tuple[object, ...]:
        """Requests with equal keys can share one engine batch (a seeded request never shares)."""
        return (
            self.max_tokens,
            self.temperature,
            self.top_p,
            self.stop,
            self.seed,
            self.presence_penalty,
            self.frequency_penalty,
            self.logit_bias,
        )


TokenCallback = Callable[[int, int], None]  # (candidate index within the request, token id), as sampled


@runtime_checkable
class StreamingEngine(Protocol):
    """An engine that can also hand over each candidate's tokens as they are sampled (it says so with
    `streams_tokens`, since every engine has a `generate`)."""

    streams_tokens: bool

    def generate(
        self,
        prompt: Sequence[int],
        params: SamplingParams,
        cancel: threading.Event | None = None,
        on_token: TokenCallback | None = None,
    ) -> GenerationBatch: ...


@dataclass(frozen=True)
class Generation:
    text: str  # the sampled tokens' text (special tokens skipped), ending at a stop string if one ended it
    n_tokens: int  # len(token_ids) where the engine reports them: the EOS token counts, as vLLM counts it
    finish_reason: str  # "stop" (EOS or a stop string) | "length"
    # The sampled token ids, the EOS token that ended the candidate included, and their log-probabilities
    # under the engine's weights (before temperature) where the engine reports them (vLLM). Every local
    # engine fills `token_ids`; a remote that does not return them (a plain OpenAI server) leaves them
    # empty and its text is then tokenized by the scorer.
    token_ids: tuple[int, ...] = ()
    token_logprobs: tuple[float, ...] = ()


@dataclass(frozen=True)
class GenerationBatch:
    prompt_tokens: int
    generations: list[Generation] = field(default_factory=list)


@dataclass(frozen=True)
class TailLogprob:
    """log p of each of a sequence's last tokens given everything before it, and what the engine computed."""

    token_logprobs: tuple[float, ...]  # one per tail token, in order
    tokens: int  # the sequence's length
    computed_tokens: int  # tokens the model ran on (the rest came from a prefix cache)

    @property
    def logprob(self) -> float:
        """The tail's summed log-probability."""
        return math.fsum(self.token_logprobs)


Tail = tuple[tuple[int, ...], int]  # a teacher-forced request: token ids, and how many of the last are scored


def distinct_tails(sequences: Sequence[tuple[Sequence[int], int]]) -> list[Tail]:
    """Each distinct (ids, n) request once, in first-seen order, checked: the last n ids need at least one id
    before them. Every `TailScorer` runs these and answers with `in_request_order`."""
    unique = list(dict.fromkeys((tuple(int(i) for i in ids), n) for ids, n in sequences))
    for ids, n in unique:
        if not 0 < n < len(ids):
            raise ValueError(f"cannot score the last {n} of {len(ids)} tokens")
    return unique


def in_request_order(
    sequences: Sequence[tuple[Sequence[int], int]], measured: Mapping[Tail, TailLogprob]
) -> list[TailLogprob]:
    """The measurement of each request as asked, identical requests sharing one."""
    return [measured[(tuple(int(i) for i in ids), n)] for ids, n in sequences]


@runtime_checkable
class WeightPushEngine(Protocol):
    """An engine whose weights can be replaced in place by a policy's (the vllm engine; the trainer pushes
    each update so the next rollouts come from the new policy). Returns the seconds the push took."""

    def push_weights(self, model: Any) -> float: ...


@runtime_checkable
class TailScorer(Protocol):
    """An engine that teacher-forces token sequences: for each (token ids, n), the log-probabilities of the
    last n ids (vLLM reading its prefix cache, a remote vLLM through `prompt_logprobs`, transformers as the
    CPU twin). The engine-side scorer (`l2t_core.scoring.engine_scorer`) measures J and log-probs with it."""

    def tail_logprobs(self, sequences: Sequence[tuple[list[int], int]]) -> list[TailLogprob]: ...


class GenerationEngine(Protocol):
    name: str  # "transformers" | "vllm" | "openai"
    model_name: str

    def generate(
        self, prompt: Sequence[int], params: SamplingParams, cancel: threading.Event | None = None
    ) -> GenerationBatch: ...

    def healthy(self) -> bool: ...

    def close(self) -> None: ...


@runtime_checkable
class BatchingEngine(Protocol):
    """An engine that takes several prompts in one call (`generate_many`) and batches them itself."""

    def generate_many(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, cancel: threading.Event | None = None
    ) -> list[Generation]: ...


MAX_FAN_OUT = 32  # concurrent single-prompt calls when an engine cannot take several prompts at once


def generate_many(
    engine: GenerationEngine,
    prompts: Sequence[Sequence[int]],
    params: SamplingParams,
    cancel: threading.Event | None = None,
) -> list[Generation]:
    """One generation per prompt (token ids; `params.n` must be 1), the prompts handed over together: through the
    engine's own `generate_many` where it has one, else as concurrent `generate` calls, which engines
    that gather concurrent requests into one batch (transformers, vLLM) run together."""
    if params.n != 1:
        raise InvalidRequest(f"generate_many makes one generation per prompt, not n={params.n}", param="n")
    if not prompts:
        return []
    if isinstance(engine, BatchingEngine):
        return engine.generate_many(prompts, params, cancel)
    with ThreadPoolExecutor(max_workers=min(len(prompts), MAX_FAN_OUT)) as executor:
        batches = list(executor.map(lambda p: engine.generate(p, params, cancel), prompts))
    return [batch.generations[0] for batch in batches]


def end_of_sequence_ids(tokenizer: Any, generation_config: Any = None) -> frozenset[int]:
    """The ids that end a candidate: the tokenizer's EOS and the model's generation config's (Llama 3 ends
    chat turns with `<|eot_id|>`, which only the generation config names)."""
    ids: set[int] = set()
    for source in (getattr(tokenizer, "eos_token_id", None), getattr(generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(i) for i in source)
    return frozenset(ids)
