"""Scoring where the model is: J and log-probabilities measured by the generation engine, no second copy.

A large model served on vLLM (in-process or remote) would otherwise need the torch scorer's own copy of
its weights on the same device. `EngineScorer` asks the engine instead (`TailScorer.tail_logprobs`):
every answer probe of the plan (the same `CandidatePlan` the torch scorer measures: the target at the K+1
cuts, the pool's answers for multi-target J) and each completion's own tokens are teacher-forced
sequences whose last tokens' log-probabilities are read. In-process vLLM holds the prompt and the
sampled completions in its prefix cache, so it computes only the probe and target tokens (fused J);
vLLM's OpenAI server does not read its cache for such requests, so a remote computes whole sequences,
still without a copy of the model here; the transformers engine is the CPU twin (one plain forward
per sequence), so this path runs and is tested without vLLM.

What it cannot measure is the compression penalty: C_k is a gradient with respect to the weights, and the
engine returns log-probabilities only. Scores carry C_k = None (`COMPRESSION_ABSENT` says why), r_k = ΔI_k
when β = 0 and None otherwise, and the path score likewise; strategies that rank by the path score are
refused by name unless β = 0 (`l2t_core.search.strategies.engine_scoring_refusal`). J's 'string' suffix
probability sums the mass of several tokens at one position, which a log-probability of the actual token
cannot give, so it is refused too.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch

from l2t_core.engines.base import TailScorer
from l2t_core.errors import InvalidRequest
from l2t_core.reward import RewardConfig
from l2t_core.scoring.measurements import Measurement, probe_results
from l2t_core.scoring.plan import CandidatePlan, plan_completions
from l2t_core.scoring.results import CandidateScore
from l2t_core.scoring.scorer import ScoringJob, assemble
from l2t_core.tokens import encode_text


class EngineScorer:
    measures_compression = False

    def __init__(
        self,
        engine: TailScorer,
        tokenizer: Any,
        config: RewardConfig | None = None,
        context_length: int | None = None,
    ) -> None:
        """`engine` generates and teacher-forces; `tokenizer` is its model's (the pipeline's), so the sampled
        ids are scored as they are. `context_length`: the model's (its config's), which no probe may pass;
        an engine that states its own (`max_model_len`) is held to the shorter."""
        self.engine = engine
        self._context_length = context_length
        self.tokenizer = tokenizer
        self.config = config or RewardConfig()
        check_measurable(self.config)
        self.computed_tokens = 0  # tokens the engine ran the model on for scoring, since start
        self.probe_tokens = 0  # tokens of every teacher-forced sequence, cached or not
        self._count = threading.Lock()

    @property
    def context_length(self) -> int | None:
        """The model's context, as its config states it (the pipeline also goes by the engine's)."""
        return self._context_length

    def _longest_sequence(self) -> int | None:
        known = [n for n in (self._context_length, getattr(self.engine, "max_model_len", None)) if isinstance(n, int)]
        return min(known) if known else None

    @property
    def device(self) -> str:
        return f"engine:{getattr(self.engine, 'name', 'unknown')}"

    def prompt_ids(self, prompt: str) -> list[int]:
        return list(encode_text(self.tokenizer, prompt))

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
        """What to measure per completion (`plan_completions`), J's suffix scored as its own token."""
        check_measurable(config)
        return plan_completions(
            self.tokenizer, completions, reference, config, (), targets, answer_probes, pool_answers, completion_ids
        )

    def score_many(self, jobs: list[ScoringJob]) -> list[list[CandidateScore]]:
        """Score several prompts' candidates with one batch of engine requests."""
        configs = [job.config or self.config for job in jobs]
        plans = [
            self.plan(j.completions, j.reference, c, j.targets, j.answer_probes, j.pool_answers, j.completion_ids)
            for j, c in zip(jobs, configs, strict=True)
        ]
        prompt_ids = [list(job.prompt_ids) if job.prompt_ids else self.prompt_ids(job.prompt) for job in jobs]
        known = [_sampled(job) for job in jobs]
        sequences = [
            [candidate_sequences(ids, plan, sampled) for plan, sampled in zip(job_plans, job_known, strict=True)]
            for ids, job_plans, job_known in zip(prompt_ids, plans, known, strict=True)
        ]
        requests = [request for job in sequences for candidate in job for request in candidate]
        longest = self._longest_sequence()
        over = max((len(ids) for ids, _ in requests), default=0)
        if longest is not None and over > longest:  # before the engine runs, so batch-mates lose nothing
            raise InvalidRequest(
                f"an answer probe of {over} tokens (prompt, the completion up to an episode, the probe and the "
                f"answer) exceeds the model's context of {longest} tokens: shorten the prompt or the completions",
                code="context_length_exceeded",
            )
        answers = self.engine.tail_logprobs(requests) if requests else []
        # identical sequences (every candidate's prefill after the same prompt) are run once by the engine
        once = {(tuple(ids), n): tail for (ids, n), tail in zip(requests, answers, strict=True)}
        with self._count:
            self.computed_tokens += sum(t.computed_tokens for t in once.values())
            self.probe_tokens += sum(t.tokens for t in once.values())
        measured = iter(answers)
        results: list[list[CandidateScore]] = []
        for job_plans, job_sequences, job_known, config in zip(plans, sequences, known, configs, strict=True):
            scores = []
            for plan, candidate, sampled in zip(job_plans, job_sequences, job_known, strict=True):
                tails = [next(measured) for _ in candidate]
                scores.append(assemble(plan, measurement(plan, tails, sampled), config, None))
            results.append(scores)
        return results


def _sampled(job: ScoringJob) -> list[tuple[float, ...]]:
    """Per completion, the engine's log-probs of its sampled ids where they apply to the ids scored (given
    with `completion_ids`), else ()."""
    if job.sampled_logprobs is None or job.completion_ids is None:
        return [()] * len(job.completions)
    return [lp if len(lp) <= len(ids) else () for lp, ids in zip(job.sampled_logprobs, job.completion_ids, strict=True)]


def candidate_sequences(
    prompt_ids: list[int], plan: CandidatePlan, sampled: tuple[float, ...] = ()
) -> list[tuple[list[int], int]]:
    """The teacher-forced (sequence, tail length) requests of one candidate: first its own tokens after the
    prompt, for their log-probs, less the `sampled` tail the engine already reported (so only the prefill,
    or nothing, is run); then every probe group's answers after [prompt ‖ completion[:cut] ‖ probe], in
    `probe_groups` order, as the naive reference path builds them."""
    own = len(plan.token_ids) - len(sampled)
    sequences = [(prompt_ids + plan.token_ids[:own], own)] if own > 0 else []
    for group in plan.probe_groups():
        head = prompt_ids + plan.token_ids[: group.cut] + plan.probe_ids
        sequences.extend((head + list(target), len(target)) for target in group.targets)
    return sequences


def measurement(plan: CandidatePlan, tails: Sequence[Any], sampled: tuple[float, ...] = ()) -> Measurement:
    """The engine's answers to `candidate_sequences`, as the scorer's raw measurement (no gradients)."""
    measured_own = len(plan.token_ids) > len(sampled)
    own = [*(tails[0].token_logprobs if measured_own else ()), *sampled]
    probes = tails[1:] if measured_own else tails
    log_p: dict[tuple[int, tuple[int, ...]], float] = {}
    keys = [(group.cut, target) for group in plan.probe_groups() for target in group.targets]
    for key, tail in zip(keys, probes, strict=True):
        log_p[key] = tail.logprob
    log_j, answer_log_j = probe_results(plan, log_p)
    return Measurement(log_j, None, torch.tensor(own, dtype=torch.float32), answer_log_j)


def check_measurable(config: RewardConfig, param: str = "suffix_probability") -> None:
    """Refuse reward settings the engine cannot measure (J's 'string' suffix probability)."""
    if config.suffix_probability != "token":
        raise InvalidRequest(
            "suffix_probability 'string' sums the probability of every token that starts with the suffix, "
            "which the engine's log-probability of the actual token cannot give; this server scores on its "
            "engine (scorer=engine): use suffix_probability 'token'",
            param=param,
        )
