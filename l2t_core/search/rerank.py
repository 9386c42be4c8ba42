"""Rank a scored pool of candidates, best first, by one strategy.

- `first`: generation order (the single-sample baseline).
- `loglik`: mean token log-probability (the paper's baseline).
- `majority`: the most frequent normalised answer wins; within it, generation order.
- `best_of_n`: the highest L2T path score S_i.
- `weighted_vote`: answers weighted by Σ exp((S_i − max S)/τ) over the candidates that give them, with
  τ the pool's standard deviation of S (so the weighting is scale-free); within the winning answer,
  the highest S_i first.
Candidates without an extracted answer rank after all answered ones in the vote-based strategies.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from l2t_core.answers import normalize_answer
from l2t_core.scoring import CandidateScore

STRATEGIES = ("best_of_n", "weighted_vote", "majority", "loglik", "first")


def rank_candidates(candidates: Sequence[CandidateScore], strategy: str) -> list[int]:
    """Indices of `candidates`, best first."""
    indices = list(range(len(candidates)))
    if strategy == "first":
        return indices
    if strategy == "loglik":
        return sorted(indices, key=lambda i: -candidates[i].mean_logprob)
    if strategy == "best_of_n":
        return sorted(indices, key=lambda i: -candidates[i].score)
    if strategy == "majority":
        weights = {i: 1.0 for i in indices}
        return _vote(candidates, weights, within=lambda i: i)
    if strategy == "weighted_vote":
        return _vote(candidates, _softmax_weights(candidates), within=lambda i: -candidates[i].score)
    raise ValueError(f"unknown strategy {strategy!r}: use one of {STRATEGIES}")


def _softmax_weights(candidates: Sequence[CandidateScore]) -> dict[int, float]:
    scores = [c.score for c in candidates]
    if not scores:
        return {}
    top = max(scores)
    spread = statistics.pstdev(scores) if len(scores) > 1 else 0.0
    tau = spread if spread > 0 else 1.0
    return {i: math.exp((s - top) / tau) for i, s in enumerate(scores)}


def _vote(candidates: Sequence[CandidateScore], weights: dict[int, float], within: Callable[[int], float]) -> list[int]:
    groups: dict[str, list[int]] = {}
    unanswered: list[int] = []
    for i, candidate in enumerate(candidates):
        if candidate.answer is None:
            unanswered.append(i)
        else:
            groups.setdefault(normalize_answer(candidate.answer), []).append(i)
    ordered = sorted(groups.values(), key=lambda members: (-sum(weights[i] for i in members), members[0]))
    ranking = [i for members in ordered for i in sorted(members, key=within)]
    return ranking + sorted(unanswered, key=within)
