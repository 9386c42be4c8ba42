"""Accuracy of a policy on the trainer's held-back questions: greedy pass@1 and majority@k of sampled
answers, each with a 95% bootstrap interval, plus the response lengths that say whether training made
answers shorter. The trainer runs it at its eval intervals; `python -m l2t_core.train --eval-only` runs it
on any checkpoint (or the initial model), so a run's curve and a comparison between runs measure the same
questions through the same serving pipeline (prompt format, prefill, answer extraction)."""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from l2t_core.answers import answers_match, extract_answer
from l2t_core.engines import SamplingParams
from l2t_core.episodes import parse_episodes
from l2t_core.eval.stats import Estimate, bootstrap_mean
from l2t_core.pipeline import ReasoningPipeline, Sample
from l2t_core.search.rerank import vote_order
from l2t_core.train.data import Example

# Questions in flight at once: the engine batches concurrent unseeded requests into one generate call.
IN_FLIGHT = 16


@dataclass(frozen=True)
class HeldBackEvaluation:
    greedy_accuracy: Estimate
    greedy_tokens: float  # mean response tokens of the greedy answers
    greedy_episodes: float  # mean number of episodes in them
    greedy_finished: float  # share that stopped before the token limit
    samples: int  # k of majority@k (0: not measured)
    majority_accuracy: Estimate | None
    sample_accuracy: Estimate | None  # mean correctness of single samples (pass@1 at the rollout temperature)
    sample_tokens: float | None
    greedy_correct: tuple[float, ...] = ()  # per question, in order: what paired comparisons between runs need
    majority_correct: tuple[float, ...] = ()
    greedy_tokens_each: tuple[float, ...] = ()  # per question: the greedy answer's tokens
    sample_tokens_each: tuple[float, ...] = ()  # per question: the mean tokens of its sampled answers

    def metrics(self, prefix: str = "eval_") -> dict[str, Any]:
        """Flat numbers for metrics.jsonl / TensorBoard (intervals as _low/_high)."""
        out: dict[str, Any] = {
            f"{prefix}questions": self.greedy_accuracy.n,
            f"{prefix}accuracy": self.greedy_accuracy.mean,
            f"{prefix}accuracy_low": self.greedy_accuracy.low,
            f"{prefix}accuracy_high": self.greedy_accuracy.high,
            f"{prefix}response_tokens": self.greedy_tokens,
            f"{prefix}episodes": self.greedy_episodes,
            f"{prefix}finished": self.greedy_finished,
        }
        if self.majority_accuracy is not None and self.sample_accuracy is not None:
            k = self.samples
            out |= {
                f"{prefix}maj{k}_accuracy": self.majority_accuracy.mean,
                f"{prefix}maj{k}_accuracy_low": self.majority_accuracy.low,
                f"{prefix}maj{k}_accuracy_high": self.majority_accuracy.high,
                f"{prefix}sample_accuracy": self.sample_accuracy.mean,
                f"{prefix}sample_response_tokens": self.sample_tokens,
            }
        return out

    def per_question(self, prefix: str = "eval_") -> dict[str, list[float]]:
        """The per-question results, in question order, that paired comparisons between two evaluations
        of the same questions need (`python -m l2t_core.train.report`)."""
        return {
            f"{prefix}correct": list(self.greedy_correct),
            f"{prefix}maj{self.samples}_correct": list(self.majority_correct),
            f"{prefix}tokens_each": list(self.greedy_tokens_each),
            f"{prefix}sample_tokens_each": list(self.sample_tokens_each),
        }


def evaluate_held_back(
    pipeline: ReasoningPipeline,
    questions: list[Example],
    max_new_tokens: int,
    samples: int = 0,
    temperature: float = SamplingParams.temperature,
    top_p: float = SamplingParams.top_p,
    seed: int = 0,
) -> HeldBackEvaluation:
    """Greedy answers to every question and, when `samples` ≥ 1, majority@samples at the rollout temperature.

    Requests go to the engine `IN_FLIGHT` at a time so its micro-batcher runs them as one batch; they are
    unseeded for that reason (seeded requests are never batched), so sampled numbers vary run to run by
    sampling noise, which the intervals cover."""
    if not questions:
        raise ValueError("no held-back questions to evaluate")
    greedy = _answer_all(pipeline, questions, SamplingParams(n=1, max_tokens=max_new_tokens, temperature=0.0))
    greedy_correct = [_correct(pool[0], q) for pool, q in zip(greedy, questions, strict=True)]
    firsts = [pool[0] for pool in greedy]
    majority = sample_accuracy = sample_tokens = None
    majority_correct: list[float] = []
    lengths: list[float] = []  # per question: the mean tokens of its sampled answers
    if samples >= 1:
        params = SamplingParams(n=samples, max_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
        sampled = _answer_all(pipeline, questions, params)
        single_correct = []
        for pool, question in zip(sampled, questions, strict=True):
            answers = [extract_answer(s.text) for s in pool]
            winner = vote_order(answers, {i: 1.0 for i in range(len(pool))})[0]
            majority_correct.append(float(answers_match(answers[winner], question.answer)))
            single_correct.append(statistics.fmean(_correct(s, question) for s in pool))
            lengths.append(statistics.fmean(s.n_tokens for s in pool))
        majority = bootstrap_mean(majority_correct, seed)
        sample_accuracy = bootstrap_mean(single_correct, seed)
        sample_tokens = statistics.fmean(lengths)
    return HeldBackEvaluation(
        greedy_accuracy=bootstrap_mean(greedy_correct, seed),
        greedy_tokens=statistics.fmean(s.n_tokens for s in firsts),
        greedy_episodes=statistics.fmean(len(parse_episodes(s.text).episodes) for s in firsts),
        greedy_finished=statistics.fmean(s.finish_reason == "stop" for s in firsts),
        samples=samples,
        majority_accuracy=majority,
        sample_accuracy=sample_accuracy,
        sample_tokens=sample_tokens,
        greedy_correct=tuple(greedy_correct),
        majority_correct=tuple(majority_correct),
        greedy_tokens_each=tuple(float(s.n_tokens) for s in firsts),
        sample_tokens_each=tuple(lengths),
    )


def _answer_all(pipeline: ReasoningPipeline, questions: list[Example], params: SamplingParams) -> list[list[Sample]]:
    def one(question: Example) -> list[Sample]:
        return pipeline.sample(pipeline.prompt(question.question), params).samples

    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        return list(pool.map(one, questions))


def _correct(sample: Sample, question: Example) -> float:
    return float(answers_match(extract_answer(sample.text), question.answer))
