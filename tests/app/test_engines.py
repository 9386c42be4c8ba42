"""The remote (openai) engine against a real OpenAI-compatible server on loopback: another l2t instance."""

from __future__ import annotations

import threading

import pytest

from l2t_core.engines import Cancelled, EngineError, SamplingParams
from l2t_core.engines.openai_engine import OpenAIEngine
from l2t_core.episodes import prompt_format


def test_openai_engine_generates_through_a_remote_l2t(live_url, loaded_model):
    engine = OpenAIEngine(live_url, "default", timeout_s=120)
    assert engine.healthy()
    prompt = prompt_format("episode").render(loaded_model.tokenizer, "What is 3 + 4?").engine_ids
    batch = engine.generate(prompt, SamplingParams(n=2, max_tokens=12, seed=3, stop=("\n\n",)))
    assert len(batch.generations) == 2 and batch.prompt_tokens == len(prompt)  # the ids went as they are
    assert all(g.n_tokens > 0 and g.finish_reason in ("stop", "length") for g in batch.generations)
    # the remote l2t returned its sampled ids, and they decode to the text it returned
    assert all(len(g.token_ids) == g.n_tokens for g in batch.generations)
    assert all(
        loaded_model.tokenizer.decode(list(g.token_ids), skip_special_tokens=True).startswith(g.text)
        for g in batch.generations
    )
    engine.close()


def test_openai_engine_bounded_retries_and_clear_errors():
    engine = OpenAIEngine("http://127.0.0.1:9", "default", max_retries=2, backoff_s=0.01, timeout_s=2)
    assert not engine.healthy()
    with pytest.raises(EngineError, match="after 3 attempts: connection failed"):
        engine.generate([1, 2], SamplingParams())
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        engine.generate([1, 2], SamplingParams(), cancel)


def test_openai_engine_rejects_model_mismatch(live_url):
    engine = OpenAIEngine(live_url, "some-other-model", max_retries=0)
    with pytest.raises(EngineError, match="rejected the request: HTTP 404"):
        engine.generate([1, 2], SamplingParams(max_tokens=2))
