"""Checkpoint retention on real folders: the newest N kept, the optimiser state only in the latest,
leftovers of a killed run cleared, and one trainer per output folder (the run lock)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from l2t_core.train import TrainConfig, train
from l2t_core.train.__main__ import main
from l2t_core.train.checkpoint import LATEST, TRAINING_STATE, checkpoints, latest_checkpoint, prune_checkpoints
from l2t_core.train.run_lock import OutputDirLocked, RunLock


def fake_checkpoint(output_dir: Path, step: int) -> Path:
    """A folder with the files save_checkpoint writes (the weights' content does not matter to retention)."""
    folder = output_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w" * 10)
    (folder / TRAINING_STATE).write_bytes(b"o" * 20)
    (folder / "trainer_state.json").write_text(f'{{"step": {step}}}')
    return folder


def point_latest(output_dir: Path, step: int) -> None:
    (output_dir / LATEST).write_text(f"checkpoint-{step}")


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_prune_keeps_the_newest_and_the_optimiser_state_only_in_the_latest(tmp_path, keep):
    for step in (2, 4, 6, 8):
        fake_checkpoint(tmp_path, step)
    point_latest(tmp_path, 8)
    prune_checkpoints(tmp_path, keep)
    kept = [int(p.name.split("-")[1]) for p in checkpoints(tmp_path)]
    assert kept == [2, 4, 6, 8][-keep:]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-8"
    assert (tmp_path / "checkpoint-8" / TRAINING_STATE).exists()
    for step in kept[:-1]:  # older ones stay servable weights, without the 2× optimiser state
        assert (tmp_path / f"checkpoint-{step}" / "model.safetensors").exists()
        assert not (tmp_path / f"checkpoint-{step}" / TRAINING_STATE).exists()


def test_prune_clears_what_a_killed_run_left(tmp_path):
    for step in (1, 2, 3):
        fake_checkpoint(tmp_path, step)
    point_latest(tmp_path, 2)  # killed after writing checkpoint-3, before moving the pointer
    (tmp_path / ".checkpoint-4.abc123").mkdir()  # killed while staging checkpoint-4
    (tmp_path / ".checkpoint-2.def456.old").mkdir()  # killed while replacing checkpoint-2
    (tmp_path / ".deleting-checkpoint-0").mkdir()  # killed while deleting checkpoint-0
    (tmp_path / f".{LATEST}.xyz789").write_text("checkpoint-4")  # killed while writing the pointer
    prune_checkpoints(tmp_path, keep=2)
    # checkpoint-3 is newer than `latest`: never pruned (the resumed run redoes step 3 and replaces it)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1", "checkpoint-2", "checkpoint-3", LATEST]


def test_keep_checkpoints_is_validated():
    with pytest.raises(ValueError, match="keep_checkpoints"):
        TrainConfig(keep_checkpoints=0)
    assert TrainConfig.from_args(["--keep-checkpoints", "5"]).keep_checkpoints == 5


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from l2t_core.train.run_lock import RunLock
    lock = RunLock(Path(sys.argv[1]))
    print("locked", flush=True)
    time.sleep(600)
    """
)


def test_a_second_trainer_on_one_output_dir_refuses_and_a_dead_holder_does_not_block(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        config = TrainConfig(output_dir=str(out), device="cpu", data="arithmetic", steps=1)
        with pytest.raises(OutputDirLocked, match=f"pid {holder.pid}"):
            train(config)  # refused before any model is loaded
        assert main(["--output-dir", str(out), "--device", "cpu", "--steps", "1"]) == 2
        assert "is in use by a running trainer" in capsys.readouterr().err
        assert not (out / "metrics.jsonl").exists()
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the lock file stays behind
        holder.wait(timeout=30)
    assert (out / ".lock").exists()
    lock = RunLock(out)  # the kernel dropped the dead holder's lock: not stale
    with pytest.raises(OutputDirLocked):
        RunLock(out)
    lock.release()
    RunLock(out).release()
