"""Reward settings tuned on the tune half of a suite: β, aggregation, target and the compression
normalisation, chosen by `weighted_vote` accuracy at one N. α is not tuned here: it only weighs the dense
reward against the outcome reward in training and does not change any ranking."""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import product

from l2t_core.eval.pool import ScoredPool, reweigh
from l2t_core.eval.rerankers import evaluate
from l2t_core.reward import AGGREGATIONS, NORMALISATIONS, RewardConfig
from l2t_core.scoring import CandidateScore

BETAS = (0.0, 0.15, 0.3, 0.6, 1.2, 2.4, 5.0, 10.0, 20.0)


@dataclass(frozen=True)
class Setting:
    target: str
    beta: float
    aggregation: str
    normalisation: str  # raw C_k, or C_k per episode token

    def label(self) -> str:
        return f"target={self.target} β={self.beta:g} agg={self.aggregation} C={self.normalisation}"

    def reward_config(self) -> RewardConfig:
        """The setting as served: pass these fields to the server or `l2t generate` to use it."""
        return RewardConfig(
            target=self.target,
            beta=self.beta,
            aggregation=self.aggregation,
            compression_normalisation=self.normalisation,
        )


def apply(score: CandidateScore, setting: Setting) -> CandidateScore:
    """Re-weigh cached measurements under a setting (no model call)."""
    return reweigh(score, setting.reward_config())


def reweigh_pools(scored: list[ScoredPool], setting: Setting) -> list[ScoredPool]:
    return [replace(p, scores=[apply(s, setting) for s in p.scores]) for p in scored]


def grid(by_target: dict[str, list[ScoredPool]], table: list[list[bool]], n: int) -> list[tuple[Setting, float, float]]:
    """Every setting with its `weighted_vote` and `best_of_n` accuracy at N, best first."""
    rows = []
    for target, beta, aggregation, normalisation in product(by_target, BETAS, AGGREGATIONS, NORMALISATIONS):
        setting = Setting(target, beta, aggregation, normalisation)
        pools = reweigh_pools(by_target[target], setting)
        vote = evaluate(pools, table, "weighted_vote", n).correct
        best = evaluate(pools, table, "best_of_n", n).correct
        rows.append((setting, sum(vote) / len(vote), sum(best) / len(best)))
    return sorted(rows, key=lambda row: (-row[1], -row[2]))
