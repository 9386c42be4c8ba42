"""The flex attention path computes what the block loop and the naive path compute (float32, on the CPU).

The CPU runs the same flex code as CUDA: the mask_mod, the BlockMask, the padding to a static length,
and, where a C++ compiler is installed, the compiled kernel (inductor's C++ backend instead of Triton).
"""

from __future__ import annotations

import pytest
import torch

from l2t_core.episodes import prompt_format
from l2t_core.scoring import L2TScorer
from l2t_core.scoring.attention_paths import ATTENTION_PATHS, default_attention, flex_compiles, resolve_attention
from l2t_core.scoring.flex_attention import MIN_PADDED_LENGTH, flex_blocks, padded_length, row_intervals
from l2t_core.scoring.packed import pack_rows
from l2t_core.scoring.split_attention import BlockLoop, batch_blocks
from tests.fakes import tiny_causal_lm
from tests.scoring.candidates import candidate_pool
from tests.scoring.test_packed_vs_naive import assert_same_scores

CPU = torch.device("cpu")
needs_compiler = pytest.mark.skipif(not flex_compiles(CPU), reason="no C++ compiler for inductor's CPU backend")


@pytest.fixture(scope="module")
def jobs(loaded_model, gsm8k):
    """Two GSM8K prompts, every candidate shape, and multi-target J (answers that follow a shared probe piece)."""
    tokenizer = loaded_model.tokenizer
    scorer = L2TScorer(tiny_causal_lm(tokenizer), tokenizer)
    out = []
    for i in (0, 1):
        prompt = prompt_format("episode").render(tokenizer, gsm8k[i]["question"]).text
        completions = list(candidate_pool(gsm8k[i : i + 12]).values())
        plans = scorer.plan(completions, gsm8k[i]["answer"], scorer.config, answer_probes=3)
        out.append((scorer.prompt_ids(prompt), plans))
    return out


@pytest.fixture(scope="module")
def row(jobs):
    (row,) = pack_rows(jobs, 1 << 20, CPU)
    return row


def dense_visibility(row, length: int) -> torch.Tensor:
    """(length, length) what the block loop's masks let each row see; a padding row sees itself."""
    visible = torch.eye(length, dtype=torch.bool)
    for b in row.blocks:
        visible[b.start : b.stop] = False
        visible[b.start : b.stop, b.key_rows()] = b.full_mask()
    return visible


def test_row_intervals_are_the_block_masks(row):
    length = padded_length(len(row.tokens))
    assert length >= len(row.tokens) and length & (length - 1) == 0
    assert any(p.parent is not None for b in row.blocks for p in b.pieces)  # answers after a shared probe
    intervals = row_intervals(row.blocks, length, CPU)
    q, kv = torch.meshgrid(torch.arange(length), torch.arange(length), indexing="ij")
    assert torch.equal(intervals.visible(q, kv), dense_visibility(row, length))


def test_the_block_mask_keeps_every_visible_tile_and_skips_most(row):
    layout = flex_blocks(row.blocks, len(row.tokens), CPU, compiled=False)
    length = padded_length(len(row.tokens))
    tile = layout.block_mask.BLOCK_SIZE
    kept = layout.block_mask.to_dense()[0, 0].bool()  # (tiles, tiles)
    needed = dense_visibility(row, length).reshape(length // tile[0], tile[0], length // tile[1], tile[1]).any(3).any(1)
    assert torch.equal(kept, needed)
    assert kept.float().mean() < 0.5  # candidates do not see one another: most of the row's tiles are skipped


def test_padding_rounds_to_few_static_lengths():
    assert padded_length(1) == MIN_PADDED_LENGTH
    assert padded_length(MIN_PADDED_LENGTH) == MIN_PADDED_LENGTH
    assert padded_length(MIN_PADDED_LENGTH + 1) == 2 * MIN_PADDED_LENGTH
    assert len({padded_length(n) for n in range(1, 40000, 37)}) == 7  # 1024 … 65536: one compile each


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_compiler)], ids=["eager", "compiled"])
def test_every_layout_attends_alike(row, compiled):
    """The same random queries, keys and values (GQA: 4 query heads over 2 key heads) through every layout."""
    generator = torch.Generator().manual_seed(0)
    length = len(row.tokens)
    query = torch.randn(1, 4, length, 16, generator=generator)
    key, value = (torch.randn(1, 2, length, 16, generator=generator) for _ in range(2))
    loop = BlockLoop(row.blocks).attend(query, key, value, None)
    batched = batch_blocks(row.blocks, CPU).attend(query, key, value, None)
    flex = flex_blocks(row.blocks, length, CPU, compiled=compiled).attend(query, key, value, None)
    assert flex.shape == loop.shape == (1, length, 4, 16)
    torch.testing.assert_close(batched, loop, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(flex, loop, rtol=1e-5, atol=1e-6)


def test_packed_with_flex_equals_naive_on_the_tiny_model(loaded_model, gsm8k):
    tokenizer = loaded_model.tokenizer
    scorer = L2TScorer(tiny_causal_lm(tokenizer), tokenizer, attention="flex")
    prompt = prompt_format("episode").render(tokenizer, gsm8k[0]["question"]).text
    completions = list(candidate_pool(gsm8k[:12]).values())
    packed = scorer.score(prompt, completions, reference=gsm8k[0]["answer"], answer_probes=3)
    naive = scorer.score(prompt, completions, reference=gsm8k[0]["answer"], answer_probes=3, method="naive")
    assert_same_scores(packed, naive)


def test_packed_with_flex_equals_naive_on_smollm2(loaded_model, gsm8k):
    """The real model's shapes (9 query heads over 3 key heads, head size 64); short candidates, as the
    naive path runs one forward per probe."""
    scorer = L2TScorer(loaded_model.model, loaded_model.tokenizer, attention="flex")
    prompt = prompt_format("episode").render(loaded_model.tokenizer, gsm8k[0]["question"]).text
    pool = candidate_pool(gsm8k[:12])
    completions = [pool["wrong_answer"], pool["single_episode"], pool["no_answer"]]
    packed = scorer.score(prompt, completions, reference=gsm8k[0]["answer"], answer_probes=2)
    naive = scorer.score(prompt, completions, reference=gsm8k[0]["answer"], answer_probes=2, method="naive")
    assert_same_scores(packed, naive)


def test_each_device_gets_its_default_attention():
    assert default_attention(CPU) == "blocks"
    cuda = torch.device("cuda")
    assert default_attention(cuda) == ("flex" if flex_compiles(cuda) else "batched")
    assert resolve_attention(None, CPU) is ATTENTION_PATHS["blocks"]
    assert resolve_attention("flex", CPU).name == "flex"
    with pytest.raises(ValueError, match="unknown split attention 'dense'"):
        resolve_attention("dense", CPU)
