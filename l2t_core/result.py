"""What the pipeline's stages hand back: sampled pools, scored pools, ranked candidates and the usage and
timings of a request. Plain frozen records; the pipeline and the strategies' runners build them, every
surface (server, CLI, evaluation, trainer) reads them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from l2t_core.episodes import RenderedPrompt
from l2t_core.scoring import CandidateScore

if TYPE_CHECKING:
    from l2t_core.search.beam_prune import BeamPruneResult


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int  # every generated token (all N candidates; for beam-prune pruned paths and probes too)
    scoring_tokens: int  # tokens the scorer ran: prompt once, every candidate, every probe segment
    total_tokens: int


@dataclass(frozen=True)
class Timings:
    generate_ms: float
    score_ms: float


@dataclass(frozen=True)
class Sample:
    text: str  # the prefill followed by the generated text: what is parsed and scored
    n_tokens: int  # generated tokens (the prefill is not generated), the EOS token included
    finish_reason: str
    # The prefill's ids then the sampled ids (EOS included), in the generator's vocabulary: what the scorer
    # scores and the trainer updates. Empty when the engine returned none (a remote that sends text only).
    token_ids: tuple[int, ...] = ()
    # log p of the sampled ids (the last len(...) of `token_ids`; the prefill has none) under the engine's
    # weights, where the engine reports them (vLLM): scoring on the engine reads them instead of running
    # the candidate again. Empty where not reported.
    sampled_logprobs: tuple[float, ...] = ()


@dataclass(frozen=True)
class SampledPool:
    prompt: RenderedPrompt
    samples: list[Sample]
    prompt_tokens: int
    generate_s: float

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.samples]

    @property
    def token_ids(self) -> list[tuple[int, ...]] | None:
        """Every sample's ids, or None when any sample has none (its text is then tokenized by the scorer)."""
        ids = [s.token_ids for s in self.samples]
        return ids if all(ids) else None

    @property
    def sampled_logprobs(self) -> list[tuple[float, ...]] | None:
        """Every sample's sampled log-probs, or None when any sample has none."""
        found = [s.sampled_logprobs for s in self.samples]
        return found if all(found) and self.token_ids is not None else None


@dataclass(frozen=True)
class ScoredPool:
    scores: list[CandidateScore]
    usage: Usage
    timings: Timings


@dataclass(frozen=True)
class RankedCandidate:
    index: int  # position in generation order
    score: CandidateScore
    finish_reason: str
    generated_tokens: int
    token_ids: tuple[int, ...] = ()  # the sampled ids (prefill first, EOS included; empty where not sampled as ids)


@dataclass(frozen=True)
class PipelineResult:
    ranked: list[RankedCandidate]  # best first under the strategy
    usage: Usage
    timings: Timings
    strategy: str
    prompt_format: str | None
    search: BeamPruneResult | None = None  # beam-prune's own accounting (rounds, probes, pruned paths)
    samples_drawn: int | None = None  # candidates sampled (adaptive stops early; None for beam-prune)

    @property
    def best(self) -> RankedCandidate:
        return self.ranked[0]
