"""The reasoning pipeline: request -> engine (generate N) -> episodes -> scorer (reward) -> rerank.

Beam-prune (`search`) interleaves the two stages episode by episode instead.
This is the one place that strings the library together for serving and for `l2t generate`; the
HTTP layer only translates requests and responses. It counts every token it spends (prompt,
generated, scored) and times the two stages.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from l2t_core.engines import Cancelled, GenerationEngine, SamplingParams, build_engine
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
