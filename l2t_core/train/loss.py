"""The GRPO clipped objective with a k3 KL penalty against the reference policy (DeepSeekMath form)."""

from __future__ import annotations

import torch


def grpo_loss(
    new_logprobs: torch.Tensor,  # (L,) log π_θ of the rollout's tokens, with grad
    old_logprobs: torch.Tensor,  # (L,) log π_old (rollout time), no grad
    advantages: torch.Tensor,  # (L,) A_{i,t}
    clip_eps: float,
    kl_coef: float,
    ref_logprobs: torch.Tensor | None = None,  # (L,) log π_ref, needed when kl_coef > 0
) -> tuple[torch.Tensor, float]:
    """(loss averaged over the rollout's tokens, mean KL) — the caller averages over rollouts."""
    ratio = torch.exp(new_logprobs - old_logprobs)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages
    per_token = -torch.minimum(unclipped, clipped)
    kl_value = 0.0
    if kl_coef > 0:
        if ref_logprobs is None:
            raise ValueError("kl_coef > 0 needs the reference policy's log-probs")
        log_ratio = ref_logprobs - new_logprobs
        kl = torch.exp(log_ratio) - log_ratio - 1.0  # k3 estimator, ≥ 0
        per_token = per_token + kl_coef * kl
        kl_value = float(kl.detach().mean())
    return per_token.mean(), kl_value
