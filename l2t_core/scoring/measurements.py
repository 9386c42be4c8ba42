"""The raw quantities a scoring path measures for one candidate, before any reward arithmetic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from l2t_core.scoring.plan import CandidatePlan


@dataclass
class Measurement:
    log_j: list[float]  # log J_0..log J_K (empty when the candidate has no target)
    episode_grads: list[torch.Tensor] | None  # g̃_k per episode, (r, r) float32; None: not measured (engine-side)
    token_logprobs: torch.Tensor  # (L,) log p of every completion token given its prefix
    answer_log_j: list[list[float]] = field(default_factory=list)  # [probe cut][pool answer]: log J (multi-target)


def probe_results(
    plan: CandidatePlan, log_p: dict[tuple[int, tuple[int, ...]], float]
) -> tuple[list[float], list[list[float]]]:
    """The target's log J at the K+1 cuts and every pool answer's at the answer-probe cuts, from the
    log-probability of each (cut, answer tokens) probe."""
    log_j = [log_p[(cut, tuple(plan.target_ids))] for cut in plan.cuts] if plan.target is not None else []
    answer_log_j = [[log_p[(cut, answer)] for answer in plan.answer_targets] for cut in plan.answer_probe_cuts]
    return log_j, answer_log_j


def target_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    ends: torch.Tensor | None = None,
    suffix_ids: Sequence[int] = (),
) -> torch.Tensor:
    """log p of each target token from the (n, V) logits predicting it, in float32. With `suffix_ids` (the
    'string' suffix probability), the rows in the boolean mask `ends` (each answer's suffix) get the log of
    the summed probability of those tokens instead of the suffix token's own."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    scored = log_p.gather(1, targets[:, None])[:, 0]
    if suffix_ids and ends is not None and bool(ends.any()):
        ids = torch.tensor(list(suffix_ids), device=logits.device)
        scored[ends] = torch.logsumexp(log_p[ends][:, ids], dim=-1)
    return scored
