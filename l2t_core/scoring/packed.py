"""The packed production path (DESIGN §5): every J_k and every g̃_k from one forward per candidate.

Per request the prompt is run once and its KV cache shared by all N candidates. Each candidate's row
is [completion ‖ probe+target for cut 0 ‖ … ‖ probe+target for cut K]; a 4-D boolean mask lets each
probe segment see only the prompt, the completion up to its cut and itself, and its position ids
continue from the cut, so each segment computes exactly what a separate forward over that prefix would.

The compression term reuses the same forward: hooks keep the last layer's output (pre-norm) and the
input a_t of its down-projection. Only the tail (final norm, lm_head, log-softmax) is re-run with
autograd to get δ_t = ∂ log p(token t+1)/∂h_t, which equals the gradient at the down-projection's
output because that block is the last position-wise one. Then g̃_k = Σ_{t∈k} (U_rᵀ δ_t)(V_rᵀ a_t)ᵀ.
Vocabulary logits are only formed for scored positions, never for the probe context.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from l2t_core.models.kv_cache import cache_kwargs, returned_cache
from l2t_core.reward.proxy import LowRankProxy, last_down_projection
from l2t_core.scoring.measurements import Measurement
from l2t_core.scoring.plan import CandidatePlan
from l2t_core.scoring.tail import projected_deltas, tail_logprobs

# Rows × padded length per forward. On the CPU one row per forward measured fastest (no padding, and
# the matmuls are already large); on a GPU batching pays. None picks by device.
CUDA_MAX_BATCH_TOKENS = 16384


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


@dataclass
class _Row:
    """One candidate's packed row: tokens, positions, and what each query may see."""

    n_completion: int  # the first n_completion tokens are the completion itself
    tokens: list[int]
    positions: list[int]  # relative to the end of the prompt
    visible_prefix: list[int]  # per query: how many completion tokens it sees (causal for the completion)
    segment_start: list[int]  # per query: first row index of its own segment (len(tokens) for completion)
    segment_offsets: list[int]  # row index where each probe+target segment starts


def _pack(plan: CandidatePlan) -> _Row:
    n = len(plan.token_ids)
    tokens = list(plan.token_ids)
    positions = list(range(n))
    visible = list(range(1, n + 1))
    seg_start: list[int] = [-1] * n
    offsets: list[int] = []
    if plan.target is not None:
        segment = plan.probe_ids + plan.target_ids
        for cut in plan.cuts:
            offsets.append(len(tokens))
            seg_start += [len(tokens)] * len(segment)
            positions += range(cut, cut + len(segment))
            visible += [cut] * len(segment)
            tokens += segment
    seg_start = [s if s >= 0 else len(tokens) for s in seg_start]
    return _Row(n, tokens, positions, visible, seg_start, offsets)


def _micro_batches(rows: list[_Row], max_batch_tokens: int) -> list[list[int]]:
    """Group rows (longest first) so that rows × padded length stays within the token budget."""
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i].tokens))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(rows[batches[-1][0]].tokens) * (len(batches[-1]) + 1) <= max_batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _batch_inputs(
    rows: list[_Row], n_prompt: int, pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input ids (b, T), position ids (b, T) and the boolean mask (b, 1, T, P + T)."""
    width = max(len(r.tokens) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.full((len(rows), width), n_prompt, dtype=torch.long)
    visible = torch.zeros((len(rows), width), dtype=torch.long)  # padding queries see only the prompt
    seg_start = torch.full((len(rows), width), width, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.tokens)
        ids[i, :n] = torch.tensor(r.tokens)
        pos[i, :n] = torch.tensor(r.positions) + n_prompt
        visible[i, :n] = torch.tensor(r.visible_prefix)
        seg_start[i, :n] = torch.tensor(r.segment_start)
    n_completion = torch.tensor([r.n_completion for r in rows])
    key = torch.arange(width)
    query = torch.arange(width)[:, None]
    sees_completion = (key[None, None, :] < visible[:, :, None]) & (key < n_completion[:, None, None])
    sees_own_segment = (key[None, None, :] >= seg_start[:, :, None]) & (key[None, None, :] <= query[None])
    mask = torch.cat(
        [torch.ones(len(rows), width, n_prompt, dtype=torch.bool), sees_completion | sees_own_segment], dim=2
    )
    return ids.to(device), pos.to(device), mask[:, None].to(device)


def measure_packed(
    model: Any,
    proxy: LowRankProxy,
    prompt_ids: list[int],
    plans: list[CandidatePlan],
    max_batch_tokens: int | None = None,
) -> list[Measurement]:
    if not prompt_ids:
        raise ValueError("scoring needs a non-empty prompt (the chat template's tokens at least)")
    device = proxy.u.device
    decoder = model.get_decoder()
    with torch.no_grad(), _LastLayerTap(model) as tap:
        prompt_out = decoder(input_ids=torch.tensor([prompt_ids], device=device), use_cache=True)
        assert tap.hidden is not None and tap.mlp_in is not None
        prompt_hidden, prompt_mlp_in = tap.hidden[0, -1:].clone(), tap.mlp_in[0, -1:].clone()
    prompt_cache = returned_cache(prompt_out)
    rows = [_pack(plan) for plan in plans]
    readout = proxy.readout(model)
    pad_id = 0
    results: list[Measurement | None] = [None] * len(plans)
    if max_batch_tokens is None:
        max_batch_tokens = CUDA_MAX_BATCH_TOKENS if device.type == "cuda" else 0
    measured = [i for i, row in enumerate(rows) if row.tokens]
    for i in set(range(len(rows))) - set(measured):  # an empty completion without a target: nothing to run
        results[i] = Measurement([], [], torch.zeros(0))
    for positions in _micro_batches([rows[i] for i in measured], max_batch_tokens):
        batch = [measured[p] for p in positions]
        ids, pos, mask = _batch_inputs([rows[i] for i in batch], len(prompt_ids), pad_id, device)
        cache = copy.deepcopy(prompt_cache)
        cache.batch_repeat_interleave(len(batch))
        with torch.no_grad(), _LastLayerTap(model) as tap:
            decoder(
                input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, **cache_kwargs(decoder, cache)
            )
            assert tap.hidden is not None and tap.mlp_in is not None
            hidden, mlp_in = tap.hidden, tap.mlp_in
        for b, i in enumerate(batch):
            results[i] = _measure_row(
                model, proxy, readout, plans[i], rows[i], hidden[b], mlp_in[b], prompt_hidden, prompt_mlp_in
            )
    return [r for r in results if r is not None]


def _measure_row(
    model: Any,
    proxy: LowRankProxy,
    readout: torch.Tensor | None,
    plan: CandidatePlan,
    row: _Row,
    hidden: torch.Tensor,  # (T, d) pre-norm last-layer states of this row
    mlp_in: torch.Tensor,  # (T, d_ff) inputs of the last down-projection
    prompt_hidden: torch.Tensor,  # (1, d) the prompt's last position, which predicts token 0
    prompt_mlp_in: torch.Tensor,  # (1, d_ff)
) -> Measurement:
    device = hidden.device
    log_j: list[float] = []
    if row.segment_offsets:
        n_probe, n_target = len(plan.probe_ids), len(plan.target_ids)
        # The target's first token is predicted by the probe's last position, and so on.
        predictors = torch.tensor(
            [o + n_probe - 1 + j for o in row.segment_offsets for j in range(n_target)], device=device
        )
        targets = torch.tensor(plan.target_ids * len(row.segment_offsets), device=device)
        with torch.no_grad():
            lp = tail_logprobs(model, hidden[predictors], targets).double()
        log_j = [float(x) for x in lp.view(len(row.segment_offsets), n_target).sum(dim=1)]
    n = len(plan.token_ids)
    if n == 0:
        return Measurement(log_j, [], torch.zeros(0))
    # Row t of these predicts completion token t: the prompt's last state, then completion states 0..n-2.
    states = torch.cat([prompt_hidden, hidden[: n - 1]])
    inputs = torch.cat([prompt_mlp_in, mlp_in[: n - 1]])
    tokens = torch.tensor(plan.token_ids, device=device)
    with torch.no_grad():
        token_logprobs, deltas = projected_deltas(model, proxy, readout, states, tokens)
    grads = [proxy.gradient(deltas[s:e], inputs[s:e]).cpu() for s, e in plan.episode_spans]
    return Measurement(log_j, grads, token_logprobs.cpu())
