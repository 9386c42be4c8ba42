import os
from pathlib import Path

import pytest

import l2t_core.atomic
from l2t_core.atomic import atomic_folder, atomic_write_text


def test_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_folder(target) as staging:
        (staging / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed mid-write")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_folder(target) as staging:
        (staging / "weights.bin").write_bytes(b"old")
    with atomic_folder(target) as staging:
        (staging / "weights.bin").write_bytes(b"new")
    assert (target / "weights.bin").read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1


@pytest.fixture
def disk_events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every fsync (by the path its descriptor names) and every rename, in order."""
    events: list[tuple[str, str]] = []
    real_fsync, real_rename, real_replace = os.fsync, Path.rename, Path.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(self: Path, target: Path) -> Path:
        events.append(("rename", str(self)))
        return real_rename(self, target)

    def replace(self: Path, target: Path) -> Path:
        events.append(("rename", str(self)))
        return real_replace(self, target)

    monkeypatch.setattr(l2t_core.atomic.os, "fsync", fsync)
    monkeypatch.setattr(Path, "rename", rename)
    monkeypatch.setattr(Path, "replace", replace)
    return events


def test_every_file_and_folder_is_on_disk_before_the_rename_and_the_rename_after(tmp_path, disk_events):
    target = tmp_path / "checkpoint"
    with atomic_folder(target) as staging:
        (staging / "sub").mkdir()
        for name in ("a.bin", "sub/b.bin"):
            (staging / name).write_bytes(b"x")
    renamed = disk_events.index(("rename", str(staging)))
    flushed = {path for kind, path in disk_events[:renamed] if kind == "fsync"}
    assert {str(staging / "a.bin"), str(staging / "sub" / "b.bin"), str(staging / "sub"), str(staging)} <= flushed
    assert ("fsync", str(tmp_path)) in disk_events[renamed + 1 :]  # the rename itself is made durable

    disk_events.clear()
    atomic_write_text(tmp_path / "latest", "checkpoint")
    (kind, staged), *_ = [e for e in disk_events if e[0] == "rename"]
    assert disk_events == [("fsync", staged), ("rename", staged), ("fsync", str(tmp_path))]
    assert (tmp_path / "latest").read_text() == "checkpoint"


def test_a_failed_replacement_keeps_the_old_folder(tmp_path, monkeypatch):
    target = tmp_path / "model"
    with atomic_folder(target) as staging:
        (staging / "weights.bin").write_bytes(b"old")
    real_rename = Path.rename

    def failing(self: Path, to: Path) -> Path:
        if Path(to) == target and not self.name.endswith(".old"):  # the new copy's rename, not the way back
            raise OSError(28, "No space left on device (injected)")
        return real_rename(self, to)

    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(OSError, match="injected"), atomic_folder(target) as staging:
        (staging / "weights.bin").write_bytes(b"new")
    assert (target / "weights.bin").read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model"]
