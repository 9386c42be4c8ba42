"""The reasoning pipeline: the one place that strings engine → episodes → scorer → strategy together.

    prompt(question | messages, format) → RenderedPrompt
    run(prompt, sampling, strategy, reward, reference, beam options, cancel) → PipelineResult

`run` samples N candidates, scores every episode with the L2T reward and ranks them by the strategy
(any reranker of the registry), or runs beam-prune, which interleaves the two stages episode by
episode. Callers that need the stages on their own — the evaluation caches pools and scores them
once per setting, the trainer needs the scores of its rollouts — use the public `sample()` and
`score()`; none of them touches the engine or the scorer. The prompt format's prefill is applied here,
once: the engine continues `prompt + prefill`, and every returned completion starts with the prefill,
so parsing and scoring see it. Every token spent (prompt, generated, scored) is counted and the two
stages are timed. The scorer may run a model of its own (`from_model(..., scorer_model=…)`): it then
scores the same turns rendered in its own chat template (`scorer_prompt`) and re-tokenises the
completions, so generated tokens are counted in the generator's vocabulary and scored ones in its.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from l2t_core.answers import extract_answer
from l2t_core.engines import Cancelled, GenerationBatch, GenerationEngine, SamplingParams, build_engine
from l2t_core.engines.base import StreamingEngine, TokenCallback
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT, Message, PromptFormat, RenderedPrompt
from l2t_core.episodes import prompt_format as find_prompt_format
from l2t_core.errors import InvalidRequest
from l2t_core.models import LoadedModel
from l2t_core.reward import RewardConfig
from l2t_core.scoring import CandidateScore, L2TScorer, ScoringJob, scoring_tokens
from l2t_core.scoring.micro_batch import ScoringQueue
from l2t_core.search import (
    DEFAULT_STRATEGY,
    MAX_ANSWER_PROBES,
    PROGRESS_SETTINGS,
    AdaptiveConfig,
    BeamPruneConfig,
    BeamPruneResult,
    beam_prune,
    get_strategy,
    rank_candidates,
    with_progress,
)
from l2t_core.search.adaptive import decided, round_ends


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int  # every generated token (all N candidates; for beam-prune pruned paths and probes too)
    scoring_tokens: int  # tokens the scorer ran: prompt once, every candidate, every probe segment
    total_tokens: int


@dataclass(frozen=True)
class Timings:
    generate_ms: float
    score_ms: float


@dataclass(frozen=True)
class Sample:
    text: str  # the prefill followed by the generated text: what is parsed and scored
    n_tokens: int  # generated tokens (the prefill is not generated)
    finish_reason: str


@dataclass(frozen=True)
class SampledPool:
    prompt: RenderedPrompt
    samples: list[Sample]
    prompt_tokens: int
    generate_s: float

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.samples]


@dataclass(frozen=True)
class ScoredPool:
    scores: list[CandidateScore]
    usage: Usage
    timings: Timings


@dataclass(frozen=True)
class RankedCandidate:
    index: int  # position in generation order
    score: CandidateScore
    finish_reason: str
    generated_tokens: int


@dataclass(frozen=True)
class PipelineResult:
    ranked: list[RankedCandidate]  # best first under the strategy
    usage: Usage
    timings: Timings
    strategy: str
    prompt_format: str | None
    search: BeamPruneResult | None = None  # beam-prune's own accounting (rounds, probes, pruned paths)
    samples_drawn: int | None = None  # candidates sampled (adaptive stops early; None for beam-prune)

    @property
    def best(self) -> RankedCandidate:
        return self.ranked[0]


class ReasoningPipeline:
    def __init__(
        self,
        engine: GenerationEngine,
        scorer: L2TScorer,
        prompt_format: str = DEFAULT_PROMPT_FORMAT,
        strategy: str = DEFAULT_STRATEGY,
        generator_tokenizer: Any | None = None,
        scorer_model: str | None = None,
        scoring_queue: ScoringQueue | None = None,
    ) -> None:
        """`prompt_format` and `strategy` are the defaults for calls that do not name their own.

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
        self.default_strategy = get_strategy(strategy).name

    @classmethod
    def from_model(
        cls,
        loaded: LoadedModel,
        engine: str = "transformers",
        config: RewardConfig | None = None,
        prompt_format: str = DEFAULT_PROMPT_FORMAT,
        strategy: str = DEFAULT_STRATEGY,
        scorer_model: LoadedModel | None = None,
        **engine_options: Any,
    ) -> ReasoningPipeline:
        """The engine generates with `loaded`; J, rewards and the log-probs strategies read come from
        `scorer_model`, a model loaded separately, or by default from `loaded` as well.

        One model: engine and scorer share one lock and take turns on it. Two models: each has its own
        lock, so one request's scoring runs while another's generation does."""
        lock = threading.Lock()
        generator = build_engine(engine, loaded, lock, **engine_options)
        if scorer_model is None:
            scorer = L2TScorer(loaded.model, loaded.tokenizer, config, lock=lock)
            return cls(generator, scorer, prompt_format, strategy)
        scorer = L2TScorer(scorer_model.model, scorer_model.tokenizer, config, lock=threading.Lock())
        return cls(generator, scorer, prompt_format, strategy, loaded.tokenizer, scorer_model.name)

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
            self.default_strategy,
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
        """The scorer model's device."""
        return str(self._scorer.model.device)

    def healthy(self) -> bool:
        return self._engine.healthy()

    def close(self) -> None:
        self._engine.close()
        if self._scoring_queue is not None:
            self._scoring_queue.close()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

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
        """N completions of `prompt`, each starting with its prefill."""
        started = time.perf_counter()
        batch = self._engine.generate(prompt.engine_input, params, cancel)
        samples = [Sample(prompt.prefill + g.text, g.n_tokens, g.finish_reason) for g in batch.generations]
        prompt_tokens = batch.prompt_tokens or self.count_tokens(prompt.engine_input)
        return SampledPool(prompt, samples, prompt_tokens, time.perf_counter() - started)

    def score(
        self,
        prompt: RenderedPrompt,
        completions: list[str],
        reference: str | None = None,
        config: RewardConfig | None = None,
        targets: list[str | None] | None = None,
        answer_probes: int = 0,
        cancel: threading.Event | None = None,
    ) -> ScoredPool:
        """Per-episode L2T rewards of whole assistant replies to `prompt` (prefill included, as `sample`
        returns them). `targets` overrides the answer J aims at, per completion. `answer_probes` > 0 also
        measures multi-target J over up to that many pool answers, and with it every episode's `progress`.
        Through the scoring queue (when the pipeline has one) the time includes the wait for batch-mates,
        and `cancel` drops the job."""
        started = time.perf_counter()
        text = self.scorer_prompt(prompt)
        job = ScoringJob(text, completions, reference, config, targets, answer_probes)
        if self._scoring_queue is not None:
            scores = self._scoring_queue.score(job, cancel)
        else:
            scores = self._scorer.score_many([job])[0]
        if answer_probes > 0:
            scores = with_progress(scores, PROGRESS_SETTINGS)
        elapsed = (time.perf_counter() - started) * 1000
        prompt_tokens = len(self._scorer.prompt_ids(text))  # the scorer's tokens: all of `score` is its work
        completion_tokens = sum(s.n_tokens for s in scores)
        usage = Usage(
            prompt_tokens, completion_tokens, scoring_tokens(prompt_tokens, scores), prompt_tokens + completion_tokens
        )
        return ScoredPool(scores, usage, Timings(0.0, elapsed))

    def run(
        self,
        prompt: RenderedPrompt,
        params: SamplingParams,
        strategy: str | None = None,
        reward: RewardConfig | None = None,
        reference: str | None = None,
        beam: Mapping[str, Any] | None = None,
        cancel: threading.Event | None = None,
        adaptive: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> PipelineResult:
        """Answer one prompt with a strategy of the registry (the pipeline's default when None).

        Rerankers sample `params.n` candidates, score them all and rank them. `adaptive` samples in
        rounds until the vote is decided (at most `params.n`; `adaptive` overrides `AdaptiveConfig`
        fields), then ranks what it drew with its `select` reranker. `beam_prune` starts `params.n`
        paths and prunes them episode by episode; `beam` overrides its settings (`BeamPruneConfig`
        fields) and its token budget defaults to what best-of-N would spend. With a `reference`, J aims
        at it for every candidate. `progress` (implied by strategies that read multi-target J) fills in
        every episode's progress toward the answers the rest of the pool supports.
        """
        chosen = get_strategy(strategy or self.default_strategy)
        if not chosen.served and reference is None:
            raise _needs_reference(chosen.name)
        if chosen.kind == "search":
            if adaptive:
                raise _options_without(chosen.name, "adaptive")
            config = BeamPruneConfig.for_request(params.n, params.max_tokens, **dict(beam or {}))
            return self._search(prompt, params, config, reward, reference, cancel)
        if beam:
            raise _options_without(chosen.name, "beam")
        rounds: AdaptiveConfig | None = None
        ranker = chosen
        if chosen.kind == "adaptive":
            rounds = AdaptiveConfig.from_options(dict(adaptive or {}))
            ranker = get_strategy(rounds.select)
            if ranker.kind != "rerank" or not ranker.served:
                raise InvalidRequest(f"adaptive select must be a served reranker, not {rounds.select!r}", "adaptive")
        elif adaptive:
            raise _options_without(chosen.name, "adaptive")
        check_tokens, check_ms = 0, 0.0  # the adaptive rounds' own scoring (the confident rule's log-probs)
        if rounds is None:
            pool = self.sample(prompt, params, cancel)
        else:
            pool, check_tokens, check_ms = self._sample_adaptively(prompt, params, rounds, reward, cancel)
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled after generation")
        probes = MAX_ANSWER_PROBES if ranker.needs_answer_probes or progress else 0
        scored = self.score(prompt, pool.texts, reference, reward, answer_probes=probes, cancel=cancel)
        order = rank_candidates(scored.scores, ranker.name, reference)
        ranked = [
            RankedCandidate(i, scored.scores[i], pool.samples[i].finish_reason, pool.samples[i].n_tokens) for i in order
        ]
        completion_tokens = sum(s.n_tokens for s in pool.samples)
        usage = Usage(
            prompt_tokens=pool.prompt_tokens,
            completion_tokens=completion_tokens,
            scoring_tokens=scored.usage.scoring_tokens + check_tokens,
            total_tokens=pool.prompt_tokens + completion_tokens,
        )
        timings = Timings(pool.generate_s * 1000, scored.timings.score_ms + check_ms)
        return PipelineResult(ranked, usage, timings, chosen.name, prompt.format, samples_drawn=len(pool.samples))

    def _sample_adaptively(
        self,
        prompt: RenderedPrompt,
        params: SamplingParams,
        config: AdaptiveConfig,
        reward: RewardConfig | None,
        cancel: threading.Event | None,
    ) -> tuple[SampledPool, int, float]:
        """Rounds of `config.round_size` samples until the rule decides or N are drawn: the pool, and the
        scoring tokens and milliseconds the `confident` rule spent reading each round's log-probs. A seeded
        request stays reproducible: round r uses seed + samples drawn, so rounds never repeat each other."""
        samples: list[Sample] = []
        logprobs: list[float] = []
        check_tokens, check_ms = 0, 0.0
        prompt_tokens, generate_s = 0, 0.0
        for drawn_after in round_ends(params.n, config.round_size):
            seed = None if params.seed is None else params.seed + len(samples)
            batch = self.sample(prompt, replace(params, n=drawn_after - len(samples), seed=seed), cancel)
            samples += batch.samples
            prompt_tokens, generate_s = batch.prompt_tokens, generate_s + batch.generate_s
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled between adaptive rounds")
            if config.stop == "confident":
                check = self.score(prompt, batch.texts, config=reward)
                logprobs += [s.mean_logprob for s in check.scores]
                check_tokens += check.usage.scoring_tokens
                check_ms += check.timings.score_ms
            if decided([extract_answer(s.text) for s in samples], logprobs, config):
                break
        return SampledPool(prompt, samples, prompt_tokens, generate_s), check_tokens, check_ms

    def _search(
        self,
        prompt: RenderedPrompt,
        params: SamplingParams,
        config: BeamPruneConfig,
        reward: RewardConfig | None,
        reference: str | None,
        cancel: threading.Event | None,
    ) -> PipelineResult:
        result = beam_prune(
            self._engine, self._scorer, prompt, params, config, reward, reference, cancel, self.scorer_prompt(prompt)
        )
        ranked = [
            RankedCandidate(i, score, path.finish_reason or "stop", path.n_tokens)
            for i, (path, score) in enumerate(result.ranked)
        ]
        prompt_tokens = self.count_tokens(prompt.text)
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=result.generated_tokens,
            scoring_tokens=result.scoring_tokens,
            total_tokens=prompt_tokens + result.generated_tokens,
        )
        timings = Timings(result.generate_s * 1000, result.score_s * 1000)
        return PipelineResult(ranked, usage, timings, "beam_prune", prompt.format, search=result)

    def stream(
        self,
        prompt: RenderedPrompt,
        params: SamplingParams,
        on_text: Callable[[int, str], None],
        strategy: str | None = None,
        reward: RewardConfig | None = None,
        reference: str | None = None,
        cancel: threading.Event | None = None,
    ) -> PipelineResult:
        """`run` (strategy `first` unless named), telling `on_text(candidate, new_text)` each candidate's
        text as it is sampled, starting with the prefill (stop strings held back and cut, as in the final
        text). Only worth it when the order of the candidates is known before scoring (n = 1, or
        strategy `first`): a reranked answer is decided by the scores, which need every finished
        candidate. With an engine that cannot stream, only the prefill is told and the caller sends the
        final texts."""
        decoders = [_IncrementalText(self.tokenizer, params.stop) for _ in range(params.n)]

        def on_token(candidate: int, token: int) -> None:
            new_text = decoders[candidate].push(token)
            if new_text:
                on_text(candidate, new_text)

        if prompt.prefill:
            for candidate in range(params.n):
                on_text(candidate, prompt.prefill)
        engine = _StreamingTo(self._engine, on_token) if isinstance(self._engine, StreamingEngine) else self._engine
        streaming = self._rebuilt(engine, self._scoring_queue)
        return streaming.run(prompt, params, strategy or "first", reward, reference, cancel=cancel)


def _needs_reference(name: str) -> InvalidRequest:
    return InvalidRequest(f"strategy {name!r} needs the reference answer", param="reference")


def _options_without(name: str, options: str) -> InvalidRequest:
    needs = {"beam": "beam_prune", "adaptive": "adaptive"}[options]
    return InvalidRequest(f"{options!r} settings need strategy {needs!r}, not {name!r}", param=options)


class _StreamingTo:
    """The pipeline's engine with a token callback bound, so `generate` runs unchanged while streaming."""

    def __init__(self, engine: Any, on_token: TokenCallback) -> None:
        self.engine = engine
        self.on_token = on_token
        self.name = engine.name
        self.model_name = engine.model_name

    def generate(self, prompt: str, params: SamplingParams, cancel: threading.Event | None = None) -> GenerationBatch:
        batch: GenerationBatch = self.engine.generate(prompt, params, cancel, on_token=self.on_token)
        return batch

    def healthy(self) -> bool:
        return bool(self.engine.healthy())

    def close(self) -> None:
        self.engine.close()


class _IncrementalText:
    """One candidate's text, decoded token by token: what is new since the last call, never a half
    character, nothing that might still become a stop string, nothing after EOS or a stop string."""

    def __init__(self, tokenizer: Any, stops: tuple[str, ...]) -> None:
        self.tokenizer = tokenizer
        self.stops = stops
        self.end_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
        self.ids: list[int] = []
        self.sent = 0
        self.done = False

    def push(self, token: int) -> str:
        if self.done:
            return ""
        if token in self.end_ids:
            self.done = True
            return ""
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # a character split across tokens: wait for the rest
            return ""
        for stop in self.stops:
            if stop in text:
                text, self.done = text[: text.index(stop)], True
        ready = len(text) if self.done else len(text) - self._held_back(text)
        new_text = text[self.sent : ready]
        self.sent = max(self.sent, ready)
        return new_text

    def _held_back(self, text: str) -> int:
        """Length of the longest end of `text` that could be the start of a stop string."""
        return max((k for stop in self.stops for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
