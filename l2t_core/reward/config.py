"""Reward hyper-parameters, with the paper's defaults where it states them and ours (documented) elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from l2t_core.errors import InvalidRequest

TARGET_MODES = ("self", "consensus", "reference")
DELTA_MODES = ("step", "drift")
AGGREGATIONS = ("sum", "mean", "min", "last")
NORMALISATIONS = ("raw", "per_token")
SUFFIX_PROBABILITIES = ("token", "string")
# Target modes a request may name; "reference" is implied by giving a reference answer.
REQUEST_TARGETS = ("self", "consensus")


@dataclass(frozen=True)
class RewardConfig:
    alpha: float = field(
        default=0.8, metadata={"help": "weight of the dense reward in training, R_k = r_out/K + α r_k"}
    )
    beta: float = field(default=0.6, metadata={"help": "weight of the compression penalty, r_k = ΔI_k − β C_k"})
    damping: float = field(default=1e-5, metadata={"help": "λ, Fisher damping: C_k = (g̃ᵀΔθ̃)² + λ‖Δθ̃‖²"})
    rank_ratio: float = field(
        default=0.05,
        metadata={"help": "rank r of the low-rank proxy as a fraction of min(dims) of the weight"},
    )
    delta_mode: str = field(
        default="step",
        metadata={
            "help": "Δθ̃_k: 'step' = virtual step η·g̃_k (serving); 'drift' = projected W − W_ref (training)",
            "choices": DELTA_MODES,
        },
    )
    step_size: float = field(
        default=0.015,
        metadata={
            "help": "η of the virtual step in 'step' mode; sets the scale of C_k. 0.015 makes median C_k equal "
            "median |ΔI_k| for the default model (benchmarks/calibrate_compression.py; docs/decisions.md)"
        },
    )
    target: str = field(
        default="self",
        metadata={
            "help": "the answer J is measured against: the path's own (self), the pool's most common (consensus), "
            "or the reference answer (reference: implied by giving one)",
            "choices": TARGET_MODES,
        },
    )
    aggregation: str = field(
        default="sum", metadata={"help": "path score from the episode rewards", "choices": AGGREGATIONS}
    )
    probe: str = field(
        default="\n\nTherefore, the final answer is \\boxed{",
        metadata={"help": "answer-forcing text appended after each prefix before the target answer"},
    )
    target_suffix: str = field(default="}", metadata={"help": "text after the target answer, scored with it"})
    suffix_probability: str = field(
        default="token",
        metadata={
            "help": "how the suffix is scored: 'token' = the probability of its own token; 'string' = of every "
            "token whose text starts with it (SmolLM2 writes '}.' as one token, so 'token' understates J by "
            "about 100x; docs/decisions.md)",
            "choices": SUFFIX_PROBABILITIES,
        },
    )
    max_episodes: int = field(default=30, metadata={"help": "cap on K; neighbours are merged beyond it"})
    compression_normalisation: str = field(
        default="raw",
        metadata={
            "help": "C_k as measured ('raw') or divided by the episode's token count ('per_token')",
            "choices": NORMALISATIONS,
        },
    )

    def __post_init__(self) -> None:
        checks = [
            (self.target in TARGET_MODES, f"target must be one of {TARGET_MODES}, got {self.target!r}"),
            (
                self.delta_mode in DELTA_MODES,
                f"delta_mode must be one of {DELTA_MODES}, got {self.delta_mode!r}",
            ),
            (
                self.aggregation in AGGREGATIONS,
                f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}",
            ),
            (
                self.compression_normalisation in NORMALISATIONS,
                f"compression_normalisation must be one of {NORMALISATIONS}, got {self.compression_normalisation!r}",
            ),
            (
                self.suffix_probability in SUFFIX_PROBABILITIES,
                f"suffix_probability must be one of {SUFFIX_PROBABILITIES}, got {self.suffix_probability!r}",
            ),
            (0.0 < self.rank_ratio <= 1.0, f"rank_ratio must be in (0, 1], got {self.rank_ratio}"),
            (self.beta >= 0.0, f"beta must be >= 0, got {self.beta}"),
            (self.damping >= 0.0, f"damping must be >= 0, got {self.damping}"),
            (self.step_size > 0.0, f"step_size must be > 0, got {self.step_size}"),
            (self.max_episodes >= 1, f"max_episodes must be >= 1, got {self.max_episodes}"),
            (bool(self.probe), "probe must not be empty (its last token predicts the answer's first)"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidRequest(message)

    def with_overrides(self, **overrides: Any) -> RewardConfig:
        """A copy with the non-None overrides applied (and validated); unknown names are an error."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise InvalidRequest(f"unknown reward setting(s): {sorted(unknown)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})
