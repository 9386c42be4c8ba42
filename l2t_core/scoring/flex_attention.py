"""The split attention as one FlexAttention call per layer: the packed row's visibility as a `mask_mod`.

The block loop (split_attention.py) runs one SDPA per prompt and per candidate; on a GPU that costs a
kernel launch each, and the padded batch (`BatchedBlocks`) pays for the padding and the gathers. Flex
attention takes the visibility as a function of (query row, key row) and skips every 128×128 tile that
the function masks entirely, so one kernel over the whole row does the work of the per-block calls and
touches only the tiles a block needs (a candidate's queries against its prompt and its own rows).

Every query row's visible keys are a union of at most four intervals of the row, which is what makes
the mask a few gathers per (q, k) instead of a dense (L, L) table:
- its own segment causally: [segment start, q] (a prompt, a completion, or one probe piece);
- its prompt: [prompt start, prompt stop) (empty for a prompt's own rows);
- its completion before the piece's cut: [completion start, completion start + cut) (probe pieces);
- its parent piece: the probe text an answer follows.
These are exactly the rows `block_mask` marks visible, which the tests check tile by tile.

On CUDA the kernel is compiled (torch.compile, Triton); eager flex attention is the reference
implementation (it forms the full score matrix) and serves only CPU tests. Compiling on the CPU goes
through inductor's C++ backend and needs a compiler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from l2t_core.scoring.split_attention import Block, piece_starts

_compiled: dict[str, Any] = {}


# Rows are padded to a power of two of at least this many, so the compiled kernel sees a handful of
# static lengths (one compile each) instead of one per request. Padding costs the kernel next to
# nothing: no real query sees a padding key, and a padding query sees only itself, so the padding's
# tiles are skipped but for the diagonal. (Dynamic shapes would avoid the padding, but inductor's CPU
# flex template fails to compile them, and a recompile per length would cost seconds per request.)
MIN_PADDED_LENGTH = 1024


def padded_length(length: int) -> int:
    return max(MIN_PADDED_LENGTH, 1 << (length - 1).bit_length())


def compiled_flex_attention() -> Any:
    """flex_attention compiled once per process, for static shapes (one graph per padded length)."""
    if "flex" not in _compiled:
        _compiled["flex"] = torch.compile(flex_attention, dynamic=False)
    return _compiled["flex"]


@dataclass(frozen=True)
class RowIntervals:
    """Per row of the packed row (each (L,) long), the intervals of keys it sees besides itself causally."""

    segment_start: torch.Tensor  # first row of its own causal segment
    prompt_start: torch.Tensor  # its prompt's rows [prompt_start, prompt_stop) (empty: a prompt row)
    prompt_stop: torch.Tensor
    cut_start: torch.Tensor  # its completion's rows before the cut [cut_start, cut_stop) (empty: none)
    cut_stop: torch.Tensor
    parent_start: torch.Tensor  # its parent piece's rows [parent_start, parent_stop) (empty: none)
    parent_stop: torch.Tensor

    def visible(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """Whether row q sees row kv (elementwise; also a flex `mask_mod` body)."""
        own = (kv >= self.segment_start[q]) & (kv <= q)
        prompt = (kv >= self.prompt_start[q]) & (kv < self.prompt_stop[q])
        cut = (kv >= self.cut_start[q]) & (kv < self.cut_stop[q])
        parent = (kv >= self.parent_start[q]) & (kv < self.parent_stop[q])
        return own | prompt | cut | parent


def row_intervals(blocks: list[Block], length: int, device: torch.device) -> RowIntervals:
    """The intervals of every row of a packed row laid out as `blocks` and padded to `length` rows (a
    padding row sees itself only)."""
    fields = [[0] * length for _ in range(7)]  # RowIntervals' fields in order; 0..0 is an empty interval
    seg, p0, p1, c0, c1, a0, a1 = fields
    seg[:] = range(length)

    def fill(
        rows: range, start: int, prompt: slice, cut: tuple[int, int] = (0, 0), parent: tuple[int, int] = (0, 0)
    ) -> None:
        for r in rows:
            seg[r] = start
            p0[r], p1[r] = prompt.start, prompt.stop
            c0[r], c1[r] = cut
            a0[r], a1[r] = parent

    for b in blocks:
        if b.mask is None:  # a prompt: causal over itself
            fill(range(b.start, b.stop), b.start, slice(0, 0))
            continue
        n_completion = b.stop - b.start - sum(p.length for p in b.pieces)
        fill(range(b.start, b.start + n_completion), b.start, b.prompt)
        starts = piece_starts(b.pieces, b.start + n_completion)
        for piece, row in zip(b.pieces, starts, strict=True):
            parent = (0, 0)
            if piece.parent is not None:
                parent = (starts[piece.parent], starts[piece.parent] + b.pieces[piece.parent].length)
            fill(range(row, row + piece.length), row, b.prompt, (b.start, b.start + piece.cut), parent)
    tensors = [torch.tensor(f, dtype=torch.long, device=device) for f in fields]
    return RowIntervals(*tensors)


@dataclass(frozen=True)
class FlexBlocks:
    """The packed row's visibility as a flex `BlockMask`: one flex attention call per layer."""

    intervals: RowIntervals  # over the padded row
    block_mask: BlockMask  # (padded, padded)
    compiled: bool  # run the compiled kernel (CUDA; CPU with a C++ compiler) or eager flex (the reference)

    def attend(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float | None
    ) -> torch.Tensor:
        """(1, H, L, D) queries, (1, H_kv, L, D) keys and values -> (1, L, H, D)."""
        length = query.shape[2]
        pad = (0, 0, 0, self.block_mask.shape[-2] - length)  # zero rows after the row's last
        q, k, v = (torch.nn.functional.pad(t, pad) for t in (query, key, value))
        attend = compiled_flex_attention() if self.compiled else flex_attention
        gqa = query.shape[1] != key.shape[1]
        out = attend(q, k, v, block_mask=self.block_mask, scale=scaling, enable_gqa=gqa)
        return out[:, :, :length].transpose(1, 2).contiguous()


def flex_blocks(blocks: list[Block], length: int, device: torch.device, compiled: bool | None = None) -> FlexBlocks:
    """Build the row's `BlockMask` once (`length`: the row's, before padding); every layer of the forward
    reuses it. `compiled` defaults to CUDA only."""
    padded = padded_length(length)
    intervals = row_intervals(blocks, padded, device)

    def mask_mod(_b: torch.Tensor, _h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return intervals.visible(q, kv)

    block_mask = create_block_mask(mask_mod, None, None, padded, padded, device=device)
    return FlexBlocks(intervals, block_mask, device.type == "cuda" if compiled is None else compiled)
