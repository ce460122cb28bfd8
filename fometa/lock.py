"""One writer per run folder: an exclusive lock held while ``fometa train`` runs in a folder.

:func:`hold` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``RUN_DIR/.lock`` and writes the holder's
process id into the file. The lock belongs to the open file, so the operating system releases it
whenever the holder's process ends, however it ends (a SIGKILL or a crash included): a lock file
left behind by a dead process never blocks, and there is nothing to clean up. A second process
asking for the lock while the first holds it gets :class:`LockedError`, whose message names the
holder's process id (read from the file). ``flock`` locks are per open file description, so two
:func:`hold` calls in one process also exclude each other.

POSIX only (``fcntl``); network file systems may not honour ``flock``.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["LOCK_FILE", "LockedError", "RunLock", "hold"]

LOCK_FILE = ".lock"


class LockedError(Exception):
    """The run folder is in use by another process (``pid``: its id, or ``None`` if unreadable)."""

    def __init__(self, path: Path, pid: int | None):
        self.path, self.pid = Path(path), pid
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"run folder {self.path} is in use by {holder}")


class RunLock:
    """A held lock on a run folder; :meth:`release` (or ``with``, dropping the object, or the process's
    end) frees it."""

    def __init__(self, path: Path, file):
        self.path, self._file = Path(path), file

    @property
    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the last descriptor drops the flock
            self._file = None

    def __del__(self):  # a lock dropped without release (an error on the way out) frees the folder too
        self.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _read_pid(file) -> int | None:
    try:
        file.seek(0)
        return int(file.read().strip())
    except (OSError, ValueError):  # empty: the holder has not written its id yet
        return None


def hold(run_dir) -> RunLock:
    """Lock ``run_dir`` (created if missing) for this process; :class:`LockedError` if another holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # "a+" neither truncates (the holder's id must stay readable) nor fails when the file exists
    file = open(run_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(file)
        file.close()
        raise LockedError(run_dir, pid) from None
    except BaseException:
        file.close()
        raise
    file.seek(0)
    file.truncate()
    file.write(f"{os.getpid()}\n")
    file.flush()
    return RunLock(run_dir, file)
