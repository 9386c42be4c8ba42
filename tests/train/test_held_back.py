"""The held-back evaluation's arithmetic on scripted answers (fixed texts, real tokenizer): greedy pass@1,
majority@k, single-sample accuracy, lengths and episodes, and the eval-only record."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from l2t_core.engines import SamplingParams
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.scoring import L2TScorer
from l2t_core.train.data import Example
from l2t_core.train.held_back import evaluate_held_back
from tests.fakes import ScriptedEngine, tiny_causal_lm

QUESTIONS = [Example("a", "What is 2 + 3?", "5"), Example("b", "What is 4 + 4?", "8")]
GREEDY = {  # the greedy answer: right for the first question, wrong for the second
    "2 + 3": "2 + 3 = 5</episode_1>\nThe final answer is \\boxed{5}.",
    "4 + 4": "4 + 4</episode_1>\n<episode_2>is 9</episode_2>\nThe final answer is \\boxed{9}.",
}
SAMPLED = {  # 4 samples each: question a votes 5 (2 of 4, one unanswered), b votes 9 over 8 (2 to 1)
    "2 + 3": ["\\boxed{5}", "\\boxed{6}", "no answer", "so \\boxed{5}"],
    "4 + 4": ["\\boxed{9}", "\\boxed{8}", "\\boxed{9}", "\\boxed{7}"],
}


def script(prompt: str, params: SamplingParams, row: int) -> str:
    key = "2 + 3" if "2 + 3" in prompt.split("user")[-1] else "4 + 4"
    return GREEDY[key] if params.temperature == 0 else SAMPLED[key][row]


@pytest.fixture()
def pipeline(loaded_model: Any) -> ReasoningPipeline:
    scorer = L2TScorer(tiny_causal_lm(loaded_model.tokenizer), loaded_model.tokenizer)
    return ReasoningPipeline(ScriptedEngine(loaded_model.tokenizer, script), scorer, prompt_format="worked")


def test_greedy_and_majority_accuracy(pipeline: ReasoningPipeline, loaded_model: Any) -> None:
    result = evaluate_held_back(pipeline, QUESTIONS, max_new_tokens=64, samples=4)
    assert result.greedy_accuracy.mean == 0.5 and result.greedy_accuracy.n == 2
    assert result.greedy_episodes == 1.5  # one episode, then two
    assert result.greedy_finished == 1.0
    assert result.majority_accuracy is not None and result.majority_accuracy.mean == 0.5  # a right, b wrong
    assert result.sample_accuracy is not None and result.sample_accuracy.mean == pytest.approx((2 / 4 + 1 / 4) / 2)
    # each answer's tokens and the EOS that ended it (counted, as vLLM counts it)
    tokens = [len(loaded_model.tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in GREEDY.values()]
    assert result.greedy_tokens == pytest.approx(sum(tokens) / 2)
    assert result.greedy_tokens_each == tuple(float(t) for t in tokens)  # per question, for paired token diffs
    assert len(result.sample_tokens_each) == 2
    assert statistics.fmean(result.sample_tokens_each) == pytest.approx(result.sample_tokens)
    metrics = result.metrics()
    assert metrics["eval_maj4_accuracy"] == 0.5 and metrics["eval_accuracy_low"] <= 0.5 <= metrics["eval_accuracy_high"]


def test_greedy_only_when_no_samples(pipeline: ReasoningPipeline) -> None:
    result = evaluate_held_back(pipeline, QUESTIONS, max_new_tokens=64, samples=0)
    assert result.majority_accuracy is None and "eval_maj0_accuracy" not in result.metrics()
    with pytest.raises(ValueError, match="no held-back questions"):
        evaluate_held_back(pipeline, [], max_new_tokens=64)
