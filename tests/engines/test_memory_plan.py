"""The memory plan for vLLM beside the scorer's copy of the model: real model shapes on real device sizes."""

from __future__ import annotations

import math
import re

import pytest
import torch
from transformers import LlamaConfig, Qwen2Config

from l2t_core.engines.factory import plan_beside_scorer
from l2t_core.engines.memory_plan import (
    GENERATOR_OVERHEAD_BYTES,
    GIB,
    LOGIT_BYTES,
    MAX_GENERATOR_SHARE,
    MemoryPlanError,
    ModelShape,
    generator_needs,
    largest_scoring_tokens,
    plan_memory,
    scoring_activations,
)
from l2t_core.models import LoadedModel
from l2t_core.scoring.packed import MAX_FORWARD_TOKENS
from tests.fakes import tiny_causal_lm

# The models' own config.json numbers, and their published parameter counts (model cards / safetensors index).
CONFIGS = {
    "SmolLM2-135M": LlamaConfig(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        head_dim=64,
        vocab_size=49152,
        tie_word_embeddings=True,
    ),
    "Qwen2.5-1.5B": Qwen2Config(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "Qwen2.5-7B": Qwen2Config(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        tie_word_embeddings=False,
    ),
    "Llama-3-70B": LlamaConfig(
        hidden_size=8192,
        intermediate_size=28672,
        num_hidden_layers=80,
        num_attention_heads=64,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=False,
    ),
}
PUBLISHED_PARAMS = {
    "SmolLM2-135M": 134_515_008,
    "Qwen2.5-1.5B": 1_543_714_304,
    "Qwen2.5-7B": 7_615_616_512,
    "Llama-3-70B": 70_553_706_496,
}
SHAPES = {name: ModelShape.from_config(config) for name, config in CONFIGS.items()}
# What torch reports as total_memory (nvidia-smi's MiB): an H100 80 GB and an H200 141 GB.
DEVICES = {"80 GB": 81559 << 20, "141 GB": 143771 << 20}
BF16 = 2
TOKENS = MAX_FORWARD_TOKENS

# The plan at bf16 and the scorer's default forward row: vLLM's share, or None where it refuses.
# Tensor parallelism shrinks only vLLM's shard: the scorer keeps a whole copy on the first device.
EXPECTED = {
    ("SmolLM2-135M", "80 GB", 1): 0.64,
    ("SmolLM2-135M", "80 GB", 8): 0.64,
    ("SmolLM2-135M", "141 GB", 1): 0.79,
    ("SmolLM2-135M", "141 GB", 8): 0.79,
    ("Qwen2.5-1.5B", "80 GB", 1): 0.08,
    ("Qwen2.5-1.5B", "80 GB", 8): 0.08,
    ("Qwen2.5-1.5B", "141 GB", 1): 0.48,
    ("Qwen2.5-1.5B", "141 GB", 8): 0.48,
    ("Qwen2.5-7B", "80 GB", 1): None,
    ("Qwen2.5-7B", "80 GB", 8): None,
    ("Qwen2.5-7B", "141 GB", 1): 0.37,
    ("Qwen2.5-7B", "141 GB", 8): 0.37,
    ("Llama-3-70B", "80 GB", 1): None,
    ("Llama-3-70B", "80 GB", 8): None,
    ("Llama-3-70B", "141 GB", 1): None,
    ("Llama-3-70B", "141 GB", 8): None,
}


@pytest.mark.parametrize("name", CONFIGS)
def test_parameter_count_from_the_config_is_the_published_one(name: str) -> None:
    assert SHAPES[name].params == PUBLISHED_PARAMS[name]


def test_qwen2_has_qkv_biases_and_llama_none() -> None:
    assert SHAPES["Qwen2.5-7B"].attention_bias and not SHAPES["Llama-3-70B"].attention_bias


def test_parameter_count_matches_a_real_module() -> None:
    """The shape formula against torch's own count, tied embeddings counted once."""
    model = tiny_causal_lm(_Vocabulary(300))
    counted = sum(p.numel() for p in model.parameters())
    assert ModelShape.from_config(model.config).params == counted
    assert ModelShape.from_config(model.config, exact_params=7).params == 7


@pytest.mark.parametrize(("name", "device", "tp"), EXPECTED)
def test_plan_table(name: str, device: str, tp: int) -> None:
    shape, device_bytes, expected = SHAPES[name], DEVICES[device], EXPECTED[(name, device, tp)]
    if expected is None:
        with pytest.raises(MemoryPlanError):
            plan_memory(shape, BF16, device_bytes, tp, TOKENS)
        return
    plan = plan_memory(shape, BF16, device_bytes, tp, TOKENS)
    assert plan.generator_share == expected
    # the split holds: both fit on the device, vLLM gets at least its floor, the scorer keeps a whole copy
    assert plan.scorer_bytes + plan.generator_bytes <= device_bytes
    assert plan.generator_bytes >= plan.generator_needs
    assert plan.scorer_weights == PUBLISHED_PARAMS[name] * BF16
    assert "gpu_memory_utilization" in plan.describe()
    assert ("on each of its 8 devices" in plan.describe()) == (tp == 8)


@pytest.mark.parametrize("name", CONFIGS)
def test_logits_are_the_largest_term(name: str) -> None:
    a = scoring_activations(SHAPES[name], BF16, TOKENS)
    assert a.logits == TOKENS * SHAPES[name].vocab_size * LOGIT_BYTES
    assert a.logits > max(a.kept, a.layer, a.attention_mask)
    assert a.total == a.kept + a.layer + a.attention_mask + a.logits


def test_activations_grow_with_tokens_and_dtype() -> None:
    shape = SHAPES["Qwen2.5-7B"]
    small, large = scoring_activations(shape, BF16, 4096), scoring_activations(shape, BF16, 8192)
    assert 2 * small.logits == large.logits and small.total < large.total
    assert scoring_activations(shape, 4, 4096).layer > small.layer
    with pytest.raises(ValueError, match="at least one token"):
        scoring_activations(shape, BF16, 0)


def test_refusal_says_what_is_needed_what_the_device_has_and_what_fits() -> None:
    shape, device_bytes = SHAPES["Qwen2.5-7B"], DEVICES["80 GB"]
    with pytest.raises(MemoryPlanError) as refused:
        plan_memory(shape, BF16, device_bytes, 1, TOKENS)
    message = str(refused.value)
    assert "79.6 GiB device" in message and "weights 14.2 GiB" in message and "logits 55.7 GiB" in message
    assert "L2T_SCORER_DEVICE" in message and "tensor parallelism" in message
    fitting = int(re.search(r"at most (\d+) per forward", message).group(1))  # type: ignore[union-attr]
    needs = generator_needs(shape, BF16, 1, 4096)
    assert fitting == largest_scoring_tokens(shape, BF16, device_bytes, needs, TOKENS)
    # the limit it names is the exact edge: that many tokens plan, one more is refused
    assert plan_memory(shape, BF16, device_bytes, 1, fitting).generator_bytes >= needs
    with pytest.raises(MemoryPlanError):
        plan_memory(shape, BF16, device_bytes, 1, fitting + 1)


def test_a_scorer_too_large_for_the_device_is_refused_whatever_its_batch() -> None:
    with pytest.raises(MemoryPlanError, match="no scorer batch fits"):
        plan_memory(SHAPES["Llama-3-70B"], BF16, DEVICES["141 GB"], 8, TOKENS)


def test_tensor_parallelism_shrinks_only_the_generator_floor() -> None:
    shape = SHAPES["Llama-3-70B"]
    one, eight = generator_needs(shape, BF16, 1, 4096), generator_needs(shape, BF16, 8, 4096)
    assert one - eight > 7 / 8 * shape.params * BF16 - GIB  # the weight shard, less a KV share
    # more devices than KV heads (SmolLM2 has 3): each device still holds one head's cache
    small = SHAPES["SmolLM2-135M"]

    def kv_cache(tp: int) -> int:
        return generator_needs(small, BF16, tp, 4096) - math.ceil(small.params * BF16 / tp) - GENERATOR_OVERHEAD_BYTES

    assert kv_cache(8) == kv_cache(3) == 2 * 30 * 64 * BF16 * 4096


def test_a_float32_scorer_costs_more_and_a_tiny_one_is_capped() -> None:
    shape, device_bytes = SHAPES["Qwen2.5-1.5B"], DEVICES["141 GB"]
    assert plan_memory(shape, 4, device_bytes, 1, TOKENS, generator_dtype_bytes=BF16).generator_share < 0.48
    tiny = plan_memory(SHAPES["SmolLM2-135M"], BF16, DEVICES["141 GB"], 1, 512)
    assert tiny.generator_share == MAX_GENERATOR_SHARE


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        plan_memory(SHAPES["SmolLM2-135M"], BF16, DEVICES["80 GB"], 0, TOKENS)
    with pytest.raises(ValueError, match="positive"):
        ModelShape(0, 1, 1, 1, 1, 1, 1, True)


def test_plan_beside_a_loaded_scorer_reads_its_model() -> None:
    """The factory's plan uses the loaded model's own parameter count and dtype, the scorer's default row."""
    model = tiny_causal_lm(_Vocabulary(300)).to(torch.bfloat16)
    loaded = LoadedModel(model, None, "tiny", "/nowhere", torch.device("cpu"), torch.bfloat16)
    plan = plan_beside_scorer(loaded, {"dtype": "auto"}, DEVICES["80 GB"])
    assert plan.scorer_weights == sum(p.numel() for p in model.parameters()) * 2
    assert plan.activations.tokens == MAX_FORWARD_TOKENS
    assert plan.activations.logits == MAX_FORWARD_TOKENS * 300 * LOGIT_BYTES
    shape = ModelShape.from_config(model.config, exact_params=sum(p.numel() for p in model.parameters()))
    # vLLM's default context is the model's own (4096 here), as vLLM takes it when no max_model_len is given
    assert plan.generator_needs == generator_needs(shape, BF16, 1, model.config.max_position_embeddings)


def test_plan_beside_a_scorer_follows_the_users_vllm_arguments() -> None:
    """max_model_len, tensor_parallel_size and dtype given as vLLM engine arguments size vLLM's part of the plan."""
    model = tiny_causal_lm(_Vocabulary(300)).to(torch.bfloat16)
    loaded = LoadedModel(model, None, "tiny", "/nowhere", torch.device("cpu"), torch.bfloat16)
    shape = ModelShape.from_config(model.config, exact_params=sum(p.numel() for p in model.parameters()))
    options = {"dtype": "float32", "max_model_len": 32768, "tensor_parallel_size": 2}
    plan = plan_beside_scorer(loaded, options, DEVICES["80 GB"])
    assert plan.tensor_parallel == 2
    assert plan.generator_needs == generator_needs(shape, 4, 2, 32768)


class _Vocabulary:
    """What `tiny_causal_lm` reads from a tokenizer: its length."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size
