"""How one GPU is split between in-process vLLM and the scorer's own transformers copy of the model.

With `--engine vllm` and no separate scorer device, two copies of the model share a device: vLLM's (it
preallocates `gpu_memory_utilization` of the device's memory at start: its weights, then KV cache in
whatever is left of that share) and the scorer's (its weights, resident before vLLM starts, plus the
transient activations of its largest forward). vLLM's share must leave room for the second, or the
first large scoring call runs out of memory. This module computes that split from the model's shape
alone, so it is a pure function with no device to ask: the scorer's weights (parameters × dtype bytes),
an upper bound on one scoring forward's activations (from the config and the scorer's token limit), a
safety margin, and the rest to vLLM as a fraction of the device. When that rest cannot hold vLLM's own
weight shard and one full-length sequence of KV cache, it refuses with what is needed, what the device
has and what would fit.

The activation bound follows the packed scorer (`l2t_core.scoring.packed`, `tail`, `split_attention`),
with T the tokens of one forward row (`MAX_FORWARD_TOKENS`, or the scorer's `max_batch_tokens`):

- the decoder runs under `no_grad`, so only one layer's intermediates are alive at a time, plus the
  residual stream and the last layer's output and down-projection input that the scorer keeps;
- the GPU attention pads every block of the row into one SDPA batch: its gathered q/k/v and the boolean
  block mask (and the additive mask SDPA builds from it) are counted at `PADDED_SLOTS` × T query slots,
  each block attending to at most T keys;
- the tail forms full-vocabulary float32 logits for one candidate's rows at once on the GPU (at most T):
  the logits, their log-softmax and one product of the same size are alive together, 12 bytes per
  logit. At T × vocab this is usually the largest term by far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from l2t_core.engines.base import EngineError

GIB = 1 << 30
# Our process's CUDA context and cuBLAS workspace, outside both budgets.
MARGIN_BYTES = 2 * GIB
# The caching allocator rounds and fragments blocks: this share of the activations on top.
FRAGMENTATION = 0.05
# vLLM's own default share: never hand it more, even beside a tiny scorer.
MAX_GENERATOR_SHARE = 0.90
# What vLLM needs beyond its weights and KV cache: its profiled activations, sampler and CUDA graphs.
GENERATOR_OVERHEAD_BYTES = 2 * GIB
# Query (and key) slots of the batched GPU attention, as a multiple of the row's tokens: blocks are
# padded to the longest one, and a request's candidates have similar lengths.
PADDED_SLOTS = 2
# Float32 (tokens, vocab) arrays alive together at the tail's peak (logits, log-softmax, a product).
LOGIT_BYTES = 12


class MemoryPlanError(EngineError):
    """The scorer and vLLM cannot share the device as configured (the message says what would fit)."""


@dataclass(frozen=True)
class ModelShape:
    """The parts of a decoder-only model's config that its memory depends on."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool
    attention_bias: bool = False  # biases on q, k, v (Qwen2)
    exact_params: int | None = None  # the loaded model's own count, when it is at hand

    def __post_init__(self) -> None:
        sizes = (self.hidden_size, self.intermediate_size, self.num_layers, self.num_heads, self.num_kv_heads)
        if min(*sizes, self.head_dim, self.vocab_size) < 1:
            raise ValueError(f"every size of a model shape must be positive, got {self}")

    @classmethod
    def from_config(cls, config: Any, exact_params: int | None = None) -> ModelShape:
        """From a transformers config (its text part, for a multimodal one)."""
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        heads = text.num_attention_heads
        bias = getattr(text, "attention_bias", None)
        return cls(
            hidden_size=text.hidden_size,
            intermediate_size=text.intermediate_size,
            num_layers=text.num_hidden_layers,
            num_heads=heads,
            num_kv_heads=getattr(text, "num_key_value_heads", None) or heads,
            head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads,
            vocab_size=text.vocab_size,
            tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
            attention_bias=bool(bias) if bias is not None else text.model_type == "qwen2",
            exact_params=exact_params,
        )

    @property
    def params(self) -> int:
        """Parameters: the loaded model's count, or a gated-MLP decoder's from its shape."""
        if self.exact_params is not None:
            return self.exact_params
        d, q, kv = self.hidden_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        attention = d * (q + 2 * kv) + q * d + ((q + 2 * kv) if self.attention_bias else 0)
        layer = attention + 3 * d * self.intermediate_size + 2 * d  # + gate/up/down, two norms
        embeddings = self.vocab_size * d * (1 if self.tied_embeddings else 2)
        return self.num_layers * layer + embeddings + d  # + the final norm


@dataclass(frozen=True)
class ScoringActivations:
    """Upper bound on the transient memory of one packed scoring forward of `tokens` tokens, in bytes."""

    tokens: int
    kept: int  # residual stream, the kept last-layer output and down-projection input
    layer: int  # the largest of one layer's attention phase and MLP phase
    attention_mask: int  # the padded boolean block mask and SDPA's additive copy of it
    logits: int  # the tail's float32 (rows, vocab) arrays

    @property
    def total(self) -> int:
        return self.kept + self.layer + self.attention_mask + self.logits


@dataclass(frozen=True)
class MemoryPlan:
    """How the device is split; `generator_share` is vLLM's `gpu_memory_utilization`."""

    device_bytes: int
    tensor_parallel: int
    scorer_weights: int
    activations: ScoringActivations
    margin: int
    generator_share: float
    generator_needs: int  # vLLM's floor on each device: weight shard, one sequence of KV cache, overhead

    @property
    def scorer_bytes(self) -> int:
        return self.scorer_weights + self.activations.total + self.margin

    @property
    def generator_bytes(self) -> int:
        return int(self.generator_share * self.device_bytes)

    def describe(self) -> str:
        """One line for the start-up log."""
        a = self.activations
        line = (
            f"memory plan on a {gib(self.device_bytes)} device: scorer {gib(self.scorer_bytes)} (weights "
            f"{gib(self.scorer_weights)}, activations {gib(a.total)} for {a.tokens} tokens of which logits "
            f"{gib(a.logits)}, margin {gib(self.margin)}); vLLM gpu_memory_utilization {self.generator_share:.2f} "
            f"= {gib(self.generator_bytes)} (it needs at least {gib(self.generator_needs)})"
        )
        if self.tensor_parallel > 1:
            line += f"; vLLM takes that share on each of its {self.tensor_parallel} devices, the scorer is on the first"
        return line


def scoring_activations(shape: ModelShape, dtype_bytes: int, tokens: int) -> ScoringActivations:
    """The bound of the module docstring for one forward of `tokens` tokens in the scorer's dtype."""
    if tokens < 1:
        raise ValueError(f"a scoring forward has at least one token, got {tokens}")
    t, b, d, f = tokens, dtype_bytes, shape.hidden_size, shape.intermediate_size
    q, kv, heads_q = shape.num_heads, shape.num_kv_heads, shape.num_heads * shape.head_dim
    slots = PADDED_SLOTS * t
    kept = t * (2 * d + f) * b
    norm = t * d * (2 * 4 + b)  # RMSNorm's float32 square and copy, its output
    projections = t * (q + 2 * kv) * shape.head_dim * b
    rotary = 2 * t * (q + kv) * shape.head_dim * b  # rotated q and k, and rotate_half's copies
    repeated = 2 * t * heads_q * b  # k, v repeated to every query head
    gathered = 5 * slots * heads_q * b  # padded q, k, v, the attended output and its flattened copy
    attention = norm + projections + rotary + repeated + gathered + t * heads_q * b + t * d * b
    mlp = norm + 3 * t * f * b + t * d * b  # gate (then its activation), up, their product; down output
    mask = slots * t * (1 + b)
    return ScoringActivations(t, kept, max(attention, mlp), mask, t * shape.vocab_size * LOGIT_BYTES)


def generator_needs(shape: ModelShape, dtype_bytes: int, tensor_parallel: int, sequence_tokens: int) -> int:
    """vLLM's floor on each of its devices: its weight shard, KV cache for one `sequence_tokens`-long
    sequence (KV heads split over the devices, one each at least), and `GENERATOR_OVERHEAD_BYTES`."""
    shard = math.ceil(shape.params * dtype_bytes / tensor_parallel)
    kv_heads = math.ceil(shape.num_kv_heads / tensor_parallel)
    kv = 2 * shape.num_layers * kv_heads * shape.head_dim * dtype_bytes * sequence_tokens
    return shard + kv + GENERATOR_OVERHEAD_BYTES


def plan_memory(
    shape: ModelShape,
    scorer_dtype_bytes: int,
    device_bytes: int,
    tensor_parallel: int,
    scoring_tokens: int,
    generator_dtype_bytes: int | None = None,
    sequence_tokens: int = 4096,
) -> MemoryPlan:
    """Split a device between the scorer (whole, on this device) and vLLM (tensor-parallel over
    `tensor_parallel` devices, this one among them), or raise `MemoryPlanError` when they cannot share it.

    `scoring_tokens` is the scorer's token limit per forward; `sequence_tokens` vLLM's `max_model_len`;
    `generator_dtype_bytes` vLLM's dtype (default: the scorer's)."""
    if tensor_parallel < 1 or device_bytes < 1 or scorer_dtype_bytes < 1:
        raise ValueError(f"bad plan inputs: tensor_parallel={tensor_parallel}, device_bytes={device_bytes}")
    generator_bytes = generator_dtype_bytes or scorer_dtype_bytes
    needs = generator_needs(shape, generator_bytes, tensor_parallel, sequence_tokens)
    weights = shape.params * scorer_dtype_bytes
    activations = scoring_activations(shape, scorer_dtype_bytes, scoring_tokens)
    margin = safety_margin(activations)
    plan = MemoryPlan(
        device_bytes, tensor_parallel, weights, activations, margin, _share(device_bytes, weights, activations), needs
    )
    if plan.generator_share <= 0 or plan.generator_bytes < needs:
        raise MemoryPlanError(_refusal(plan, shape, scorer_dtype_bytes))
    return plan


def largest_scoring_tokens(
    shape: ModelShape, scorer_dtype_bytes: int, device_bytes: int, needs: int, limit: int
) -> int:
    """The most tokens per scoring forward (at most `limit`) that leave vLLM `needs` bytes; 0 if none do."""

    weights = shape.params * scorer_dtype_bytes

    def fits(tokens: int) -> bool:
        share = _share(device_bytes, weights, scoring_activations(shape, scorer_dtype_bytes, tokens))
        return int(share * device_bytes) >= needs

    low, high = 0, limit  # fits(low) holds (or low is 0); find the largest
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def safety_margin(activations: ScoringActivations) -> int:
    return MARGIN_BYTES + math.ceil(FRAGMENTATION * activations.total)


def _share(device_bytes: int, scorer_weights: int, activations: ScoringActivations) -> float:
    """What is left for vLLM, as a fraction of the device rounded down to a hundredth, at most its default."""
    rest = device_bytes - scorer_weights - activations.total - safety_margin(activations)
    return min(MAX_GENERATOR_SHARE, math.floor(100 * rest / device_bytes) / 100)


def _refusal(plan: MemoryPlan, shape: ModelShape, scorer_dtype_bytes: int) -> str:
    a = plan.activations
    fitting = largest_scoring_tokens(shape, scorer_dtype_bytes, plan.device_bytes, plan.generator_needs, a.tokens)
    batch = (
        f"a scorer token limit of at most {fitting} per forward (now {a.tokens})"
        if fitting > 0
        else "no scorer batch fits: its weights alone leave vLLM too little"
    )
    return (
        f"the scorer and vLLM do not fit on one {gib(plan.device_bytes)} device: the scorer needs "
        f"{gib(plan.scorer_bytes)} (weights {gib(plan.scorer_weights)}, activations {gib(a.total)} for "
        f"{a.tokens} tokens, of which logits {gib(a.logits)}, margin {gib(plan.margin)}) and vLLM at least "
        f"{gib(plan.generator_needs)} (its weight shard at tensor parallel {plan.tensor_parallel}, one sequence of "
        f"KV cache, overhead), but would get {gib(max(plan.generator_bytes, 0))}. Change one of: {batch}; the scorer "
        f"on a device of its own (L2T_SCORER_MODEL with L2T_SCORER_DEVICE); more tensor parallelism for vLLM "
        f"(it shrinks vLLM's shard; the scorer keeps a whole copy on this device); a smaller scorer dtype"
    )


def gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"
