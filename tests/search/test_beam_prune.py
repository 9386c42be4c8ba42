"""Beam-prune logic on a scripted engine (fixed episode texts, the real tokenizer; the real scorer on a tiny
random-weight model, so J values mean nothing and the logic runs in seconds): only finished
(or explicitly forced) paths come back, the token budget holds, every started path is accounted for
(finished, pruned or left unfinished), the prefill is applied once and a reference aims every J."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from l2t_core.engines import Cancelled, SamplingParams
from l2t_core.errors import InvalidRequest
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.request import GenerationRequest
from l2t_core.reward import RewardConfig
from l2t_core.scoring import L2TScorer
from l2t_core.search import BeamPruneConfig
from tests.fakes import ScriptedEngine, tiny_causal_lm

QUESTION = "What is 17 + 25?"
REWARD = RewardConfig()


def episode_script(episodes: int = 2, answer: str = "42") -> Any:
    """A model that writes `episodes` one-line steps, then its answer; asked after the probe, it answers."""

    def script(prompt: str, params: SamplingParams, row: int) -> str:
        if prompt.endswith(REWARD.probe):
            return f"{answer}}}"
        written = prompt.rsplit("<|im_start|>assistant", 1)[-1].count("</episode_")  # episodes of this reply
        if written < episodes:
            return f"17 + 25 step {written + 1} is fine.</episode_"
        return f"\nThe final answer is \\boxed{{{answer}}}."

    return script


@pytest.fixture(scope="module")
def scorer(loaded_model: Any) -> L2TScorer:
    return L2TScorer(tiny_causal_lm(loaded_model.tokenizer), loaded_model.tokenizer)


def pipeline_for(loaded_model: Any, scorer: L2TScorer, script: Any, prompt_format: str = "episode") -> Any:
    engine = ScriptedEngine(loaded_model.tokenizer, script)
    return ReasoningPipeline(engine, scorer, prompt_format=prompt_format), engine


def search(pipeline: ReasoningPipeline, n: int, max_tokens: int = 64, **beam: Any) -> Any:
    params = SamplingParams(n=n, max_tokens=max_tokens, temperature=0.8, top_p=0.95)
    return pipeline.run(GenerationRequest.build(pipeline.prompt(QUESTION), params, "beam_prune", beam=beam))


def test_paths_finish_with_their_answer_and_every_path_is_accounted_for(loaded_model, scorer) -> None:
    pipeline, engine = pipeline_for(loaded_model, scorer, episode_script(episodes=2))
    result = search(pipeline, n=4, max_tokens=200, keep_ratio=0.5, min_live=2, episode_tokens=24)
    found = result.search
    assert found.rounds == 3  # two closed episodes, then the answer (EOS)
    finished = [r for r in result.ranked if r.finish_reason == "stop"]
    assert len(finished) + found.pruned + found.unfinished == 4
    assert found.pruned == 2  # 4 live paths after round 1 -> keep_ratio 0.5 keeps 2, and min_live holds them
    for r in result.ranked:
        assert r.score.text.startswith("<episode_1>17 + 25 step 1") and r.score.text.count("<episode_1>") == 1
        assert "</episode_1>" in r.score.text and "</episode_2>" in r.score.text
        assert r.score.answer == "42" and r.score.tagged
    assert found.generated_tokens == result.usage.completion_tokens <= 4 * 200
    assert found.probe_tokens > 0 and result.usage.scoring_tokens > 0


def test_the_budget_for_one_step_forces_an_explicit_answer(loaded_model, scorer) -> None:
    pipeline, _ = pipeline_for(loaded_model, scorer, episode_script(episodes=3))
    result = search(pipeline, n=3, token_budget=36, episode_tokens=24, max_episodes=4)
    assert result.search.rounds == 1 and result.usage.completion_tokens <= 36
    (forced,) = result.ranked
    assert forced.finish_reason == "forced"  # never an unfinished prefix dressed up as an answer
    assert forced.score.text.endswith(f"{REWARD.probe}42{REWARD.target_suffix}") and forced.score.answer == "42"


def test_the_prefill_is_applied_once(loaded_model, scorer) -> None:
    pipeline, engine = pipeline_for(loaded_model, scorer, episode_script(episodes=1), prompt_format="short")
    result = search(pipeline, n=2, max_tokens=100)
    assert all(r.score.text.startswith("<episode_1>17 + 25 step 1") for r in result.ranked)
    assert all(prompt.count("<|im_start|>assistant\n<episode_1>") == 1 for prompt, _ in engine.calls)


def test_a_reference_aims_every_path(loaded_model, scorer) -> None:
    pipeline, _ = pipeline_for(loaded_model, scorer, episode_script(episodes=1))
    params = SamplingParams(n=2, max_tokens=100)
    result = pipeline.run(GenerationRequest.build(pipeline.prompt(QUESTION), params, "beam_prune", reference="41"))
    assert {r.score.target for r in result.ranked} == {"41"}


def test_cancel_stops_the_search(loaded_model, scorer) -> None:
    pipeline, _ = pipeline_for(loaded_model, scorer, episode_script())
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        pipeline.run(GenerationRequest.build(pipeline.prompt(QUESTION), SamplingParams(n=2), "beam_prune"), cancel)


def test_a_locked_in_probe_answer_exits_the_path_with_that_answer(loaded_model, scorer) -> None:
    # On the tiny random model J of a short answer lies between 1e-30 and 1: with the threshold at 1e-30
    # every live path exits after its first episode (DEER-like), closed with its probe answer and
    # reported as `exit`, never as `stop`; at 1.0 none does.
    pipeline, _ = pipeline_for(loaded_model, scorer, episode_script(episodes=3))
    full = search(pipeline, n=4, max_tokens=200, episode_tokens=24)
    early = search(pipeline, n=4, max_tokens=200, episode_tokens=24, exit_confidence=1e-30)
    assert early.search.rounds == 1 and early.search.exited == 4 and early.search.unfinished == 0
    assert {r.finish_reason for r in early.ranked} == {"exit"}
    for r in early.ranked:
        assert r.score.text.endswith(f"</episode_1>\n{REWARD.probe}42{REWARD.target_suffix}")
        assert r.score.answer == "42"
    assert early.usage.completion_tokens < full.usage.completion_tokens
    never = search(pipeline, n=4, max_tokens=200, episode_tokens=24, exit_confidence=1.0)  # J < 1
    assert never.search.exited == 0 and {r.finish_reason for r in never.ranked} == {"stop"}


def test_pool_value_scores_live_paths_against_their_probe_answers(loaded_model, scorer) -> None:
    pipeline, _ = pipeline_for(loaded_model, scorer, episode_script(episodes=2))
    result = search(pipeline, n=4, max_tokens=200, keep_ratio=0.5, min_live=2, episode_tokens=24, value="pool")
    found = result.search
    assert found.rounds == 3 and found.pruned == 2
    assert len(result.ranked) + found.pruned + found.unfinished == 4
    for r in result.ranked:
        assert r.finish_reason == "stop" and r.score.answer == "42"
        assert r.score.answer_probes is not None and r.score.answer_probes.answers == ("42",)
    # The scorer probes the answers it is given, not only those the completions state (none, here).
    prompt = pipeline.scorer_prompt(pipeline.prompt(QUESTION))
    (partial,) = scorer.score(
        prompt, ["<episode_1>Add the tens first.</episode_1>\n"], answer_probes=8, pool_answers=["41"]
    )
    assert partial.answer is None and partial.answer_probes is not None and partial.answer_probes.answers == ("41",)


def test_the_budget_rule_lives_in_one_place() -> None:
    config = BeamPruneConfig.from_request(SamplingParams(n=4, max_tokens=50), {})
    assert config.width == 4 and config.token_budget == 200 and config.episode_tokens == BeamPruneConfig.episode_tokens
    tight = BeamPruneConfig.from_request(SamplingParams(n=2, max_tokens=30), {"token_budget": 40})
    assert tight.token_budget == 40 and tight.episode_tokens == 40 - BeamPruneConfig.answer_tokens


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"width": 0}, "width"),
        ({"keep_ratio": 0.0}, "keep_ratio"),
        ({"token_budget": 10}, "token_budget"),
        ({"partial_target": "oracle"}, "partial_target"),
        ({"value": "self"}, "value"),
        ({"exit_confidence": 0.0}, "exit_confidence"),
        ({"exit_confidence": 1.5}, "exit_confidence"),
    ],
)
def test_bad_settings_are_the_callers_fault(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        BeamPruneConfig(**settings)
