"""Atomic file output: write beside the target, fsync, rename over it.

Readers see the old file or the complete new one, never a partial write: the previous
checkpoint stays valid until the new one is whole, and a failed pack leaves no output.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success make it durable and rename it to ``path``.

    The temporary name is ``<name>.tmp<random>`` in the same folder (so ``os.replace`` is atomic).
    On any exception, the temporary file is removed and ``path`` is left as it was. The file
    gets the usual permissions (``0666`` less the umask), not ``mkstemp``'s ``0600``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
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
