"""Checkpoints that a crash cannot half-write, holding only what resume needs.

Each checkpoint is built in a temporary folder and renamed into place, and the `latest` pointer is
replaced atomically. Weights are safetensors (a folder that `l2t serve --model DIR` loads). The
optimiser state (AdamW's two float32 moments: twice the weights, 1.08 GB for the 135M model) is what
exact resume needs, and resume only ever starts from `latest`; so it is kept in the latest checkpoint
alone, and the older kept checkpoints are weights only (servable, comparable, but not resumable).
Pruning renames a folder out of the `checkpoint-*` namespace before deleting it, so a crash mid-delete
never leaves a half-deleted folder under a checkpoint's name.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from l2t_core.atomic import atomic_folder

LATEST = "latest"
TRAINING_STATE = "optim.pt"
_TRASH_PREFIX = ".deleting-"


def save_checkpoint(
    output_dir: Path, step: int, model: Any, tokenizer: Any, optimizer: Any, scheduler: Any, keep: int = 2
) -> Path:
    """Write checkpoint-`step`, point `latest` at it, then keep the `keep` newest checkpoints."""
    final = output_dir / f"checkpoint-{step}"
    with atomic_folder(final) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        torch.save(state, staging / TRAINING_STATE)
        (staging / "trainer_state.json").write_text(json.dumps({"step": step}))
    pointer = output_dir / f".{LATEST}.tmp"
    pointer.write_text(final.name)
    os.replace(pointer, output_dir / LATEST)
    prune_checkpoints(output_dir, keep)  # only after `latest` moved: a crash before here resumes from the old one
    return final


def latest_checkpoint(output_dir: Path) -> Path | None:
    pointer = output_dir / LATEST
    if not pointer.exists():
        return None
    folder = output_dir / pointer.read_text().strip()
    return folder if (folder / "trainer_state.json").exists() else None


def checkpoint_step(folder: Path) -> int:
    return int(json.loads((folder / "trainer_state.json").read_text())["step"])


def load_training_state(folder: Path, optimizer: Any, scheduler: Any) -> None:
    path = folder / TRAINING_STATE
    if not path.exists():
        raise ValueError(f"{folder} holds weights only (no {TRAINING_STATE}): resume starts from the latest checkpoint")
    state = torch.load(path, weights_only=True)  # tensors and plain values only: no pickle code runs
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])


def checkpoints(output_dir: Path) -> list[Path]:
    """The checkpoint folders, oldest first (staging folders start with a dot and are not among them)."""
    folders = [p for p in output_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return sorted(folders, key=_step_of)


def _step_of(folder: Path) -> int:
    return int(folder.name.split("-", 1)[1])


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    """Keep `latest` and the `keep` − 1 checkpoints before it, weights only; delete the rest (also folders
    newer than `latest`, left by a run killed between writing one and moving the pointer)."""
    latest = latest_checkpoint(output_dir)
    if latest is None:
        return
    newest = checkpoint_step(latest)
    older = [p for p in checkpoints(output_dir) if _step_of(p) < newest]
    kept = older[max(0, len(older) - (keep - 1)) :] if keep > 1 else []
    _empty_trash(output_dir)  # a crash mid-delete may have left some
    for folder in checkpoints(output_dir):
        if folder != latest and folder not in kept:
            folder.rename(output_dir / f"{_TRASH_PREFIX}{folder.name}")  # atomic: the name goes before any file
    for folder in kept:
        (folder / TRAINING_STATE).unlink(missing_ok=True)
    _empty_trash(output_dir)


def _empty_trash(output_dir: Path) -> None:
    """Delete renamed-away checkpoints and the staging folders of writes a killed run never finished
    (safe: the run lock means no other writer is staging in this folder)."""
    for trash in [*output_dir.glob(f"{_TRASH_PREFIX}*"), *output_dir.glob(".checkpoint-*")]:
        shutil.rmtree(trash, ignore_errors=True)
