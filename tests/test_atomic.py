"""Atomic output: the old file or the complete new one, never a partial file or a leftover."""
import os

import pytest

from fometa import atomic


def test_success_replaces_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic.atomic_path(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old", "the target changed before the write was complete"
        assert tmp.parent == tmp_path and tmp.name.startswith("out.txt.tmp")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_text(tmp_path):
    atomic.write_text(tmp_path / "a.json", "{}\n")
    assert (tmp_path / "a.json").read_text() == "{}\n"
