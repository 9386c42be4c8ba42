"""Adaptive sampling: draw candidates in rounds and stop as soon as the answer is decided.

Two stopping rules (`stop`):

- `confident` (DeepConf-style online early exit): stop once a drawn sample's mean token log-probability
  reaches `min_logprob`: with a model whose best selector is its own confidence (loglik), a confident
  sample is as good as more samples. The threshold is chosen on the tune halves (docs/decisions.md).
- `vote`: adaptive consistency's Beta criterion (Aggarwal et al. 2023): with v₁ votes for the leading
  answer and v₂ for the runner-up, the chance that the leader is the more likely answer of the two is
  P(p₁ > p₂) = P(X > ½) for X ~ Beta(v₁ + 1, v₂ + 1) under a uniform prior. Sampling stops when that
  reaches `confidence`. Unanswered samples count for no answer. Four agreeing samples in a row give
  0.969, so 0.95 stops an easy question after 4 of 8 samples. (The 135M model rarely agrees with
  itself, so on the tune half this rule saved under 20% of the tokens.)

Either way sampling ends at the request's N.

The evaluation replays the same rule over a cached pool in generation order (`samples_needed`), so the
served strategy and the measured one stop at the same sample.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

from l2t_core.answers import extract_answer, normalize_answer
from l2t_core.engines import Cancelled, SamplingParams
from l2t_core.errors import InvalidRequest
from l2t_core.result import PipelineResult, Sample, SampledPool

if TYPE_CHECKING:
    from l2t_core.pipeline import ReasoningPipeline
    from l2t_core.request import GenerationRequest

STOP_RULES = ("confident", "vote")


@dataclass(frozen=True)
class AdaptiveConfig:
    round_size: int = 2  # samples drawn per round (one engine batch)
    stop: str = "confident"  # the stopping rule: confident | vote
    min_logprob: float = -0.3  # confident: stop once a sample's mean token log-prob reaches this
    confidence: float = 0.95  # vote: stop when P(leader is the more likely answer) reaches this
    select: str = "loglik"  # the reranker that chooses among the samples drawn

    request_field: ClassVar[str] = "adaptive"  # where a request carries these settings

    def __post_init__(self) -> None:
        if self.stop not in STOP_RULES:
            raise InvalidRequest(f"adaptive stop must be one of {STOP_RULES}, got {self.stop!r}", param="adaptive")
        if self.round_size < 1:
            raise InvalidRequest(f"adaptive round_size must be >= 1, got {self.round_size}", param="adaptive")
        if not 0.5 <= self.confidence < 1.0:
            raise InvalidRequest(f"adaptive confidence must be in [0.5, 1), got {self.confidence}", param="adaptive")

    @classmethod
    def from_request(cls, sampling: SamplingParams, options: Mapping[str, Any]) -> AdaptiveConfig:
        """The defaults with a request's non-None options applied (unknown names are an error); the
        request's n is the most it draws, so `sampling` sets nothing here."""
        known = {f.name for f in fields(cls)}
        given = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(given) - known)
        if unknown:
            raise InvalidRequest(f"unknown adaptive option(s) {unknown}: use {sorted(known)}", param="adaptive")
        return cls(**given)

    def work(self, sampling: SamplingParams, prompt_tokens: int) -> int:
        """At most the request's n samples, as plain sampling would draw them: an upper bound on the tokens
        the model reads and writes (l2t_core/admission.py)."""
        return sampling.n * (prompt_tokens + sampling.max_tokens)


def leader_probability(leader_votes: int, runner_up_votes: int) -> float:
    """P(X > ½) for X ~ Beta(v₁ + 1, v₂ + 1): 1 − I_½(v₁ + 1, v₂ + 1), exact for integer votes."""
    a, b = leader_votes + 1, runner_up_votes + 1
    n = a + b - 1
    below_half = math.fsum(math.comb(n, j) for j in range(a, n + 1)) / 2**n  # I_½(a, b)
    return 1.0 - below_half


def vote_decided(answers: Sequence[str | None], confidence: float) -> bool:
    counts = Counter(normalize_answer(a) for a in answers if a is not None)
    if not counts:
        return False
    top = counts.most_common(2)
    runner_up = top[1][1] if len(top) > 1 else 0
    return leader_probability(top[0][1], runner_up) >= confidence


def round_ends(n: int, round_size: int) -> list[int]:
    """Sample counts after each round, the last one N."""
    return [*range(round_size, n, round_size), n]


def decided(answers: Sequence[str | None], mean_logprobs: Sequence[float], config: AdaptiveConfig) -> bool:
    """Whether the samples drawn so far (their answers and mean token log-probs) end the sampling."""
    if config.stop == "confident":
        return max(mean_logprobs, default=float("-inf")) >= config.min_logprob
    return vote_decided(answers, config.confidence)


def samples_needed(
    answers: Sequence[str | None], mean_logprobs: Sequence[float], n: int, config: AdaptiveConfig
) -> int:
    """How many samples (in generation order) the rule draws before it stops, at most N."""
    for drawn in round_ends(n, config.round_size):
        if decided(answers[:drawn], mean_logprobs[:drawn], config):
            return drawn
    return n


def run_adaptive(
    pipeline: ReasoningPipeline, request: GenerationRequest, cancel: threading.Event | None
) -> PipelineResult:
    """The `adaptive` strategy: rounds of `round_size` samples until the rule decides or N are drawn, then
    the `select` reranker ranks what was drawn. The `confident` rule reads each round's log-probs, and
    that scoring is charged to the request. A seeded request stays reproducible: round r uses seed +
    samples drawn, so rounds never repeat each other."""
    config = request.search
    assert isinstance(config, AdaptiveConfig)  # GenerationRequest gives adaptive its settings
    params = request.sampling
    samples: list[Sample] = []
    logprobs: list[float] = []
    check_tokens, check_ms = 0, 0.0
    prompt_tokens, generate_s = 0, 0.0
    for drawn_after in round_ends(params.n, config.round_size):
        seed = None if params.seed is None else params.seed + len(samples)
        batch = pipeline.sample(request.prompt, replace(params, n=drawn_after - len(samples), seed=seed), cancel)
        samples += batch.samples
        prompt_tokens, generate_s = batch.prompt_tokens, generate_s + batch.generate_s
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled between adaptive rounds")
        if config.stop == "confident":
            check = pipeline.score(
                request.prompt,
                batch.texts,
                config=request.reward,
                token_ids=batch.token_ids,
                sampled_logprobs=batch.sampled_logprobs,
            )
            logprobs += [s.mean_logprob for s in check.scores]
            check_tokens += check.usage.scoring_tokens
            check_ms += check.timings.score_ms
        if decided([extract_answer(s.text) for s in samples], logprobs, config):
            break
    from l2t_core.search.strategies import get_strategy  # the registry imports this module: resolved here

    pool = SampledPool(request.prompt, samples, prompt_tokens, generate_s)
    select = get_strategy(config.select)
    return pipeline.rank_pool(request, pool, select, cancel, spent=(check_tokens, check_ms))
