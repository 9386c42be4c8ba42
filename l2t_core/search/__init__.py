"""Choosing among candidates: the strategy registry, rerankers over a scored pool, and beam-prune search."""

from l2t_core.search.adaptive import AdaptiveConfig, samples_needed, vote_decided
from l2t_core.search.beam_prune import BeamPruneConfig, BeamPruneResult, SearchPath, beam_prune
from l2t_core.search.posterior import (
    MAX_ANSWER_PROBES,
    POSTERIOR_SETTINGS,
    PROGRESS_SETTINGS,
    PosteriorSettings,
    answer_posterior,
    episode_progress,
    with_progress,
)
from l2t_core.search.rerank import RankContext, lowest_group_confidence
from l2t_core.search.strategies import (
    DEFAULT_STRATEGY,
    POOL_STRATEGIES,
    RERANKERS,
    SERVED_STRATEGIES,
    STRATEGIES,
    SYNONYMS,
    Strategy,
    engine_scoring_refusal,
    get_strategy,
    rank_candidates,
)

__all__ = [
    "DEFAULT_STRATEGY",
    "MAX_ANSWER_PROBES",
    "POOL_STRATEGIES",
    "POSTERIOR_SETTINGS",
    "PROGRESS_SETTINGS",
    "RERANKERS",
    "SERVED_STRATEGIES",
    "STRATEGIES",
    "SYNONYMS",
    "AdaptiveConfig",
    "BeamPruneConfig",
    "BeamPruneResult",
    "PosteriorSettings",
    "RankContext",
    "SearchPath",
    "Strategy",
    "answer_posterior",
    "beam_prune",
    "engine_scoring_refusal",
    "episode_progress",
    "get_strategy",
    "lowest_group_confidence",
    "rank_candidates",
    "samples_needed",
    "vote_decided",
    "with_progress",
]
