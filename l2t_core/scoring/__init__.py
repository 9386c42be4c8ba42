"""Scoring: run the model to measure J_k and g̃_k for every episode (packed or naive), then the reward."""

from l2t_core.scoring.results import AnswerProbes, CandidateScore, EpisodeScore, scoring_tokens
from l2t_core.scoring.scorer import L2TScorer, ScoringJob, assemble

__all__ = ["AnswerProbes", "CandidateScore", "EpisodeScore", "L2TScorer", "ScoringJob", "assemble", "scoring_tokens"]
