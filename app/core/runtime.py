"""The server's long-lived state: model, engine, scorer (behind its cross-request scoring queue), pipeline,
and the admission queue.

Work runs in worker threads (the model is synchronous); the event loop only admits, watches and
answers. Admission is bounded by `max_queue`: a request beyond it gets 503 with Retry-After at once.
While a request runs, its client is watched: a disconnect or the per-request timeout sets the
request's cancel event, which the engine honours between tokens. A slot is released only when the
worker thread has really finished, so cancelled work still counts against the queue until it stops.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import Request

from app.core.config import Settings
from app.core.errors import APIError
from app.core.metrics import Metrics
from l2t_core.engines import Cancelled, EngineError
from l2t_core.models import LoadedModel, load_models
from l2t_core.pipeline import ReasoningPipeline, Timings, Usage
from l2t_core.reward import RewardConfig
from l2t_core.scoring import CandidateScore

logger = logging.getLogger(__name__)

T = TypeVar("T")
WATCH_INTERVAL_S = 0.1


class ClientDisconnected(Exception):
    """The client went away; nothing is sent back."""


class Runtime:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.pipeline: ReasoningPipeline | None = None
        self.load_error: str | None = None
        self.on_load_failed: Callable[[], None] | None = None  # `l2t serve` stops the server then
        self._in_flight = 0
        self._admission = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=settings.max_queue, thread_name_prefix="l2t-request")

    # -- lifecycle ------------------------------------------------------------------------------
    def load(self) -> None:
        """Load the model (and the scorer model, if one is set), build engine and scorer. Blocking; run it
        off the event loop."""
        s = self.settings
        try:
            here = s.engine == "transformers"
            self.start(
                *load_models(
                    s.model,
                    s.scorer_model,
                    s.device,
                    s.scorer_device,
                    s.dtype,
                    generates_here=here,
                    scores_here=s.scorer == "torch",
                )
            )
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            logger.error("model or engine failed to load: %s", self.load_error)
            if self.on_load_failed is not None:
                self.on_load_failed()

    def start(self, loaded: LoadedModel, scorer: LoadedModel | None = None) -> None:
        """Build engine, scorer and pipeline around an already loaded model; `scorer`, when given, is a
        second model that scores what `loaded` generates."""
        self.pipeline = ReasoningPipeline.from_model(
            loaded,
            self.settings.engine,
            config=RewardConfig(suffix_probability=self.settings.suffix_probability),
            scorer_model=scorer,
            scoring=self.settings.scorer,
            remote_url=self.settings.remote_url,
            remote_model=self.settings.remote_model,
            remote_api_key=self.settings.remote_api_key,
            timeout_s=self.settings.request_timeout_s,
            prompt_format=self.settings.prompt_format,
            vllm_args=self.settings.vllm_args,
        ).with_scoring_queue(  # requests that finish generation together are scored in one scorer call
            self.settings.scoring_window_ms / 1000, self.settings.scoring_max_jobs, self.metrics.scoring_batch.observe
        )
        s = self.settings
        logger.info(
            "ready on http://%s:%d (model %s, scorer %s, engine %s, prompt format %s, strategy %s)",
            s.host,
            s.port,
            s.model,
            "the engine" if s.scorer == "engine" else s.scorer_model or s.model,
            s.engine,
            s.prompt_format,
            s.strategy,
        )

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self.pipeline is not None and self.pipeline.healthy()

    def require_pipeline(self) -> ReasoningPipeline:
        if self.pipeline is None:
            reason = self.load_error or "the model is still loading"
            raise APIError(
                503,
                f"not ready: {reason}",
                "service_unavailable",
                code="not_ready",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )
        if not self.pipeline.healthy():
            raise APIError(503, "the generation engine is not healthy", "service_unavailable", code="engine_dead")
        return self.pipeline

    def record(self, usage: Usage, timings: Timings, candidates: Sequence[CandidateScore] = ()) -> None:
        for candidate in candidates:
            self.metrics.candidates.labels("true" if candidate.tagged else "false").inc()
        self.metrics.generated_tokens.inc(usage.completion_tokens if timings.generate_ms else 0)
        self.metrics.scored_tokens.inc(usage.scoring_tokens)
        if timings.generate_ms:
            self.metrics.stage.labels("generate").observe(timings.generate_ms / 1000)
        self.metrics.stage.labels("score").observe(timings.score_ms / 1000)

    # -- admission and execution ------------------------------------------------------------------
    def _admit(self) -> None:
        with self._admission:
            if self._in_flight >= self.settings.max_queue:
                self.metrics.rejected.inc()
                raise APIError(
                    503,
                    f"server busy: {self._in_flight} requests in flight (limit {self.settings.max_queue}); retry later",
                    "service_unavailable",
                    code="queue_full",
                    headers={"Retry-After": str(self.settings.retry_after_s)},
                )
            self._in_flight += 1
            self.metrics.queue_depth.set(self._in_flight)

    def _release(self, _future: object = None) -> None:
        with self._admission:
            self._in_flight -= 1
            self.metrics.queue_depth.set(self._in_flight)

    async def run(self, request: Request, work: Callable[[threading.Event], T]) -> T:
        """Run `work(cancel)` in a worker thread, cancelling it if the client leaves or time runs out."""
        self._admit()
        cancel = threading.Event()
        try:
            future = self._executor.submit(contextvars.copy_context().run, work, cancel)  # the request id goes along
        except RuntimeError:
            self._release()
            raise
        future.add_done_callback(self._release)
        wrapped = asyncio.wrap_future(future)
        wrapped.add_done_callback(_retrieve)  # abandoned work (disconnect, timeout) ends quietly
        deadline = time.monotonic() + self.settings.request_timeout_s
        while True:
            done, _ = await asyncio.wait({wrapped}, timeout=WATCH_INTERVAL_S)
            if done:
                break
            if await request.is_disconnected():
                cancel.set()
                self.metrics.cancelled.labels("disconnect").inc()
                raise ClientDisconnected()
            if time.monotonic() > deadline:
                cancel.set()
                self.metrics.cancelled.labels("timeout").inc()
                raise APIError(
                    504,
                    f"request timed out after {self.settings.request_timeout_s:.0f}s",
                    "timeout_error",
                    code="timeout",
                )
        try:
            return wrapped.result()
        except Cancelled as exc:
            raise APIError(499, f"request cancelled: {exc}", "cancelled", code="cancelled") from exc
        except EngineError as exc:
            raise APIError(502, str(exc), "engine_error", code="engine_error") from exc


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Read a finished future's outcome so asyncio does not log "Future exception was never retrieved"
    for work whose client has already gone (its cancellation was logged once, at the disconnect)."""
    if not future.cancelled():
        future.exception()
