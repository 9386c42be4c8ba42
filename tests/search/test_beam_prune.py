"""Beam-prune on the real model: only finished (or explicitly forced) paths come back, the token budget
holds, and every started path is accounted for (finished, pruned or left unfinished)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from l2t_core.engines import Cancelled, SamplingParams
from l2t_core.episodes.prompt import SHORT_EPISODE_PROMPT, PromptFormat
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.reward import RewardConfig
from l2t_core.search import BeamPruneConfig, beam_prune

QUESTION = "What is 17 + 25?"
SAMPLING = SamplingParams(temperature=0.8, top_p=0.95)


@pytest.fixture(scope="module")
def pipeline(loaded_model: Any) -> Iterator[ReasoningPipeline]:
    pipe = ReasoningPipeline.from_model(loaded_model)
    yield pipe
    pipe.engine.close()


@pytest.fixture(scope="module")
def prompt(pipeline: ReasoningPipeline) -> str:
    return pipeline.render(PromptFormat(SHORT_EPISODE_PROMPT).messages(QUESTION))


def check_returned(result: Any, reward: RewardConfig) -> None:
    assert result.ranked, "a search always returns at least one answer path"
    for path, score in result.ranked:
        assert path.finish_reason in ("stop", "forced")
        if path.finish_reason == "forced":
            assert path.text.endswith(f"{reward.probe}{path.probe_answer}{reward.target_suffix}")
            assert score.answer == path.probe_answer


def test_search_respects_the_budget_and_returns_only_finished_paths(pipeline: ReasoningPipeline, prompt: str) -> None:
    config = BeamPruneConfig(width=4, keep_ratio=0.5, min_live=1, episode_tokens=24, max_episodes=4, token_budget=300)
    reward = RewardConfig()
    result = beam_prune(pipeline.engine, pipeline.scorer, prompt, SAMPLING, config, reward)
    assert result.generated_tokens <= 300
    assert 1 <= result.rounds <= 4
    check_returned(result, reward)
    finished = [p for p, _ in result.ranked if p.finish_reason == "stop"]
    assert len(finished) + result.pruned + result.unfinished == config.width
    assert result.scoring_tokens > 0 and result.probe_tokens > 0


def test_a_budget_for_one_step_forces_an_explicit_answer(pipeline: ReasoningPipeline, prompt: str) -> None:
    config = BeamPruneConfig(width=3, episode_tokens=24, answer_tokens=12, token_budget=36, max_episodes=4)
    reward = RewardConfig()
    result = beam_prune(pipeline.engine, pipeline.scorer, prompt, SAMPLING, config, reward)
    assert result.generated_tokens <= 36
    assert result.rounds == 1
    check_returned(result, reward)
    assert len(result.ranked) == 1


def test_one_round_never_returns_a_prefix_as_an_answer(pipeline: ReasoningPipeline, prompt: str) -> None:
    config = BeamPruneConfig(width=2, episode_tokens=8, max_episodes=1, partial_target="consensus")
    reward = RewardConfig()
    result = beam_prune(pipeline.engine, pipeline.scorer, prompt, SAMPLING, config, reward)
    check_returned(result, reward)  # 8 tokens rarely end a text: the answer is forced, not the prefix


def test_cancel_stops_the_search(pipeline: ReasoningPipeline, prompt: str) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        beam_prune(pipeline.engine, pipeline.scorer, prompt, SAMPLING, BeamPruneConfig(width=2), cancel=cancel)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"width": 0}, "width"),
        ({"keep_ratio": 0.0}, "keep_ratio"),
        ({"token_budget": 10}, "token_budget"),
        ({"partial_target": "oracle"}, "partial_target"),
    ],
)
def test_bad_settings_are_rejected(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BeamPruneConfig(**settings)
