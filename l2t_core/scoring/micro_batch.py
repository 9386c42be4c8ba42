"""Cross-request scoring: jobs that arrive close together are scored in one `L2TScorer.score_many` call.

The server's requests finish generation together (the engine micro-batches them), then each would score
its own candidates in turn under the model lock. This queue is the scorer's counterpart of the engine's
micro-batcher: a background thread takes the first waiting job, collects whatever else arrives within
`window_s` (up to `max_jobs`), and measures all of them in one packed forward, so concurrent requests
share one scorer call instead of queueing for the model one by one.

Per request, nothing changes: a job whose cancel event is set before its batch runs is dropped, and one
cancelled while its batch runs gets `Cancelled` instead of the result. One job never fails another: if a
batch raises (a job's `InvalidRequest`, such as target 'reference' without a reference), its jobs are
re-run one by one so the error reaches only the job that causes it (the plans are built before any
forward, so a bad job costs its batch-mates almost nothing).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from l2t_core.engines.base import Cancelled
from l2t_core.scoring.results import CandidateScore
from l2t_core.scoring.scorer import Scorer, ScoringJob

logger = logging.getLogger(__name__)

# Requests of one generation micro-batch reach the scorer within a few milliseconds of each other.
DEFAULT_WINDOW_S = 0.01
DEFAULT_MAX_JOBS = 16


@dataclass
class _Waiting:
    job: ScoringJob
    cancel: threading.Event
    future: Future[list[CandidateScore]] = field(default_factory=Future)


class ScoringQueue:
    def __init__(
        self,
        scorer: Scorer,
        window_s: float = DEFAULT_WINDOW_S,
        max_jobs: int = DEFAULT_MAX_JOBS,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """`on_batch(jobs)` hears the size of every `score_many` call (the server's metrics); `max_jobs`
        = 1 scores every job alone, as calling the scorer directly would."""
        if window_s < 0 or max_jobs < 1:
            raise ValueError(f"window_s must be >= 0 and max_jobs >= 1, got {window_s} and {max_jobs}")
        self.scorer = scorer
        self.window_s = window_s
        self.max_jobs = max_jobs
        self.on_batch = on_batch
        self._waiting: queue.Queue[_Waiting | None] = queue.Queue()
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._run, name="l2t-score", daemon=True)
        self._worker.start()

    def score(self, job: ScoringJob, cancel: threading.Event | None = None) -> list[CandidateScore]:
        """`job`'s scores, measured together with whatever other jobs arrive in the same window."""
        if self._closed.is_set():
            raise RuntimeError("the scoring queue is closed")
        waiting = _Waiting(job, cancel or threading.Event())
        self._waiting.put(waiting)
        return waiting.future.result()

    def close(self) -> None:
        """Stop the worker and wait for it (a thread left inside torch at interpreter exit aborts it)."""
        self._closed.set()
        self._waiting.put(None)
        if self._worker is not threading.current_thread():
            self._worker.join(timeout=30)

    # -- worker ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                break
            batch = self._gather(first)
            live = [w for w in batch if not w.cancel.is_set()]
            for w in batch:
                if w.cancel.is_set():
                    w.future.set_exception(Cancelled("cancelled before scoring"))
            if live:
                self._score(live)
            if self._closed.is_set():
                break
        self._fail_waiting()

    def _gather(self, first: _Waiting) -> list[_Waiting]:
        """`first` and the jobs that arrive within the window after it, at most `max_jobs`."""
        batch = [first]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_jobs:
            try:
                arrived = self._waiting.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if arrived is None:
                self._closed.set()
                break
            batch.append(arrived)
        return batch

    def _score(self, batch: list[_Waiting]) -> None:
        """Score a batch in one call; if it fails, re-run its jobs alone so only the failing job hears of it."""
        try:
            if self.on_batch is not None:
                self.on_batch(len(batch))
            results = self.scorer.score_many([w.job for w in batch])
        except Exception as exc:
            if len(batch) > 1:
                logger.warning("a scoring batch of %d jobs failed (%s); re-running them one by one", len(batch), exc)
                for w in batch:
                    self._score([w])
                return
            batch[0].future.set_exception(exc)
            return
        for w, scores in zip(batch, results, strict=True):
            if w.cancel.is_set():
                w.future.set_exception(Cancelled("cancelled during scoring"))
            else:
                w.future.set_result(scores)

    def _fail_waiting(self) -> None:
        """On close, nobody may be left waiting on a future that will never be set."""
        while True:
            try:
                waiting = self._waiting.get_nowait()
            except queue.Empty:
                break
            if waiting is not None:
                waiting.future.set_exception(RuntimeError("the scoring queue is closed"))
