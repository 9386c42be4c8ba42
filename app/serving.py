"""The serving layer: the work behind every route, in one place (vLLM's `serving_*` objects).

Routers parse a body, build the core request with `body.to_core(serving)` and call a method here; this
module owns the server's policy: the per-field limits of `Settings` (n, max_tokens, prompt characters),
admission in tokens against the model (l2t_core/admission.py: every request's work bounded before it
starts), the run in a worker thread under the runtime's admission queue and cancellation, and the
metrics. Nothing here shapes a response, and nothing in a router decides a limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence

from fastapi import Request

from app.core.config import Settings
from app.core.errors import APIError
from app.core.runtime import Runtime
from l2t_core.admission import TokenLimits, admit_generation, admit_scoring, request_work
from l2t_core.answers import normalize_answer
from l2t_core.engines import SamplingParams
from l2t_core.engines.base import check_logit_bias_vocabulary
from l2t_core.episodes import RenderedPrompt
from l2t_core.pipeline import PipelineResult, ReasoningPipeline, ScoredPool
from l2t_core.request import GenerationRequest
from l2t_core.reward import RewardConfig
from l2t_core.search import MAX_ANSWER_PROBES, BeamPruneConfig


class Serving:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def pipeline(self) -> ReasoningPipeline:
        """The loaded pipeline (503 while the model loads or after the engine died)."""
        return self.runtime.require_pipeline()

    def limits(self) -> TokenLimits:
        return self.pipeline.token_limits(self.settings.max_request_tokens)

    # -- building requests: the per-field limits ----------------------------------------------------
    def sampling(
        self,
        n: int,
        max_tokens: int,
        temperature: float,
        top_p: float,
        seed: int | None,
        stop: tuple[str, ...] = (),
        defaulted: Collection[str] = (),
        *,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        logit_bias: tuple[tuple[int, float], ...] = (),
    ) -> SamplingParams:
        """Engine sampling parameters within the server's limits (400 with the limit named otherwise), and
        a logit bias only on token ids of the served model's vocabulary.

        `n` or `max_tokens` named in `defaulted` (the client left them out) are clamped to the limits
        instead: a server run with L2T_MAX_TOKENS_LIMIT=16 still answers a request that names no max_tokens."""
        s = self.settings
        if "n" in defaulted:
            n = min(n, s.max_n)
        if "max_tokens" in defaulted:
            max_tokens = min(max_tokens, s.max_tokens_limit)
        if n > s.max_n:
            raise APIError(400, f"n={n} exceeds this server's limit of {s.max_n}", param="n", code="too_large")
        if max_tokens > s.max_tokens_limit:
            raise APIError(
                400,
                f"max_tokens={max_tokens} exceeds the limit of {s.max_tokens_limit}",
                param="max_tokens",
                code="too_large",
            )
        check_logit_bias_vocabulary(logit_bias, len(self.pipeline.tokenizer))
        return SamplingParams(
            n=n,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop=stop,
            presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty,
            logit_bias=logit_bias,
        )

    def check_model(self, name: str) -> None:
        """An OpenAI request names the served model, "default", or none (404 naming the served one otherwise)."""
        model_id = self.settings.model_id
        if name and name not in (model_id, "default"):
            raise APIError(
                404,
                f"model {name!r} is not served here; GET /v1/models lists {model_id!r}",
                "not_found_error",
                param="model",
                code="model_not_found",
            )

    def check_text(self, text: str, param: str) -> None:
        """A text field within the character limit: a cheap bound before anything is tokenized."""
        limit = self.settings.max_prompt_chars
        if len(text) > limit:
            raise APIError(
                400, f"{param} is {len(text)} characters; the limit is {limit}", param=param, code="too_long"
            )

    # -- running them ---------------------------------------------------------------------------------
    def admit(self, requests: Sequence[GenerationRequest]) -> None:
        """Refuse, before any work starts, requests that break a limit: each against the model's context and
        the request limit, and together (one HTTP request may carry several prompts) against the limit."""
        limits, total = self.limits(), 0
        for request in requests:
            self.check_text(request.prompt.text, "prompt")
            if isinstance(request.search, BeamPruneConfig):
                self._check_budget(request.search)
            prompt_tokens = len(request.prompt.engine_ids)
            admit_generation(request, prompt_tokens, limits)
            total += request_work(request, prompt_tokens)
        if total > limits.request_tokens:
            raise APIError(
                400,
                f"these {len(requests)} prompts would make the model run up to {total} tokens; this server's limit "
                f"is {limits.request_tokens} (L2T_MAX_REQUEST_TOKENS)",
                param="prompt",
                code="too_large",
            )

    async def generate(self, http: Request, requests: Sequence[GenerationRequest]) -> list[PipelineResult]:
        """Answer each request (one admission slot for all of them) and record what they spent."""
        self.admit(requests)
        pipeline, started = self.pipeline, time.perf_counter()
        results = await self.runtime.run(http, lambda cancel: [pipeline.run(r, cancel) for r in requests])
        for result in results:
            self.record(result, time.perf_counter() - started)
        return results

    async def stream(
        self, http: Request, request: GenerationRequest, on_text: Callable[[int, str], None]
    ) -> PipelineResult:
        """`generate` for one request, telling `on_text` each candidate's text as it is sampled (the first
        text's time is the request's time to first token)."""
        self.admit([request])
        pipeline, started, first = self.pipeline, time.perf_counter(), threading.Event()
        ttft = self.runtime.metrics.time_to_first_token.labels(self.settings.model_id)

        def timed(candidate: int, text: str) -> None:
            if not first.is_set():
                first.set()
                ttft.observe(time.perf_counter() - started)
            on_text(candidate, text)

        result = await self.runtime.run(http, lambda cancel: pipeline.stream(request, timed, cancel))
        self.record(result, time.perf_counter() - started)
        return result

    async def score(
        self,
        http: Request,
        prompt: RenderedPrompt,
        completions: list[str],
        reference: str | None,
        reward: RewardConfig,
        progress: bool,
    ) -> ScoredPool:
        """Per-episode rewards of given completions, admitted in the scorer's tokens."""
        self.check_text(prompt.text, "question")
        for i, completion in enumerate(completions):
            self.check_text(completion, f"completions.{i}")
        pipeline = self.pipeline
        prompt_tokens, completion_tokens = pipeline.scoring_lengths(prompt, completions)
        admit_scoring(prompt_tokens, completion_tokens, self.limits())
        probes = MAX_ANSWER_PROBES if progress else 0

        def work(cancel: threading.Event) -> ScoredPool:
            return pipeline.score(prompt, completions, reference, reward, answer_probes=probes, cancel=cancel)

        scored = await self.runtime.run(http, work)
        self.runtime.record(scored.usage, scored.timings, scored.scores)
        return scored

    def record(self, result: PipelineResult, seconds: float) -> None:
        """A finished generation in the metrics: tokens, latency, episodes, and whether the strategy's choice
        differs from what the first sample alone would have answered."""
        metrics, model = self.runtime.metrics, self.settings.model_id
        self.runtime.record(result.usage, result.timings, [r.score for r in result.ranked])
        metrics.e2e_latency.labels(model).observe(seconds)
        metrics.prompt_tokens.labels(model).inc(result.usage.prompt_tokens)
        metrics.generation_tokens.labels(model).inc(result.usage.completion_tokens)
        for ranked in result.ranked:
            metrics.episodes.observe(len(ranked.score.episodes))
        first = next((r for r in result.ranked if r.index == 0), None)
        if first is not None and result.search is None:
            agree = answers_agree(result.best.score.answer, first.score.answer)
            metrics.chosen_is_first.labels(result.strategy, "true" if agree else "false").inc()

    def _check_budget(self, search: BeamPruneConfig) -> None:
        """A beam search generates at most what n paths of max_tokens may generate on this server."""
        limit = self.settings.max_n * self.settings.max_tokens_limit
        if search.token_budget is not None and search.token_budget > limit:
            raise APIError(
                400,
                f"beam.token_budget={search.token_budget} exceeds this server's limit of {limit} "
                "(L2T_MAX_N × L2T_MAX_TOKENS_LIMIT)",
                param="beam.token_budget",
                code="too_large",
            )


def answers_agree(a: str | None, b: str | None) -> bool:
    """Two candidates give the same answer (normalised; two unanswered candidates agree)."""
    return (a is None and b is None) or (a is not None and b is not None and normalize_answer(a) == normalize_answer(b))
