"""Files and folders that appear whole or not at all: write beside the target, flush to disk, then rename.

Used for the dequantised model cache, training checkpoints and evaluation caches, where a process killed
mid-write, or a machine that loses power, must never leave a name that a later load would trust. A
rename is atomic, but on its own it only orders names, not data: after a power cut the new name can point
at blocks that never reached the disk. So every file and folder of the staging copy is fsynced before the
rename, and the parent folder after it, so that the rename itself survives.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush one file's data, or one folder's entries, to disk (a folder opens read-only on POSIX)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(root: Path) -> None:
    """fsync every file under `root`, then every folder bottom-up, so that renaming `root` publishes
    only what is already on disk (symlinks are left alone: they are names, flushed with their folder)."""
    for folder, _, names in os.walk(root, topdown=False):
        for name in names:
            path = Path(folder) / name
            if not path.is_symlink():
                fsync_path(path)
        fsync_path(Path(folder))


@contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder; when the block succeeds it is flushed to disk and replaces `target`
    by rename. An existing `target` is renamed aside first and deleted only once the new one is in place,
    and put back if that fails, so `target` is never a half-deleted folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    replaced = staging.with_name(f"{staging.name}.old")  # a dot name: never mistaken for `target`
    try:
        yield staging
        fsync_tree(staging)
        if target.exists():
            target.rename(replaced)
        staging.rename(target)
        fsync_path(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if replaced.exists() and not target.exists():
            replaced.rename(target)
        raise
    shutil.rmtree(replaced, ignore_errors=True)


def atomic_write_text(target: Path, text: str) -> None:
    """Write a file that readers see whole or not at all, flushed to disk before and after its rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with open(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        Path(staging).replace(target)
        fsync_path(target.parent)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
