"""The split attention's ways to run a packed row, declared once, and the one each device gets by default.

All three compute the same attention (the tests hold each to the naive path); they differ in how the
hardware is kept busy:
- blocks:  one SDPA per prompt and per candidate. On the CPU the fastest: its kernel skips no masked
           tiles, so a dense row mask would only add work, and a loop costs nothing there.
- batched: the blocks padded into one SDPA per layer. A GPU fallback where flex attention cannot
           compile (no Triton): no per-block launches, but padding and gathers.
- flex:    one FlexAttention kernel per layer over the whole row, its fully masked tiles skipped. The
           GPU default. Compiled where it can be (CUDA with Triton; the CPU with a C++ compiler, through
           inductor's C++ backend), else eager flex (the reference implementation: full score matrix).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from l2t_core.scoring.split_attention import Block, BlockLoop, SplitLayout, batch_blocks

AttentionName = Literal["blocks", "batched", "flex"]


@dataclass(frozen=True)
class AttentionPath:
    name: AttentionName
    help: str
    layout: Callable[[list[Block], int, torch.device], SplitLayout]  # (blocks, row length, device) -> layout


def _flex_layout(blocks: list[Block], length: int, device: torch.device) -> SplitLayout:
    from l2t_core.scoring.flex_attention import flex_blocks  # torch's flex module is imported only when used

    return flex_blocks(blocks, length, device, compiled=flex_compiles(device))


ATTENTION_PATHS: dict[str, AttentionPath] = {
    p.name: p
    for p in (
        AttentionPath("blocks", "one SDPA per prompt and per candidate (CPU default)", lambda b, _n, _d: BlockLoop(b)),
        AttentionPath("batched", "the blocks padded into one SDPA per layer", lambda b, _n, d: batch_blocks(b, d)),
        AttentionPath("flex", "one FlexAttention kernel per layer, masked tiles skipped (CUDA default)", _flex_layout),
    )
}
assert set(ATTENTION_PATHS) == set(get_args(AttentionName))


def flex_compiles(device: torch.device) -> bool:
    """Whether torch.compile can build the flex kernel for `device`: Triton for CUDA, a C++ compiler for the CPU."""
    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    if device.type == "cpu":
        return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "clang++") if c)
    return False


def default_attention(device: torch.device) -> AttentionName:
    if device.type == "cuda":
        return "flex" if flex_compiles(device) else "batched"
    return "blocks"


def resolve_attention(name: str | None, device: torch.device) -> AttentionPath:
    """The named path (None: the device's default)."""
    chosen = default_attention(device) if name is None else name
    if chosen not in ATTENTION_PATHS:
        raise ValueError(f"unknown split attention {chosen!r}: use one of {sorted(ATTENTION_PATHS)}")
    return ATTENTION_PATHS[chosen]
