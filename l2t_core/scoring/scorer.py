"""`L2TScorer`: one prompt and N candidate completions in, per-episode L2T rewards out.

`score_many` takes several prompts' candidates at once and the packed path measures them in one forward,
so a caller holding several requests (the server's scoring queue) pays one forward, not one per request.
The scorer owns the low-rank proxy (an SVD taken once at construction) and runs either the packed
production path or the naive reference path; both feed the same reward arithmetic. It is not
re-entrant (it hooks the model while it runs), so calls are serialised with a lock.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from l2t_core.models import context_length
from l2t_core.reward import (
    LowRankProxy,
    RewardConfig,
    aggregate,
    compression_penalty,
    fitting_gains,
)
from l2t_core.scoring.attention_paths import AttentionName
from l2t_core.scoring.measurements import Measurement
from l2t_core.scoring.naive import measure_naive
from l2t_core.scoring.packed import measure_packed
from l2t_core.scoring.plan import CandidatePlan, plan_completions, suffix_token_set
from l2t_core.scoring.results import AnswerProbes, CandidateScore, EpisodeScore, episode_reward

Method = Literal["packed", "naive"]


@dataclass(frozen=True)
class ScoringJob:
    """One prompt and its candidates, with what `L2TScorer.score` takes alongside them."""

    prompt: str  # the rendered prompt text the completions continue
    completions: list[str]
    reference: str | None = None
    config: RewardConfig | None = None  # None: the scorer's config
    targets: list[str | None] | None = None  # per-candidate J targets, overriding the target mode
    answer_probes: int = 0  # multi-target J over up to this many distinct pool answers (0: off)
    pool_answers: list[str | None] | None = None  # the answers those probes come from (None: the completions')
    # The one tokenization: the prompt's ids and each completion's ids as the generator sampled them (EOS
    # included). Given, they are scored as they are; None: `prompt` and `completions` are tokenized here
    # (text from a client, or a scorer model whose vocabulary is not the generator's).
    prompt_ids: tuple[int, ...] | None = None
    completion_ids: list[tuple[int, ...]] | None = None
    # The engine's log-probs of each completion's sampled ids (the last len(...) of its ids), when it reported
    # them: engine-side scoring reads them; the torch scorer measures its own.
    sampled_logprobs: list[tuple[float, ...]] | None = None


class Scorer(Protocol):
    """What the pipeline and the scoring queue need of a scorer: the torch scorer (`L2TScorer`), or the
    engine-side one (`l2t_core.scoring.engine_scorer.EngineScorer`), which measures no compression term."""

    tokenizer: Any
    config: RewardConfig
    measures_compression: bool

    @property
    def context_length(self) -> int | None: ...

    @property
    def device(self) -> str: ...

    def prompt_ids(self, prompt: str) -> list[int]: ...

    def score_many(self, jobs: list[ScoringJob]) -> list[list[CandidateScore]]: ...


class L2TScorer:
    measures_compression = True

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        config: RewardConfig | None = None,
        max_batch_tokens: int | None = None,
        lock: threading.Lock | None = None,
        attention: AttentionName | None = None,
    ) -> None:
        """`model` must be the policy whose weights define θ; in 'drift' mode its weights at this moment
        are the reference W_ref that later drift is measured from. Pass the generation engine's model
        lock as `lock` when both share the model, so scoring and generation take turns. `attention`
        names the packed path's split attention (attention_paths.py; None: the device's default)."""
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or RewardConfig()
        self.max_batch_tokens = max_batch_tokens
        self.attention = attention
        self._proxies: dict[float, LowRankProxy] = {}
        self._suffix_sets: dict[str, tuple[int, ...]] = {}
        self._lock = lock or threading.Lock()
        self.proxy(self.config.rank_ratio, keep_reference=self.config.delta_mode == "drift")

    def proxy(self, rank_ratio: float, keep_reference: bool = False) -> LowRankProxy:
        if rank_ratio not in self._proxies:
            self._proxies[rank_ratio] = LowRankProxy.from_model(self.model, rank_ratio, keep_reference)
        return self._proxies[rank_ratio]

    def suffix_ids(self, config: RewardConfig) -> tuple[int, ...]:
        """The tokens that score the answer suffix under `config.suffix_probability` (none: its own token)."""
        if config.suffix_probability == "token":
            return ()
        if config.target_suffix not in self._suffix_sets:
            self._suffix_sets[config.target_suffix] = suffix_token_set(self.tokenizer, config.target_suffix)
        return self._suffix_sets[config.target_suffix]

    def prompt_ids(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def plan(
        self,
        completions: list[str],
        reference: str | None,
        config: RewardConfig,
        targets: list[str | None] | None = None,
        answer_probes: int = 0,
        pool_answers: list[str | None] | None = None,
        completion_ids: list[tuple[int, ...]] | None = None,
    ) -> list[CandidatePlan]:
        """What to measure per completion (`plan_completions`), in this scorer's vocabulary."""
        return plan_completions(
            self.tokenizer,
            completions,
            reference,
            config,
            self.suffix_ids(config),
            targets,
            answer_probes,
            pool_answers,
            completion_ids,
        )

    @property
    def context_length(self) -> int | None:
        """The scorer model's trained context."""
        return context_length(self.model)

    @property
    def device(self) -> str:
        return str(self.model.device)

    def score(
        self,
        prompt: str,
        completions: list[str],
        reference: str | None = None,
        config: RewardConfig | None = None,
        method: Method = "packed",
        targets: list[str | None] | None = None,
        answer_probes: int = 0,
        pool_answers: list[str | None] | None = None,
    ) -> list[CandidateScore]:
        """Score each completion of `prompt` (the rendered prompt text the completions continue).

        `targets` sets the answer J is measured against per candidate, overriding the target mode
        (beam-prune aims unfinished paths at the answer a short probe decodes for them). `answer_probes`
        > 0 measures multi-target J over up to that many distinct pool answers (`CandidateScore.answer_probes`),
        taken from `pool_answers` when given."""
        job = ScoringJob(prompt, completions, reference, config, targets, answer_probes, pool_answers)
        return self.score_many([job], method)[0]

    def score_many(self, jobs: list[ScoringJob], method: Method = "packed") -> list[list[CandidateScore]]:
        """Score several prompts' candidates at once: the packed path measures them all in as few forwards
        as its token budget allows (one, usually), so concurrent requests can share a forward."""
        if method not in ("packed", "naive"):
            raise ValueError(f"unknown scoring method {method!r}: use 'packed' or 'naive'")
        configs = [job.config or self.config for job in jobs]
        with self._lock:
            plans = [
                self.plan(j.completions, j.reference, c, j.targets, j.answer_probes, j.pool_answers, j.completion_ids)
                for j, c in zip(jobs, configs, strict=True)
            ]
            prompt_ids = [list(job.prompt_ids) if job.prompt_ids else self.prompt_ids(job.prompt) for job in jobs]
            measured: list[list[Measurement]] = [[] for _ in jobs]
            drifts: list[torch.Tensor | None] = [None] * len(jobs)
            # The proxy (hence g̃_k) depends on the rank ratio, so one forward serves jobs that share it.
            for ratio in dict.fromkeys(c.rank_ratio for c in configs):
                group = [i for i, c in enumerate(configs) if c.rank_ratio == ratio]
                proxy = self.proxy(ratio, keep_reference=any(configs[i].delta_mode == "drift" for i in group))
                for i in group:
                    drifts[i] = proxy.drift(self.model) if configs[i].delta_mode == "drift" else None
                if method == "packed":
                    group_jobs = [(prompt_ids[i], plans[i]) for i in group]
                    for i, m in zip(
                        group,
                        measure_packed(self.model, proxy, group_jobs, self.max_batch_tokens, self.attention),
                        strict=True,
                    ):
                        measured[i] = m
                else:
                    for i in group:
                        measured[i] = [measure_naive(self.model, proxy, prompt_ids[i], p) for p in plans[i]]
        return [
            [assemble(plan, m, config, drift) for plan, m in zip(job_plans, job_measured, strict=True)]
            for job_plans, job_measured, config, drift in zip(plans, measured, configs, drifts, strict=True)
        ]


def assemble(
    plan: CandidatePlan, measured: Measurement, config: RewardConfig, drift: torch.Tensor | None
) -> CandidateScore:
    """Turn raw measurements into episode rewards r_k = ΔI_k − β C_k and a path score. Without episode
    gradients (`measured.episode_grads` None: the engine measured J and log-probs, not the weights) C_k is
    absent, and so are r_k and the path score unless β = 0, where r_k = ΔI_k whatever C_k is."""
    k = len(plan.episode_spans)
    log_j: list[float | None] = list(measured.log_j) if measured.log_j else [None] * (k + 1)
    j = [math.exp(v) if v is not None else 0.0 for v in log_j]
    gains = fitting_gains(j)
    episodes = []
    for i, (episode, (ts, te)) in enumerate(zip(plan.parsed.episodes, plan.episode_spans, strict=True)):
        grads = measured.episode_grads
        penalty = compression_penalty(grads[i], config, drift, te - ts) if grads is not None else None
        episodes.append(
            EpisodeScore(
                index=episode.index,
                text=episode.text,
                start=episode.start,
                end=episode.end,
                token_start=ts,
                token_end=te,
                j_before=j[i],
                j_after=j[i + 1],
                log_j_before=log_j[i],
                log_j_after=log_j[i + 1],
                fitting_gain=gains[i],
                compression_penalty=penalty,
                reward=episode_reward(gains[i], penalty, config.beta),
            )
        )
    rewards = [e.reward for e in episodes]
    n = len(plan.token_ids)
    mean_logprob = float(measured.token_logprobs.double().mean()) if n else 0.0
    return CandidateScore(
        text=plan.parsed.text,
        answer=plan.answer,
        target=plan.target,
        score=aggregate([r for r in rewards if r is not None], config.aggregation) if None not in rewards else None,
        episodes=tuple(episodes),
        answer_start=plan.parsed.answer_start,
        tagged=plan.parsed.tagged,
        n_tokens=n,
        mean_logprob=mean_logprob,
        probe_tokens=plan.probe_token_count,
        token_ids=tuple(plan.token_ids),
        token_logprobs=tuple(float(x) for x in measured.token_logprobs),
        answer_probes=_answer_probes(plan, measured),
    )


def _answer_probes(plan: CandidatePlan, measured: Measurement) -> AnswerProbes | None:
    if not plan.answer_targets:
        return None
    return AnswerProbes(
        answers=plan.pool_answers,
        cuts=tuple(plan.answer_probe_cuts),
        log_j=tuple(tuple(row) for row in measured.answer_log_j),
    )
