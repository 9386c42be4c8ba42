"""Adaptive sampling: the Beta stopping rule, and the pipeline drawing rounds until the vote is decided."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from l2t_core.engines import SamplingParams
from l2t_core.errors import InvalidRequest
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.request import GenerationRequest
from l2t_core.scoring import L2TScorer
from l2t_core.search import AdaptiveConfig, samples_needed, vote_decided
from l2t_core.search.adaptive import leader_probability
from tests.fakes import ScriptedEngine, tiny_causal_lm


@pytest.mark.parametrize("leader,runner_up", [(1, 0), (3, 0), (4, 1), (5, 3), (2, 2)])
def test_leader_probability_is_the_beta_tail(leader: int, runner_up: int) -> None:
    beta = torch.distributions.Beta(float(leader + 1), float(runner_up + 1))
    grid = torch.linspace(0.5, 1.0, 200001, dtype=torch.float64)[1:-1]
    density = beta.log_prob(grid.float()).double().exp()
    numeric = float(torch.trapezoid(density, grid))
    assert leader_probability(leader, runner_up) == pytest.approx(numeric, abs=1e-4)


def test_the_vote_rule_stops_when_the_vote_is_decided() -> None:
    config = AdaptiveConfig(round_size=2, stop="vote", confidence=0.95)
    unsure = [-1.0] * 8
    assert samples_needed(["7"] * 8, unsure, 8, config) == 4  # 3 agreeing: 0.94; 4 agreeing: 0.97
    assert samples_needed(["7", "8", "7", "7", "7", "7", "8", "7"], unsure, 8, config) == 8
    assert samples_needed([None] * 8, unsure, 8, config) == 8  # no answer decides nothing
    assert samples_needed(["7"] * 3, unsure, 3, config) == 3  # the last round is cut to N
    assert vote_decided(["7"] * 6 + ["8"], 0.95) and not vote_decided(["7"] * 5 + ["8"], 0.95)
    assert not vote_decided([], 0.5)


def test_the_confident_rule_stops_at_the_first_confident_round() -> None:
    config = AdaptiveConfig(round_size=2, stop="confident", min_logprob=-0.25)
    answers = ["7", "8", "9", "7", "7", "7", "7", "7"]
    assert samples_needed(answers, [-1.0, -0.9, -0.3, -0.2, -0.1, -1.0, -1.0, -1.0], 8, config) == 4
    assert samples_needed(answers, [-1.0] * 8, 8, config) == 8
    assert samples_needed(answers, [-0.25] + [-1.0] * 7, 8, config) == 2  # the threshold itself stops


def test_options_are_checked() -> None:
    assert AdaptiveConfig.from_request(SamplingParams(), {"confidence": 0.9, "round_size": None}).confidence == 0.9
    with pytest.raises(InvalidRequest, match="unknown adaptive option"):
        AdaptiveConfig.from_request(SamplingParams(), {"rounds": 3})
    with pytest.raises(InvalidRequest):
        AdaptiveConfig(confidence=1.0)
    with pytest.raises(InvalidRequest, match="stop"):
        AdaptiveConfig(stop="never")


AGREE = "3 + 4 = 7</episode_1>\nThe final answer is \\boxed{7}."
DISAGREE = [
    "3 + 4 = 7</episode_1>\nThe final answer is \\boxed{7}.",
    "3 + 4 = 8</episode_1>\nThe final answer is \\boxed{8}.",
]


@pytest.fixture(scope="module")
def scorer(loaded_model: Any) -> L2TScorer:
    return L2TScorer(tiny_causal_lm(loaded_model.tokenizer), loaded_model.tokenizer)


def test_the_pipeline_draws_rounds_until_decided(loaded_model: Any, scorer: L2TScorer) -> None:
    engine = ScriptedEngine(loaded_model.tokenizer, [AGREE])
    pipeline = ReasoningPipeline(engine, scorer, prompt_format="worked")
    params = SamplingParams(n=8, max_tokens=64, seed=5)
    result = pipeline.run(
        GenerationRequest.build(pipeline.prompt("What is 3 + 4?"), params, "adaptive", adaptive={"stop": "vote"})
    )
    assert result.samples_drawn == 4 and len(result.ranked) == 4
    assert [params.n for _, params in engine.calls] == [2, 2]
    assert [params.seed for _, params in engine.calls] == [5, 7]  # rounds never repeat each other's seed
    assert result.usage.completion_tokens == sum(r.generated_tokens for r in result.ranked)
    assert result.best.score.answer == "7" and result.strategy == "adaptive"


def test_an_undecided_vote_draws_all_n(loaded_model: Any, scorer: L2TScorer) -> None:
    engine = ScriptedEngine(loaded_model.tokenizer, DISAGREE)
    pipeline = ReasoningPipeline(engine, scorer, prompt_format="worked")
    params = SamplingParams(n=6, max_tokens=64, seed=0)
    options = {"select": "posterior_vote", "stop": "vote"}
    result = pipeline.run(
        GenerationRequest.build(pipeline.prompt("What is 3 + 4?"), params, "adaptive", adaptive=options)
    )
    assert result.samples_drawn == 6 and [p.n for _, p in engine.calls] == [2, 2, 2]
    assert all(r.score.answer_probes is not None for r in result.ranked)  # the selector's signal was measured


def test_the_confident_rule_reads_each_round_s_log_probs(loaded_model: Any, scorer: L2TScorer) -> None:
    engine = ScriptedEngine(loaded_model.tokenizer, [AGREE])
    pipeline = ReasoningPipeline(engine, scorer, prompt_format="worked")
    prompt = pipeline.prompt("What is 3 + 4?")
    sampled = pipeline.sample(prompt, SamplingParams(n=1, max_tokens=64))  # what a round samples: its ids
    mean_logprob = pipeline.score(prompt, sampled.texts, token_ids=sampled.token_ids).scores[0].mean_logprob
    params = SamplingParams(n=6, max_tokens=64)
    stops = pipeline.run(GenerationRequest.build(prompt, params, "adaptive", adaptive={"min_logprob": mean_logprob}))
    assert stops.samples_drawn == 2
    goes_on = pipeline.run(
        GenerationRequest.build(prompt, params, "adaptive", adaptive={"min_logprob": mean_logprob + 1e-3})
    )
    assert goes_on.samples_drawn == 6
    # the rounds' log-prob checks are scoring work too: more than the final scoring pass alone
    final = pipeline.score(prompt, ["<episode_1>" + AGREE] * 6).usage.scoring_tokens
    assert goes_on.usage.scoring_tokens > final


def test_adaptive_options_belong_to_adaptive(loaded_model: Any, scorer: L2TScorer) -> None:
    pipeline = ReasoningPipeline(ScriptedEngine(loaded_model.tokenizer, [AGREE]), scorer, prompt_format="worked")
    prompt = pipeline.prompt("What is 3 + 4?")
    with pytest.raises(InvalidRequest, match="'adaptive' settings need strategy 'adaptive'"):
        pipeline.run(
            GenerationRequest.build(
                prompt, SamplingParams(n=2, max_tokens=64), "majority", adaptive={"confidence": 0.9}
            )
        )
    with pytest.raises(InvalidRequest, match="served reranker"):
        pipeline.run(
            GenerationRequest.build(
                prompt, SamplingParams(n=2, max_tokens=64), "adaptive", adaptive={"select": "beam_prune"}
            )
        )
