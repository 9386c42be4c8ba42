"""Checkpoints that a crash cannot half-write, holding only what resume needs, and never deleted by mistake.

Each checkpoint is built in a staging folder, flushed to disk and renamed into place; then the `latest`
pointer is replaced the same way. The pointer is the commit: a checkpoint counts once `latest` names it.
Weights are safetensors (a folder that `l2t serve --model DIR` loads). The optimiser state (AdamW's two
float32 moments: twice the weights, 1.08 GB for the 135M model) is what exact resume needs, so it is kept
in the latest checkpoint alone; the older kept checkpoints are weights only (servable, and a fallback for
resume with fresh optimiser moments). Pruning only ever removes checkpoints older than `latest`, renaming
each out of the `checkpoint-*` namespace before deleting it, so a crash mid-delete never leaves a
half-deleted folder under a checkpoint's name. A folder newer than `latest` (a save whose pointer move
never happened) is left alone; the run redoes that step and its save replaces it.

Where a run starts is decided here too (`prepare_output_dir`, `resume_point`): a folder that holds
checkpoints is continued with resume or emptied with overwrite, never silently trained over from step 0.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from l2t_core.atomic import atomic_folder, atomic_write_text

logger = logging.getLogger(__name__)

LATEST = "latest"
TRAINING_STATE = "optim.pt"
TRAINER_STATE = "trainer_state.json"
_TRASH_PREFIX = ".deleting-"
_NAME = re.compile(r"checkpoint-(\d+)")
# what reading a damaged file raises: torch.load (RuntimeError on a cut zip), safetensors, json, the OS
_READ_ERRORS = (OSError, RuntimeError, ValueError, KeyError, TypeError, EOFError, pickle.UnpicklingError)


class CheckpointUnreadable(ValueError):
    """A checkpoint (or the `latest` pointer) that cannot be used: a file missing, cut short or unparsable."""


class OutputDirHasCheckpoints(ValueError):
    """The output folder holds a run's checkpoints and the config neither resumes nor overwrites them."""


@dataclass
class ResumePoint:
    """Everything resume needs from one checkpoint, read whole before any of it is applied."""

    folder: Path
    step: int
    weights: dict[str, torch.Tensor]
    training_state: dict[str, Any] | None  # optimizer + scheduler; None: weights only (an older kept one)


def save_checkpoint(
    output_dir: Path, step: int, model: Any, tokenizer: Any, optimizer: Any, scheduler: Any, keep: int = 2
) -> Path:
    """Write checkpoint-`step`, point `latest` at it, then keep the `keep` newest checkpoints."""
    final = output_dir / f"checkpoint-{step}"
    with atomic_folder(final) as staging:  # on disk before it takes the name
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        torch.save(state, staging / TRAINING_STATE)
        (staging / TRAINER_STATE).write_text(json.dumps({"step": step}))
    atomic_write_text(output_dir / LATEST, final.name)
    prune_checkpoints(output_dir, keep)  # only after `latest` moved: a crash before here resumes from the old one
    return final


def read_latest(output_dir: Path) -> Path:
    """The checkpoint folder `latest` names, or `CheckpointUnreadable` saying why the pointer is not valid."""
    pointer = output_dir / LATEST
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise CheckpointUnreadable(f"{pointer} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointUnreadable(f"{pointer} cannot be read: {exc}") from exc
    if not _NAME.fullmatch(name):
        raise CheckpointUnreadable(f"{pointer} holds {name[:80]!r}, not a checkpoint-N name")
    folder = output_dir / name
    if not folder.is_dir():
        raise CheckpointUnreadable(f"{pointer} names {name}, which does not exist")
    return folder


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The folder `latest` names, None when there is no valid pointer (see `read_latest` for why)."""
    try:
        return read_latest(output_dir)
    except CheckpointUnreadable:
        return None


def checkpoint_step(folder: Path) -> int:
    return int(json.loads((folder / TRAINER_STATE).read_text())["step"])


def checkpoints(output_dir: Path) -> list[Path]:
    """The checkpoint folders, oldest first (staging folders start with a dot and are not among them)."""
    folders = [p for p in output_dir.glob("checkpoint-*") if p.is_dir() and _NAME.fullmatch(p.name)]
    return sorted(folders, key=_step_of)


def _step_of(folder: Path) -> int:
    return int(folder.name.split("-", 1)[1])


def read_checkpoint(folder: Path) -> ResumePoint:
    """Read one checkpoint whole (its step, every weight shard, the optimiser state if it has one), or
    raise `CheckpointUnreadable` naming the file at fault. Reading everything is the check: a truncated
    safetensors or torch file fails here, before the trainer has changed anything."""
    try:
        step = checkpoint_step(folder)
    except _READ_ERRORS as exc:
        raise CheckpointUnreadable(f"{TRAINER_STATE}: {exc}") from exc
    if step != _step_of(folder):
        raise CheckpointUnreadable(f"{TRAINER_STATE} says step {step}, the folder's name step {_step_of(folder)}")
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        raise CheckpointUnreadable("no *.safetensors weights")
    weights: dict[str, torch.Tensor] = {}
    for shard in shards:
        try:
            weights.update(load_file(str(shard)))
        except (*_READ_ERRORS, SafetensorError) as exc:
            raise CheckpointUnreadable(f"{shard.name}: {exc}") from exc
    training_state = None
    if (folder / TRAINING_STATE).exists():
        try:
            # tensors and plain values only: no pickle code runs
            training_state = torch.load(folder / TRAINING_STATE, weights_only=True)
        except _READ_ERRORS as exc:
            raise CheckpointUnreadable(f"{TRAINING_STATE}: {exc}") from exc
        if not isinstance(training_state, dict) or not {"optimizer", "scheduler"} <= training_state.keys():
            raise CheckpointUnreadable(f"{TRAINING_STATE} lacks the optimizer and scheduler states")
    return ResumePoint(folder, step, weights, training_state)


def prepare_output_dir(output_dir: Path, resume: bool, overwrite: bool) -> None:
    """Let a run start in `output_dir` only where it loses nothing it was not told to: a folder with
    checkpoints is continued (`resume`, which needs a valid `latest`) or emptied first (`overwrite`);
    anything else is refused before a file is touched."""
    found = checkpoints(output_dir) if output_dir.is_dir() else []
    if not found:
        return
    names = ", ".join(p.name for p in found)
    if overwrite:
        discard_checkpoints(output_dir)
        logger.warning("--overwrite-output-dir: deleted the checkpoints in %s (%s)", output_dir, names)
        return
    try:
        latest = read_latest(output_dir)
    except CheckpointUnreadable as exc:
        raise OutputDirHasCheckpoints(
            f"{output_dir} holds checkpoints ({names}) but no valid `{LATEST}` pointer ({exc}), so it is not "
            f"clear which one a run should continue; nothing was changed. Pass --overwrite-output-dir to delete "
            f"them and start over there, or start from one with --model {found[-1]} and another --output-dir"
        ) from None
    if not resume:
        raise OutputDirHasCheckpoints(
            f"{output_dir} holds a run's checkpoints ({names}; latest {latest.name}); nothing was changed. Pass "
            "--resume to continue it, or --overwrite-output-dir to delete them and start over there"
        )


def resume_point(output_dir: Path) -> ResumePoint | None:
    """The newest checkpoint at or below `latest` that reads whole, each one skipped logged with why; None
    when `latest` names none (call `prepare_output_dir` first, which refuses a folder of checkpoints with
    no valid pointer). Raises `CheckpointUnreadable` when no candidate reads."""
    latest = latest_checkpoint(output_dir)
    if latest is None:
        return None
    limit = _step_of(latest)
    for newer in (p for p in checkpoints(output_dir) if _step_of(p) > limit):
        logger.info("resume: %s is newer than %s (its save never moved the pointer): the run redoes it", newer, LATEST)
    skipped = []
    for folder in reversed([p for p in checkpoints(output_dir) if _step_of(p) <= limit]):
        try:
            point = read_checkpoint(folder)
        except CheckpointUnreadable as exc:
            logger.warning("resume: skipping %s: %s", folder, exc)
            skipped.append(f"{folder.name}: {exc}")
            continue
        if point.training_state is None:
            logger.warning(
                "resume: %s holds weights only (no %s): the optimiser moments start afresh at step %d, so this "
                "is not an exact continuation",
                folder,
                TRAINING_STATE,
                point.step,
            )
        return point
    raise CheckpointUnreadable(
        f"no checkpoint in {output_dir} can be resumed from ({'; '.join(skipped)}); pass --overwrite-output-dir "
        "to delete them and start over"
    )


def restore_training_state(point: ResumePoint, optimizer: Any, scheduler: Any) -> None:
    """Load the optimiser and scheduler of `point`; from a weights-only checkpoint, set the schedule to its
    step and leave the optimiser's moments empty (AdamW then starts them afresh)."""
    if point.training_state is None:
        scheduler.last_epoch = point.step
        return
    optimizer.load_state_dict(point.training_state["optimizer"])
    scheduler.load_state_dict(point.training_state["scheduler"])


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    """Keep `latest` and the `keep` − 1 checkpoints before it, weights only; delete the older ones.
    Checkpoints newer than `latest` are never deleted here (a save replaces one when its step comes)."""
    latest = latest_checkpoint(output_dir)
    if latest is None:
        return
    older = [p for p in checkpoints(output_dir) if _step_of(p) < _step_of(latest)]
    kept = older[max(0, len(older) - (keep - 1)) :] if keep > 1 else []
    _empty_trash(output_dir)  # a crash mid-delete may have left some
    for folder in older:
        if folder not in kept:
            folder.rename(output_dir / f"{_TRASH_PREFIX}{folder.name}")  # atomic: the name goes before any file
    for folder in kept:
        (folder / TRAINING_STATE).unlink(missing_ok=True)
    _empty_trash(output_dir)


def discard_checkpoints(output_dir: Path) -> None:
    """Delete every checkpoint and the `latest` pointer (overwrite: the folder's previous run is dropped)."""
    (output_dir / LATEST).unlink(missing_ok=True)  # first: no pointer ever names a folder being deleted
    for folder in checkpoints(output_dir):
        folder.rename(output_dir / f"{_TRASH_PREFIX}{folder.name}")
    _empty_trash(output_dir)


def _empty_trash(output_dir: Path) -> None:
    """Delete renamed-away checkpoints and the staging files of writes a killed run never finished
    (safe: the run lock means no other writer is staging in this folder)."""
    leftovers = [f"{_TRASH_PREFIX}*", ".checkpoint-*", f".{LATEST}.*"]
    for trash in [p for pattern in leftovers for p in output_dir.glob(pattern)]:
        if trash.is_dir():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            trash.unlink(missing_ok=True)
