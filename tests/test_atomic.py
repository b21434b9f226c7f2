"""Atomic outputs: all or nothing under the declared name; a rerun clears a killed run's leftovers."""

import pytest

from zsseg.atomic import atomic_path


def test_file_appears_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    with atomic_path(target) as temporary:
        temporary.write_text("{}")
        assert not target.exists()
        assert temporary.parent == target.parent and temporary.name.startswith(".metrics.json.partial-")
    assert target.read_text() == "{}"
    assert [path.name for path in target.parent.iterdir()] == ["metrics.json"]


def test_failure_leaves_neither_output_nor_partial(tmp_path):
    target = tmp_path / "features"
    with pytest.raises(RuntimeError):
        with atomic_path(target, directory=True) as directory:
            (directory / "train.h5").write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_directory_replaces_the_previous_result_whole(tmp_path):
    target = tmp_path / "rounds"
    target.mkdir()
    (target / "old.pt").write_bytes(b"old")
    with atomic_path(target, directory=True) as directory:
        (directory / "new.pt").write_bytes(b"new")
    assert [path.name for path in target.iterdir()] == ["new.pt"]


def test_a_rerun_removes_what_a_killed_run_left(tmp_path):
    leftover = tmp_path / ".features.partial-abc123"
    leftover.mkdir()
    (leftover / "train.h5").write_bytes(b"half")
    other = tmp_path / ".backbone.partial-xyz"
    other.mkdir()
    with atomic_path(tmp_path / "features", directory=True) as directory:
        (directory / "train.h5").write_bytes(b"whole")
    assert sorted(path.name for path in tmp_path.iterdir()) == [".backbone.partial-xyz", "features"]
