"""One run per output folder: an exclusive `flock` on `output_dir/.lock`, held for the run's lifetime.

Two trainers writing one folder interleave checkpoints and log the same step twice. The kernel drops
a flock when its holder's file is closed, which includes the process dying by any means (SIGKILL, OOM),
so a lock file left behind by a dead run is never stale: the next run takes it. The holder writes its
pid and host into the file, so the refusal can say who holds it. (On network file systems flock is as
reliable as the file system's locking; run one trainer per folder there by hand.)
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO

LOCK_FILE = ".lock"


class OutputDirLocked(RuntimeError):
    """Another live run holds the output folder."""


class RunLock:
    def __init__(self, output_dir: Path) -> None:
        """Take the folder's lock or raise `OutputDirLocked` naming the holder."""
        output_dir.mkdir(parents=True, exist_ok=True)
        self.path = output_dir / LOCK_FILE
        handle: IO[str] = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutputDirLocked(
                f"{output_dir} is in use by a running trainer ({holder}); wait for it to finish, stop it, "
                "or choose another --output-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle: IO[str] | None = handle

    def release(self) -> None:
        """Drop the lock (idempotent); the file stays, harmless, for the next run to lock."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
