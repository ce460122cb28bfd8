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


def _ended_pid() -> int:
    """The id of a process that has ended (it was started and waited for)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_write_removes_the_temporary_files_of_ended_writers_of_its_target_only(tmp_path):
    dead = _ended_pid()
    stale = tmp_path / f"out.h5.tmp{dead}-abc123"
    live = tmp_path / f"out.h5.tmp{os.getpid()}-def456"  # a write still going on in a running process
    other = tmp_path / f"other.h5.tmp{dead}-abc123"  # another target's
    foreign = tmp_path / "out.h5.tmpnotapid"  # not named by a writer of ours
    for path in (stale, live, other, foreign):
        path.write_bytes(b"partial")
    with atomic.atomic_path(tmp_path / "out.h5") as tmp:
        assert tmp.name.startswith(f"out.h5.tmp{os.getpid()}-")
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.h5", live.name, other.name, foreign.name])
    assert atomic.remove_stale(tmp_path / "other.h5") == [other] and not other.exists()
    assert atomic.remove_stale(tmp_path / "absent" / "x.h5") == []
