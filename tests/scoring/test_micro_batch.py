"""Cross-request scoring: concurrent `ReasoningPipeline.score` calls share one `score_many` call through the
scoring queue, score as they would alone, and keep per-request cancellation and error isolation. The
scorer is the real one on a tiny random model (its numbers mean nothing; the logic is the subject)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from l2t_core.engines import Cancelled
from l2t_core.errors import InvalidRequest
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.reward import RewardConfig
from l2t_core.scoring import CandidateScore, L2TScorer, ScoringJob
from tests.fakes import ScriptedEngine, tiny_causal_lm
from tests.scoring.test_packed_vs_naive import assert_same_scores

QUESTIONS = ["What is 3 + 4?", "What is 5 + 6?", "What is 2 + 9?", "What is 8 + 1?"]
TEXTS = [
    "<episode_1>3 + 4 = 7</episode_1>\nThe final answer is \\boxed{7}.",
    "<episode_1>Add them.</episode_1>\n<episode_2>It is 11.</episode_2>\nThe final answer is \\boxed{11}.",
    "<episode_1>Two and nine make 11</episode_1>\nThe final answer is \\boxed{11}.",
]


class CountingScorer(L2TScorer):
    """The real scorer, recording how many jobs each `score_many` call got (as it starts)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []

    def score_many(self, jobs: list[ScoringJob], method: Any = "packed") -> list[list[CandidateScore]]:
        self.calls.append(len(jobs))
        return super().score_many(jobs, method)


@pytest.fixture(scope="module")
def model(loaded_model: Any) -> Any:
    return tiny_causal_lm(loaded_model.tokenizer)


@pytest.fixture()
def lock() -> threading.Lock:
    return threading.Lock()


@pytest.fixture()
def scorer(model: Any, loaded_model: Any, lock: threading.Lock) -> CountingScorer:
    return CountingScorer(model, loaded_model.tokenizer, lock=lock)


def queued_pipeline(scorer: L2TScorer, max_jobs: int, on_batch: Any = None) -> ReasoningPipeline:
    """A wide window that closes as soon as `max_jobs` have arrived: the test decides what shares a batch."""
    pipeline = ReasoningPipeline(ScriptedEngine(scorer.tokenizer, TEXTS), scorer, "episode")
    return pipeline.with_scoring_queue(window_s=5.0, max_jobs=max_jobs, on_batch=on_batch)


@pytest.fixture()
def pipeline(scorer: CountingScorer) -> Iterator[ReasoningPipeline]:
    pipeline = queued_pipeline(scorer, max_jobs=len(QUESTIONS))
    yield pipeline
    pipeline.close()


def score_at_once(pipeline: ReasoningPipeline, calls: list[dict[str, Any]]) -> list[Future[Any]]:
    """Start every `pipeline.score(**call)` in its own thread at once; their futures, in order."""
    pool = ThreadPoolExecutor(len(calls))
    futures = [pool.submit(pipeline.score, **call) for call in calls]
    pool.shutdown(wait=False)
    return futures


def call(pipeline: ReasoningPipeline, question: str, **options: Any) -> dict[str, Any]:
    return {"prompt": pipeline.prompt(question), "completions": TEXTS, **options}


def wait_for(condition: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def scored_alone(scorer: L2TScorer, calls: list[dict[str, Any]]) -> list[list[CandidateScore]]:
    """Each call scored by itself, one call per job (a second scorer on the model: call it only when no
    other scoring runs, since a scorer hooks the model while it runs)."""
    alone = queued_pipeline(scorer, max_jobs=1)
    try:
        return [alone.score(**c).scores for c in calls]
    finally:
        alone.close()


def test_concurrent_requests_are_scored_in_one_call_as_if_alone(pipeline, scorer, model, loaded_model):
    calls = [call(pipeline, q, reference=str(i)) for i, q in enumerate(QUESTIONS)]
    pools = [f.result(timeout=120) for f in score_at_once(pipeline, calls)]
    assert scorer.calls == [len(QUESTIONS)]
    alone = scored_alone(L2TScorer(model, loaded_model.tokenizer), calls)
    for pool, by_itself in zip(pools, alone, strict=True):
        assert_same_scores(pool.scores, by_itself)
        assert pool.usage.scoring_tokens > pool.usage.completion_tokens > 0


def test_a_cancelled_request_is_dropped_or_its_result_discarded(scorer, lock):
    pipeline = queued_pipeline(scorer, max_jobs=2)
    cancel_running, cancel_waiting = threading.Event(), threading.Event()
    with lock:  # the scorer waits for the model: the first batch is running when the others arrive
        first = score_at_once(
            pipeline,
            [call(pipeline, q, cancel=e) for q, e in zip(QUESTIONS[:2], [cancel_running, None], strict=True)],
        )
        wait_for(lambda: scorer.calls == [2])
        cancel_running.set()  # during scoring: the result is computed and discarded
        cancel_waiting.set()  # before scoring: the job never reaches the scorer
        second = score_at_once(
            pipeline,
            [call(pipeline, q, cancel=e) for q, e in zip(QUESTIONS[2:], [None, cancel_waiting], strict=True)],
        )
        wait_for(lambda: pipeline._scoring_queue._waiting.qsize() == 2)
    with pytest.raises(Cancelled, match="during scoring"):
        first[0].result(timeout=120)
    with pytest.raises(Cancelled, match="before scoring"):
        second[1].result(timeout=120)
    assert len(first[1].result(timeout=120).scores) == len(second[0].result(timeout=120).scores) == len(TEXTS)
    assert scorer.calls == [2, 1]
    pipeline.close()


def test_a_failing_request_fails_alone_in_its_batch(pipeline, scorer, model, loaded_model, caplog):
    caplog.set_level(logging.WARNING)
    bad = RewardConfig(target="reference")  # and no reference: the scorer refuses it
    calls = [call(pipeline, q, config=bad if i == 1 else None) for i, q in enumerate(QUESTIONS)]
    futures = score_at_once(pipeline, calls)
    with pytest.raises(InvalidRequest, match="needs a reference"):
        futures[1].result(timeout=120)
    good = [futures[i].result(timeout=120).scores for i in (0, 2, 3)]  # all done: the model is free again
    alone = scored_alone(L2TScorer(model, loaded_model.tokenizer), [calls[i] for i in (0, 2, 3)])
    for scores, by_itself in zip(good, alone, strict=True):
        assert_same_scores(scores, by_itself)
    assert scorer.calls == [4, 1, 1, 1, 1]  # the batch, then each job alone
    assert any("a scoring batch of 4 jobs failed" in r.getMessage() for r in caplog.records)


def test_batch_sizes_are_reported_and_a_closed_queue_refuses(scorer):
    sizes: list[int] = []
    pipeline = queued_pipeline(scorer, max_jobs=2, on_batch=sizes.append)
    futures = score_at_once(pipeline, [call(pipeline, q) for q in QUESTIONS[:2]])
    assert all(len(f.result(timeout=120).scores) == len(TEXTS) for f in futures)
    pipeline.close()
    assert sizes == scorer.calls == [2]
    with pytest.raises(RuntimeError, match="closed"):
        pipeline.score(**call(pipeline, QUESTIONS[0]))
