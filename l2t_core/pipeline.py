"""The reasoning pipeline: request -> engine (generate N) -> episodes -> scorer (reward) -> rerank.

Beam-prune (`search`) interleaves the two stages episode by episode instead.
This is the one place that strings the library together for serving and for `l2t generate`; the
HTTP layer only translates requests and responses. It counts every token it spends (prompt,
generated, scored) and times the two stages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from l2t_core.engines import Cancelled, GenerationBatch, GenerationEngine, SamplingParams, build_engine
from l2t_core.engines.base import StreamingEngine, TokenCallback
from l2t_core.episodes import EPISODE_SYSTEM_PROMPT, build_messages, render_prompt
from l2t_core.episodes.prompt import Message
from l2t_core.errors import InvalidRequest
from l2t_core.models import LoadedModel
from l2t_core.reward import RewardConfig
from l2t_core.scoring import CandidateScore, L2TScorer, scoring_tokens
from l2t_core.search import BeamPruneConfig, beam_prune, rank_candidates


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int  # all N candidates
    scoring_tokens: int  # tokens the scorer ran: prompt once, every candidate, every probe segment
    total_tokens: int


@dataclass(frozen=True)
class Timings:
    generate_ms: float
    score_ms: float


@dataclass(frozen=True)
class RankedCandidate:
    index: int  # position in generation order
    score: CandidateScore
    finish_reason: str
    generated_tokens: int


@dataclass(frozen=True)
class PipelineResult:
    ranked: list[RankedCandidate]  # best first under the strategy
    usage: Usage
    timings: Timings
    strategy: str

    @property
    def best(self) -> RankedCandidate:
        return self.ranked[0]


def episode_messages(question: str | None = None, messages: list[Message] | None = None) -> list[Message]:
    """The chat for a question, or the caller's messages with the episode system prompt added if they have none."""
    if messages:
        if any(m["role"] == "system" for m in messages):
            return list(messages)
        return [{"role": "system", "content": EPISODE_SYSTEM_PROMPT}, *messages]
    if question is None or not question.strip():
        raise InvalidRequest("a question or messages are required")
    return build_messages(question)


class ReasoningPipeline:
    def __init__(self, engine: GenerationEngine, scorer: L2TScorer) -> None:
        self.engine = engine
        self.scorer = scorer

    @classmethod
    def from_model(
        cls,
        loaded: LoadedModel,
        engine: str = "transformers",
        config: RewardConfig | None = None,
        **engine_options: Any,
    ) -> ReasoningPipeline:
        """Engine and scorer around one loaded model, sharing one lock (they take turns on the model)."""
        lock = threading.Lock()
        generator = build_engine(engine, loaded, lock, **engine_options)
        return cls(generator, L2TScorer(loaded.model, loaded.tokenizer, config, lock=lock))

    @property
    def tokenizer(self) -> Any:
        return self.scorer.tokenizer

    def render(self, messages: list[Message]) -> str:
        return render_prompt(self.tokenizer, messages)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(
        self,
        prompt: str,
        params: SamplingParams,
        strategy: str = "best_of_n",
        reference: str | None = None,
        config: RewardConfig | None = None,
        cancel: threading.Event | None = None,
    ) -> PipelineResult:
        """Sample N candidates for a rendered prompt, score every episode and rank them."""
        started = time.perf_counter()
        batch = self.engine.generate(prompt, params, cancel)
        generated = time.perf_counter()
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled after generation")
        texts = [g.text for g in batch.generations]
        scores = self.scorer.score(prompt, texts, reference=reference, config=config)
        scored = time.perf_counter()
        order = rank_candidates(scores, strategy)
        ranked = [
            RankedCandidate(i, scores[i], batch.generations[i].finish_reason, batch.generations[i].n_tokens)
            for i in order
        ]
        prompt_tokens = batch.prompt_tokens or self.count_tokens(prompt)
        completion_tokens = sum(g.n_tokens for g in batch.generations)
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            scoring_tokens=scoring_tokens(prompt_tokens, scores),
            total_tokens=prompt_tokens + completion_tokens,
        )
        timings = Timings((generated - started) * 1000, (scored - generated) * 1000)
        return PipelineResult(ranked, usage, timings, strategy)

    def search(
        self,
        prompt: str,
        params: SamplingParams,
        beam: BeamPruneConfig,
        config: RewardConfig | None = None,
        cancel: threading.Event | None = None,
    ) -> PipelineResult:
        """Beam-prune from a rendered prompt: `params.n` paths, pruned episode by episode (DESIGN §4)."""
        beam = replace(beam, width=params.n)
        result = beam_prune(self.engine, self.scorer, prompt, params, beam, config, cancel=cancel)
        ranked = [
            RankedCandidate(i, score, path.finish_reason or "stop", path.n_tokens)
            for i, (path, score) in enumerate(result.ranked)
        ]
        prompt_tokens = self.count_tokens(prompt)
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=result.generated_tokens,
            scoring_tokens=result.scoring_tokens,
            total_tokens=prompt_tokens + result.generated_tokens,
        )
        timings = Timings(result.generate_s * 1000, result.score_s * 1000)
        return PipelineResult(ranked, usage, timings, "beam_prune")

    def score(
        self,
        prompt: str,
        completions: list[str],
        reference: str | None = None,
        config: RewardConfig | None = None,
    ) -> tuple[list[CandidateScore], Usage, Timings]:
        started = time.perf_counter()
        scores = self.scorer.score(prompt, completions, reference=reference, config=config)
        elapsed = (time.perf_counter() - started) * 1000
        prompt_tokens = self.count_tokens(prompt)
        completion_tokens = sum(s.n_tokens for s in scores)
        usage = Usage(
            prompt_tokens, completion_tokens, scoring_tokens(prompt_tokens, scores), prompt_tokens + completion_tokens
        )
        return scores, usage, Timings(0.0, elapsed)

    def stream(
        self,
        prompt: str,
        params: SamplingParams,
        on_text: Callable[[int, str], None],
        strategy: str = "first",
        reference: str | None = None,
        config: RewardConfig | None = None,
        cancel: threading.Event | None = None,
    ) -> PipelineResult:
        """`generate`, telling `on_text(candidate, new_text)` each candidate's text as it is sampled
        (stop strings held back and cut, as in the final text). Only worth it when the order of the
        candidates is known before scoring (n = 1, or strategy `first`): a reranked answer is decided
        by the scores, which need every finished candidate. With an engine that cannot stream, no text
        is told and the caller sends the final texts."""
        decoders = [_IncrementalText(self.tokenizer, params.stop) for _ in range(params.n)]

        def on_token(candidate: int, token: int) -> None:
            new_text = decoders[candidate].push(token)
            if new_text:
                on_text(candidate, new_text)

        engine = _StreamingTo(self.engine, on_token) if isinstance(self.engine, StreamingEngine) else self.engine
        return ReasoningPipeline(engine, self.scorer).generate(prompt, params, strategy, reference, config, cancel)


class _StreamingTo:
    """The pipeline's engine with a token callback bound, so `generate` runs unchanged while streaming."""

    def __init__(self, engine: Any, on_token: TokenCallback) -> None:
        self.engine = engine
        self.on_token = on_token
        self.name = engine.name
        self.model_name = engine.model_name

    def generate(self, prompt: str, params: SamplingParams, cancel: threading.Event | None = None) -> GenerationBatch:
        batch: GenerationBatch = self.engine.generate(prompt, params, cancel, on_token=self.on_token)
        return batch

    def healthy(self) -> bool:
        return bool(self.engine.healthy())

    def close(self) -> None:
        self.engine.close()


class _IncrementalText:
    """One candidate's text, decoded token by token: what is new since the last call, never a half
    character, nothing that might still become a stop string, nothing after EOS or a stop string."""

    def __init__(self, tokenizer: Any, stops: tuple[str, ...]) -> None:
        self.tokenizer = tokenizer
        self.stops = stops
        self.end_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
        self.ids: list[int] = []
        self.sent = 0
        self.done = False

    def push(self, token: int) -> str:
        if self.done:
            return ""
        if token in self.end_ids:
            self.done = True
            return ""
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # a character split across tokens: wait for the rest
            return ""
        for stop in self.stops:
            if stop in text:
                text, self.done = text[: text.index(stop)], True
        ready = len(text) if self.done else len(text) - self._held_back(text)
        new_text = text[self.sent : ready]
        self.sent = max(self.sent, ready)
        return new_text

    def _held_back(self, text: str) -> int:
        """Length of the longest end of `text` that could be the start of a stop string."""
        return max((k for stop in self.stops for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
