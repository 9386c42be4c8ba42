"""Training loses nothing: real checkpoints of the tiny model (tests/fakes.py) cut short, saves killed or
failing at every point between a write and its rename, folders without a valid `latest`, and a real
(tiny) training run that resumes past a damaged latest checkpoint."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import l2t_core.atomic
from l2t_core.train import TrainConfig, train
from l2t_core.train.__main__ import main
from l2t_core.train.checkpoint import (
    LATEST,
    TRAINER_STATE,
    TRAINING_STATE,
    CheckpointUnreadable,
    OutputDirHasCheckpoints,
    checkpoints,
    latest_checkpoint,
    prepare_output_dir,
    prune_checkpoints,
    read_checkpoint,
    restore_training_state,
    resume_point,
    save_checkpoint,
)
from l2t_core.train.run_lock import RunLock
from tests.fakes import tiny_model_folder
from tests.train.test_checkpoint_files import fake_checkpoint, point_latest


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model")


class Policy:
    """The tiny model with an AdamW that has taken one step (so its state is not empty) and a schedule."""

    def __init__(self, model_dir: Path) -> None:
        self.model = AutoModelForCausalLM.from_pretrained(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 1.0 / (step + 1))
        self.model(input_ids=torch.tensor([[1, 2, 3]])).logits.sum().backward()
        self.optimizer.step()
        self.scheduler.step()

    def save(self, out: Path, step: int, keep: int = 2) -> Path:
        return save_checkpoint(out, step, self.model, self.tokenizer, self.optimizer, self.scheduler, keep)


@pytest.fixture
def policy(model_dir: Path) -> Policy:
    return Policy(model_dir)


def cut_short(path: Path) -> None:
    """What a crash mid-write without fsync, or a full disk, leaves: the first half of the file."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- a truncated checkpoint: resume falls back to the newest one that reads ----------------------------
@pytest.mark.parametrize("damaged", ["model.safetensors", TRAINING_STATE, TRAINER_STATE])
def test_resume_skips_a_truncated_latest_for_the_newest_checkpoint_that_reads(tmp_path, policy, damaged, caplog):
    for step in (1, 2, 3):
        policy.save(tmp_path, step, keep=3)
    cut_short(tmp_path / "checkpoint-3" / damaged)
    with pytest.raises(CheckpointUnreadable, match=damaged):
        read_checkpoint(tmp_path / "checkpoint-3")
    with caplog.at_level(logging.WARNING, logger="l2t_core.train.checkpoint"):
        point = resume_point(tmp_path)
    assert point is not None and point.folder == tmp_path / "checkpoint-2" and point.step == 2
    assert point.training_state is None  # an older kept checkpoint holds weights only
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 1 and "checkpoint-3" in skipped[0] and damaged in skipped[0]
    assert any("weights only" in r.getMessage() for r in caplog.records)
    saved = dict(policy.model.state_dict())
    assert point.weights.keys() <= saved.keys()
    for key, value in point.weights.items():
        assert torch.equal(value, saved[key]), key


def test_resume_reads_the_latest_whole_and_restores_optimiser_and_schedule(tmp_path, policy, model_dir):
    policy.save(tmp_path, 1)
    point = resume_point(tmp_path)
    assert point is not None and point.step == 1 and point.training_state is not None
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    restore_training_state(point, optimizer, scheduler)
    saved, restored = policy.optimizer.state_dict()["state"], optimizer.state_dict()["state"]
    assert saved.keys() == restored.keys() and len(saved) > 1
    for key in saved:
        assert torch.equal(saved[key]["exp_avg_sq"], restored[key]["exp_avg_sq"]), key
    assert scheduler.last_epoch == 1
    restore_training_state(replace(point, step=7, training_state=None), optimizer, scheduler)
    assert scheduler.last_epoch == 7  # from a weights-only fallback the schedule continues at its step


def test_resume_with_no_checkpoint_that_reads_names_each_one_and_why(tmp_path, policy):
    for step in (1, 2):
        policy.save(tmp_path, step)
    cut_short(tmp_path / "checkpoint-2" / TRAINING_STATE)
    (tmp_path / "checkpoint-1" / "model.safetensors").unlink()
    with pytest.raises(CheckpointUnreadable, match="checkpoint-2: optim.pt.*checkpoint-1: no .*safetensors"):
        resume_point(tmp_path)


# -- a missing or broken `latest` pointer: refused, nothing changed -------------------------------------
@pytest.mark.parametrize("pointer", [None, "checkpoint-9", "../elsewhere", ""])
@pytest.mark.parametrize("resume", [True, False])
def test_checkpoints_without_a_valid_latest_are_refused_unless_overwritten(tmp_path, pointer, resume):
    for step in (2, 4):
        fake_checkpoint(tmp_path, step)
    if pointer is not None:
        (tmp_path / LATEST).write_text(pointer)
    before = listing(tmp_path)
    with pytest.raises(OutputDirHasCheckpoints) as refused:
        prepare_output_dir(tmp_path, resume=resume, overwrite=False)
    message = str(refused.value)
    assert str(tmp_path) in message and "--overwrite-output-dir" in message and "checkpoint-2, checkpoint-4" in message
    assert listing(tmp_path) == before
    prepare_output_dir(tmp_path, resume=False, overwrite=True)
    assert checkpoints(tmp_path) == [] and not (tmp_path / LATEST).exists()


def test_a_fresh_run_over_a_valid_run_is_refused_and_resume_is_allowed(tmp_path):
    fake_checkpoint(tmp_path, 3)
    point_latest(tmp_path, 3)
    with pytest.raises(OutputDirHasCheckpoints, match="--resume to continue it, or --overwrite-output-dir"):
        prepare_output_dir(tmp_path, resume=False, overwrite=False)
    prepare_output_dir(tmp_path, resume=True, overwrite=False)
    assert [p.name for p in checkpoints(tmp_path)] == ["checkpoint-3"]
    prepare_output_dir(tmp_path / "new", resume=False, overwrite=False)  # no folder, no checkpoints: fine


def test_the_trainer_refuses_before_loading_a_model_and_frees_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    fake_checkpoint(out, 5)  # no `latest`: a resume used to start at step 0 and prune checkpoint-5
    config = TrainConfig(output_dir=str(out), device="cpu", data="arithmetic", steps=1, resume=True)
    with pytest.raises(OutputDirHasCheckpoints, match="no valid `latest` pointer"):
        train(config)
    assert main(["--output-dir", str(out), "--device", "cpu", "--steps", "1", "--resume"]) == 2
    assert "--overwrite-output-dir" in capsys.readouterr().err
    assert [p.name for p in checkpoints(out)] == ["checkpoint-5"] and not (out / "metrics.jsonl").exists()
    RunLock(out).release()  # the refusing trainer let go of the lock


def test_overwrite_flag_is_declared_and_excludes_resume():
    assert TrainConfig.from_args(["--overwrite-output-dir"]).overwrite_output_dir is True
    assert TrainConfig().overwrite_output_dir is False
    with pytest.raises(ValueError, match="choose one"):
        TrainConfig(resume=True, overwrite_output_dir=True)


# -- never prune above `latest` --------------------------------------------------------------------------
def test_prune_never_removes_a_checkpoint_newer_than_latest(tmp_path):
    for step in (2, 4, 6, 8):
        fake_checkpoint(tmp_path, step)
    point_latest(tmp_path, 4)
    prune_checkpoints(tmp_path, keep=1)
    assert [p.name for p in checkpoints(tmp_path)] == ["checkpoint-4", "checkpoint-6", "checkpoint-8"]
    for step in (6, 8):  # untouched, optimiser state included
        assert (tmp_path / f"checkpoint-{step}" / TRAINING_STATE).exists()


def test_a_save_below_existing_checkpoints_deletes_none_of_them(tmp_path, policy):
    for step in (5, 6):
        policy.save(tmp_path, step)
    point_latest(tmp_path, 0)  # a dangling pointer, as a run that lost its `latest` and restarted would leave
    policy.save(tmp_path, 1, keep=1)
    assert [p.name for p in checkpoints(tmp_path)] == ["checkpoint-1", "checkpoint-5", "checkpoint-6"]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-1"


# -- a save that fails or is killed between a write and its rename ---------------------------------------
def fsync_calls_of_one_save(tmp_path: Path, policy: Policy, monkeypatch: pytest.MonkeyPatch) -> int:
    calls = []
    real = os.fsync
    monkeypatch.setattr(l2t_core.atomic.os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    policy.save(tmp_path / "count", 1)
    monkeypatch.setattr(l2t_core.atomic.os, "fsync", real)
    return len(calls)


def test_a_save_failing_at_any_flush_leaves_a_resumable_folder(tmp_path, policy, monkeypatch):
    total = fsync_calls_of_one_save(tmp_path, policy, monkeypatch)
    assert total >= 8  # every file of the checkpoint, its folder, the output folder, the pointer and its folder
    real = os.fsync
    for failing in range(total):
        out = tmp_path / f"fail-{failing}"
        policy.save(out, 1)
        calls = iter(range(total))

        def flaky(fd: int, failing: int = failing, calls: Any = calls) -> None:
            if next(calls) == failing:
                raise OSError(5, "Input/output error (injected)")
            real(fd)

        monkeypatch.setattr(l2t_core.atomic.os, "fsync", flaky)
        with pytest.raises(OSError, match="injected"):
            policy.save(out, 2)
        monkeypatch.setattr(l2t_core.atomic.os, "fsync", real)
        latest = latest_checkpoint(out)
        assert latest is not None, failing
        for folder in checkpoints(out):  # nothing under a checkpoint's name is half-written
            read_checkpoint(folder)
        point = resume_point(out)
        assert point is not None and point.folder == latest and point.training_state is not None, failing
        prepare_output_dir(out, resume=True, overwrite=False)
        policy.save(out, 2)  # the resumed run redoes the save; the folder ends clean
        assert listing(out) == ["checkpoint-1", "checkpoint-2", LATEST], failing
        assert latest_checkpoint(out) == out / "checkpoint-2"


KILLED_MID_SAVE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import l2t_core.train.checkpoint as checkpoint

    model_dir, out, where = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    checkpoint.save_checkpoint(out, 1, model, tokenizer, optimizer, scheduler)

    def stall(*args, **kwargs):
        print("stalled", flush=True)
        time.sleep(600)

    class StallingTokenizer:  # writes its files, then stalls with the checkpoint half-staged
        def save_pretrained(self, folder):
            tokenizer.save_pretrained(folder)
            stall()

    if where == "pointer":  # the folder renamed into place, the pointer not yet moved
        checkpoint.atomic_write_text = stall
    saving = StallingTokenizer() if where == "staging" else tokenizer
    checkpoint.save_checkpoint(out, 2, model, saving, optimizer, scheduler)
    """
)


@pytest.mark.parametrize("where", ["staging", "pointer"])
def test_a_save_killed_mid_write_resumes_from_the_previous_checkpoint(tmp_path, model_dir, policy, where):
    out = tmp_path / "run"
    saver = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_SAVE, str(model_dir), str(out), where],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert saver.stdout is not None and saver.stdout.readline().strip() == "stalled"
    finally:
        saver.send_signal(signal.SIGKILL)  # no clean-up code runs
        saver.wait(timeout=30)
    assert latest_checkpoint(out) == out / "checkpoint-1"
    if where == "staging":
        assert [p.name for p in checkpoints(out)] == ["checkpoint-1"]
        assert [p.name for p in out.iterdir() if p.name.startswith(".checkpoint-2.")]  # the staging copy
    else:
        assert [p.name for p in checkpoints(out)] == ["checkpoint-1", "checkpoint-2"]
    prepare_output_dir(out, resume=True, overwrite=False)
    point = resume_point(out)
    assert point is not None and point.step == 1 and point.training_state is not None
    policy.save(out, 2)
    assert listing(out) == ["checkpoint-1", "checkpoint-2", LATEST]
    assert read_checkpoint(out / "checkpoint-2").training_state is not None


# -- the trainer itself: a tiny real run whose latest checkpoint is cut short ----------------------------
def test_a_tiny_run_resumes_past_a_truncated_latest_checkpoint(tmp_path, model_dir, caplog):
    data = tmp_path / "add.jsonl"
    pairs = [(1, 2), (3, 4), (5, 6), (7, 8)]
    data.write_text(
        "".join(json.dumps({"question": f"What is {a} + {b}?", "answer": str(a + b)}) + "\n" for a, b in pairs)
    )
    out = tmp_path / "run"
    settings: dict[str, Any] = dict(
        model=str(model_dir), data=str(data), output_dir=str(out), group_size=2, batch_size=1, max_new_tokens=4,
        save_interval=1, eval_size=0, eval_fraction=0.25, device="cpu", kl_coef=0.0, prompt_format="plain",
    )  # fmt: skip
    train(TrainConfig(steps=2, **settings))
    cut_short(out / "checkpoint-2" / TRAINING_STATE)
    with pytest.raises(OutputDirHasCheckpoints, match="--resume"):
        train(TrainConfig(steps=3, **settings))  # a fresh start over the run is refused
    with caplog.at_level(logging.INFO):
        last = train(TrainConfig(steps=3, resume=True, **settings))
    messages = [r.getMessage() for r in caplog.records]
    assert any("skipping" in m and "checkpoint-2" in m and TRAINING_STATE in m for m in messages)
    assert last == out / "checkpoint-3" and latest_checkpoint(out) == last
    assert read_checkpoint(out / "checkpoint-2").training_state is None  # redone and replaced, then pruned to weights
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # resumed from checkpoint-1: step 2 redone, none repeated
    train(TrainConfig(steps=1, overwrite_output_dir=True, **settings))
    assert [p.name for p in checkpoints(out)] == ["checkpoint-1"]
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]
