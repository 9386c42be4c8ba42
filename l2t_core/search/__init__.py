"""Choosing among candidates: rerank strategies over a scored pool, and beam-prune search over episodes."""

from l2t_core.search.beam_prune import BeamPruneConfig, BeamPruneResult, SearchPath, beam_prune
from l2t_core.search.rerank import ALIASES, STRATEGIES, canonical_strategy, lowest_group_confidence, rank_candidates

__all__ = [
    "ALIASES",
    "STRATEGIES",
    "BeamPruneConfig",
    "BeamPruneResult",
    "SearchPath",
    "beam_prune",
    "canonical_strategy",
    "lowest_group_confidence",
    "rank_candidates",
]
