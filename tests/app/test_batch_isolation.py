"""One bad request never fails another: bad text is refused before it joins a micro-batch, and a job
that still fails inside the model fails alone while its batch-mates are answered."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from l2t_core.engines import EngineError, SamplingParams
from l2t_core.engines.transformers_engine import TransformersEngine, _Job
from l2t_core.episodes import RenderedPrompt, prompt_format
from l2t_core.errors import InvalidRequest


@pytest.fixture(scope="module")
def engine(loaded_model):
    engine = TransformersEngine(loaded_model, batch_window_s=1.0)  # a wide window: the jobs below share a batch
    yield engine
    engine.close()


def test_a_prompt_no_tokenizer_takes_is_refused_before_batching(engine, loaded_model):
    with pytest.raises(InvalidRequest, match="not valid Unicode") as error:
        RenderedPrompt.raw(loaded_model.tokenizer, "\ud800 x")  # the one tokenization refuses it
    assert error.value.param == "prompt"
    with pytest.raises(InvalidRequest, match="empty"):
        engine.generate([], SamplingParams(max_tokens=2))
    with pytest.raises(InvalidRequest, match="outside the vocabulary") as error:
        engine.generate([1, loaded_model.model.config.vocab_size], SamplingParams(max_tokens=2))
    assert error.value.param == "prompt"


def test_a_failing_job_fails_alone_in_its_batch(engine, loaded_model, caplog):
    caplog.set_level(logging.WARNING)
    params = SamplingParams(n=2, max_tokens=6, temperature=0.7)
    prompts = [
        prompt_format("episode").render(loaded_model.tokenizer, f"What is {i} + 1?").engine_ids for i in range(3)
    ]
    # A job that got past validation but cannot run: a token id outside the vocabulary.
    broken = _Job([loaded_model.model.config.vocab_size + 10], params, threading.Event())
    with ThreadPoolExecutor(4) as pool:
        good = [pool.submit(engine.generate, prompt, params) for prompt in prompts[:2]]
        engine._jobs.put(broken)
        good.append(pool.submit(engine.generate, prompts[2], params))
        results = [future.result(timeout=300) for future in good]
    with pytest.raises(EngineError, match="generation failed"):
        broken.future.result(timeout=300)
    assert all(len(batch.generations) == 2 and batch.prompt_tokens > 0 for batch in results)
    assert any("a batch of 4 jobs failed" in r.getMessage() for r in caplog.records)  # they did share one batch


def test_a_bad_request_among_good_ones_over_http(live_url):
    async def send(client: httpx.AsyncClient, content: bytes) -> int:
        response = await client.post(
            f"{live_url}/generate", content=content, headers={"content-type": "application/json"}
        )
        return response.status_code

    good = b'{"prompt": "What is 3 + 4?", "n": 2, "max_tokens": 6}'
    bad = b'{"prompt": "What is \\ud800 + 4?", "n": 2, "max_tokens": 6}'

    async def all_of_them() -> list[int]:
        async with httpx.AsyncClient(timeout=300) as client:
            return list(await asyncio.gather(send(client, good), send(client, bad), send(client, good)))

    assert asyncio.run(all_of_them()) == [200, 422, 200]
