"""Split attention for packed scoring: many prompts, candidates and answer probes in one forward row.

A packed row holds, per prompt, the prompt's tokens and then, per candidate, its completion followed
by its K+1 probe segments ([probe ‖ target] once per cut). What each query may see:

- a prompt token: its prompt, causally;
- a completion token: its prompt and its own completion, causally;
- a probe-segment token: its prompt, its completion up to the segment's cut, and its own segment
  causally — exactly the context a separate forward over [prompt ‖ completion[:cut] ‖ probe ‖ target]
  would give it (position ids continue from the cut).

A dense mask over the whole row would make attention quadratic in the row (every candidate against
every other) and keep SDPA off its fast kernels. Instead this attention function, registered in
transformers' `AttentionInterface` as `l2t_split`, runs one causal SDPA per prompt and one small
masked SDPA per candidate over just that candidate's keys [prompt ‖ completion ‖ probes], so the
attention costs what N separate forwards would, while every matmul outside attention runs once over
the whole row. The layout travels to it as the `l2t_layout` keyword of the decoder's forward
(transformers passes unknown keywords through to the attention function).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.functional import scaled_dot_product_attention
from transformers import AttentionInterface

ATTENTION_NAME = "l2t_split"


@dataclass(frozen=True)
class CandidateBlock:
    """One candidate's queries in the row: rows [start, stop) = completion then probe segments."""

    prompt: slice  # its prompt's rows
    start: int  # first completion row
    stop: int  # one past its last probe row
    mask: torch.Tensor  # (stop - start, len(prompt) + stop - start) bool: what each of its queries sees


@dataclass(frozen=True)
class SplitLayout:
    prompts: list[slice]
    blocks: list[CandidateBlock]


def block_mask(
    n_prompt: int, n_completion: int, cuts: list[int], segment_length: int, device: torch.device
) -> torch.Tensor:
    """The (n + (K+1)·s, P + n + (K+1)·s) visibility of one candidate's queries over its keys.

    Keys are [prompt ‖ completion ‖ segments]; queries are [completion ‖ segments]."""
    n_probe = len(cuts) * segment_length
    n_query = n_completion + n_probe
    query = torch.arange(n_query)[:, None]
    key = torch.arange(n_query)[None, :]  # key index past the prompt
    # Completion queries: causal over the completion. Probe queries: the completion before their cut,
    # then their own segment up to themselves.
    segment = (query - n_completion).clamp(min=0) // segment_length
    segment_start = n_completion + segment * segment_length
    cut = torch.tensor(cuts or [0], dtype=torch.long)[segment]
    is_probe = query >= n_completion
    sees_completion = (key < n_completion) & torch.where(is_probe, key < cut, key <= query)
    sees_own_segment = is_probe & (key >= segment_start) & (key <= query)
    visible = sees_completion | sees_own_segment
    return torch.cat([torch.ones(n_query, n_prompt, dtype=torch.bool), visible], dim=1).to(device)


def split_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # (1, H, L, D)
    key: torch.Tensor,  # (1, H_kv, L, D)
    value: torch.Tensor,  # (1, H_kv, L, D)
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    l2t_layout: SplitLayout | None = None,
    **_kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention over a packed scoring row; returns (1, L, H, D) like transformers' SDPA function."""
    if l2t_layout is None:
        raise ValueError(f"the {ATTENTION_NAME!r} attention needs an `l2t_layout` (use packed_forward)")
    gqa = query.shape[1] != key.shape[1]
    out = torch.empty_like(query)
    for span in l2t_layout.prompts:
        out[:, :, span] = scaled_dot_product_attention(
            query[:, :, span], key[:, :, span], value[:, :, span], is_causal=True, scale=scaling, enable_gqa=gqa
        )
    for block in l2t_layout.blocks:
        if block.stop == block.start:
            continue
        keys = torch.cat([key[:, :, block.prompt], key[:, :, block.start : block.stop]], dim=2)
        values = torch.cat([value[:, :, block.prompt], value[:, :, block.start : block.stop]], dim=2)
        out[:, :, block.start : block.stop] = scaled_dot_product_attention(
            query[:, :, block.start : block.stop], keys, values, attn_mask=block.mask, scale=scaling, enable_gqa=gqa
        )
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION_NAME, split_attention)


@contextlib.contextmanager
def using_split_attention(model: Any) -> Iterator[None]:
    """Route the model's attention through `split_attention` while the block runs (the caller holds the
    model's lock, so generation never sees the switch)."""
    configs = {id(c): c for c in (model.config, model.get_decoder().config)}
    before = {key: c._attn_implementation for key, c in configs.items()}
    try:
        for c in configs.values():
            c._attn_implementation = ATTENTION_NAME
        yield
    finally:
        for key, c in configs.items():
            c._attn_implementation = before[key]
