"""`accelerate launch` with 2 CPU processes (gloo) for real: one step of 2 processes × 1 question equals
one step of 1 process × 2 questions, the main process alone writes, and a 2-process run resumes.

Three real runs of the embedded model take ~3 minutes on 2 contended cores, so this is marked slow.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from l2t_core.train.checkpoint import checkpoint_step, checkpoints, latest_checkpoint

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(data: Path, out: Path, processes: int, batch_size: int, steps: int = 1, resume: bool = False) -> str:
    flags = [
        "--data", str(data), "--output-dir", str(out), "--steps", str(steps), "--batch-size", str(batch_size),
        "--group-size", "2", "--max-new-tokens", "8", "--lr", "1e-4", "--save-interval", "1", "--eval-size", "0",
        "--eval-fraction", "0.25", "--device", "cpu", "--seed", "3", "--warmup-ratio", "0", "--schedule", "constant",
    ]  # fmt: skip
    if resume:
        flags.append("--resume")
    # accelerate's --multi_gpu is its torchrun launcher; on a machine without GPUs every process runs on
    # the CPU and accelerate joins them with gloo (its --cpu flag would start one process only).
    mode = "--multi_gpu" if processes > 1 else "--cpu"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", mode, "--num_processes", str(processes)]
    launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launcher += ["--main_process_port", str(free_port()), "-m", "l2t_core.train"]
    # one thread per process in both runs: the same kernels, so the same floats
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([*launcher, *flags], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for shard in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(shard)).items()}


def log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_equal_one_process_with_the_whole_batch_and_resume(tmp_path):
    data = tmp_path / "add.jsonl"
    pairs = [(3, 4), (12, 5), (7, 8), (20, 9), (6, 6), (15, 2), (9, 11), (4, 13)]
    data.write_text(
        "".join(json.dumps({"question": f"What is {a} + {b}?", "answer": str(a + b)}) + "\n" for a, b in pairs)
    )
    two, one = tmp_path / "two", tmp_path / "one"
    stdout = run(data, two, processes=2, batch_size=1)
    run(data, one, processes=1, batch_size=2)
    assert stdout.count("done: last checkpoint") == 1  # only the main process reports (and writes)
    assert [c.name for c in checkpoints(two)] == ["checkpoint-1"]
    assert not [p for p in two.iterdir() if p.name.startswith(".checkpoint-")]  # no second, racing writer
    (two_metrics,), (one_metrics,) = log(two), log(one)  # one line per step, not one per process
    for key in ("accuracy", "fitting_gain", "dense_reward", "response_tokens", "loss", "kl"):
        assert two_metrics[key] == pytest.approx(one_metrics[key], rel=1e-5, abs=1e-9), key
    a, b = weights(latest_checkpoint(two)), weights(latest_checkpoint(one))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)

    run(data, two, processes=2, batch_size=1, steps=2, resume=True)
    last = latest_checkpoint(two)
    assert last is not None and checkpoint_step(last) == 2
    assert [m["step"] for m in log(two)] == [1, 2]
    assert not torch.equal(weights(last)["model.norm.weight"], a["model.norm.weight"])
