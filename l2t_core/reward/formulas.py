"""The reward arithmetic, separated from the model: J values and projected gradients in, rewards out."""

from __future__ import annotations

import math

import torch

from l2t_core.reward.config import RewardConfig


def fitting_gains(j_values: list[float]) -> list[float]:
    """ΔI_k = J_k − J_{k−1} for k = 1..K from [J_0..J_K]; they telescope to J_K − J_0."""
    return [j_values[k] - j_values[k - 1] for k in range(1, len(j_values))]


def compression_penalty(
    grad: torch.Tensor, config: RewardConfig, drift: torch.Tensor | None = None, n_tokens: int = 1
) -> float:
    """C_k = (g̃_kᵀ Δθ̃_k)² + λ‖Δθ̃_k‖² (Thm 4.2 with Tikhonov damping λ).

    grad:  g̃_k, (r, r), gradient of log π(z_k | s_k) w.r.t. the low-rank proxy M at M = 0.
    drift: Δθ̃ in 'drift' mode, (r, r), the projected weight change W − W_ref.
    In 'step' mode Δθ̃_k = η g̃_k, so C_k = η²‖g̃‖⁴ + λη²‖g̃‖² (computed in float64: ‖g̃‖⁴ spans many decades).
    `n_tokens` (the episode's length) matters only with `compression_normalisation="per_token"`.
    """
    g = grad.double()
    if config.delta_mode == "step":
        delta = config.step_size * g
    else:
        if drift is None:
            raise ValueError("delta_mode 'drift' needs a reference model (the weights to measure drift from)")
        delta = drift.double()
    inner = float((g * delta).sum())
    return normalise_penalty(inner * inner + config.damping * float((delta * delta).sum()), n_tokens, config)


def normalise_penalty(raw: float, n_tokens: int, config: RewardConfig) -> float:
    """C_k under the configured normalisation: as measured, or per episode token (long episodes then pay
    for their information, not their length)."""
    if config.compression_normalisation == "per_token":
        return raw / max(1, n_tokens)
    return raw


def aggregate(rewards: list[float], how: str) -> float:
    """Path score S_i from episode rewards; an empty path scores 0."""
    if not rewards:
        return 0.0
    if how == "sum":
        return math.fsum(rewards)
    if how == "mean":
        return math.fsum(rewards) / len(rewards)
    if how == "min":
        return min(rewards)
    if how == "last":
        return rewards[-1]
    raise ValueError(f"unknown aggregation {how!r}")
