"""Choosing among candidates: rerank strategies over a scored pool (beam-prune arrives with the search issue)."""

from l2t_core.search.rerank import STRATEGIES, rank_candidates

__all__ = ["STRATEGIES", "rank_candidates"]
