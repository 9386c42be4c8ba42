"""The low-rank parameter proxy θ̃ of DESIGN §3: one MLP down-projection, its top-r singular directions.

W(M) = W + U_r M V_rᵀ with M ∈ R^{r×r}. The down-projection of the LAST decoder layer is chosen on
purpose: it is the last position-wise block, so ∂ log p(token t+1)/∂(its output at t) depends on
position t alone, and every episode's g̃_k = Σ_t (U_rᵀ δ_t)(V_rᵀ a_t)ᵀ comes from one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


class UnsupportedModelError(ValueError):
    """The model has no Llama-style `layers[-1].mlp.down_proj` to build the proxy on."""


def last_down_projection(model: Any) -> torch.nn.Linear:
    try:
        layer = model.get_decoder().layers[-1]
        down = layer.mlp.down_proj
    except AttributeError as exc:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no decoder.layers[-1].mlp.down_proj; the L2T compression proxy "
            "supports Llama-style decoders (Llama, Qwen2, Mistral, SmolLM)"
        ) from exc
    if not isinstance(down, torch.nn.Linear):
        raise UnsupportedModelError(f"expected nn.Linear for the down-projection, got {type(down).__name__}")
    return down


@dataclass
class LowRankProxy:
    u: torch.Tensor  # (d_out, r), float32: top-r left singular vectors of W
    v: torch.Tensor  # (d_in, r), float32: top-r right singular vectors of W
    reference_weight: torch.Tensor | None = None  # (d_out, d_in): W_ref for 'drift' mode

    @property
    def rank(self) -> int:
        return int(self.u.shape[1])

    @classmethod
    def from_model(cls, model: Any, rank_ratio: float, keep_reference: bool = False) -> LowRankProxy:
        weight = last_down_projection(model).weight.detach().float()
        rank = max(1, int(round(rank_ratio * min(weight.shape))))
        u, _, vh = torch.linalg.svd(weight.cpu(), full_matrices=False)
        device = weight.device
        reference = weight.clone() if keep_reference else None
        return cls(u[:, :rank].contiguous().to(device), vh[:rank].T.contiguous().to(device), reference)

    def gradient(self, projected_deltas: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """g̃ = Σ_t (U_rᵀ δ_t)(V_rᵀ a_t)ᵀ from U_rᵀ δ: (n, r) and a: (n, d_in) -> (r, r)."""
        return projected_deltas.float().T @ (inputs.float() @ self.v)

    def readout(self, model: Any) -> torch.Tensor | None:
        """B = U_rᵀ diag(g) W_lmᵀ, (r, V), for the closed-form projected δ (see scoring/tail.py).

        None when the model's head is not the plain RMSNorm + bias-free linear the closed form assumes.
        """
        norm = model.get_decoder().norm
        head = model.get_output_embeddings()
        plain_rms = type(norm).__name__.endswith("RMSNorm") and "Gemma" not in type(norm).__name__
        scaled = any(
            getattr(model.config, a, None) for a in ("logit_scale", "final_logit_softcapping", "logits_scaling")
        )
        if not plain_rms or not hasattr(norm, "variance_epsilon") or head.bias is not None or scaled:
            return None
        gain = norm.weight.detach().float()
        return (self.u.T * gain) @ head.weight.detach().float().T

    def drift(self, model: Any) -> torch.Tensor:
        """Δθ̃ = U_rᵀ (W − W_ref) V_r, (r, r): how far the live weights moved inside the proxy space."""
        if self.reference_weight is None:
            raise ValueError("this proxy keeps no reference weights; build it with keep_reference=True")
        weight = last_down_projection(model).weight.detach().float()
        return self.u.T @ (weight - self.reference_weight) @ self.v
