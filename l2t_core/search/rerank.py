"""Rank a scored pool of candidates, best first, by one reranking strategy (declared in `strategies`).

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
from collections.abc import Callable, Sequence

from l2t_core.answers import answers_match, normalize_answer
from l2t_core.errors import InvalidRequest
from l2t_core.scoring import CandidateScore
from l2t_core.search.posterior import POSTERIOR_SETTINGS, PosteriorSettings, posterior_order
from l2t_core.search.strategies import get_strategy

CONFIDENCE_WINDOW = 16


def rank_candidates(
    candidates: Sequence[CandidateScore],
    strategy: str,
    reference: str | None = None,
    posterior: PosteriorSettings = POSTERIOR_SETTINGS,
) -> list[int]:
    """Indices of `candidates`, best first, under a reranking strategy of the registry (`posterior`:
    the settings of `posterior_vote`; the evaluation's tuning grid varies them)."""
    chosen = get_strategy(strategy)
    if chosen.kind != "rerank":
        raise InvalidRequest(f"strategy {chosen.name!r} is a search, not a reranker", param="strategy")
    strategy = chosen.name
    indices = list(range(len(candidates)))
    if strategy == "first":
        return indices
    if strategy == "loglik":
        return sorted(indices, key=lambda i: -candidates[i].mean_logprob)
    if strategy == "confidence":
        return sorted(indices, key=lambda i: -lowest_group_confidence(candidates[i].token_logprobs))
    if strategy == "best_of_n":
        return sorted(indices, key=lambda i: -candidates[i].score)
    if strategy == "majority":
        return _vote(candidates, {i: 1.0 for i in indices}, within=lambda i: i)
    if strategy == "weighted_vote":
        return _vote(candidates, _softmax_weights(candidates), within=lambda i: -candidates[i].score)
    if strategy == "posterior_vote":
        return posterior_order(candidates, posterior)
    if reference is None:
        raise InvalidRequest("strategy 'oracle' needs the reference answer")
    return sorted(indices, key=lambda i: not answers_match(candidates[i].answer, reference))


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
    scores = [c.score for c in candidates]
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
