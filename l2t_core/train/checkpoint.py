"""Checkpoints that a crash cannot half-write: each is built in a temporary folder and renamed into
place, and the `latest` pointer is replaced atomically. Weights are safetensors (a folder that
`l2t serve --model DIR` loads); optimiser and scheduler state go beside them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from l2t_core.atomic import atomic_folder

LATEST = "latest"
KEEP = 2


def save_checkpoint(output_dir: Path, step: int, model: Any, tokenizer: Any, optimizer: Any, scheduler: Any) -> Path:
    final = output_dir / f"checkpoint-{step}"
    with atomic_folder(final) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, staging / "optim.pt")
        (staging / "trainer_state.json").write_text(json.dumps({"step": step}))
    pointer = output_dir / f".{LATEST}.tmp"
    pointer.write_text(final.name)
    os.replace(pointer, output_dir / LATEST)
    _prune(output_dir, keep=KEEP)
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
    state = torch.load(folder / "optim.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])


def _prune(output_dir: Path, keep: int) -> None:
    folders = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for old in folders[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
