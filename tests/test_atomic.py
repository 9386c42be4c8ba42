import pytest

from l2t_core.atomic import atomic_folder


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
