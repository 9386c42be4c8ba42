"""`accelerate launch` with 2 CPU processes (gloo) for real, through the shipped config file
(configs/accelerate/cpu_2proc.yaml): one step of 2 processes × 1 question equals one step of 1 process × 2
questions, the main process alone writes, and a 2-process run resumes; the same with the tiny model, whose
checkpoint then loads as a model; and an FSDP config is refused with the reason before anything loads.

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


CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"


def launch(config_file: Path | None, flags: list[str]) -> subprocess.CompletedProcess[str]:
    """`accelerate launch [--config_file FILE] -m l2t_core.train FLAGS`, one thread per process (the same
    kernels in every run, so the same floats); without a file, one process on the CPU (accelerate's --cpu)."""
    launcher = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file is None:
        launcher += ["--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no"]
        launcher += ["--dynamo_backend", "no"]
    else:
        launcher += ["--config_file", str(config_file)]
    launcher += ["--main_process_port", str(free_port()), "-m", "l2t_core.train"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([*launcher, *flags], capture_output=True, text=True, timeout=600, env=env)


def run(
    data: Path,
    out: Path,
    processes: int,
    batch_size: int,
    steps: int = 1,
    resume: bool = False,
    model: str = "default",
) -> str:
    flags = [
        "--model", model,
        "--data", str(data), "--output-dir", str(out), "--steps", str(steps), "--batch-size", str(batch_size),
        "--group-size", "2", "--max-new-tokens", "8", "--lr", "1e-4", "--save-interval", "1", "--eval-size", "0",
        "--eval-fraction", "0.25", "--device", "cpu", "--seed", "3", "--warmup-ratio", "0", "--schedule", "constant",
    ]  # fmt: skip
    if resume:
        flags.append("--resume")
    # cpu_2proc.yaml is accelerate's torchrun launcher with use_cpu: every process on the CPU, joined by
    # gloo (accelerate's --cpu flag would start one process only).
    assert processes in (1, 2)
    done = launch(CONFIGS / "cpu_2proc.yaml" if processes == 2 else None, flags)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for shard in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(shard)).items()}


def log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def additions(folder: Path) -> Path:
    data = folder / "add.jsonl"
    pairs = [(3, 4), (12, 5), (7, 8), (20, 9), (6, 6), (15, 2), (9, 11), (4, 13)]
    data.write_text(
        "".join(json.dumps({"question": f"What is {a} + {b}?", "answer": str(a + b)}) + "\n" for a, b in pairs)
    )
    return data


def assert_same_step(two: dict, one: dict) -> None:
    for key in ("accuracy", "fitting_gain", "dense_reward", "response_tokens", "loss", "kl"):
        assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-9), key


def test_two_processes_equal_one_process_with_the_whole_batch_and_resume(tmp_path):
    data = additions(tmp_path)
    two, one = tmp_path / "two", tmp_path / "one"
    stdout = run(data, two, processes=2, batch_size=1)
    run(data, one, processes=1, batch_size=2)
    assert stdout.count("done: last checkpoint") == 1  # only the main process reports (and writes)
    assert [c.name for c in checkpoints(two)] == ["checkpoint-1"]
    assert not [p for p in two.iterdir() if p.name.startswith(".checkpoint-")]  # no second, racing writer
    (two_metrics,), (one_metrics,) = log(two), log(one)  # one line per step, not one per process
    assert_same_step(two_metrics, one_metrics)
    a, b = weights(latest_checkpoint(two)), weights(latest_checkpoint(one))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)

    run(data, two, processes=2, batch_size=1, steps=2, resume=True)
    last = latest_checkpoint(two)
    assert last is not None and checkpoint_step(last) == 2
    assert [m["step"] for m in log(two)] == [1, 2]
    assert not torch.equal(weights(last)["model.norm.weight"], a["model.norm.weight"])


def test_tiny_model_two_processes_from_the_config_file_equal_one_and_the_checkpoint_loads(tmp_path, tiny_model_dir):
    from l2t_core.models import load_model

    data = additions(tmp_path)
    two, one = tmp_path / "two", tmp_path / "one"
    stdout = run(data, two, processes=2, batch_size=1, model=str(tiny_model_dir))
    run(data, one, processes=1, batch_size=2, model=str(tiny_model_dir))
    assert stdout.count("done: last checkpoint") == 1
    (two_metrics,), (one_metrics,) = log(two), log(one)
    assert_same_step(two_metrics, one_metrics)
    last = latest_checkpoint(two)
    assert last is not None and checkpoint_step(last) == 1
    loaded = load_model(str(last), device="cpu")
    trained = dict(loaded.model.state_dict())
    for key, value in weights(latest_checkpoint(one)).items():
        torch.testing.assert_close(trained[key], value, rtol=0, atol=1e-6, msg=key)
    assert loaded.tokenizer("What is 3 + 4?")["input_ids"]  # the checkpoint's own tokenizer came with it


def test_an_fsdp_config_is_refused_with_what_is_supported(tmp_path, tiny_model_dir):
    # FSDP full-shard of the decoder layers, as a user would write it for SmolLM2; on the CPU accelerate
    # would silently run DDP instead, so the trainer reads the launcher's intent and refuses.
    config = tmp_path / "fsdp.yaml"
    config.write_text(
        (CONFIGS / "cpu_2proc.yaml").read_text().replace("distributed_type: MULTI_GPU", "distributed_type: FSDP")
        + "fsdp_config:\n  fsdp_version: 2\n  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n"
        "  fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer\n  fsdp_state_dict_type: FULL_STATE_DICT\n"
    )
    out = tmp_path / "out"
    flags = ["--model", str(tiny_model_dir), "--data", str(additions(tmp_path)), "--output-dir", str(out)]
    done = launch(config, [*flags, "--steps", "1", "--device", "cpu"])
    assert done.returncode != 0
    assert done.stderr.count("error: FSDP is not supported") == 2, done.stderr[-3000:]  # every process says why
    assert "configs/accelerate/cpu_2proc.yaml" in done.stderr
    assert not out.exists()  # refused before the output folder is claimed
