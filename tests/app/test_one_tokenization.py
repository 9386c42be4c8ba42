"""One tokenization: the prompt is tokenized once, every engine continues exactly those ids and returns the
ids it sampled, and the scorer measures that very sequence (EOS included), on a BOS-adding Llama-3-style
tokenizer, the shape on which re-tokenizing stages go wrong (a second BOS, another split of the text).

Engines here: transformers in process, and the remote OpenAI engine against a live l2t server on loopback
(the remote continues token ids and returns its sampled ids). vLLM, in process and as `vllm serve`, is
checked the same way in the vLLM stage (tests/engines/test_vllm_one_tokenization.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from app.background import BackgroundServer
from l2t_core.engines import SamplingParams, build_engine
from l2t_core.engines.base import end_of_sequence_ids
from l2t_core.engines.openai_engine import OpenAIEngine
from l2t_core.models import load_model
from l2t_core.pipeline import ReasoningPipeline
from l2t_core.scoring import L2TScorer, ScoringJob
from tests.app.conftest import make_app
from tests.fakes import tiny_llama3_folder

QUESTION = "What is 3 + 4?"
PARAMS = SamplingParams(n=8, max_tokens=200, temperature=1.0, seed=5)  # enough that some end on an EOS


@pytest.fixture(scope="module")
def llama3(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_model(str(tiny_llama3_folder(tmp_path_factory.mktemp("tiny-llama3"))), device="cpu")


@pytest.fixture(scope="module")
def remote_url(llama3: Any) -> Iterator[str]:
    with BackgroundServer(make_app(llama3, max_queue=8)) as server:
        yield server.url


class Recording:
    """An engine wrapper that keeps what the engine was given and what it returned."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name, self.model_name = engine.name, engine.model_name
        self.calls: list[tuple[list[int], Any]] = []

    def generate(self, prompt: Any, params: SamplingParams, cancel: threading.Event | None = None) -> Any:
        batch = self.engine.generate(prompt, params, cancel)
        self.calls.append((list(prompt), batch))
        return batch

    def healthy(self) -> bool:
        return bool(self.engine.healthy())

    def close(self) -> None:
        self.engine.close()


def scored_sequences(scorer: L2TScorer) -> list[list[int]]:
    """Wrap the scorer so each sequence it measures (prompt ids + completion ids) is recorded."""
    seen: list[list[int]] = []
    measure = scorer.score_many

    def recording(jobs: list[ScoringJob], method: Any = "packed") -> Any:
        results = measure(jobs, method)
        for job, scores in zip(jobs, results, strict=True):
            prompt = list(job.prompt_ids) if job.prompt_ids else scorer.prompt_ids(job.prompt)
            seen.extend(prompt + list(s.token_ids) for s in scores)
        return results

    scorer.score_many = recording  # type: ignore[method-assign]
    return seen


def test_the_prompt_holds_the_templates_bos_once(llama3: Any) -> None:
    tokenizer = llama3.tokenizer
    pipeline = ReasoningPipeline(
        build_engine("transformers", llama3, threading.Lock()), L2TScorer(llama3.model, tokenizer)
    )
    try:
        prompt = pipeline.prompt(QUESTION)
        bos = tokenizer.bos_token_id
        assert prompt.token_ids[0] == bos and prompt.engine_ids.count(bos) == 1
        # what a stage tokenizing the rendered text with the defaults would run instead (vLLM, a remote):
        assert list(tokenizer(prompt.text)["input_ids"][:2]) == [bos, bos]
    finally:
        pipeline.close()


def assert_one_sequence(llama3: Any, engine: Any, params: SamplingParams = PARAMS) -> None:
    """Sample through the pipeline, score the pool as the server does, and compare every sequence."""
    scorer = L2TScorer(llama3.model, llama3.tokenizer)
    measured = scored_sequences(scorer)
    recording = Recording(engine)
    pipeline = ReasoningPipeline(recording, scorer)
    prompt = pipeline.prompt(QUESTION)
    pool = pipeline.sample(prompt, params)
    scored = pipeline.score(prompt, pool.texts, token_ids=pool.token_ids)
    ((engine_prompt, batch),) = recording.calls
    assert engine_prompt == list(prompt.engine_ids)  # the engine continued the pipeline's ids, nothing added
    generated = [engine_prompt + list(g.token_ids) for g in batch.generations]
    assert measured == generated  # the scorer ran the sequences the model generated, token for token
    ends = end_of_sequence_ids(llama3.tokenizer, llama3.model.generation_config)
    for generation, score in zip(batch.generations, scored.scores, strict=True):
        assert score.n_tokens == len(prompt.prefill_ids) + generation.n_tokens
        assert len(score.token_logprobs) == score.n_tokens  # every sampled id is measured, EOS included
        if generation.finish_reason == "stop":
            assert generation.token_ids[-1] in ends
    assert any(g.finish_reason == "stop" for g in batch.generations), "no candidate ended with an EOS"


def test_transformers_generator_and_scorer_run_one_sequence(llama3: Any) -> None:
    engine = build_engine("transformers", llama3, threading.Lock())
    try:
        assert_one_sequence(llama3, engine)
    finally:
        engine.close()


def test_a_remote_generator_and_the_local_scorer_run_one_sequence(llama3: Any, remote_url: str) -> None:
    engine = OpenAIEngine(remote_url, "default", timeout_s=60)
    try:
        assert_one_sequence(llama3, engine)
    finally:
        engine.close()


def test_token_id_prompts_on_v1_completions(llama3: Any, remote_url: str) -> None:
    import httpx

    ids = list(llama3.tokenizer("Hello there", add_special_tokens=False)["input_ids"])
    body = {"prompt": ids, "max_tokens": 4, "return_token_ids": True, "temperature": 0}
    choice = httpx.post(f"{remote_url}/v1/completions", json=body, timeout=60).json()["choices"][0]
    assert choice["prompt_token_ids"] == ids and 0 < len(choice["token_ids"]) <= 4
    as_floats = {**body, "prompt": [[float(i) for i in ids]]}  # JSON Schema's integers, in a list of prompts
    again = httpx.post(f"{remote_url}/v1/completions", json=as_floats, timeout=60).json()["choices"][0]
    assert again["prompt_token_ids"] == ids and again["token_ids"] == choice["token_ids"]  # greedy: the same
    bad = httpx.post(f"{remote_url}/v1/completions", json={**body, "prompt": [10**6]}, timeout=60)
    assert bad.status_code == 400 and "outside the vocabulary" in bad.json()["error"]["message"]
