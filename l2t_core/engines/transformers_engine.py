"""The embedded engine: transformers `generate` on the loaded model (CPU by default, GPU when present).

It shares the model with the scorer, so generation and scoring take turns through `model_lock`
(the scorer hooks the model while it runs). Requests that arrive together with compatible sampling
parameters are micro-batched into one `generate` call (left-padded prompts, n rows each) by a
background thread; a cancelled request's rows are stopped at the next token.

One request never fails another: each prompt's ids are checked in the caller's thread before it joins
a batch (an empty prompt or an id outside the vocabulary is that caller's `InvalidRequest`), and if a
batch still fails, its jobs are re-run one by one so the failure lands only on the job that causes it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from l2t_core.engines.base import (
    Cancelled,
    EngineError,
    Generation,
    GenerationBatch,
    SamplingParams,
    Tail,
    TailLogprob,
    TokenCallback,
    check_logit_bias_vocabulary,
    distinct_tails,
    end_of_sequence_ids,
    in_request_order,
)
from l2t_core.engines.detokenize import IncrementalDetokenizer
from l2t_core.engines.logit_shaping import PenaltyProcessor
from l2t_core.models import LoadedModel, context_length
from l2t_core.tokens import check_token_ids

logger = logging.getLogger(__name__)

# Below this temperature sampling is greedy (as in vLLM): dividing logits by 1e-132 overflows to inf
# and the sampler fails on the resulting NaN probabilities.
GREEDY_BELOW = 1e-5


@dataclass
class _Job:
    prompt_ids: list[int]
    params: SamplingParams
    cancel: threading.Event
    future: Future[GenerationBatch] = field(default_factory=Future)
    on_token: TokenCallback | None = None
    streamed: bool = False  # a token of this job has reached `on_token` (its text may be with a client)


class _RowStreamer:
    """A transformers streamer for a micro-batch: hands each row's new token to its job's callback
    (the first `put` carries the prompts, not generated tokens)."""

    def __init__(self, rows: list[tuple[_Job, int]]) -> None:
        self.rows = rows
        self.prompts_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompts_seen:
            self.prompts_seen = True
            return
        for (job, row), token in zip(self.rows, value.reshape(-1).tolist(), strict=True):
            if job.on_token is not None:
                job.streamed = True
                job.on_token(row, token)

    def end(self) -> None:
        pass


class _StopOnCancel:
    """A stopping criterion that finishes the rows of cancelled jobs (per-row, so batch-mates go on)."""

    def __init__(self, row_events: list[threading.Event]) -> None:
        self.row_events = row_events

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        flags = [event.is_set() for event in self.row_events]
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)


class _StopOnText:
    """A stopping criterion that finishes each row once its generated text holds one of the stop strings.

    transformers' own `stop_strings` builds a (vocabulary × stop length) table per stop list, caches it
    process-wide and matches with tensors of (rows × stop length²) per step: a long stop costs seconds
    and hundreds of MB that are never given back. This one detokenizes each row incrementally (the new
    text of the last token, decoded with the token before it so that a word-initial space or a character
    split across tokens comes out as a full decode gives it) and searches only the end of the text the
    new characters can complete a stop in: two short decodes and a bounded search per row and step,
    whatever the vocabulary, and nothing kept after the call. `_decode` cuts the text at the stop, so a
    match this check misses costs tokens, never a wrong answer.
    """

    def __init__(self, tokenizer: Any, stop: tuple[str, ...], rows: int) -> None:
        self.stop = stop
        self.longest = max(len(text) for text in stop)
        self.rows = [IncrementalDetokenizer(tokenizer) for _ in range(rows)]
        self.tails = [""] * rows  # each row's last `longest` characters of text read
        self.done = [False] * rows

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        for row, token in enumerate(input_ids[:, -1].tolist()):
            if not self.done[row]:
                self.done[row] = self._read(row, token)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

    def _read(self, row: int, token: int) -> bool:
        """Append `token` to the row; whether its text now holds a stop string."""
        new = self.rows[row].push(token)
        if not new:
            return False
        text = self.tails[row] + new
        self.tails[row] = text[-self.longest :]
        return any(stop in text for stop in self.stop)


class TransformersEngine:
    name = "transformers"
    streams_tokens = True

    def __init__(
        self,
        loaded: LoadedModel,
        model_lock: threading.Lock | None = None,
        max_batch_sequences: int = 64,
        batch_window_s: float = 0.01,
    ) -> None:
        self.loaded = loaded
        self.model_name = loaded.name
        self.model_lock = model_lock or threading.Lock()
        self.max_batch_sequences = max_batch_sequences
        self.batch_window_s = batch_window_s
        # the model's rows: what a prompt id or a logit-bias id must be below
        self.vocabulary = int(loaded.model.get_input_embeddings().num_embeddings)
        self.max_model_len = context_length(loaded.model)  # the model's trained context, which admission goes by
        # the ids that end a row: the tokenizer's and the generation config's EOS, and the padding that
        # `generate` writes after a finished row
        tokenizer = loaded.tokenizer
        ends = end_of_sequence_ids(tokenizer, getattr(loaded.model, "generation_config", None))
        self._ends = ends | ({tokenizer.pad_token_id} - {None})
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._run, name="l2t-generate", daemon=True)
        self._worker.start()

    def generate(
        self,
        prompt: Sequence[int],
        params: SamplingParams,
        cancel: threading.Event | None = None,
        on_token: TokenCallback | None = None,
    ) -> GenerationBatch:
        """N candidates continuing the token ids `prompt`; `on_token(candidate, token_id)` hears each token as
        it is sampled (tokens after a candidate's end are padding, and a callback must not raise)."""
        if self._closed.is_set():
            raise EngineError("engine is closed")
        check_logit_bias_vocabulary(params.logit_bias, self.vocabulary)
        job = _Job(self.checked(prompt), params, cancel or threading.Event(), on_token=on_token)
        self._jobs.put(job)
        return job.future.result()

    def generate_many(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, cancel: threading.Event | None = None
    ) -> list[Generation]:
        """One generation (`params.n` = 1) per prompt, all queued at once so that the worker gathers them into
        as few batches as fit (a search's round of steps), without a thread per prompt."""
        if self._closed.is_set():
            raise EngineError("engine is closed")
        check_logit_bias_vocabulary(params.logit_bias, self.vocabulary)
        jobs = [_Job(self.checked(prompt), params, cancel or threading.Event()) for prompt in prompts]
        for job in jobs:
            self._jobs.put(job)
        return [job.future.result().generations[0] for job in jobs]

    def tail_logprobs(self, sequences: Sequence[tuple[list[int], int]]) -> list[TailLogprob]:
        """For each (token ids, n): log p of each of the last n ids, teacher-forced by one plain forward of the
        whole sequence (no prefix cache here, so every token is computed). The CPU twin of vLLM's
        `tail_logprobs`, so the engine-side scorer runs, and is tested, without vLLM; identical sequences
        are run once."""
        unique = distinct_tails(sequences)
        for ids, _ in unique:
            check_token_ids(ids, self.vocabulary)
        model = self.loaded.model
        device = next(model.parameters()).device
        results: dict[Tail, TailLogprob] = {}
        with self.model_lock, torch.no_grad():
            for ids, n in unique:
                tokens = torch.tensor([ids], device=device)
                logits = model(input_ids=tokens).logits[0, -n - 1 : -1].float()
                picked = torch.log_softmax(logits, dim=-1).gather(1, tokens[0, -n:, None])[:, 0]
                results[(ids, n)] = TailLogprob(tuple(float(v) for v in picked), len(ids), len(ids))
        return in_request_order(sequences, results)

    def checked(self, prompt: Sequence[int]) -> list[int]:
        """The prompt's ids as a list, or `InvalidRequest` for an empty prompt or an id the model has no row for."""
        check_token_ids(prompt, self.vocabulary)
        return [int(i) for i in prompt]

    def healthy(self) -> bool:
        return self._worker.is_alive() and not self._closed.is_set()

    def close(self) -> None:
        """Stop the worker and wait for it: a thread left inside torch at interpreter exit aborts the process."""
        self._closed.set()
        self._jobs.put(None)
        if self._worker is not threading.current_thread():
            self._worker.join(timeout=30)

    # -- worker ---------------------------------------------------------------------------------
    def _run(self) -> None:
        pending: list[_Job] = []
        while not self._closed.is_set():
            first = pending.pop(0) if pending else self._jobs.get()
            if first is None:
                break
            batch, pending = self._gather(first, pending)
            live = [job for job in batch if not job.cancel.is_set()]
            for job in batch:
                if job.cancel.is_set():
                    job.future.set_exception(Cancelled("cancelled before generation started"))
            if not live:
                continue
            self._run_batch(live)
        self._fail_waiting(pending)

    def _run_batch(self, jobs: list[_Job]) -> None:
        """Generate for a batch; if it fails, re-run its jobs alone so only the failing job hears of it."""
        try:
            results = self._generate_batch(jobs)
        except Exception as exc:
            if len(jobs) > 1:
                logger.warning("a batch of %d jobs failed (%s); re-running them one by one", len(jobs), exc)
                for job in jobs:
                    if job.streamed:  # a re-run would send its tokens after the failed attempt's
                        job.future.set_exception(
                            EngineError(f"generation failed after its tokens were streamed: {type(exc).__name__}")
                        )
                    else:
                        self._run_batch([job])
                return
            logger.exception("generation failed")
            jobs[0].future.set_exception(EngineError(f"generation failed: {type(exc).__name__}: {exc}"))
            return
        for job, result in zip(jobs, results, strict=True):
            if job.cancel.is_set():
                job.future.set_exception(Cancelled("cancelled during generation"))
            else:
                job.future.set_result(result)

    def _fail_waiting(self, pending: list[_Job]) -> None:
        """On close, nobody may be left waiting on a future that will never be set."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                pending.append(job)
        for job in pending:
            job.future.set_exception(EngineError("engine closed"))

    def _gather(self, first: _Job, pending: list[_Job]) -> tuple[list[_Job], list[_Job]]:
        """Collect compatible jobs that arrive within the batch window; others wait for the next round."""
        batch, rest = [first], []
        rows = first.params.n
        deadline = time.monotonic() + self.batch_window_s
        candidates = list(pending)
        while True:
            for job in candidates:
                fits = rows + job.params.n <= self.max_batch_sequences
                if fits and job.params.seed is None and job.params.batch_key() == first.params.batch_key():
                    batch.append(job)
                    rows += job.params.n
                else:
                    rest.append(job)
            candidates = []
            timeout = deadline - time.monotonic()
            if timeout <= 0 or first.params.seed is not None:
                break
            try:
                arrived = self._jobs.get(timeout=timeout)
            except queue.Empty:
                break
            if arrived is None:
                self._closed.set()
                break
            candidates = [arrived]
        return batch, rest

    def _generate_batch(self, jobs: list[_Job]) -> list[GenerationBatch]:
        tokenizer = self.loaded.tokenizer
        model = self.loaded.model
        params = jobs[0].params
        prompts = [job.prompt_ids for job in jobs]
        rows = [(i, ids) for i, (job, ids) in enumerate(zip(jobs, prompts, strict=True)) for _ in range(job.params.n)]
        width = max(len(ids) for _, ids in rows)
        pad = tokenizer.pad_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (_, ids) in enumerate(rows):  # left padding: every row's last prompt token is aligned
            input_ids[r, width - len(ids) :] = torch.tensor(ids)
            attention[r, width - len(ids) :] = 1
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
            if params.temperature > GREEDY_BELOW
            else {"do_sample": False}
        )
        stoppers: list[Any] = [_StopOnCancel([jobs[i].cancel for i, _ in rows])]
        if params.stop:
            stoppers.append(_StopOnText(tokenizer, params.stop, len(rows)))
        row_of_job = [sum(1 for j, _ in rows[:r] if j == i) for r, (i, _) in enumerate(rows)]
        streamer = _RowStreamer([(jobs[i], row_of_job[r]) for r, (i, _) in enumerate(rows)])
        streaming = any(job.on_token is not None for job in jobs)
        # A seeded request samples from a generator of its own: the global RNG is forked and restored, so
        # later unseeded requests of other clients are no function of this one's seed.
        seeded = torch.random.fork_rng(devices=self._cuda_devices()) if params.seed is not None else nullcontext()
        with self.model_lock, torch.no_grad(), seeded:
            if params.seed is not None:
                torch.manual_seed(params.seed)
            output = model.generate(
                input_ids=input_ids.to(self.loaded.device),
                attention_mask=attention.to(self.loaded.device),
                max_new_tokens=params.max_tokens,
                pad_token_id=pad,
                stopping_criteria=stoppers,
                logits_processor=[PenaltyProcessor(params, width)] if params.shapes_logits else None,
                streamer=streamer if streaming else None,
                **sampling,
            )
        new_tokens = output[:, width:].cpu()
        results = [GenerationBatch(prompt_tokens=len(ids)) for ids in prompts]
        for r, (i, _) in enumerate(rows):
            results[i].generations.append(self._decode(new_tokens[r], params))
        return results

    def _cuda_devices(self) -> list[int]:
        device = torch.device(self.loaded.device)
        return [device.index or 0] if device.type == "cuda" else []

    def _decode(self, tokens: torch.Tensor, params: SamplingParams) -> Generation:
        """A row's candidate: its tokens up to and including the first end-of-sequence token (padding after
        it dropped), or up to the token that completes a stop string (the text cut at the stop's end)."""
        detokenizer = IncrementalDetokenizer(self.loaded.tokenizer)
        kept: list[int] = []
        text, finish = "", "length"
        for token in tokens.tolist():
            kept.append(token)
            if token in self._ends:
                finish = "stop"
                break
            read = len(text)
            text += detokenizer.push(token)
            # no stop was in the text before this token, so one can only end in its new characters
            found = [
                at + len(stop) for stop in params.stop if (at := text.find(stop, max(0, read - len(stop) + 1))) >= 0
            ]
            if found:
                text, finish = text[: min(found)], "stop"
                break
        return Generation(text=text, n_tokens=len(kept), finish_reason=finish, token_ids=tuple(kept))
