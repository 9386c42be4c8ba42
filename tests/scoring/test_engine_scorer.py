"""Scoring on the generation engine (scorer=engine): J and log-probs come from the engine's teacher-forced
sequences, and must equal what the torch scorer measures on the same weights and the same token ids; the
compression penalty is absent (None, never 0), rewards exist only at β = 0, and the strategies that rank
by the L2T path score are refused by name. The transformers engine is the CPU twin of vLLM's path; the
tiny random model keeps this in seconds (vLLM's own agreement is in tests/engines/test_vllm_fused_j.py)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from l2t_core.engines import SamplingParams
from l2t_core.engines.transformers_engine import TransformersEngine
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT, prompt_format
from l2t_core.errors import InvalidRequest
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.request import GenerationRequest
from l2t_core.reward import RewardConfig
from l2t_core.scoring import COMPRESSION_ABSENT, L2TScorer
from l2t_core.scoring.engine_scorer import EngineScorer

QUESTION = "What is 3 + 4?"
COMPLETIONS = [
    "<episode_1>3 + 4 = 7</episode_1>\nThe final answer is \\boxed{7}.",
    "<episode_1>Three and four.</episode_1>\n<episode_2>It is 8.</episode_2>\nThe final answer is \\boxed{8}.",
    "No tags here, just 7.",
]
ABS = 1e-5  # float32 forwards of different shapes (packed rows vs one sequence each)


@pytest.fixture(scope="module")
def engine(scorer_model: Any) -> Iterator[TransformersEngine]:
    built = TransformersEngine(scorer_model, threading.Lock())
    yield built
    built.close()


@pytest.fixture(scope="module")
def prompt_text(scorer_model: Any) -> str:
    return prompt_format(DEFAULT_PROMPT_FORMAT).render(scorer_model.tokenizer, QUESTION).text


def assert_same_measurements(engine_side: Any, torch_side: Any) -> None:
    for got, want in zip(engine_side, torch_side, strict=True):
        assert (got.answer, got.target, got.n_tokens, got.token_ids) == (
            want.answer,
            want.target,
            want.n_tokens,
            want.token_ids,
        )
        assert got.mean_logprob == pytest.approx(want.mean_logprob, abs=ABS)
        assert got.token_logprobs == pytest.approx(want.token_logprobs, abs=ABS)
        assert len(got.episodes) == len(want.episodes)
        for e, w in zip(got.episodes, want.episodes, strict=True):
            assert (e.token_start, e.token_end) == (w.token_start, w.token_end)
            for field in ("log_j_before", "log_j_after"):
                a, b = getattr(e, field), getattr(w, field)
                assert (a is None) == (b is None)
                if a is not None:
                    assert a == pytest.approx(b, abs=ABS)
            assert e.fitting_gain == pytest.approx(w.fitting_gain, abs=ABS, rel=1e-4)
        if want.answer_probes is not None:
            assert got.answer_probes is not None
            assert got.answer_probes.answers == want.answer_probes.answers
            assert got.answer_probes.cuts == want.answer_probes.cuts
            for row, expected in zip(got.answer_probes.log_j, want.answer_probes.log_j, strict=True):
                assert row == pytest.approx(expected, abs=ABS)


def test_the_engine_measures_what_the_torch_scorer_measures(engine, scorer_model, prompt_text) -> None:
    torch_scores = L2TScorer(scorer_model.model, scorer_model.tokenizer).score(
        prompt_text, COMPLETIONS, reference="7", answer_probes=4
    )
    engine_scores = EngineScorer(engine, scorer_model.tokenizer).score_many(
        [_job(prompt_text, COMPLETIONS, reference="7", answer_probes=4)]
    )[0]
    assert_same_measurements(engine_scores, torch_scores)
    assert any(s.answer_probes is not None for s in engine_scores)


def test_the_compression_penalty_is_absent_not_zero_and_rewards_exist_only_at_beta_zero(
    engine, scorer_model, prompt_text
):
    scorer = EngineScorer(engine, scorer_model.tokenizer)
    (with_beta,) = scorer.score_many([_job(prompt_text, COMPLETIONS, "7", RewardConfig(beta=0.6))])
    for candidate in with_beta:
        assert candidate.score is None
        assert all(e.compression_penalty is None and e.reward is None for e in candidate.episodes)
        with pytest.raises(ValueError, match="scorer=engine"):
            _ = candidate.measured_score
    (at_zero,) = scorer.score_many([_job(prompt_text, COMPLETIONS, "7", RewardConfig(beta=0.0))])
    torch_zero = L2TScorer(scorer_model.model, scorer_model.tokenizer, RewardConfig(beta=0.0)).score(
        prompt_text, COMPLETIONS, reference="7"
    )
    for candidate, want in zip(at_zero, torch_zero, strict=True):
        assert all(e.compression_penalty is None and e.reward == e.fitting_gain for e in candidate.episodes)
        assert candidate.score == pytest.approx(want.score, abs=ABS)
    # reweighing a cached engine-side score keeps the same rule
    assert with_beta[0].reweighed(0.0, "sum").score == pytest.approx(
        math.fsum(e.fitting_gain for e in with_beta[0].episodes)
    )
    assert at_zero[0].reweighed(0.3, "sum").score is None
    assert "gradient" in COMPRESSION_ABSENT


def test_the_string_suffix_probability_is_refused_by_name(engine, scorer_model, prompt_text) -> None:
    scorer = EngineScorer(engine, scorer_model.tokenizer)
    with pytest.raises(InvalidRequest, match="suffix_probability") as refused:
        scorer.score_many([_job(prompt_text, COMPLETIONS, "7", RewardConfig(suffix_probability="string"))])
    assert refused.value.param == "suffix_probability"


@pytest.fixture(scope="module")
def pipeline(scorer_model: Any) -> Iterator[ReasoningPipeline]:
    built = ReasoningPipeline.from_model(scorer_model, "transformers", scoring="engine")
    yield built
    built.close()


def _request(pipeline: ReasoningPipeline, strategy: str, beta: float = 0.6, **extra: Any) -> GenerationRequest:
    prompt = pipeline.prompt(QUESTION)
    return GenerationRequest.build(
        prompt, SamplingParams(n=3, max_tokens=10, seed=0), strategy, RewardConfig(beta=beta), **extra
    )


@pytest.mark.parametrize("strategy", ["loglik", "confidence", "majority", "posterior_vote", "first", "adaptive"])
def test_strategies_that_read_j_and_log_probs_run(pipeline: ReasoningPipeline, strategy: str) -> None:
    result = pipeline.run(_request(pipeline, strategy))
    assert result.ranked and all(r.score.score is None for r in result.ranked)
    assert pipeline.compression_absent == COMPRESSION_ABSENT and pipeline.device == "engine:transformers"


@pytest.mark.parametrize("strategy", ["best_of_n", "weighted_vote", "beam_prune", "l2t_best"])
def test_strategies_that_need_the_compression_penalty_are_refused_by_name(pipeline, strategy) -> None:
    with pytest.raises(InvalidRequest, match="compression penalty") as refused:
        pipeline.run(_request(pipeline, strategy))
    assert refused.value.param == "strategy"
    assert repr(_canonical(strategy)) in str(refused.value)


def test_at_beta_zero_the_path_score_is_the_fitting_gain_and_best_of_n_runs(pipeline: ReasoningPipeline) -> None:
    result = pipeline.run(_request(pipeline, "best_of_n", beta=0.0))
    scores = [r.score.measured_score for r in result.ranked]
    assert scores == sorted(scores, reverse=True)
    for r in result.ranked:  # the default aggregation sums the episode rewards, here ΔI_k alone
        assert r.score.measured_score == pytest.approx(math.fsum(e.fitting_gain for e in r.score.episodes), abs=1e-12)


def test_sampled_ids_are_scored_as_they_are(pipeline: ReasoningPipeline, scorer_model: Any) -> None:
    prompt = pipeline.prompt(QUESTION)
    pool = pipeline.sample(prompt, SamplingParams(n=2, max_tokens=10, seed=3))
    scored = pipeline.score(prompt, pool.texts, reference="7", token_ids=pool.token_ids)
    torch_scorer = L2TScorer(scorer_model.model, scorer_model.tokenizer)
    want = torch_scorer.score_many(
        [_job(prompt.text, pool.texts, "7", prompt_ids=prompt.token_ids, completion_ids=pool.token_ids)]
    )[0]
    assert [s.token_ids for s in scored.scores] == [tuple(ids) for ids in pool.token_ids]
    assert_same_measurements(scored.scores, want)


def test_engine_scoring_takes_no_scorer_model_and_only_known_scorers(scorer_model: Any) -> None:
    with pytest.raises(ValueError, match="takes no scorer model"):
        ReasoningPipeline.from_model(scorer_model, scoring="engine", scorer_model=scorer_model)
    with pytest.raises(ValueError, match="unknown scorer"):
        ReasoningPipeline.from_model(scorer_model, scoring="gpu")


def _canonical(name: str) -> str:
    from l2t_core.search import get_strategy

    return get_strategy(name).name


def _job(prompt, completions, reference=None, config=None, answer_probes=0, prompt_ids=None, completion_ids=None):
    from l2t_core.scoring import ScoringJob

    return ScoringJob(
        prompt,
        list(completions),
        reference,
        config,
        answer_probes=answer_probes,
        prompt_ids=tuple(prompt_ids) if prompt_ids else None,
        completion_ids=[tuple(i) for i in completion_ids] if completion_ids is not None else None,
    )


def test_log_probs_the_engine_reported_while_sampling_are_read_not_measured_again(engine, scorer_model, prompt_text):
    tokenizer = scorer_model.tokenizer
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    ids = [tuple(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in COMPLETIONS]
    torch_side = L2TScorer(scorer_model.model, tokenizer).score_many(
        [_job(prompt_text, COMPLETIONS, "7", prompt_ids=prompt_ids, completion_ids=ids)]
    )[0]
    # as vLLM reports them: the sampled ids' log-probs, not the prefill's (here its first 3 tokens)
    sampled = [want.token_logprobs[3:] for want in torch_side]
    measured, reported = EngineScorer(engine, tokenizer), EngineScorer(engine, tokenizer)
    job = _job(prompt_text, COMPLETIONS, "7", prompt_ids=prompt_ids, completion_ids=ids)
    (from_engine,) = measured.score_many([job])
    (from_sampling,) = reported.score_many([replace(job, sampled_logprobs=sampled)])
    assert_same_measurements(from_sampling, torch_side)
    assert_same_measurements(from_engine, torch_side)
    # only the first 3 tokens are run after the prompt (once where candidates share them), not each candidate
    heads = {i[:3] for i in ids}
    saved = sum(len(prompt_ids) + len(i) for i in set(ids)) - sum(len(prompt_ids) + 3 for _ in heads)
    assert measured.computed_tokens - reported.computed_tokens == saved


def test_the_reranker_a_request_ends_with_is_refused_too(pipeline: ReasoningPipeline) -> None:
    with pytest.raises(InvalidRequest, match="'best_of_n'") as refused:
        pipeline.run(_request(pipeline, "adaptive", adaptive={"select": "best_of_n"}))
    assert refused.value.param == "strategy"
    pipeline.run(_request(pipeline, "adaptive", beta=0.0, adaptive={"select": "best_of_n"}))


def test_a_refusal_comes_before_anything_is_streamed(pipeline: ReasoningPipeline) -> None:
    told: list[str] = []
    with pytest.raises(InvalidRequest, match="compression penalty"):
        pipeline.stream(_request(pipeline, "best_of_n"), lambda _candidate, text: told.append(text))
    assert told == []


def test_a_probe_past_the_context_is_the_clients_error_before_the_engine_runs(engine, scorer_model, prompt_text):
    scorer = EngineScorer(engine, scorer_model.tokenizer, context_length=40)
    with pytest.raises(InvalidRequest, match="exceeds the model's context of 40") as refused:
        scorer.score_many([_job(prompt_text, COMPLETIONS, "7")])
    assert refused.value.code == "context_length_exceeded" and scorer.computed_tokens == 0


def test_log_probs_are_carried_from_the_sample_to_the_scorer_only_when_they_cover_the_sampled_ids() -> None:
    from l2t_core.episodes import RenderedPrompt
    from l2t_core.result import Sample, SampledPool

    prompt = RenderedPrompt("q", "q")
    whole = SampledPool(
        prompt, [Sample("a", 2, "stop", (5, 6, 7), (-0.1, -0.2)), Sample("b", 1, "stop", (5, 8), (-0.3,))], 1, 0.0
    )
    assert whole.sampled_logprobs == [(-0.1, -0.2), (-0.3,)]
    partial = SampledPool(
        prompt, [Sample("a", 2, "stop", (5, 6, 7), (-0.1, -0.2)), Sample("b", 1, "stop", (5, 8))], 1, 0.0
    )
    assert partial.sampled_logprobs is None
