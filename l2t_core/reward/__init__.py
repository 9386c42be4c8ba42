"""The L2T per-episode reward r_k = ΔI_k − β·C_k (paper Eq. 3–4, DESIGN §3) and its parts."""

from l2t_core.reward.config import (
    AGGREGATIONS,
    DELTA_MODES,
    NORMALISATIONS,
    REQUEST_TARGETS,
    SUFFIX_PROBABILITIES,
    TARGET_MODES,
    RewardConfig,
)
from l2t_core.reward.formulas import aggregate, compression_penalty, fitting_gains, normalise_penalty
from l2t_core.reward.proxy import LowRankProxy, UnsupportedModelError
from l2t_core.reward.targets import choose_targets, distinct_answers

__all__ = [
    "AGGREGATIONS",
    "DELTA_MODES",
    "NORMALISATIONS",
    "REQUEST_TARGETS",
    "SUFFIX_PROBABILITIES",
    "TARGET_MODES",
    "LowRankProxy",
    "RewardConfig",
    "UnsupportedModelError",
    "aggregate",
    "choose_targets",
    "distinct_answers",
    "compression_penalty",
    "fitting_gains",
    "normalise_penalty",
]
