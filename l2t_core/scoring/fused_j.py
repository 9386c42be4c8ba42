"""J_0..J_K measured by the generation engine itself, through prefix-cached probe requests.

For strategies that need only J (no compression term), the answer probes can run where the
candidates were generated: each probe is the sequence `prompt ‖ completion[:cut_k] ‖ probe ‖ target`
and vLLM already holds the KV of `prompt ‖ completion` in its prefix cache, so it computes only the
probe and target tokens (plus the part of the last cache block before them). J_k is the
teacher-forced probability of the target tokens, exactly what the torch scorer measures (same plan,
same token ids), in the engine's precision. The cost is reported in computed, not cached, tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from l2t_core.engines.base import TailScorer
from l2t_core.scoring.plan import CandidatePlan


@dataclass(frozen=True)
class FusedJ:
    log_j: list[list[float]]  # per candidate: log J_0..log J_K (empty when it has no target)
    probe_tokens: int  # tokens in all probe sequences, cached or not
    computed_tokens: int  # tokens the engine ran the model on


def probe_sequences(prompt_ids: list[int], plan: CandidatePlan) -> list[list[int]]:
    """The K+1 probe sequences of one candidate (none without a target), as the naive path builds them."""
    if plan.target is None:
        return []
    return [prompt_ids + plan.token_ids[:cut] + plan.probe_ids + plan.target_ids for cut in plan.cuts]


def measure_fused_j(engine: TailScorer, prompt_ids: list[int], plans: Sequence[CandidatePlan]) -> FusedJ:
    """log J_k of every candidate in one batch of engine requests."""
    if any(plan.suffix_ids for plan in plans):
        raise ValueError(
            "fused J reads each token's own log-prob; the 'string' suffix probability needs the torch scorer"
        )
    per_plan = [probe_sequences(prompt_ids, plan) for plan in plans]
    requests = [(ids, len(plan.target_ids)) for plan, seqs in zip(plans, per_plan, strict=True) for ids in seqs]
    measured = list(engine.tail_logprobs(requests))
    log_j: list[list[float]] = []
    start = 0
    for seqs in per_plan:
        log_j.append([m.logprob for m in measured[start : start + len(seqs)]])
        start += len(seqs)
    return FusedJ(log_j, sum(m.tokens for m in measured), sum(m.computed_tokens for m in measured))
