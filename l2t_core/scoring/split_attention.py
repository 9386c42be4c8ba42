"""Split attention for packed scoring: many prompts, candidates and answer probes in one forward row.

A packed row holds, per prompt, the prompt's tokens and then, per candidate, its completion followed
by its K+1 probe segments ([probe ‖ target] once per cut). What each query may see:

- a prompt token: its prompt, causally;
- a completion token: its prompt and its own completion, causally;
- a probe-segment token: its prompt, its completion up to the segment's cut, and its own segment
  causally — exactly the context a separate forward over [prompt ‖ completion[:cut] ‖ probe ‖ target]
  would give it (position ids continue from the cut). A segment is laid out as pieces: the probe text
  once per cut, then each answer probed there, which also sees that probe piece (`Piece.parent`), so
  M answers at one cut cost the probe once plus M answers.

A dense mask over the whole row would make attention quadratic in the row (every candidate against
every other) and keep SDPA off its fast kernels. Instead this attention function, registered in
transformers' `AttentionInterface` as `l2t_split`, runs one causal SDPA per prompt and one small
masked SDPA per candidate over just that candidate's keys [prompt ‖ completion ‖ probes], so the
attention costs what N separate forwards would, while every matmul outside attention runs once over
the whole row (`BlockLoop`, the CPU's layout). On a GPU a loop over blocks costs a kernel launch each,
so there the same visibility runs as one call per layer: a FlexAttention kernel over the whole row
that skips the fully masked tiles (`FlexBlocks`, flex_attention.py), or, without Triton, the blocks
padded into one batched SDPA (`BatchedBlocks`). (On the CPU, one masked call per candidate measured
as fast as splitting the completion's causal part from the probe rows: the CPU kernel skips no masked
blocks either way.) attention_paths.py names the three and picks one per device. The layout
travels to the attention as the `l2t_layout` keyword of the decoder's forward (transformers passes
unknown keywords through to the attention) and does the work itself (`SplitLayout.attend`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch.nn.functional import scaled_dot_product_attention
from transformers import AttentionInterface

ATTENTION_NAME = "l2t_split"


@dataclass(frozen=True)
class Block:
    """Queries that attend to one key set: rows [start, stop) (a prompt, or a candidate's completion then
    its probe segments), over keys [prompt rows ‖ rows start..stop)."""

    prompt: slice  # the prompt rows a candidate's queries also see; empty for a prompt's own block
    start: int
    stop: int
    mask: torch.Tensor | None  # (stop - start, len(prompt) + stop - start) bool; None: causal
    pieces: tuple[Piece, ...] = ()  # a candidate's probe pieces after its completion, which `mask` was built from

    def key_rows(self) -> list[int]:
        return [*range(self.prompt.start, self.prompt.stop), *range(self.start, self.stop)]

    def full_mask(self) -> torch.Tensor:
        n = self.stop - self.start
        return self.mask if self.mask is not None else torch.ones(n, n, dtype=torch.bool).tril()


class SplitLayout(Protocol):
    """One packed row's visibility, built once per forward and run by every layer's attention."""

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float | None
    ) -> torch.Tensor:
        """(1, H, L, D) queries, (1, H_kv, L, D) keys and values -> (1, L, H, D) like transformers' SDPA."""
        ...


@dataclass(frozen=True)
class BlockLoop:
    """One causal SDPA per prompt and one masked SDPA per candidate (the CPU path)."""

    blocks: list[Block]

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float | None
    ) -> torch.Tensor:
        gqa = query.shape[1] != key.shape[1]
        out = torch.empty_like(query)
        for b in self.blocks:
            if b.mask is None:  # a prompt: plain causal attention, the fast kernel
                rows = slice(b.start, b.stop)
                out[:, :, rows] = scaled_dot_product_attention(
                    query[:, :, rows],
                    key[:, :, rows],
                    value[:, :, rows],
                    is_causal=True,
                    scale=scaling,
                    enable_gqa=gqa,
                )
                continue
            keys = torch.cat([key[:, :, b.prompt], key[:, :, b.start : b.stop]], dim=2)
            values = torch.cat([value[:, :, b.prompt], value[:, :, b.start : b.stop]], dim=2)
            out[:, :, b.start : b.stop] = scaled_dot_product_attention(
                query[:, :, b.start : b.stop], keys, values, attn_mask=b.mask, scale=scaling, enable_gqa=gqa
            )
        return out.transpose(1, 2).contiguous()


@dataclass(frozen=True)
class BatchedBlocks:
    """All blocks padded into one SDPA batch: a single attention call per layer (the GPU path, where
    a loop over blocks would cost a kernel launch each)."""

    query_rows: torch.Tensor  # (N, Lq) row of each block query (padding: 0)
    key_rows: torch.Tensor  # (N, Lk) row of each block key (padding: 0)
    mask: torch.Tensor  # (N, 1, Lq, Lk) bool; padding keys hidden, padding queries see key 0 only
    source: torch.Tensor  # (R,) flat index into N × Lq of every real query
    target: torch.Tensor  # (R,) its row

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float | None
    ) -> torch.Tensor:
        heads, length, dim = query.shape[1], query.shape[2], query.shape[3]
        groups = heads // key.shape[1]
        # (H, L, D) indexed by (N, L') rows -> (H, N, L', D) -> (N, H, L', D)
        q = query[0][:, self.query_rows].transpose(0, 1)
        k = key[0].repeat_interleave(groups, dim=0)[:, self.key_rows].transpose(0, 1)
        v = value[0].repeat_interleave(groups, dim=0)[:, self.key_rows].transpose(0, 1)
        attended = scaled_dot_product_attention(q, k, v, attn_mask=self.mask, scale=scaling)  # (N, H, Lq, D)
        flat = attended.transpose(1, 2).reshape(-1, heads, dim)  # (N·Lq, H, D)
        out = query.new_empty(length, heads, dim)
        out[self.target] = flat[self.source]
        return out[None]


def batch_blocks(blocks: list[Block], device: torch.device) -> BatchedBlocks:
    n_query = max(b.stop - b.start for b in blocks)
    n_key = max(len(b.key_rows()) for b in blocks)
    query_rows = torch.zeros(len(blocks), n_query, dtype=torch.long)
    key_rows = torch.zeros(len(blocks), n_key, dtype=torch.long)
    mask = torch.zeros(len(blocks), 1, n_query, n_key, dtype=torch.bool)
    mask[:, :, :, 0] = True
    source: list[int] = []
    target: list[int] = []
    for i, b in enumerate(blocks):
        keys, queries, block_mask_ = b.key_rows(), range(b.start, b.stop), b.full_mask()
        query_rows[i, : len(queries)] = torch.tensor(queries)
        key_rows[i, : len(keys)] = torch.tensor(keys)
        mask[i, 0, : len(queries), : len(keys)] = block_mask_.cpu()
        source += range(i * n_query, i * n_query + len(queries))
        target += queries
    return BatchedBlocks(
        query_rows.to(device),
        key_rows.to(device),
        mask.to(device),
        torch.tensor(source, device=device),
        torch.tensor(target, device=device),
    )


@dataclass(frozen=True)
class Piece:
    """A run of probe rows after a candidate's completion: it sees the completion before `cut`, all of its
    `parent` piece (the shared probe text an answer follows), and itself causally."""

    cut: int
    length: int
    parent: int | None = None  # index of an earlier piece of the same candidate


def piece_starts(pieces: Sequence[Piece], first: int) -> list[int]:
    """Where each piece starts when the pieces follow one another from row `first`."""
    starts = [first]
    for piece in pieces:
        starts.append(starts[-1] + piece.length)
    return starts[:-1]


def block_mask(n_prompt: int, n_completion: int, pieces: list[Piece], device: torch.device) -> torch.Tensor:
    """The (n + S, P + n + S) visibility of one candidate's queries over its keys, S = Σ piece lengths.

    Keys are [prompt ‖ completion ‖ pieces]; queries are [completion ‖ pieces]."""
    n_query = n_completion + sum(p.length for p in pieces)
    visible = torch.zeros(n_query, n_query, dtype=torch.bool)
    visible[:n_completion, :n_completion] = torch.ones(n_completion, n_completion, dtype=torch.bool).tril()
    starts = piece_starts(pieces, n_completion)
    for piece, row in zip(pieces, starts, strict=True):
        rows = slice(row, row + piece.length)
        visible[rows, : piece.cut] = True
        if piece.parent is not None:
            parent = pieces[piece.parent]
            visible[rows, starts[piece.parent] : starts[piece.parent] + parent.length] = True
        visible[rows, rows] = torch.ones(piece.length, piece.length, dtype=torch.bool).tril()
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
        raise ValueError(f"the {ATTENTION_NAME!r} attention needs an `l2t_layout` (use packed scoring)")
    return l2t_layout.attend(query, key, value, scaling), None


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
