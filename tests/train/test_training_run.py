"""A tiny real run on the CPU (G = 2, 32 new tokens), checkpoints, resume and a killed run.

The trainer's mechanics are the subject here, not what SmolLM2 learns: the policy is the session's tiny
random model folder (`tiny_model_dir`: its own tokenizer and chat template, loaded through `--model` as any
folder is), so every step runs the real rollout, scoring, loss and checkpoint code in a fraction of the time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from l2t_core.models import load_model
from l2t_core.train import TrainConfig, train
from l2t_core.train.checkpoint import checkpoint_step, latest_checkpoint
from l2t_core.train.trainer import evaluate_only


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "add.jsonl"
    rows = [
        {"id": f"a{i}", "question": f"What is {a} + {b}?", "answer": str(a + b)}
        for i, (a, b) in enumerate([(3, 4), (12, 5), (7, 8), (20, 9), (6, 6), (15, 2), (9, 11), (4, 13)])
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def policy(tiny_model_dir) -> str:
    return str(tiny_model_dir)


def config(data: Path, out: Path, policy: str, **overrides) -> TrainConfig:
    base = dict(
        model=policy,
        data=str(data),
        output_dir=str(out),
        steps=2,
        group_size=2,
        batch_size=1,
        max_new_tokens=32,
        lr=1e-4,
        save_interval=1,
        eval_size=2,
        eval_fraction=0.25,
        device="cpu",
        seed=3,
        warmup_ratio=0.0,
    )
    base.update(overrides)
    return TrainConfig(**base)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for shard in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(shard)).items()}


@pytest.fixture(scope="module")
def two_step_run(data, policy, tmp_path_factory) -> tuple[Path, Path | None]:
    """The default two-step run, trained once: checked as a run and as the uninterrupted side of resume.
    (output folder, the checkpoint `train` returned)"""
    out = tmp_path_factory.mktemp("two-step") / "run"
    return out, train(config(data, out, policy))


def test_tiny_run_writes_a_servable_checkpoint_and_logs(data, policy, two_step_run):
    run, last = two_step_run
    assert last is not None and checkpoint_step(last) == 2 and latest_checkpoint(run) == last
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2]
    for key in (
        "accuracy",
        "fitting_gain",
        "compression_penalty",
        "response_tokens",
        "kl",
        "rollout_s",
        "score_s",
        "update_s",
    ):
        assert key in lines[0]
    assert "final_eval_accuracy" in lines[-1]
    # keep_checkpoints = 2: the older one stays as servable weights, the optimiser state only in the latest
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert (last / "optim.pt").exists() and not (run / "checkpoint-1" / "optim.pt").exists()
    initial = load_model(policy, device="cpu")
    trained = weights(last)
    moved = [k for k, v in initial.model.state_dict().items() if k in trained and not torch.equal(v, trained[k])]
    assert moved, "two steps at lr 1e-4 must change the weights"
    served = load_model(str(last), device="cpu")  # what `l2t serve --model DIR` does
    ids = served.tokenizer("What is 3 + 4?", return_tensors="pt")
    out = served.model.generate(**ids, max_new_tokens=2, min_new_tokens=2, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 2
    # --eval-only on the run's latest checkpoint: one record appended, named by its step, no lock taken
    record = evaluate_only(config(data, run, policy, resume=True, eval_only=True, eval_samples=2))
    assert record["model"] == str(last) and record["step"] == 2 and record["eval_questions"] == 2
    assert record["engine"] == "transformers" and record["eval_seconds"] > 0
    assert 0.0 <= record["eval_maj2_accuracy"] <= 1.0 and record["eval_response_tokens"] > 0
    assert len(record["eval_correct"]) == len(record["eval_maj2_correct"]) == 2  # per question, for pairing
    assert len(record["eval_tokens_each"]) == len(record["eval_sample_tokens_each"]) == 2
    logged = (run / "held_back.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in logged] == [2]


def test_resume_continues_exactly(data, policy, two_step_run, tmp_path):
    _, straight = two_step_run
    train(config(data, tmp_path / "resumed", policy, steps=1))
    resumed = train(config(data, tmp_path / "resumed", policy, steps=2, resume=True))
    assert straight is not None and resumed is not None
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    # The check above means something only if the resumed step moves the weights far beyond its tolerance
    # (a random policy's rewards are tiny, but Adam's steps are lr-sized): a wrong resume could not hide.
    first = weights(tmp_path / "resumed" / "checkpoint-1")
    assert max(float((first[key] - b[key]).abs().max()) for key in b) > 10 * 1e-6


def test_killed_run_resumes_cleanly(data, policy, tmp_path):
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "l2t_core.train",
        "--model",
        policy,
        "--data",
        str(data),
        "--output-dir",
        str(out),
        "--steps",
        "3",
        "--group-size",
        "2",
        "--batch-size",
        "1",
        "--max-new-tokens",
        "32",
        "--save-interval",
        "1",
        "--device",
        "cpu",
        "--eval-size",
        "1",
        "--seed",
        "3",
    ]
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    deadline = time.monotonic() + 300
    while latest_checkpoint(out) is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    first = latest_checkpoint(out)
    assert first is not None, "the run never wrote a checkpoint"
    assert process.returncode == -signal.SIGKILL and checkpoint_step(first) < 3, "the run was not killed mid-way"
    done = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    last = latest_checkpoint(out)
    assert last is not None and checkpoint_step(last) == 3
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # no step lost, none repeated


def test_config_from_yaml_and_flags(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("group_size: 6\nalpha: 0.0\nlr: 2.0e-6\n")
    parsed = TrainConfig.from_args(["--config", str(yaml_file), "--alpha", "0.5", "--lora"])
    assert (parsed.group_size, parsed.alpha, parsed.lr, parsed.lora) == (6, 0.5, 2e-6, True)
    for bad in (["--group-size", "1"], ["--schedule", "linear"], ["--clip-eps", "2"]):
        with pytest.raises(SystemExit):
            TrainConfig.from_args(bad)
    yaml_file.write_text("gruop_size: 4\n")
    with pytest.raises(SystemExit):
        TrainConfig.from_args(["--config", str(yaml_file)])


def test_gradient_accumulation_equals_one_big_batch(data, policy, tmp_path):
    big = train(config(data, tmp_path / "big", policy, steps=1, batch_size=2, grad_accum=1))
    accumulated = train(config(data, tmp_path / "accumulated", policy, steps=1, batch_size=1, grad_accum=2))
    assert big is not None and accumulated is not None
    a, b = weights(big), weights(accumulated)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_lora_run_saves_a_merged_servable_model(data, policy, tmp_path):
    pytest.importorskip("peft")
    # `episode`: its two rollouts differ, so one step has a non-zero advantage and moves the weights
    last = train(
        config(data, tmp_path / "lora", policy, steps=1, lora=True, lora_rank=4, kl_coef=0.0, prompt_format="episode")
    )
    assert last is not None
    served = load_model(str(last), device="cpu")
    assert not any("lora" in name for name, _ in served.model.named_parameters())
    initial = load_model(policy, device="cpu").model.state_dict()
    trained = served.model.state_dict()
    assert any(not torch.equal(initial[k], trained[k]) for k in initial if "q_proj" in k)
