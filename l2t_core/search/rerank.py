"""The rankers of the reranking strategies: each orders a scored pool, best first (the registry in
`strategies` names them), and `run_reranker`, the strategies' shared runner: sample, score, rank.

- `first`: generation order (the single-sample baseline).
- `loglik`: mean token log-probability (the paper's baseline).
- `confidence`: DeepConf-style lowest group confidence: the minimum, over sliding windows of
  `CONFIDENCE_WINDOW` tokens, of the mean log-probability of the sampled tokens (a path is as
  trustworthy as its shakiest stretch).
- `majority`: the most frequent normalised answer wins; within it, generation order.
- `best_of_n` (synonym `l2t_best`): the highest L2T path score S_i.
- `weighted_vote` (synonym `l2t_vote`): answers weighted by Σ exp((S_i − max S)/τ) over the
  candidates that give them, with τ the pool's standard deviation of S (so the weighting is
  scale-free); within the winning answer, the highest S_i first.
- `posterior_vote`: answers by their pooled probe probability over the paths (posterior.py); within the
  winning answer, the most confident path first.
- `oracle`: candidates whose answer matches the reference first (pass@N; needs the reference).
Candidates without an extracted answer rank after all answered ones in the vote-based strategies.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from l2t_core.answers import answers_match, normalize_answer
from l2t_core.errors import InvalidRequest
from l2t_core.result import PipelineResult
from l2t_core.scoring import CandidateScore
from l2t_core.search.posterior import POSTERIOR_SETTINGS, PosteriorSettings, posterior_order

if TYPE_CHECKING:
    from l2t_core.pipeline import ReasoningPipeline
    from l2t_core.request import GenerationRequest

CONFIDENCE_WINDOW = 16


@dataclass(frozen=True)
class RankContext:
    """What a ranker may read besides the pool: the reference (`oracle`) and `posterior_vote`'s settings
    (the evaluation's tuning grid varies them)."""

    reference: str | None = None
    posterior: PosteriorSettings = POSTERIOR_SETTINGS


Ranker = Callable[[Sequence[CandidateScore], RankContext], list[int]]


def run_reranker(
    pipeline: ReasoningPipeline, request: GenerationRequest, cancel: threading.Event | None
) -> PipelineResult:
    """Every reranking strategy: sample N candidates, score them all, rank them by the strategy's ranker."""
    pool = pipeline.sample(request.prompt, request.sampling, cancel)
    return pipeline.rank_pool(request, pool, request.strategy, cancel)


def in_generation_order(candidates: Sequence[CandidateScore], _context: RankContext) -> list[int]:
    return list(range(len(candidates)))


def by_mean_logprob(candidates: Sequence[CandidateScore], _context: RankContext) -> list[int]:
    return sorted(range(len(candidates)), key=lambda i: -candidates[i].mean_logprob)


def by_group_confidence(candidates: Sequence[CandidateScore], _context: RankContext) -> list[int]:
    return sorted(range(len(candidates)), key=lambda i: -lowest_group_confidence(candidates[i].token_logprobs))


def by_path_score(candidates: Sequence[CandidateScore], _context: RankContext) -> list[int]:
    return sorted(range(len(candidates)), key=lambda i: -candidates[i].measured_score)


def by_majority(candidates: Sequence[CandidateScore], _context: RankContext) -> list[int]:
    return _vote(candidates, {i: 1.0 for i in range(len(candidates))}, within=lambda i: i)


def by_weighted_vote(candidates: Sequence[CandidateScore], _context: RankContext) -> list[int]:
    return _vote(candidates, _softmax_weights(candidates), within=lambda i: -candidates[i].measured_score)


def by_posterior_vote(candidates: Sequence[CandidateScore], context: RankContext) -> list[int]:
    return posterior_order(candidates, context.posterior)


def by_reference(candidates: Sequence[CandidateScore], context: RankContext) -> list[int]:
    if context.reference is None:
        raise InvalidRequest("strategy 'oracle' needs the reference answer", param="reference")
    reference = context.reference
    return sorted(range(len(candidates)), key=lambda i: not answers_match(candidates[i].answer, reference))


def lowest_group_confidence(token_logprobs: Sequence[float], window: int = CONFIDENCE_WINDOW) -> float:
    """Min over sliding windows of the mean sampled-token log-prob; a path shorter than a window is one window."""
    if not token_logprobs:
        return -math.inf
    width = min(window, len(token_logprobs))
    total = math.fsum(token_logprobs[:width])
    lowest = total
    for end in range(width, len(token_logprobs)):
        total += token_logprobs[end] - token_logprobs[end - width]
        lowest = min(lowest, total)
    return lowest / width


def _softmax_weights(candidates: Sequence[CandidateScore]) -> dict[int, float]:
    scores = [c.measured_score for c in candidates]
    if not scores:
        return {}
    top = max(scores)
    spread = statistics.pstdev(scores) if len(scores) > 1 else 0.0
    tau = spread if spread > 0 else 1.0
    return {i: math.exp((s - top) / tau) for i, s in enumerate(scores)}


def _vote(candidates: Sequence[CandidateScore], weights: dict[int, float], within: Callable[[int], float]) -> list[int]:
    return vote_order([c.answer for c in candidates], weights, within)


def vote_order(
    answers: Sequence[str | None], weights: dict[int, float], within: Callable[[int], float] = float
) -> list[int]:
    """Indices of the answers, best first: answers (normalised) by their summed weight, ties to the answer
    given first; within an answer by `within`; unanswered last. Majority voting is uniform weights."""
    groups: dict[str, list[int]] = {}
    unanswered: list[int] = []
    for i, answer in enumerate(answers):
        if answer is None:
            unanswered.append(i)
        else:
            groups.setdefault(normalize_answer(answer), []).append(i)
    ordered = sorted(groups.values(), key=lambda members: (-sum(weights[i] for i in members), members[0]))
    ranking = [i for members in ordered for i in sorted(members, key=within)]
    return ranking + sorted(unanswered, key=within)
