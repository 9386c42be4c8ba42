"""ReasoningPipeline logic on a scripted engine (fixed texts, real tokenizer, real scorer on a tiny random
model): the prefill is applied once and scored, every strategy of the registry is reachable through
`run`, every candidate carries its L2T rewards whatever the strategy, and usage adds up."""

from __future__ import annotations

from typing import Any

import pytest

from l2t_core.engines import SamplingParams
from l2t_core.episodes import PROMPT_FORMATS, prompt_format
from l2t_core.errors import InvalidRequest
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.request import GenerationRequest
from l2t_core.scoring import L2TScorer
from l2t_core.search import DEFAULT_STRATEGY, MAX_ANSWER_PROBES, RERANKERS, STRATEGIES, rank_candidates
from tests.fakes import ScriptedEngine, tiny_causal_lm

QUESTION = "What is 3 + 4?"
# What the model "writes" after the worked format's `<episode_1>` prefill: three say 7, one says 8.
TEXTS = [
    "3 + 4 = 8</episode_1>\nThe final answer is \\boxed{8}.",
    "3 + 4 = 7</episode_1>\nThe final answer is \\boxed{7}.",
    "Three plus four.</episode_1>\n<episode_2>It is 7.</episode_2>\nThe final answer is \\boxed{7}.",
    "3 and 4 make 7</episode_1>\nThe final answer is \\boxed{7}.",
]


@pytest.fixture(scope="module")
def scorer(loaded_model: Any) -> L2TScorer:
    return L2TScorer(tiny_causal_lm(loaded_model.tokenizer), loaded_model.tokenizer)


@pytest.fixture()
def pipeline(loaded_model: Any, scorer: L2TScorer) -> ReasoningPipeline:
    return ReasoningPipeline(ScriptedEngine(loaded_model.tokenizer, TEXTS), scorer, prompt_format="worked")


PARAMS = SamplingParams(n=4, max_tokens=64)


def test_the_prefill_is_applied_once_and_scored(pipeline: ReasoningPipeline) -> None:
    prompt = pipeline.prompt(QUESTION)
    assert prompt.format == "worked" and prompt.prefill == "<episode_1>"
    pool = pipeline.sample(prompt, PARAMS)
    assert pool.texts == ["<episode_1>" + t for t in TEXTS]  # the engine continued prompt + prefill
    assert pool.prompt_tokens == len(prompt.engine_ids) == len(prompt.token_ids) + len(prompt.prefill_ids)
    assert prompt.prefill_ids == pipeline.encode("<episode_1>")
    scored = pipeline.score(prompt, pool.texts, token_ids=pool.token_ids)
    assert all(s.tagged for s in scored.scores)  # the prefill's opening tag counts as episode 1's
    assert [len(s.episodes) for s in scored.scores] == [1, 1, 2, 1]


@pytest.mark.parametrize("strategy", [s for s in RERANKERS if STRATEGIES[s].served])
def test_every_reranker_ranks_through_run(pipeline: ReasoningPipeline, strategy: str) -> None:
    prompt = pipeline.prompt(QUESTION)
    result = pipeline.run(GenerationRequest.build(prompt, PARAMS, strategy))
    assert result.strategy == strategy and result.prompt_format == "worked"
    probes = MAX_ANSWER_PROBES if STRATEGIES[strategy].needs_answer_probes else 0
    pool = pipeline.sample(prompt, PARAMS)
    scores = pipeline.score(prompt, pool.texts, answer_probes=probes, token_ids=pool.token_ids).scores
    assert [r.index for r in result.ranked] == rank_candidates(scores, strategy)
    for r in result.ranked:  # the L2T rewards are computed and returned whatever chooses
        assert r.score.episodes and all(
            e.reward == e.fitting_gain - 0.6 * e.compression_penalty for e in r.score.episodes
        )
    assert result.usage.completion_tokens == sum(r.generated_tokens for r in result.ranked)
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_the_default_strategy_is_used_and_majority_picks_the_most_frequent_answer(pipeline: ReasoningPipeline) -> None:
    assert (
        pipeline.run(GenerationRequest.build(pipeline.prompt(QUESTION), PARAMS, DEFAULT_STRATEGY)).strategy
        == DEFAULT_STRATEGY
    )
    result = pipeline.run(GenerationRequest.build(pipeline.prompt(QUESTION), PARAMS, "majority"))
    assert result.best.score.answer == "7" and result.ranked[-1].score.answer == "8"


def test_a_reference_sets_every_target(pipeline: ReasoningPipeline) -> None:
    result = pipeline.run(GenerationRequest.build(pipeline.prompt(QUESTION), PARAMS, "first", reference="7"))
    assert {r.score.target for r in result.ranked} == {"7"}
    oracle = pipeline.run(GenerationRequest.build(pipeline.prompt(QUESTION), PARAMS, "oracle", reference="7"))
    assert oracle.best.score.answer == "7"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p: p.run(GenerationRequest.build(p.prompt(QUESTION), PARAMS, "oracle")), "needs the reference"),
        (
            lambda p: p.run(GenerationRequest.build(p.prompt(QUESTION), PARAMS, "majority", beam={"max_episodes": 2})),
            "beam_prune",
        ),
        (lambda p: p.run(GenerationRequest.build(p.prompt(QUESTION), PARAMS, "best")), "unknown strategy"),
        (lambda p: p.prompt(QUESTION, prompt_format="fancy"), "unknown prompt format"),
        (lambda p: p.prompt("   "), "empty"),
        (lambda p: p.prompt(), "exactly one"),
    ],
)
def test_bad_requests_are_the_callers_fault(pipeline: ReasoningPipeline, call: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        call(pipeline)


def test_chat_keeps_the_callers_system_turn_and_adds_the_examples(loaded_model: Any) -> None:
    fmt = prompt_format("worked")
    chat = fmt.chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}])
    assert chat[0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in chat[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert chat[-1]["content"] == QUESTION
    bare = prompt_format("plain").chat([{"role": "user", "content": QUESTION}])
    assert bare == [{"role": "user", "content": QUESTION}]
    assert set(PROMPT_FORMATS) >= {"episode", "short", "worked"}


@pytest.mark.parametrize("name", [n for n, f in PROMPT_FORMATS.items() if f.prefill])
def test_a_prefill_is_the_first_tokens_of_every_scored_completion(pipeline: ReasoningPipeline, name: str) -> None:
    """The trainer gives the prefill's tokens no advantage by counting them: that needs the prefill to
    tokenise to the same first tokens of the completion whatever the model wrote after it."""
    prefill = prompt_format(name).prefill
    expected = pipeline.tokenizer(prefill, add_special_tokens=False)["input_ids"]
    prompt = pipeline.prompt(QUESTION, prompt_format=name)
    for score in pipeline.score(prompt, [prefill + t for t in TEXTS + [" x", "\nStep", "7"]]).scores:
        assert list(score.token_ids[: len(expected)]) == expected
