"""The verifier suite's measurements: can a scorer pick the gold solution out of corrupted copies, and
does the lowest episode reward land on the first wrong step?"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from l2t_core.eval.pool import Pool, ScoredPool, score_pools
from l2t_core.eval.problems import Problem
from l2t_core.eval.stats import bootstrap_difference, bootstrap_mean
from l2t_core.eval.tasks.verifier import VerifierPool, verifier_pools
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.reward import RewardConfig
from l2t_core.scoring import CandidateScore
from l2t_core.search import MAX_ANSWER_PROBES, rank_candidates

POOL_SIZE = 8


def _episode_logprob(score: CandidateScore, episode: int) -> float:
    e = score.episodes[episode]
    values = score.token_logprobs[e.token_start : e.token_end]
    return sum(values) / len(values) if values else 0.0


def _argmin(values: list[float]) -> int:
    return min(range(len(values)), key=lambda i: values[i])


def run_verifier(
    pipeline: ReasoningPipeline,
    problems: list[Problem],
    config: RewardConfig,
    cache: Path,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    built = verifier_pools(problems, size=POOL_SIZE, seed=seed)
    pools = [
        Pool(
            v.problem,
            pipeline.prompt(v.problem.question),
            [c.text for c in v.candidates],
            [0] * len(v.candidates),
            ["stop"] * len(v.candidates),
            0.0,
            [[] for _ in v.candidates],  # written texts, not sampled: the scorer tokenizes them
        )
        for v in built
    ]
    by_target = {
        "self": score_pools(
            pipeline, pools, config.with_overrides(target="self"), cache, progress, answer_probes=MAX_ANSWER_PROBES
        ),
        "reference": score_pools(pipeline, pools, config, cache, progress, with_reference=True),
    }
    return summarise(built, by_target, config, seed)


def summarise(
    built: list[VerifierPool], by_target: dict[str, list[ScoredPool]], config: RewardConfig, seed: int
) -> dict[str, Any]:
    top1: dict[str, list[float]] = {"random": [1 / POOL_SIZE] * len(built)}
    top1["loglik"] = [
        float(rank_candidates(s.scores, "loglik")[0] == v.gold_index)
        for v, s in zip(built, by_target["self"], strict=True)
    ]
    for strategy in ("confidence", "majority", "posterior_vote"):
        top1[strategy] = [
            float(rank_candidates(s.scores, strategy)[0] == v.gold_index)
            for v, s in zip(built, by_target["self"], strict=True)
        ]
    for target, scored in by_target.items():
        for beta in sorted({config.beta, 0.0}):
            for aggregation in ("sum", "mean", "min", "last"):
                name = f"best_of_n[{target},β={beta:g},{aggregation}]"
                top1[name] = [
                    float(_best(s.scores, beta, aggregation) == v.gold_index)
                    for v, s in zip(built, scored, strict=True)
                ]
    localisation = _localisation(built, by_target, config, seed)
    baseline = top1["loglik"]
    return {
        "pools": len(built),
        "pool_size": POOL_SIZE,
        "corruptions": _count_kinds(built),
        "top1": {name: bootstrap_mean(values, seed).to_dict() for name, values in top1.items()},
        "top1_minus_loglik": {
            name: bootstrap_difference(values, baseline, seed).to_dict()
            for name, values in top1.items()
            if name not in ("random", "loglik")
        },
        "first_error": localisation,
    }


def _best(scores: list[CandidateScore], beta: float, aggregation: str) -> int:
    return rank_candidates([s.reweighed(beta, aggregation) for s in scores], "best_of_n")[0]


def _count_kinds(built: list[VerifierPool]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pool in built:
        for c in pool.candidates:
            counts[c.kind] = counts.get(c.kind, 0) + 1
    return counts


def _localisation(
    built: list[VerifierPool], by_target: dict[str, list[ScoredPool]], config: RewardConfig, seed: int
) -> dict[str, Any]:
    """Per corruption kind: how often the lowest-scoring episode is the first wrong one, vs baselines."""
    rng = random.Random(seed)
    hits: dict[str, dict[str, list[float]]] = {}
    for index, pool in enumerate(built):
        for c_index, candidate in enumerate(pool.candidates):
            if candidate.first_error is None:
                continue
            kind_hits = hits.setdefault(candidate.kind, {})
            reference_score = by_target["self"][index].scores[c_index]
            k = len(reference_score.episodes)
            if candidate.first_error >= k:
                continue
            kind_hits.setdefault("random (1/K)", []).append(1 / k)
            kind_hits.setdefault("random draw", []).append(float(rng.randrange(k) == candidate.first_error))
            lowest_lp = _argmin([_episode_logprob(reference_score, e) for e in range(k)])
            kind_hits.setdefault("lowest episode log-prob", []).append(float(lowest_lp == candidate.first_error))
            if all(e.progress is not None for e in reference_score.episodes):
                lowest_progress = _argmin([e.progress or 0.0 for e in reference_score.episodes])
                kind_hits.setdefault("lowest progress", []).append(float(lowest_progress == candidate.first_error))
            for target, scored in by_target.items():
                score = scored[index].scores[c_index]
                for beta in sorted({config.beta, 0.0}):
                    rewards = [e.fitting_gain - beta * e.measured_penalty for e in score.episodes]
                    name = f"l2t lowest r_k [{target},β={beta:g}]"
                    kind_hits.setdefault(name, []).append(float(_argmin(rewards) == candidate.first_error))
    return {
        kind: {name: bootstrap_mean(values, seed).to_dict() for name, values in by_name.items()}
        for kind, by_name in hits.items()
    }
