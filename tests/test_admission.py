"""Admission in tokens (l2t_core/admission.py): the limits' arithmetic, without a model."""

from __future__ import annotations

import pytest

from l2t_core.admission import WORK_CONTEXTS, TokenLimits, admit_generation, admit_scoring, request_work
from l2t_core.engines import SamplingParams
from l2t_core.episodes import RenderedPrompt
from l2t_core.errors import InvalidRequest
from l2t_core.request import GenerationRequest
from l2t_core.search import BeamPruneConfig

LIMITS = TokenLimits.for_context(1000, request_tokens=10_000)


def request(n: int = 2, max_tokens: int = 100, strategy: str = "loglik", **beam: int) -> GenerationRequest:
    return GenerationRequest.build(
        RenderedPrompt("q"), SamplingParams(n=n, max_tokens=max_tokens), strategy, beam=beam or None
    )


def test_the_default_work_limit_is_stated_in_contexts() -> None:
    assert TokenLimits.for_context(8192).request_tokens == WORK_CONTEXTS * 8192 == 131_072


def test_a_sequence_longer_than_the_context_is_refused_naming_it() -> None:
    admit_generation(request(max_tokens=100), 900, LIMITS)  # exactly the context: admitted
    with pytest.raises(InvalidRequest, match="context is 1000 tokens, but the prompt is 901") as refused:
        admit_generation(request(max_tokens=100), 901, LIMITS)
    assert refused.value.code == "context_length_exceeded" and refused.value.param == "max_tokens"
    with pytest.raises(InvalidRequest) as prompt_alone:
        admit_generation(request(max_tokens=1), 5000, LIMITS)
    assert prompt_alone.value.param == "prompt"


def test_sampling_work_is_n_times_prompt_plus_max_tokens() -> None:
    assert request_work(request(n=8, max_tokens=100), 25) == 8 * 125
    admit_generation(request(n=20, max_tokens=400), 100, LIMITS)  # 20 × 500 = 10,000: the limit itself
    with pytest.raises(InvalidRequest, match="up to 10020 tokens") as refused:
        admit_generation(request(n=20, max_tokens=400), 101, LIMITS)
    assert refused.value.code == "too_large"


def test_a_beam_search_counts_its_re_read_prefixes() -> None:
    searching = request(n=4, max_tokens=64, strategy="beam_prune", max_episodes=3)
    config = searching.search
    assert isinstance(config, BeamPruneConfig) and config.token_budget == 256
    longest = min(3 * config.episode_tokens + config.answer_tokens, 256)
    assert request_work(searching, 50) == 2 * 3 * 4 * (50 + longest) + 256
    # far more than the same request sampled: every round reads every live prefix again
    assert request_work(searching, 50) > request_work(request(n=4, max_tokens=64), 50)


def test_scoring_is_bounded_per_sequence_and_in_total() -> None:
    admit_scoring(100, [900, 900], TokenLimits.for_context(1000, 2000))
    with pytest.raises(InvalidRequest, match="completion 1") as long_one:
        admit_scoring(100, [10, 901], LIMITS)
    assert long_one.value.param == "completions.1" and long_one.value.code == "context_length_exceeded"
    with pytest.raises(InvalidRequest, match="runs 2002 tokens") as total:
        admit_scoring(100, [900, 902], TokenLimits.for_context(1100, 2000))
    assert total.value.code == "too_large"
