"""The packed production path (DESIGN §5): every J_k and every g̃_k of a whole batch from one forward.

Many prompts and all their candidates go into one row: [prompt ‖ completion₁ ‖ probes₁ ‖ completion₂ ‖
probes₂ ‖ … ‖ next prompt ‖ …], where a candidate's probes are, once per probed cut, the probe text and
then each answer measured there (the target at cuts 0..K; with multi-target J every pool answer). The
split attention (split_attention.py) lets each token see exactly what a separate forward over its own
prefix would, and probe position ids continue from their cut, so each probe computes what a separate
forward over [prompt ‖ completion[:cut] ‖ probe ‖ target] would. Every prompt is run once, and all the
position-wise work (projections, MLPs) runs as one matmul per layer over the whole row.

The compression term reuses the same forward: hooks keep the last layer's output (pre-norm) and the
input a_t of its down-projection. Only the tail (final norm, lm_head, softmax) is re-run, per candidate,
to get U_rᵀδ_t with δ_t = ∂ log p(token t+1)/∂h_t, which equals the gradient at the down-projection's
output because that block is the last position-wise one. Then g̃_k = Σ_{t∈k} (U_rᵀ δ_t)(V_rᵀ a_t)ᵀ.
Vocabulary logits are only formed for scored positions, never for the probe context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from l2t_core.reward.proxy import LowRankProxy, last_down_projection
from l2t_core.scoring.attention_paths import AttentionName, resolve_attention
from l2t_core.scoring.measurements import Measurement, probe_results, target_logprobs
from l2t_core.scoring.plan import CandidatePlan, ProbeGroup
from l2t_core.scoring.split_attention import Block, Piece, block_mask, using_split_attention
from l2t_core.scoring.tail import projected_deltas, tail_logits

# Tokens per forward row. A request's prompt and candidates normally fit in one forward; a larger batch
# (many requests, or very long candidates) is cut into several, a prompt repeated in each it spans.
MAX_FORWARD_TOKENS = 32768


class _LastLayerTap:
    """Forward hooks that keep the last decoder layer's output (pre-norm) and its down-projection input."""

    def __init__(self, model: Any) -> None:
        self.layer = model.get_decoder().layers[-1]
        self.down = last_down_projection(model)
        self.hidden: torch.Tensor | None = None
        self.mlp_in: torch.Tensor | None = None
        self._handles: list[Any] = []

    def __enter__(self) -> _LastLayerTap:
        def keep_hidden(_m: Any, _a: Any, output: Any) -> None:
            self.hidden = output[0] if isinstance(output, tuple) else output

        def keep_mlp_in(_m: Any, args: tuple[Any, ...]) -> None:
            self.mlp_in = args[0]

        self._handles = [
            self.layer.register_forward_hook(keep_hidden),
            self.down.register_forward_pre_hook(keep_mlp_in),
        ]
        return self

    def __exit__(self, *_exc: Any) -> None:
        for handle in self._handles:
            handle.remove()


@dataclass(frozen=True)
class _Placed:
    """Where one candidate's rows landed in its forward."""

    job: int  # index of its (prompt, plans) job
    candidate: int  # index within the job's plans
    prompt_last: int  # row of its prompt's last token, which predicts completion token 0
    start: int  # its first completion row
    groups: list[_GroupRows]  # where each of plan.probe_groups() landed


@dataclass(frozen=True)
class _GroupRows:
    """Rows of one probe group: its probe text, then each of its targets."""

    probe: int  # first row of the probe text
    targets: list[int]  # first row of each target, in the group's order

    def predictors(self, n_probe: int, target: int, n_target: int) -> list[int]:
        """Rows whose outputs predict the target's tokens: the probe's last row, then the target's own rows."""
        first = self.targets[target]
        return [self.probe + n_probe - 1, *range(first, first + n_target - 1)]


@dataclass
class _Row:
    """One forward's packed row under construction."""

    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    prompts: list[slice] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    placed: list[_Placed] = field(default_factory=list)
    open_job: int = -1  # the job whose prompt is the row's last prompt
    probes: dict[tuple[int, tuple[int, ...], ProbeGroup], _GroupRows] = field(default_factory=dict)

    def add_prompt(self, job: int, prompt_ids: list[int]) -> None:
        self.prompts.append(slice(len(self.tokens), len(self.tokens) + len(prompt_ids)))
        self.blocks.append(Block(slice(0, 0), len(self.tokens), len(self.tokens) + len(prompt_ids), None))
        self.tokens += prompt_ids
        self.positions += range(len(prompt_ids))
        self.open_job = job

    def add_candidate(self, job: int, candidate: int, plan: CandidatePlan, device: torch.device) -> None:
        """Append a candidate's completion and its probe groups. A group whose prefix and answers are
        already in the row (candidates sharing a start, or equal texts with the same targets: J_0 of every
        candidate of a prompt, beam-prune's shared episodes) is read from there instead of recomputed."""
        prompt = self.prompts[-1]
        n_prompt = prompt.stop - prompt.start
        start = len(self.tokens)
        self.tokens += plan.token_ids
        self.positions += range(n_prompt, n_prompt + len(plan.token_ids))
        placed_groups: list[_GroupRows] = []
        pieces: list[Piece] = []
        for group in plan.probe_groups():
            key = (prompt.start, tuple(plan.token_ids[: group.cut]), group)
            if key not in self.probes:
                self.probes[key] = self._add_group(plan.probe_ids, group, n_prompt + group.cut, pieces)
            placed_groups.append(self.probes[key])
        self.placed.append(_Placed(job, candidate, prompt.stop - 1, start, placed_groups))
        if len(self.tokens) > start:
            mask = block_mask(n_prompt, len(plan.token_ids), pieces, device)
            self.blocks.append(Block(prompt, start, len(self.tokens), mask, tuple(pieces)))

    def _add_group(self, probe_ids: list[int], group: ProbeGroup, position: int, pieces: list[Piece]) -> _GroupRows:
        """The probe text, then each target after it; positions continue from the cut as in one forward."""
        probe_row, probe_piece = len(self.tokens), len(pieces)
        self.tokens += probe_ids
        self.positions += range(position, position + len(probe_ids))
        pieces.append(Piece(group.cut, len(probe_ids)))
        after_probe = position + len(probe_ids)
        target_rows = []
        for target in group.targets:
            target_rows.append(len(self.tokens))
            self.tokens += target
            self.positions += range(after_probe, after_probe + len(target))
            pieces.append(Piece(group.cut, len(target), parent=probe_piece))
        return _GroupRows(probe_row, target_rows)


def candidate_length(plan: CandidatePlan) -> int:
    """Rows a candidate takes in a packed forward: its completion and its probe groups."""
    return len(plan.token_ids) + plan.probe_token_count


def pack_rows(jobs: list[tuple[list[int], list[CandidatePlan]]], max_tokens: int, device: torch.device) -> list[_Row]:
    """Lay the jobs' prompts and candidates out in as few rows of at most `max_tokens` as order allows."""
    rows: list[_Row] = [_Row()]
    for j, (prompt_ids, plans) in enumerate(jobs):
        for c, plan in enumerate(plans):
            row = rows[-1]
            grows_by = candidate_length(plan) + (len(prompt_ids) if row.open_job != j else 0)
            if row.tokens and len(row.tokens) + grows_by > max_tokens:
                row = _Row()
                rows.append(row)
            if row.open_job != j:
                row.add_prompt(j, prompt_ids)
            row.add_candidate(j, c, plan, device)
    return [row for row in rows if row.placed]


def measure_packed(
    model: Any,
    proxy: LowRankProxy,
    jobs: list[tuple[list[int], list[CandidatePlan]]],
    max_tokens: int | None = None,
    attention: AttentionName | None = None,
) -> list[list[Measurement]]:
    """Measurements for every candidate of every (prompt ids, plans) job, in the jobs' order.

    `attention` names how the split attention runs (attention_paths.py; None: the device's default)."""
    if any(not prompt_ids for prompt_ids, _ in jobs):
        raise ValueError("scoring needs a non-empty prompt (the chat template's tokens at least)")
    device = proxy.u.device
    decoder = model.get_decoder()
    readout = proxy.readout(model)
    results: list[list[Measurement | None]] = [[None] * len(plans) for _, plans in jobs]
    path = resolve_attention(attention, device)
    for row in pack_rows(jobs, MAX_FORWARD_TOKENS if max_tokens is None else max_tokens, device):
        layout = path.layout(row.blocks, len(row.tokens), device)
        with torch.no_grad(), using_split_attention(model), _LastLayerTap(model) as tap:
            decoder(
                input_ids=torch.tensor([row.tokens], device=device),
                position_ids=torch.tensor([row.positions], device=device),
                use_cache=False,
                l2t_layout=layout,
            )
            assert tap.hidden is not None and tap.mlp_in is not None
            hidden, mlp_in = tap.hidden[0], tap.mlp_in[0]
        for placed in row.placed:
            plan = jobs[placed.job][1][placed.candidate]
            results[placed.job][placed.candidate] = _measure_candidate(
                model, proxy, readout, plan, placed, hidden, mlp_in
            )
    return [[m for m in job if m is not None] for job in results]


def _measure_candidate(
    model: Any,
    proxy: LowRankProxy,
    readout: torch.Tensor | None,
    plan: CandidatePlan,
    placed: _Placed,
    hidden: torch.Tensor,  # (L, d) pre-norm last-layer states of the whole row
    mlp_in: torch.Tensor,  # (L, d_ff) inputs of the last down-projection
) -> Measurement:
    device = hidden.device
    groups = plan.probe_groups()
    rows: list[int] = []
    answers: list[int] = []
    ends: list[bool] = []  # each answer's last token: its suffix
    for group, placed_group in zip(groups, placed.groups, strict=True):
        for t, target in enumerate(group.targets):
            rows += placed_group.predictors(len(plan.probe_ids), t, len(target))
            answers += target
            ends += [False] * (len(target) - 1) + [True]
    log_p: dict[tuple[int, tuple[int, ...]], float] = {}
    if rows:
        with torch.no_grad():
            logits = tail_logits(model, hidden[torch.tensor(rows, device=device)])
            lp = target_logprobs(
                logits,
                torch.tensor(answers, device=device),
                torch.tensor(ends, device=device),
                plan.suffix_ids,
            )
        sums = iter(lp.double().split([len(t) for g in groups for t in g.targets]))
        log_p = {(g.cut, t): float(next(sums).sum()) for g in groups for t in g.targets}
    log_j, answer_log_j = probe_results(plan, log_p)
    n = len(plan.token_ids)
    if n == 0:
        return Measurement(log_j, [], torch.zeros(0), answer_log_j)
    # Row t of these predicts completion token t: the prompt's last state, then completion states 0..n-2.
    last = slice(placed.prompt_last, placed.prompt_last + 1)
    states = torch.cat([hidden[last], hidden[placed.start : placed.start + n - 1]])
    inputs = torch.cat([mlp_in[last], mlp_in[placed.start : placed.start + n - 1]])
    tokens = torch.tensor(plan.token_ids, device=device)
    with torch.no_grad():
        token_logprobs, deltas = projected_deltas(model, proxy, readout, states, tokens)
    grads = [proxy.gradient(deltas[s:e], inputs[s:e]).cpu() for s, e in plan.episode_spans]
    return Measurement(log_j, grads, token_logprobs.cpu(), answer_log_j)
