"""Atomic file output: write beside the target, fsync, rename over it.

Readers see the old file or the complete new one, never a partial write: the previous
checkpoint stays valid until the new one is whole, and a failed pack leaves no output.

A temporary file is named after its target and the process writing it (``<name>.tmp<pid>-<random>``).
A writer killed outright (SIGKILL, a crash) cannot remove its own; the next write of the same target
does (:func:`remove_stale`), leaving those of processes still running alone.
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "write_text", "remove_stale"]

_PID = re.compile(r"(\d+)-.+")  # what follows "<name>.tmp": the writer's process id, then mkstemp's letters


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, say: running
        return True
    return True


def remove_stale(path) -> list[Path]:
    """Remove the temporary files of earlier writes of ``path`` whose process has ended (killed before it
    could clean up); returns them. Those of running processes, this one's included, are left alone."""
    path = Path(path)
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.glob(f"{glob.escape(path.name)}.tmp*"):
        m = _PID.fullmatch(tmp.name[len(path.name) + len(".tmp"):])
        if m is None or not 0 < int(m.group(1)) < 2**31 or _running(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):  # gone already, or not ours to remove: the new write goes on
            tmp.unlink()
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success make it durable and rename it to ``path``.

    The temporary name is ``<name>.tmp<pid>-<random>`` in the same folder (so ``os.replace`` is
    atomic); stale ones of ended processes are removed first (:func:`remove_stale`). On any
    exception, the temporary file is removed and ``path`` is left as it was. The file gets the
    usual permissions (``0666`` less the umask), not ``mkstemp``'s ``0600``.
    """
    path = Path(path)
    remove_stale(path)
    fd, name = tempfile.mkstemp(prefix=f"{path.name}.tmp{os.getpid()}-", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_text(path, text: str) -> None:
    """Replace ``path``'s contents with ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
