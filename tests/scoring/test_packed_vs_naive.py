"""The packed production path must compute what the obviously-right naive path computes (float32)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from l2t_core.episodes import prompt_format
from l2t_core.reward import RewardConfig
from l2t_core.scoring import L2TScorer
from l2t_core.scoring.plan import first_statement
from tests.scoring.candidates import candidate_pool

# The naive reference runs one forward per episode prefix (the 22-episode candidate alone ~60 s on 2 cores):
# CI's extended stage, right after the default suite, on every build.
pytestmark = pytest.mark.extended

RTOL = 1e-4


def assert_close(packed: float | None, naive: float | None, what: str) -> None:
    if naive is None or packed is None:
        assert packed is None and naive is None, what
        return
    if naive == 0.0:
        assert packed == 0.0, what
        return
    assert abs(packed - naive) <= RTOL * abs(naive), f"{what}: packed {packed!r} vs naive {naive!r}"


def assert_same_scores(packed, naive) -> None:
    assert len(packed) == len(naive)
    for p, n in zip(packed, naive, strict=True):
        assert (p.answer, p.target, p.n_tokens) == (n.answer, n.target, n.n_tokens)
        assert len(p.episodes) == len(n.episodes)
        for ep, en in zip(p.episodes, n.episodes, strict=True):
            where = f"episode {en.index} of {n.text[:30]!r}"
            assert_close(ep.j_before, en.j_before, f"J_before, {where}")
            assert_close(ep.j_after, en.j_after, f"J_after, {where}")
            assert_close(ep.log_j_before, en.log_j_before, f"log J_before, {where}")
            assert_close(ep.log_j_after, en.log_j_after, f"log J_after, {where}")
            assert_close(ep.compression_penalty, en.compression_penalty, f"C, {where}")
        assert p.mean_logprob == pytest.approx(n.mean_logprob, rel=RTOL)


@pytest.fixture(scope="module")
def scorer(loaded_model):
    return L2TScorer(loaded_model.model, loaded_model.tokenizer)


@pytest.fixture(scope="module")
def pool(gsm8k):
    return candidate_pool(gsm8k[:12])


@pytest.fixture(scope="module")
def prompt(loaded_model, gsm8k):
    return prompt_format("episode").render(loaded_model.tokenizer, gsm8k[0]["question"]).text


@pytest.fixture(scope="module")
def reference_scores(scorer, pool, prompt, gsm8k):
    completions = list(pool.values())
    packed = scorer.score(prompt, completions, reference=gsm8k[0]["answer"])
    naive = scorer.score(prompt, completions, reference=gsm8k[0]["answer"], method="naive")
    return packed, naive


def test_pool_covers_the_shapes(scorer, pool, reference_scores):
    packed, _ = reference_scores
    by_name = dict(zip(pool, packed, strict=True))
    assert by_name["well_formed"].tagged and len(by_name["well_formed"].episodes) >= 2
    assert by_name["malformed"].tagged
    assert len(by_name["single_episode"].episodes) == 1
    assert len(by_name["twenty_plus"].episodes) >= 20
    assert not by_name["untagged"].tagged and len(by_name["untagged"].episodes) >= 2


def test_packed_equals_naive_with_reference(reference_scores):
    assert_same_scores(*reference_scores)


@pytest.mark.parametrize("target", ["self", "consensus"])
def test_packed_equals_naive_without_reference(scorer, pool, prompt, target):
    completions = [pool["well_formed"], pool["wrong_answer"], pool["no_answer"], pool["untagged"]]
    config = scorer.config.with_overrides(target=target)
    packed = scorer.score(prompt, completions, config=config)
    naive = scorer.score(prompt, completions, config=config, method="naive")
    assert_same_scores(packed, naive)
    if target == "self":
        assert packed[2].target is None and all(e.j_after == 0.0 for e in packed[2].episodes)
    else:
        assert {p.target for p in packed} == {packed[0].target}


def test_batched_rows_equal_one_row_per_forward(loaded_model, pool, prompt, gsm8k):
    completions = list(pool.values())
    one = L2TScorer(loaded_model.model, loaded_model.tokenizer, max_batch_tokens=0)
    many = L2TScorer(loaded_model.model, loaded_model.tokenizer, max_batch_tokens=1 << 20)
    assert_same_scores(
        many.score(prompt, completions, reference=gsm8k[0]["answer"]),
        one.score(prompt, completions, reference=gsm8k[0]["answer"]),
    )


def test_fitting_gains_telescope(reference_scores):
    for result in reference_scores[0]:
        if result.episodes:
            expected = result.episodes[-1].j_after - result.episodes[0].j_before
            assert result.total_fitting_gain == pytest.approx(expected, abs=1e-12)


def test_reward_is_gain_minus_beta_times_penalty(reference_scores, scorer):
    beta = scorer.config.beta
    for result in reference_scores[0]:
        for e in result.episodes:
            assert e.reward == pytest.approx(e.fitting_gain - beta * e.compression_penalty)
        assert result.score == pytest.approx(math.fsum(e.reward for e in result.episodes))


def test_spans_are_auditable(reference_scores):
    for result in reference_scores[0]:
        previous = 0
        for e in result.episodes:
            assert result.text[e.start : e.end] == e.text
            assert previous <= e.token_start <= e.token_end <= result.n_tokens
            previous = e.token_end


def test_correct_reasoning_gains_more_than_unrelated_text(scorer, loaded_model, gsm8k):
    unrelated = (
        "The weather was pleasant today.\n\nMany birds flew over the quiet lake.\n\n"
        "Later, the market closed early for the holiday."
    )
    for row in gsm8k[:8]:
        prompt = prompt_format("episode").render(loaded_model.tokenizer, row["question"]).text
        gold = "\n\n".join(candidate_pool([row])["untagged"].split("\n\n")[:-1])  # the steps, no answer line
        right, noise = scorer.score(prompt, [gold, unrelated], reference=row["answer"])
        assert right.total_fitting_gain > noise.total_fitting_gain, row["id"]


def test_drift_mode_packed_equals_naive(loaded_model, pool, prompt, gsm8k):
    model = copy.deepcopy(loaded_model.model)
    scorer = L2TScorer(model, loaded_model.tokenizer, RewardConfig(delta_mode="drift"))
    completions = [pool["well_formed"], pool["untagged"]]
    unchanged = scorer.score(prompt, completions, reference=gsm8k[0]["answer"])
    assert all(e.compression_penalty == 0.0 for r in unchanged for e in r.episodes)
    with torch.no_grad():
        down = model.get_decoder().layers[-1].mlp.down_proj
        down.weight.add_(1e-3 * torch.randn(down.weight.shape, generator=torch.Generator().manual_seed(0)))
    packed = scorer.score(prompt, completions, reference=gsm8k[0]["answer"])
    naive = scorer.score(prompt, completions, reference=gsm8k[0]["answer"], method="naive")
    assert all(e.compression_penalty > 0.0 for r in packed for e in r.episodes)
    assert_same_scores(packed, naive)


def test_multi_target_j_packed_equals_naive(scorer, pool, prompt):
    """Every pool answer probed at every cut and the answer cut, in one forward, equals one forward each."""
    completions = [pool["wrong_answer"], pool["single_episode"], pool["no_answer"]]  # short: the naive path is slow
    packed = scorer.score(prompt, completions, answer_probes=4)
    naive = scorer.score(prompt, completions, answer_probes=4, method="naive")
    assert_same_scores(packed, naive)
    answers = packed[0].answer_probes.answers
    assert len(answers) == 2  # the wrong answer and the right one; no answer adds nothing
    for p, n in zip(packed, naive, strict=True):
        assert p.answer_probes.cuts == n.answer_probes.cuts
        assert len(p.answer_probes.log_j) == len(p.episodes) + 2  # K+1 episode cuts, then the answer cut
        for row_p, row_n in zip(p.answer_probes.log_j, n.answer_probes.log_j, strict=True):
            for a, b in zip(row_p, row_n, strict=True):
                assert_close(a, b, "multi-target log J")
    # The path's own answer at its episode cuts is the paper's J (same probe, same tokens).
    own = answers.index(packed[0].answer)
    assert [math.exp(row[own]) for row in packed[0].answer_probes.at_episode_ends] == pytest.approx(
        [packed[0].episodes[0].j_before] + [e.j_after for e in packed[0].episodes], rel=RTOL
    )


def test_the_answer_cut_stops_before_the_path_writes_its_answer(scorer, pool):
    text = pool["single_episode"]  # the answer is written inside the only episode
    (plan,) = scorer.plan([text], None, scorer.config, answer_probes=2)
    prefix = scorer.tokenizer.decode(plan.token_ids[: plan.answer_cut])
    assert plan.answer_cut < plan.cuts[-1]
    assert first_statement(prefix, plan.answer, len(prefix)) is None
    assert first_statement(text, plan.answer, len(text)) is not None
    assert plan.answer in scorer.tokenizer.decode(plan.token_ids[plan.answer_cut : plan.answer_cut + 3])


def test_string_suffix_probability_packed_equals_naive_and_a_by_hand_sum(scorer, loaded_model, pool, prompt):
    """'string' scores the suffix as the mass of every token whose text starts with it, on both paths; the
    by-hand reference sums the softmax over the whole vocabulary after one forward over the final probe."""
    config = scorer.config.with_overrides(suffix_probability="string")
    completions = [pool["wrong_answer"], pool["single_episode"]]
    packed = scorer.score(prompt, completions, config=config, answer_probes=4)
    naive = scorer.score(prompt, completions, config=config, answer_probes=4, method="naive")
    assert_same_scores(packed, naive)
    for p, n in zip(packed, naive, strict=True):
        for row_p, row_n in zip(p.answer_probes.log_j, n.answer_probes.log_j, strict=True):
            for a, b in zip(row_p, row_n, strict=True):
                assert_close(a, b, "multi-target log J, string suffix")
    tokenizer = loaded_model.tokenizer
    (plan,) = scorer.plan([completions[0]], None, config)
    answer_ids = tokenizer(plan.target, add_special_tokens=False)["input_ids"]
    ids = scorer.prompt_ids(prompt) + plan.token_ids[: plan.cuts[-1]] + plan.probe_ids + answer_ids
    with torch.no_grad():
        logits = loaded_model.model(input_ids=torch.tensor([ids])).logits[0].float()
    log_p = torch.log_softmax(logits, -1)
    n_answer = len(answer_ids)
    answer = sum(float(log_p[len(ids) - n_answer - 1 + i, ids[len(ids) - n_answer + i]]) for i in range(n_answer))
    closing = [i for i in range(len(tokenizer)) if tokenizer.decode([i]).startswith("}")]
    by_hand = answer + float(torch.logsumexp(log_p[-1, closing], -1))
    assert_close(packed[0].episodes[-1].log_j_after, by_hand, "log J_K against the by-hand string probability")
    # The suffix's own token is one of the summed ones, so the string probability is never smaller.
    token = scorer.score(prompt, completions, answer_probes=4)
    for s, t in zip(packed, token, strict=True):
        assert all(a.log_j_after >= b.log_j_after - 1e-6 for a, b in zip(s.episodes, t.episodes, strict=True))


def test_string_suffix_needs_a_one_token_suffix(scorer, pool, prompt):
    config = scorer.config.with_overrides(suffix_probability="string", target_suffix="}.\n\nDone")
    with pytest.raises(ValueError, match="one-token suffix"):
        scorer.score(prompt, [pool["wrong_answer"]], config=config)


def test_fused_j_refuses_the_string_suffix(scorer, pool):
    """vLLM's prompt log-probs are each token's own, so fused J cannot sum over the suffix's tokens."""
    from l2t_core.scoring.fused_j import measure_fused_j

    config = scorer.config.with_overrides(suffix_probability="string")
    plans = scorer.plan([pool["wrong_answer"]], None, config)
    with pytest.raises(ValueError, match="torch scorer"):
        measure_fused_j(None, [1], plans)
