"""Scoring: run the model to measure J_k and g̃_k for every episode (packed or naive), then the reward."""

from l2t_core.scoring.results import COMPRESSION_ABSENT, AnswerProbes, CandidateScore, EpisodeScore, scoring_tokens
from l2t_core.scoring.scorer import L2TScorer, Scorer, ScoringJob, assemble

SCORERS = ("torch", "engine")  # where J, log-probs (and, with torch, the compression term) are measured

__all__ = [
    "COMPRESSION_ABSENT",
    "SCORERS",
    "AnswerProbes",
    "CandidateScore",
    "EpisodeScore",
    "L2TScorer",
    "Scorer",
    "ScoringJob",
    "assemble",
    "scoring_tokens",
]
