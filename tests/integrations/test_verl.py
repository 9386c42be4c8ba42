"""The L2T reward as a verl custom reward function, checked against verl's documented interface (verl is
not installed here; its reward managers are read from the verl repository): the keyword call
`compute_score(data_source=, solution_str=, ground_truth=, extra_info=)` of the sync managers, a dict with
"score" whose other scalar keys verl logs, `reward_kwargs` merged into the call, and the reward loop's
`inspect.iscoroutinefunction` dispatch: coroutines awaited, sync functions run in executor threads.
The tiny random model scores: these tests check the contract, not reward values."""

from __future__ import annotations

import asyncio
import inspect
from functools import partial

import pytest

from l2t_core.answers import answers_match
from l2t_core.episodes import prompt_format
from l2t_core.errors import InvalidRequest
from l2t_core.integrations import verl as l2t_verl
from l2t_core.reward import RewardConfig
from l2t_core.scoring import L2TScorer

RESPONSES = [
    "<episode_1>3 + 4 = 7</episode_1>\nThe final answer is \\boxed{7}.",
    "<episode_1>3 plus 4</episode_1>\n<episode_2>is 8</episode_2>\nThe final answer is \\boxed{8}.",
]
KEYS = {"score", "outcome", "dense", "episodes", "delta_i", "compression"}


def call_with_kwargs(raw_fn, extra_kwargs, *args, **kwargs):
    """verl's `_call_with_kwargs` (verl/trainer/ppo/reward.py): reward_kwargs win over call-time kwargs."""
    return raw_fn(*args, **{**kwargs, **extra_kwargs})


@pytest.fixture(scope="module")
def reward_kwargs(tiny_model_dir):
    return {"model": str(tiny_model_dir), "device": "cpu", "alpha": 0.5, "beta": 0.6}


def test_the_signature_is_verls_custom_reward_function_convention():
    for fn in (l2t_verl.compute_score, l2t_verl.compute_score_async):
        params = list(inspect.signature(fn).parameters.values())
        assert [p.name for p in params[:4]] == ["data_source", "solution_str", "ground_truth", "extra_info"]
        assert params[3].default is None
        assert params[-1].kind is inspect.Parameter.VAR_KEYWORD  # the reward loop adds keywords of its own
    assert not inspect.iscoroutinefunction(l2t_verl.compute_score)
    # verl wraps an async function in a partial and still detects it
    assert inspect.iscoroutinefunction(partial(l2t_verl.compute_score_async, model="x"))


def test_a_sync_manager_call_returns_score_and_l2t_components(reward_kwargs, tiny_model_dir):
    fn = partial(call_with_kwargs, l2t_verl.compute_score, reward_kwargs)
    question = "What is 3 + 4?"
    results = [
        fn(data_source="arith", solution_str=r, ground_truth="7", extra_info={"question": question, "index": i})
        for i, r in enumerate(RESPONSES)
    ]
    assert all(set(r) == KEYS and all(isinstance(v, float) for v in r.values()) for r in results)
    queue = l2t_verl.scoring_queue(str(tiny_model_dir), "cpu")
    assert l2t_verl.scoring_queue(str(tiny_model_dir), "cpu") is queue  # loaded once per process
    # the same numbers as the scorer on that model, 'step' mode, J against the ground truth
    tokenizer = queue.scorer.tokenizer
    scorer = L2TScorer(queue.scorer.model, tokenizer, RewardConfig(delta_mode="step", target="reference"))
    text = prompt_format("plain").render(tokenizer, question).text
    for result, score in zip(results, scorer.score(text, RESPONSES, reference="7"), strict=True):
        outcome = float(answers_match(score.answer, "7"))
        dense = sum(e.reward for e in score.episodes)
        assert result["outcome"] == outcome and result["episodes"] == len(score.episodes)
        assert result["dense"] == pytest.approx(dense, rel=1e-5, abs=1e-9)
        assert result["score"] == pytest.approx(outcome + 0.5 * dense, rel=1e-5, abs=1e-9)
        assert result["delta_i"] == pytest.approx(sum(e.fitting_gain for e in score.episodes), rel=1e-5, abs=1e-9)
    assert [r["outcome"] for r in results] == [1.0, 0.0] and [r["episodes"] for r in results] == [1.0, 2.0]
    # the prompt as chat messages in extra_info is the same prompt
    messages = prompt_format("plain").messages(question)
    same = fn(data_source="arith", solution_str=RESPONSES[0], ground_truth=7, extra_info={"prompt": messages})
    assert same == pytest.approx(results[0])


def test_the_reward_loop_awaits_the_coroutine_and_runs_the_sync_function_in_threads(reward_kwargs):
    info = {"question": "What is 3 + 4?"}
    loop_kwargs = {"reward_router_address": None, "reward_model_tokenizer": None}  # what the reward loop adds

    async def reward_loop():
        awaited = [
            l2t_verl.compute_score_async(
                data_source="arith", solution_str=r, ground_truth="7", extra_info=info, **loop_kwargs, **reward_kwargs
            )
            for r in RESPONSES
        ]
        loop = asyncio.get_running_loop()
        threaded = [
            loop.run_in_executor(
                None,
                partial(
                    l2t_verl.compute_score,
                    data_source="arith",
                    solution_str=r,
                    ground_truth="7",
                    extra_info=info,
                    **reward_kwargs,
                ),
            )
            for r in RESPONSES
        ]
        return await asyncio.gather(*awaited), await asyncio.gather(*threaded)

    awaited, threaded = asyncio.run(reward_loop())
    alone = [l2t_verl.compute_score("arith", r, "7", info, **reward_kwargs) for r in RESPONSES]
    for got in (awaited, threaded):
        assert [r["score"] for r in got] == pytest.approx([r["score"] for r in alone], rel=1e-5, abs=1e-9)


def test_a_row_without_a_prompt_is_a_clear_error(reward_kwargs):
    with pytest.raises(InvalidRequest, match="extra_info"):
        l2t_verl.compute_score("arith", RESPONSES[0], "7", {"index": 3}, **reward_kwargs)
    with pytest.raises(InvalidRequest, match="extra_info"):
        l2t_verl.compute_score("arith", RESPONSES[0], "7", None, **reward_kwargs)
