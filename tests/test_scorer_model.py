"""A scorer model separate from the generator: the real SmolLM2 generates, a second model loaded on its own
(tiny, random weights, its own tokenizer and chat template) measures J, rewards and log-probs. What the
pipeline returns is what an `L2TScorer` on that model gives directly for the question in *its* template; the
generator's model runs no scoring forward; each model has its own lock; streaming decodes the generator's
tokens; beam-prune scores on the scorer's prompt. With no scorer model nothing changes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from l2t_core.engines import SamplingParams
from l2t_core.episodes import RenderedPrompt
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.request import GenerationRequest
from l2t_core.reward import RewardConfig
from l2t_core.scoring import L2TScorer, scoring_tokens
from tests.fakes import ScriptedEngine

QUESTION = "What is 3 + 4?"
COMPLETIONS = [
    "<episode_1>3 + 4 = 7</episode_1>\nThe final answer is \\boxed{7}.",
    "<episode_1>Three and four.</episode_1>\n<episode_2>It is 8.</episode_2>\nThe final answer is \\boxed{8}.",
]
SAMPLING = SamplingParams(n=2, max_tokens=12, seed=0)


@pytest.fixture(scope="module")
def pipeline(loaded_model: Any, scorer_model: Any) -> Iterator[ReasoningPipeline]:
    built = ReasoningPipeline.from_model(loaded_model, scorer_model=scorer_model)
    yield built
    built.close()


@pytest.fixture(scope="module")
def direct(scorer_model: Any) -> L2TScorer:
    """An `L2TScorer` on the scorer model alone: what the pipeline's scores must equal."""
    return L2TScorer(scorer_model.model, scorer_model.tokenizer)


@contextmanager
def forwards(model: Any) -> Iterator[list[int]]:
    """Counts the forward passes `model` runs inside the block (every pass, generation or scoring, embeds)."""
    calls = [0]

    def count(*_: Any) -> None:
        calls[0] += 1

    handle = model.get_input_embeddings().register_forward_hook(count)
    try:
        yield calls
    finally:
        handle.remove()


def n_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def finishes_while_held(lock: threading.Lock, work: Callable[[], Any], wait_s: float) -> tuple[bool, Any]:
    """Whether `work`, started in a thread while `lock` is held (the generator busy), ends within `wait_s`;
    and what it returns once it has ended."""
    returned: list[Any] = []
    thread = threading.Thread(target=lambda: returned.append(work()))
    with lock:
        thread.start()
        thread.join(wait_s)
        finished = not thread.is_alive()
    thread.join(120)
    assert returned, "the work failed or hung"
    return finished, returned[0]


def test_the_scorer_scores_the_question_in_its_own_template_and_vocabulary(
    pipeline: ReasoningPipeline, direct: L2TScorer, loaded_model: Any, scorer_model: Any
) -> None:
    prompt = pipeline.prompt(QUESTION)
    assert "<|im_start|>user" in prompt.text  # the generator's (SmolLM2's) template
    scorer_text = pipeline.scorer_prompt(prompt)
    chat = list(prompt.chat)
    assert scorer_text == scorer_model.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>" not in scorer_text and scorer_text.endswith("<|assistant|>\n")
    with forwards(loaded_model.model) as generator_calls, forwards(scorer_model.model) as scorer_calls:
        scored = pipeline.score(prompt, COMPLETIONS, reference="7")
    assert generator_calls == [0] and scorer_calls[0] > 0
    assert scored.scores == direct.score(scorer_text, COMPLETIONS, reference="7")
    # re-tokenised: counted in the scorer's vocabulary, which splits the same text differently
    counts = [s.n_tokens for s in scored.scores]
    assert counts == [n_tokens(scorer_model.tokenizer, c) for c in COMPLETIONS]
    assert counts != [n_tokens(loaded_model.tokenizer, c) for c in COMPLETIONS]
    assert scored.usage.prompt_tokens == len(direct.prompt_ids(scorer_text))
    assert pipeline.scorer_model == scorer_model.name and pipeline.scorer_tokenizer is scorer_model.tokenizer


def test_raw_text_is_scored_as_given(pipeline: ReasoningPipeline) -> None:
    raw = RenderedPrompt("2 + 3 =")  # `/v1/completions`: no chat, no template, continued verbatim by any model
    assert pipeline.scorer_prompt(raw) == "2 + 3 ="


def test_run_generates_on_the_generator_and_scores_on_the_scorer(
    pipeline: ReasoningPipeline, direct: L2TScorer, loaded_model: Any, scorer_model: Any
) -> None:
    prompt = pipeline.prompt(QUESTION)
    with forwards(loaded_model.model) as sampling_alone:
        pool = pipeline.sample(prompt, SAMPLING)  # seeded: `run` samples the same texts
    with forwards(loaded_model.model) as generator_calls, forwards(scorer_model.model) as scorer_calls:
        result = pipeline.run(GenerationRequest.build(prompt, SAMPLING, "loglik"))
    assert generator_calls == sampling_alone  # none of the generator's forwards in `run` was a scoring one
    assert scorer_calls[0] > 0
    by_index = sorted(result.ranked, key=lambda r: r.index)
    scorer_text = pipeline.scorer_prompt(prompt)
    expected = direct.score(scorer_text, pool.texts)
    assert [r.score for r in by_index] == expected  # loglik read the scorer's log-probs
    assert [r.index for r in result.ranked] == sorted(range(2), key=lambda i: -expected[i].mean_logprob)
    # generator-side counts in the generator's vocabulary, scoring counts in the scorer's
    assert [r.generated_tokens for r in by_index] == [s.n_tokens for s in pool.samples]
    assert result.usage.prompt_tokens == n_tokens(loaded_model.tokenizer, prompt.engine_input)
    assert result.usage.scoring_tokens == scoring_tokens(len(direct.prompt_ids(scorer_text)), expected)


def test_generation_and_scoring_have_their_own_locks(pipeline: ReasoningPipeline) -> None:
    prompt = pipeline.prompt(QUESTION)
    generator_lock = pipeline._engine.model_lock  # type: ignore[attr-defined]  # held: the generator is busy
    finished, _ = finishes_while_held(generator_lock, lambda: pipeline.score(prompt, COMPLETIONS), wait_s=120)
    assert finished


def test_without_a_scorer_model_one_model_does_both_and_they_take_turns(loaded_model: Any) -> None:
    pipeline = ReasoningPipeline.from_model(loaded_model)
    try:
        prompt = pipeline.prompt(QUESTION)
        assert pipeline.scorer_model is None
        assert pipeline.tokenizer is pipeline.scorer_tokenizer is loaded_model.tokenizer
        assert pipeline.scorer_prompt(prompt) == prompt.text
        generator_lock = pipeline._engine.model_lock  # type: ignore[attr-defined]
        score = lambda: pipeline.score(prompt, COMPLETIONS)  # noqa: E731
        finished, scored = finishes_while_held(generator_lock, score, wait_s=1.0)
        assert not finished  # scoring waited for the generator's turn to end
        same_model = L2TScorer(loaded_model.model, loaded_model.tokenizer)
        assert scored.scores == same_model.score(prompt.text, COMPLETIONS)
    finally:
        pipeline.close()


def test_streaming_decodes_the_generators_tokens(pipeline: ReasoningPipeline) -> None:
    prompt = pipeline.prompt(QUESTION)
    pieces: list[str] = []
    request = GenerationRequest.build(prompt, SamplingParams(n=1, max_tokens=16, seed=0), "first")
    result = pipeline.stream(request, lambda _i, text: pieces.append(text))
    assert "".join(pieces) == result.best.score.text and result.best.score.text.startswith(prompt.prefill)


def test_beam_prune_scores_on_the_scorers_prompt(loaded_model: Any, scorer_model: Any, direct: L2TScorer) -> None:
    reward = RewardConfig()

    def script(engine_input: str, _params: SamplingParams, _row: int) -> str:
        if engine_input.endswith(reward.probe):
            return "7}"
        if "</episode_1>" in engine_input.rsplit("<|im_start|>assistant", 1)[-1]:
            return "\nThe final answer is \\boxed{7}."
        return "3 + 4 = 7</episode_"

    engine = ScriptedEngine(loaded_model.tokenizer, script)
    pipeline = ReasoningPipeline(engine, direct, "worked", generator_tokenizer=loaded_model.tokenizer)
    prompt = pipeline.prompt(QUESTION)
    result = pipeline.run(
        GenerationRequest.build(prompt, SamplingParams(n=2, max_tokens=200), "beam_prune", beam={"episode_tokens": 24})
    )
    assert all(call.startswith(prompt.text) for call, _ in engine.calls)  # the engine saw its own template
    scorer_text = pipeline.scorer_prompt(prompt)
    assert result.search is not None and result.search.rounds == 2 and len(result.ranked) == 2, result.search
    for candidate in result.ranked:
        assert candidate.finish_reason == "stop"
        (alone,) = direct.score(scorer_text, [candidate.score.text], targets=[candidate.score.target])
        assert candidate.score.token_ids == alone.token_ids
        assert candidate.score.score == pytest.approx(alone.score, rel=1e-4, abs=1e-9)
        assert candidate.score.mean_logprob == pytest.approx(alone.mean_logprob, rel=1e-5)
