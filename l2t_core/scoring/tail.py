"""The model's tail (final RMSNorm, lm_head, log-softmax) re-run on kept last-layer states.

For the compression term we need, per completion token t, U_rᵀ δ_t with δ_t = ∂ log p(y_t)/∂h_t at
the last layer's output h_t. Autograd through the full-vocabulary head costs a second n×V×d matmul.
For an RMSNorm head there is a closed form (exact, not an approximation): with z the logits, p their
softmax, rms = sqrt(mean(h²) + ε) and the precomputed readout B = U_rᵀ diag(g) W_lmᵀ (r × V),

    U_rᵀ δ_t = B r / rms − (U_rᵀ h)(rᵀz) / (d · rms²),   r = e_y − p,

which costs n×V×r instead of n×V×d. Heads it does not fit (softcapping, biases) use autograd.
"""

from __future__ import annotations

from typing import Any

import torch

from l2t_core.reward.proxy import LowRankProxy
from l2t_core.scoring.measurements import target_logprobs

# Rows per closed-form chunk: each (rows, V) block then stays in cache across the passes over it (on the
# CPU, 128 rows took 0.8x the time of one 400-row block).
ROWS = 128


def tail_logits(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    """(n, d) pre-norm last-layer states -> (n, V) float32 logits."""
    return model.get_output_embeddings()(model.get_decoder().norm(hidden)).float()


def projected_deltas(
    model: Any, proxy: LowRankProxy, readout: torch.Tensor | None, hidden: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(targets) (n,), U_rᵀ δ (n, r)) from pre-norm states (n, d) and their next tokens (n,)."""
    if readout is None:
        return _projected_deltas_autograd(model, proxy, hidden, targets)
    step = ROWS if hidden.device.type == "cpu" else max(1, len(targets))
    parts = [
        _closed_form(model, proxy, readout, hidden[s : s + step], targets[s : s + step])
        for s in range(0, len(targets), step)
    ]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _closed_form(
    model: Any, proxy: LowRankProxy, readout: torch.Tensor, hidden: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = tail_logits(model, hidden)  # (n, V)
    rows = torch.arange(len(targets), device=logits.device)
    log_p = torch.log_softmax(logits, dim=-1)
    log_p_y = log_p[rows, targets]
    # r = e_y − p, formed before any product: for confident tokens B e_y and B p, or z_y and pᵀz,
    # nearly cancel and float32 would lose the difference.
    residual = log_p.exp_().neg_()
    residual[rows, targets] += 1.0
    r_dot_z = torch.linalg.vecdot(residual, logits)  # z_y − pᵀz
    h = hidden.float()
    eps = float(model.get_decoder().norm.variance_epsilon)
    rms = torch.sqrt(h.pow(2).mean(-1) + eps)  # (n,)
    b_r = residual @ readout.T  # (n, r): B (e_y − p)
    deltas = b_r / rms[:, None] - (h @ proxy.u) * (r_dot_z / (h.shape[-1] * rms.pow(2)))[:, None]
    return log_p_y, deltas


def _projected_deltas_autograd(
    model: Any, proxy: LowRankProxy, hidden: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    states = hidden.detach().float().requires_grad_(True)
    with torch.enable_grad():
        logprobs = target_logprobs(tail_logits(model, states.to(hidden.dtype)), targets)
        (grads,) = torch.autograd.grad(logprobs.sum(), states)
    return logprobs.detach(), grads @ proxy.u
