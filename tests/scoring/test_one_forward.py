"""One forward per batch: several prompts' candidates and all their probes measured in one packed row."""

from __future__ import annotations

import pytest
import torch

from l2t_core.episodes import prompt_format
from l2t_core.scoring import L2TScorer, ScoringJob, assemble
from l2t_core.scoring.packed import measure_packed, pack_rows
from l2t_core.scoring.split_attention import using_split_attention
from tests.scoring.candidates import candidate_pool
from tests.scoring.test_packed_vs_naive import assert_same_scores


@pytest.fixture(scope="module")
def scorer(loaded_model):
    return L2TScorer(loaded_model.model, loaded_model.tokenizer)


@pytest.fixture(scope="module")
def jobs(loaded_model, gsm8k):
    """Two GSM8K prompts, each with candidates of every shape the parser meets."""
    out = []
    for i in (0, 1):
        row = gsm8k[i]
        prompt = prompt_format("episode").render(loaded_model.tokenizer, row["question"]).text
        out.append(ScoringJob(prompt, list(candidate_pool(gsm8k[i : i + 12]).values()), reference=row["answer"]))
    return out


class ForwardCounter:
    """Counts the decoder's forward calls (the packed path runs the decoder, never the LM head module)."""

    def __init__(self, model) -> None:
        self.calls = 0
        self.rows: list[int] = []
        self._handle = model.get_decoder().register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, _module, _args, kwargs) -> None:
        self.calls += 1
        self.rows.append(int(kwargs["input_ids"].shape[1]))

    def close(self) -> None:
        self._handle.remove()


def test_several_prompts_in_one_forward_equal_naive(scorer, loaded_model, jobs):
    small = [ScoringJob(j.prompt, [j.completions[0], j.completions[4]], j.reference) for j in jobs]
    counter = ForwardCounter(loaded_model.model)
    try:
        packed = scorer.score_many(small)
    finally:
        counter.close()
    assert counter.calls == 1
    naive = scorer.score_many(small, method="naive")
    for p, n in zip(packed, naive, strict=True):
        assert_same_scores(p, n)


@pytest.fixture(scope="module")
def together(scorer, loaded_model, jobs):
    """Both jobs scored in one `score_many` call, once for the module (scores, decoder forwards it ran):
    the roomy side that the per-prompt, small-budget and per-job-config checks below compare against."""
    counter = ForwardCounter(loaded_model.model)
    try:
        scores = scorer.score_many(jobs)
    finally:
        counter.close()
    return scores, counter.calls


def test_score_many_equals_one_score_per_prompt(scorer, jobs, together):
    scores_together, calls = together
    assert calls == 1  # both prompts, 14 candidates, all their probes
    for job, scores in zip(jobs, scores_together, strict=True):
        assert_same_scores(scores, scorer.score(job.prompt, job.completions, reference=job.reference))


def test_a_small_token_budget_splits_rows_and_repeats_prompts(loaded_model, jobs, together):
    budget = 600
    tight = L2TScorer(loaded_model.model, loaded_model.tokenizer, max_batch_tokens=budget)
    counter = ForwardCounter(loaded_model.model)
    try:
        split = tight.score_many(jobs)
    finally:
        counter.close()
    assert counter.calls > 2
    # A row overflows the budget only when a single candidate (with its prompt) does.
    assert sorted(counter.rows)[len(counter.rows) // 2] <= budget
    for a, b in zip(split, together[0], strict=True):  # the default budget: one row
        assert_same_scores(a, b)


def test_jobs_keep_their_own_configs(scorer, jobs, together):
    self_target = scorer.config.with_overrides(target="self", beta=2.0)
    other_rank = scorer.config.with_overrides(rank_ratio=0.1)
    mixed = [
        ScoringJob(jobs[0].prompt, jobs[0].completions, config=self_target),
        ScoringJob(jobs[1].prompt, jobs[1].completions, jobs[1].reference, config=other_rank),
    ]
    mixed_scores = scorer.score_many(mixed)
    for job, scores in zip(mixed, mixed_scores, strict=True):
        assert_same_scores(scores, scorer.score(job.prompt, job.completions, job.reference, config=job.config))
    assert mixed_scores[1][0].episodes[0].compression_penalty != together[0][1][0].episodes[0].compression_penalty


def test_identical_candidates_pack_apart_and_score_alike(scorer, jobs):
    text = jobs[0].completions[0]
    first, second = scorer.score(jobs[0].prompt, [text, text], reference=jobs[0].reference)
    assert_same_scores([first], [second])
    assert [e.j_after for e in first.episodes] == [e.j_after for e in second.episodes]  # the same probe rows


def test_the_model_keeps_its_attention_after_scoring(scorer, loaded_model, jobs):
    model = loaded_model.model
    before = model.config._attn_implementation
    scorer.score(jobs[0].prompt, jobs[0].completions[:1])
    assert model.config._attn_implementation == before
    with pytest.raises(RuntimeError), using_split_attention(model):
        assert model.config._attn_implementation == "l2t_split"
        raise RuntimeError("a failure inside the packed forward")
    assert model.config._attn_implementation == before
    with pytest.raises(ValueError, match="l2t_layout"), using_split_attention(model), torch.no_grad():
        model(input_ids=torch.tensor([[1, 2, 3]]))  # the split attention refuses to run without its layout


def test_rows_hold_each_prompt_once_and_each_distinct_probe_once(loaded_model, scorer, jobs):
    plans = [scorer.plan(j.completions, j.reference, scorer.config) for j in jobs]
    prompts = [scorer.prompt_ids(j.prompt) for j in jobs]
    (row,) = pack_rows(list(zip(prompts, plans, strict=True)), 1 << 20, torch.device("cpu"))
    assert [s.stop - s.start for s in row.prompts] == [len(p) for p in prompts]
    probes = {
        (j, tuple(p.token_ids[: g.cut]), g): len(p.probe_ids) + sum(map(len, g.targets))
        for j, ps in enumerate(plans)
        for p in ps
        for g in p.probe_groups()
    }
    all_probes = sum(len(p.probe_groups()) for ps in plans for p in ps)
    assert len(probes) < all_probes  # the tagged candidates share their J_0 probe ("<think>\n" before episode 1)
    n_completion = sum(len(p.token_ids) for ps in plans for p in ps)
    assert len(row.tokens) == sum(map(len, prompts)) + n_completion + sum(probes.values())


def test_batched_attention_equals_the_block_loop(loaded_model, scorer, jobs):
    """The GPU's one-SDPA-per-layer layout (padded blocks) computes what the CPU's per-block loop does."""
    config = scorer.config
    plans = [scorer.plan(j.completions, j.reference, config) for j in jobs]
    packed_jobs = [(scorer.prompt_ids(j.prompt), p) for j, p in zip(jobs, plans, strict=True)]
    proxy = scorer.proxy(config.rank_ratio)
    loop = measure_packed(loaded_model.model, proxy, packed_jobs, attention="blocks")
    batched = measure_packed(loaded_model.model, proxy, packed_jobs, attention="batched")
    for job_plans, a, b in zip(plans, batched, loop, strict=True):
        assert_same_scores(
            [assemble(p, m, config, None) for p, m in zip(job_plans, a, strict=True)],
            [assemble(p, m, config, None) for p, m in zip(job_plans, b, strict=True)],
        )
