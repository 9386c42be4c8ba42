"""The naive reference path: obviously right and slow. Tests hold the packed path to it.

J_k: one full forward per prefix and answer over [prompt ‖ completion[:cut_k] ‖ probe ‖ answer].
g̃_k: a real r×r parameter M is injected into the last down-projection (W + U_r M V_rᵀ) and
torch.autograd differentiates episode k's summed log-likelihood with respect to it, one forward each.
"""

from __future__ import annotations

from typing import Any

import torch

from l2t_core.reward.proxy import LowRankProxy, last_down_projection
from l2t_core.scoring.measurements import Measurement, probe_results, target_logprobs
from l2t_core.scoring.plan import CandidatePlan


def _next_token_logprobs(model: Any, ids: list[int]) -> torch.Tensor:
    """(len(ids) - 1,) log p(ids[t+1] | ids[:t+1]) from one full forward."""
    device = next(model.parameters()).device
    tokens = torch.tensor([ids], device=device)
    logits = model(input_ids=tokens).logits[0, :-1].float()
    return torch.log_softmax(logits, dim=-1).gather(1, tokens[0, 1:, None])[:, 0]


def _answer_logprob(model: Any, ids: list[int], n_answer: int, suffix_ids: tuple[int, ...]) -> float:
    """log p of the last `n_answer` tokens of `ids` (an answer and its suffix) from one full forward."""
    device = next(model.parameters()).device
    logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, -n_answer - 1 : -1]
    answer = torch.tensor(ids[-n_answer:], device=device)
    ends = torch.arange(n_answer, device=device) == n_answer - 1
    return float(target_logprobs(logits, answer, ends, suffix_ids).double().sum())


def measure_naive(model: Any, proxy: LowRankProxy, prompt_ids: list[int], plan: CandidatePlan) -> Measurement:
    n_prompt = len(prompt_ids)
    with torch.no_grad():
        token_logprobs = _next_token_logprobs(model, prompt_ids + plan.token_ids)[n_prompt - 1 :].cpu()
        log_p: dict[tuple[int, tuple[int, ...]], float] = {}
        for group in plan.probe_groups():
            for target in group.targets:
                ids = prompt_ids + plan.token_ids[: group.cut] + plan.probe_ids + list(target)
                log_p[(group.cut, target)] = _answer_logprob(model, ids, len(target), plan.suffix_ids)
    log_j, answer_log_j = probe_results(plan, log_p)
    grads = [_episode_gradient(model, proxy, prompt_ids, plan, s, e) for s, e in plan.episode_spans]
    return Measurement(log_j, grads, token_logprobs, answer_log_j)


def _episode_gradient(
    model: Any, proxy: LowRankProxy, prompt_ids: list[int], plan: CandidatePlan, start: int, end: int
) -> torch.Tensor:
    """∂ log π(z_k | s_k) / ∂M at M = 0 by autograd through a real low-rank weight perturbation."""
    device = proxy.u.device
    m = torch.zeros(proxy.rank, proxy.rank, device=device, requires_grad=True)
    if end <= start:
        return torch.zeros(proxy.rank, proxy.rank)

    def add_low_rank(_module: Any, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        a = args[0]
        return output + ((a.float() @ proxy.v) @ m.T @ proxy.u.T).to(output.dtype)

    handle = last_down_projection(model).register_forward_hook(add_low_rank)
    try:
        with torch.enable_grad():
            logprobs = _next_token_logprobs(model, prompt_ids + plan.token_ids[:end])
            n_prompt = len(prompt_ids)
            episode_logprob = logprobs[n_prompt - 1 + start : n_prompt - 1 + end].sum()
            (grad,) = torch.autograd.grad(episode_logprob, m)
    finally:
        handle.remove()
    return grad.detach().cpu()
