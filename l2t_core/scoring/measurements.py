"""The raw quantities a scoring path measures for one candidate, before any reward arithmetic."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Measurement:
    log_j: list[float]  # log J_0..log J_K (empty when the candidate has no target)
    episode_grads: list[torch.Tensor]  # g̃_k per episode, (r, r) float32
    token_logprobs: torch.Tensor  # (L,) log p of every completion token given its prefix
