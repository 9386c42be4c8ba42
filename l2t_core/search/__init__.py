"""Choosing among candidates: the strategy registry, rerankers over a scored pool, and beam-prune search."""

from l2t_core.search.beam_prune import BeamPruneConfig, BeamPruneResult, SearchPath, beam_prune
from l2t_core.search.rerank import lowest_group_confidence, rank_candidates
from l2t_core.search.strategies import (
    DEFAULT_STRATEGY,
    RERANKERS,
    SERVED_STRATEGIES,
    STRATEGIES,
    SYNONYMS,
    Strategy,
    get_strategy,
)

__all__ = [
    "DEFAULT_STRATEGY",
    "RERANKERS",
    "SERVED_STRATEGIES",
    "STRATEGIES",
    "SYNONYMS",
    "BeamPruneConfig",
    "BeamPruneResult",
    "SearchPath",
    "Strategy",
    "beam_prune",
    "get_strategy",
    "lowest_group_confidence",
    "rank_candidates",
]
