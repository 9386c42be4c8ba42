"""The reasoning pipeline: the one place that strings engine → episodes → scorer → strategy together.

    prompt(question | messages, format) → RenderedPrompt
    run(GenerationRequest, cancel) → PipelineResult

`run` hands the request to its strategy's runner (the registry entry carries it): rerankers sample N
candidates, score every episode with the L2T reward and rank them; `adaptive` samples in rounds;
beam-prune interleaves the two stages episode by episode. Runners use the pipeline's public stages —
`sample`, `generate_many`, `score`, `rank_pool` — and so does every caller that needs them on their own
(the evaluation caches pools and scores them once per setting, the trainer needs the scores of its
rollouts); none of them touches the engine or the scorer. The prompt format's prefill is applied here,
once: the engine continues `prompt + prefill`, and every returned completion starts with the prefill,
so parsing and scoring see it. Every token spent (prompt, generated, scored) is counted and the two
stages are timed.

One tokenization: the prompt's ids come from `RenderedPrompt` (tokenized once), the engine continues
exactly those ids and returns the ids it sampled, and `score` hands the scorer the same prompt ids and
the prefill's plus the sampled ids (EOS included): generator and scorer run one sequence. The scorer may
run a model of its own (`from_model(..., scorer_model=…)`): it then scores the same turns rendered in
its own chat template (`scorer_prompt`) and tokenizes the completions' text in its own vocabulary, so
generated tokens are counted in the generator's vocabulary and scored ones in its. Or the engine may
score (`from_model(..., scoring="engine")`, `l2t_core.scoring.engine_scorer`): J and the log-probs come
from the generation engine, no copy of the model is loaded for scoring, and no compression term is
measured, so `run` refuses the strategies that rank by it (unless β = 0).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from l2t_core.admission import TokenLimits
from l2t_core.engines import Cancelled, Generation, GenerationBatch, GenerationEngine, SamplingParams, build_engine
from l2t_core.engines.base import StreamingEngine, TailScorer, TokenCallback, end_of_sequence_ids, generate_many
from l2t_core.engines.detokenize import IncrementalDetokenizer
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT, Message, PromptFormat, RenderedPrompt
from l2t_core.episodes import prompt_format as find_prompt_format
from l2t_core.errors import InvalidRequest
from l2t_core.models import LoadedModel, configured_context_length
from l2t_core.request import GenerationRequest
from l2t_core.result import PipelineResult, RankedCandidate, Sample, SampledPool, ScoredPool, Timings, Usage
from l2t_core.reward import RewardConfig
from l2t_core.scoring import COMPRESSION_ABSENT, SCORERS, CandidateScore, L2TScorer, Scorer, ScoringJob, scoring_tokens
from l2t_core.scoring.engine_scorer import EngineScorer, check_measurable
from l2t_core.scoring.micro_batch import ScoringQueue
from l2t_core.search import (
    MAX_ANSWER_PROBES,
    PROGRESS_SETTINGS,
    RankContext,
    Strategy,
    engine_scoring_refusal,
    rank_candidates,
    with_progress,
)
from l2t_core.tokens import encode_text

__all__ = [
    "PipelineResult",
    "RankedCandidate",
    "ReasoningPipeline",
    "Sample",
    "SampledPool",
    "ScoredPool",
    "Timings",
    "Usage",
]


class ReasoningPipeline:
    def __init__(
        self,
        engine: GenerationEngine,
        scorer: Scorer,
        prompt_format: str = DEFAULT_PROMPT_FORMAT,
        generator_tokenizer: Any | None = None,
        scorer_model: str | None = None,
        scoring_queue: ScoringQueue | None = None,
    ) -> None:
        """`prompt_format` is the default for prompts that name none (the strategy is the request's).

        When the scorer runs a model other than the generator's, `generator_tokenizer` is the
        generator's (prompts are rendered, generated tokens counted and streamed with it) and
        `scorer_model` names the scorer's model; by default the scorer's model generates too. With a
        `scoring_queue` (around `scorer`), `score` goes through it, so concurrent callers share scorer calls."""
        self._engine = engine
        self._scorer = scorer
        self._generator_tokenizer = generator_tokenizer or scorer.tokenizer
        self.scorer_model = scorer_model
        self._scoring_queue = scoring_queue
        self.default_prompt_format = find_prompt_format(prompt_format).name  # unknown names fail here

    @classmethod
    def from_model(
        cls,
        loaded: LoadedModel,
        engine: str = "transformers",
        config: RewardConfig | None = None,
        prompt_format: str = DEFAULT_PROMPT_FORMAT,
        scorer_model: LoadedModel | None = None,
        scoring: str = "torch",
        **engine_options: Any,
    ) -> ReasoningPipeline:
        """The engine generates with `loaded`; J, rewards and the log-probs strategies read come from
        `scorer_model`, a model loaded separately, or by default from `loaded` as well.

        One model: engine and scorer share one lock and take turns on it. Two models: each has its own
        lock, so one request's scoring runs while another's generation does. `scoring="engine"`: the engine
        measures J and log-probs itself (`EngineScorer`), so `loaded` needs only its tokenizer unless the
        engine is transformers, and no compression term is measured."""
        if scoring not in SCORERS:
            raise ValueError(f"unknown scorer {scoring!r}: use one of {', '.join(SCORERS)}")
        if scoring == "engine" and scorer_model is not None:
            raise ValueError("scorer=engine measures on the generation engine: it takes no scorer model")
        if scoring == "engine":
            check_measurable(config or RewardConfig())  # before an engine starts
        lock = threading.Lock()
        generator = build_engine(engine, loaded, lock, **engine_options)
        if scoring == "engine":
            if not isinstance(generator, TailScorer):
                generator.close()
                raise ValueError(
                    f"engine {engine!r} cannot teacher-force sequences, so it cannot score (scorer=engine)"
                )
            on_engine = EngineScorer(generator, loaded.tokenizer, config, configured_context_length(loaded))
            return cls(generator, on_engine, prompt_format)
        if scorer_model is None:
            scorer = L2TScorer(loaded.model, loaded.tokenizer, config, lock=lock)
            return cls(generator, scorer, prompt_format)
        scorer = L2TScorer(scorer_model.model, scorer_model.tokenizer, config, lock=threading.Lock())
        return cls(generator, scorer, prompt_format, loaded.tokenizer, scorer_model.name)

    def with_scoring_queue(
        self, window_s: float, max_jobs: int, on_batch: Callable[[int], None] | None = None
    ) -> ReasoningPipeline:
        """This pipeline, scoring through a `ScoringQueue` around its scorer (the server's): concurrent
        `score` calls that arrive within `window_s` share one scorer call, at most `max_jobs` per call."""
        return self._rebuilt(self._engine, ScoringQueue(self._scorer, window_s, max_jobs, on_batch))

    def _rebuilt(self, engine: Any, scoring_queue: ScoringQueue | None) -> ReasoningPipeline:
        """The same pipeline (scorer, tokenizers, defaults) around another engine or scoring queue."""
        return ReasoningPipeline(
            engine,
            self._scorer,
            self.default_prompt_format,
            self._generator_tokenizer,
            self.scorer_model,
            scoring_queue,
        )

    # -- facts callers need ---------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        """The generator's tokenizer: prompts, generated-token counts and streaming use it."""
        return self._generator_tokenizer

    @property
    def scorer_tokenizer(self) -> Any:
        """The scorer's tokenizer: the token ids and log-probs of a `CandidateScore` are in its vocabulary."""
        return self._scorer.tokenizer

    @property
    def reward_config(self) -> RewardConfig:
        """The server's reward settings; requests override fields of it."""
        return self._scorer.config

    @property
    def model_name(self) -> str:
        return self._engine.model_name

    @property
    def engine_name(self) -> str:
        return self._engine.name

    @property
    def device(self) -> str:
        """The scorer model's device (`engine:<name>` when the engine scores)."""
        return self._scorer.device

    @property
    def compression_absent(self) -> str | None:
        """Why scores carry no compression penalty (the engine scores), or None: the torch scorer measures it."""
        return None if self._scorer.measures_compression else COMPRESSION_ABSENT

    @property
    def context_length(self) -> int:
        """The longest sequence both stages can run: the scorer model's positions, and the engine's context
        where it reports one (`max_model_len`: vLLM's, or a remote's model card)."""
        lengths = [self._scorer.context_length, getattr(self._engine, "max_model_len", None)]
        known = [n for n in lengths if isinstance(n, int) and n > 0]
        if not known:
            raise RuntimeError("neither the engine nor the scorer model states a context length")
        return min(known)

    def token_limits(self, request_tokens: int | None = None) -> TokenLimits:
        """Admission limits against this pipeline's models (l2t_core/admission.py)."""
        return TokenLimits.for_context(self.context_length, request_tokens)

    def healthy(self) -> bool:
        return self._engine.healthy()

    def close(self) -> None:
        self._engine.close()
        if self._scoring_queue is not None:
            self._scoring_queue.close()

    def encode(self, text: str) -> tuple[int, ...]:
        """Text the pipeline itself writes into a prompt (a search's paths), tokenized the one way."""
        return encode_text(self.tokenizer, text)

    def scoring_lengths(self, prompt: RenderedPrompt, completions: Sequence[str]) -> tuple[int, list[int]]:
        """The tokens `score` would run, in the scorer's vocabulary: the prompt's, and each completion's."""
        tokenizer = self._scorer.tokenizer
        lengths = [len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions]
        return len(self._scorer.prompt_ids(self.scorer_prompt(prompt))), lengths

    # -- the stages -----------------------------------------------------------------------------
    def prompt(
        self,
        question: str | None = None,
        messages: Sequence[Message] | None = None,
        prompt_format: str | None = None,
    ) -> RenderedPrompt:
        """A question or a chat rendered in a named format (the pipeline's default when None)."""
        return self.prompt_format(prompt_format).render(self.tokenizer, question, messages)

    def prompt_format(self, name: str | None = None) -> PromptFormat:
        """The named format, or the pipeline's default."""
        return find_prompt_format(name or self.default_prompt_format)

    def scorer_prompt(self, prompt: RenderedPrompt) -> str:
        """The prompt text the scorer scores completions of: `prompt.text` when one model does both, else
        the same turns in the scorer's chat template (`RenderedPrompt.rendered_for` says why)."""
        if self._generator_tokenizer is self._scorer.tokenizer:
            return prompt.text
        return prompt.rendered_for(self._scorer.tokenizer)

    def sample(
        self, prompt: RenderedPrompt, params: SamplingParams, cancel: threading.Event | None = None
    ) -> SampledPool:
        """N completions of `prompt`, each starting with its prefill (text and token ids)."""
        started = time.perf_counter()
        ids = prompt.engine_ids
        batch = self._engine.generate(ids, params, cancel)
        samples = [
            Sample(
                prompt.prefill + g.text,
                g.n_tokens,
                g.finish_reason,
                prompt.prefill_ids + g.token_ids if g.token_ids else (),
                g.token_logprobs if g.token_ids and len(g.token_logprobs) == len(g.token_ids) else (),
            )
            for g in batch.generations
        ]
        return SampledPool(prompt, samples, len(ids), time.perf_counter() - started)

    def generate_many(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, cancel: threading.Event | None = None
    ) -> list[Generation]:
        """One generation (`params.n` must be 1) for each of several token-id prompts, handed to the engine
        together so it can batch them (a search's round of steps)."""
        return generate_many(self._engine, prompts, params, cancel)

    def score(
        self,
        prompt: RenderedPrompt,
        completions: list[str],
        reference: str | None = None,
        config: RewardConfig | None = None,
        targets: list[str | None] | None = None,
        answer_probes: int = 0,
        cancel: threading.Event | None = None,
        pool_answers: list[str | None] | None = None,
        progress: bool | None = None,
        token_ids: Sequence[Sequence[int]] | None = None,
        sampled_logprobs: Sequence[Sequence[float]] | None = None,
    ) -> ScoredPool:
        """Per-episode L2T rewards of whole assistant replies to `prompt` (prefill included, as `sample`
        returns them). `token_ids` are the completions' ids as sampled (`SampledPool.token_ids`): when the
        scorer shares the generator's tokenizer it scores those, after the prompt's own ids, so it runs the
        sequence the model generated; text alone (a `/score` request) is tokenized once, by the scorer.
        `targets` overrides the answer J aims at, per completion. `answer_probes` > 0 also
        measures multi-target J over up to that many pool answers (`pool_answers`, by default the
        completions'), and with it every episode's `progress` unless `progress` is False. Through the
        scoring queue (when the pipeline has one) the time includes the wait for batch-mates, and `cancel`
        drops the job. `sampled_logprobs` (`SampledPool.sampled_logprobs`, with `token_ids`): the engine's
        log-probs of the sampled ids, which engine-side scoring reads instead of measuring them again."""
        started = time.perf_counter()
        if not self._scorer.measures_compression:  # refused here, before it could share a batch with others
            check_measurable(config or self.reward_config)
        text = self.scorer_prompt(prompt)
        shared = self._generator_tokenizer is self._scorer.tokenizer
        job = ScoringJob(
            text,
            completions,
            reference,
            config,
            targets,
            answer_probes,
            pool_answers,
            prompt_ids=prompt.token_ids if shared and prompt.token_ids else None,
            completion_ids=[tuple(ids) for ids in token_ids] if shared and token_ids is not None else None,
            sampled_logprobs=[tuple(lp) for lp in sampled_logprobs]
            if shared and token_ids is not None and sampled_logprobs is not None
            else None,
        )
        if self._scoring_queue is not None:
            scores = self._scoring_queue.score(job, cancel)
        else:
            scores = self._scorer.score_many([job])[0]
        if answer_probes > 0 and progress is not False:
            scores = with_progress(scores, PROGRESS_SETTINGS)
        elapsed = (time.perf_counter() - started) * 1000
        prompt_tokens = len(job.prompt_ids) if job.prompt_ids else len(self._scorer.prompt_ids(text))
        completion_tokens = sum(s.n_tokens for s in scores)
        usage = Usage(
            prompt_tokens, completion_tokens, scoring_tokens(prompt_tokens, scores), prompt_tokens + completion_tokens
        )
        return ScoredPool(scores, usage, Timings(0.0, elapsed))

    def rank(self, candidates: Sequence[CandidateScore], strategy: str, reference: str | None = None) -> list[int]:
        """Indices of `candidates`, best first, under a reranking strategy of the registry."""
        return rank_candidates(candidates, strategy, reference)

    def rank_pool(
        self,
        request: GenerationRequest,
        pool: SampledPool,
        ranker: Strategy,
        cancel: threading.Event | None = None,
        spent: tuple[int, float] = (0, 0.0),
    ) -> PipelineResult:
        """Score a sampled pool for `request` and rank it with the reranking strategy `ranker` (a registry
        entry, already resolved): what every reranking runner ends with. `spent`: scoring tokens and
        milliseconds the runner already spent on the pool (adaptive's rounds), charged to the request."""
        if ranker.rank is None:
            raise InvalidRequest(f"strategy {ranker.name!r} is a search, not a reranker", param="strategy")
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled after generation")
        probes = MAX_ANSWER_PROBES if ranker.needs_answer_probes or request.progress else 0
        scored = self.score(
            request.prompt,
            pool.texts,
            request.reference,
            request.reward,
            None,
            probes,
            cancel,
            token_ids=pool.token_ids,
            sampled_logprobs=pool.sampled_logprobs,
        )
        order = ranker.rank(scored.scores, RankContext(request.reference))
        samples = pool.samples
        ranked = [
            RankedCandidate(i, scored.scores[i], samples[i].finish_reason, samples[i].n_tokens, samples[i].token_ids)
            for i in order
        ]
        completion_tokens = sum(s.n_tokens for s in pool.samples)
        usage = Usage(
            prompt_tokens=pool.prompt_tokens,
            completion_tokens=completion_tokens,
            scoring_tokens=scored.usage.scoring_tokens + spent[0],
            total_tokens=pool.prompt_tokens + completion_tokens,
        )
        timings = Timings(pool.generate_s * 1000, scored.timings.score_ms + spent[1])
        return PipelineResult(
            ranked, usage, timings, request.strategy.name, request.prompt.format, samples_drawn=len(pool.samples)
        )

    def check_servable(self, request: GenerationRequest) -> None:
        """Refuse, before anything is sampled or streamed, what this pipeline's scorer cannot measure: with the
        engine scoring, a strategy the request names that ranks by the compression term (unless β = 0), and
        J's 'string' suffix probability."""
        if self._scorer.measures_compression:
            return
        reward = request.reward or self.reward_config
        refused = engine_scoring_refusal(request.named_strategies, reward.beta)
        if refused is not None:
            raise refused
        check_measurable(reward)

    def run(self, request: GenerationRequest, cancel: threading.Event | None = None) -> PipelineResult:
        """Answer one request with its strategy: the registry entry's runner does the work (after
        `check_servable`)."""
        self.check_servable(request)
        return request.strategy.run(self, request, cancel)

    def stream(
        self,
        request: GenerationRequest,
        on_text: Callable[[int, str], None],
        cancel: threading.Event | None = None,
    ) -> PipelineResult:
        """`run`, telling `on_text(candidate, new_text)` each candidate's text as it is sampled, starting
        with the prefill (stop strings held back and cut, as in the final text). Only worth it when the
        order of the candidates is known before scoring (n = 1, or strategy `first`): a reranked answer is
        decided by the scores, which need every finished candidate. With an engine that cannot stream,
        only the prefill is told and the caller sends the final texts."""
        self.check_servable(request)  # before the prefill is told: a refusal is then an error, not a cut stream
        params = request.sampling
        decoders = [_IncrementalText(self.tokenizer, params.stop) for _ in range(params.n)]

        def on_token(candidate: int, token: int) -> None:
            new_text = decoders[candidate].push(token)
            if new_text:
                on_text(candidate, new_text)

        if request.prompt.prefill:
            for candidate in range(params.n):
                on_text(candidate, request.prompt.prefill)
        engine = _StreamingTo(self._engine, on_token) if isinstance(self._engine, StreamingEngine) else self._engine
        streaming = self._rebuilt(engine, self._scoring_queue)
        return streaming.run(request, cancel)


class _StreamingTo:
    """The pipeline's engine with a token callback bound, so `generate` runs unchanged while streaming."""

    def __init__(self, engine: Any, on_token: TokenCallback) -> None:
        self.engine = engine
        self.on_token = on_token
        self.name = engine.name
        self.model_name = engine.model_name

    def generate(
        self, prompt: Sequence[int], params: SamplingParams, cancel: threading.Event | None = None
    ) -> GenerationBatch:
        batch: GenerationBatch = self.engine.generate(prompt, params, cancel, on_token=self.on_token)
        return batch

    def healthy(self) -> bool:
        return bool(self.engine.healthy())

    def close(self) -> None:
        self.engine.close()


class _IncrementalText:
    """One candidate's text, decoded token by token in constant work per token: what is new since the last
    call, never a half character, nothing that might still become a stop string, nothing after EOS or a
    stop string. Text that could be the start of a stop is held back until it cannot be; a stop string
    found in it ends the candidate there."""

    def __init__(self, tokenizer: Any, stops: tuple[str, ...]) -> None:
        self.detokenizer = IncrementalDetokenizer(tokenizer)
        self.stops = stops
        self.end_ids = end_of_sequence_ids(tokenizer) | ({tokenizer.pad_token_id} - {None})
        self.held = ""  # text read but not yet handed out (it may begin a stop string)
        self.done = False

    def push(self, token: int) -> str:
        if self.done:
            return ""
        if token in self.end_ids:
            self.done = True
            return ""
        text = self.held + self.detokenizer.push(token)
        for stop in self.stops:
            if stop in text:
                self.done, self.held = True, ""
                return text[: text.index(stop)]
        keep = self._held_back(text)
        self.held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def _held_back(self, text: str) -> int:
        """Length of the longest end of `text` that could be the start of a stop string."""
        return max((k for stop in self.stops for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
