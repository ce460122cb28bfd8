"""How fometa uses a CPU's cores: task blocks on threads, one BLAS thread each.

Meta-batches and evaluation chunks hold several independent tasks. With ``set_threads(n)``
(``n > 1``), :func:`map_blocks` cuts the task axis into ``n`` contiguous blocks and runs each on
its own thread; NumPy releases the GIL inside matrix products and large element-wise calls, so
the blocks run side by side. BLAS (OpenBLAS) then runs one thread per call: its own threads
gain little on the small matrices of one task and busy-wait against ours. Each task's numbers
do not depend on the blocks (every kernel works per task), so results are identical for every
thread count.

``set_threads(None)`` (the default) leaves the BLAS library's own threading alone and runs
blocks on the calling thread only. ``FOMETA_THREADS`` sets the starting value.

:func:`tune_allocator` keeps glibc's heap from handing large buffers back to the kernel after
every call: without it, each inner step's fresh megabyte-sized temporaries are new pages,
and the page faults cost a quarter of an Omniglot meta-iteration.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from concurrent.futures import ThreadPoolExecutor

__all__ = ["set_threads", "get_threads", "map_blocks", "blocks", "set_blas_threads", "tune_allocator"]

_THREADS: int | None = None
_THREADS_READ = False  # FOMETA_THREADS is read on first use
_POOL: ThreadPoolExecutor | None = None
_ALLOCATOR_TUNED = False


# --------------------------------------------------------------------------------------
# BLAS threads
# --------------------------------------------------------------------------------------
def _blas_setters():
    """``set_num_threads`` functions of the OpenBLAS libraries loaded in this process."""
    setters, paths = [], set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if path.startswith("/") and "openblas" in os.path.basename(path).lower():
                    paths.add(path)
    except OSError:
        return setters
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes, fn.restype = [ctypes.c_int], None
                setters.append(fn)
                break
    return setters


def set_blas_threads(n: int) -> bool:
    """Set the thread count of every loaded OpenBLAS; ``False`` when none was found."""
    import numpy  # noqa: F401 - make sure NumPy's BLAS is loaded

    setters = _blas_setters()
    for fn in setters:
        fn(int(n))
    return bool(setters)


# --------------------------------------------------------------------------------------
# task blocks on threads
# --------------------------------------------------------------------------------------
def set_threads(n: int | None) -> None:
    """Use ``n`` threads for task blocks (and 1 BLAS thread each); ``None``: BLAS decides alone."""
    global _THREADS, _POOL, _THREADS_READ
    _THREADS_READ = True
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a positive integer or None, got {n!r}")
    if _POOL is not None:
        _POOL.shutdown(wait=True)
        _POOL = None
    _THREADS = n
    if n is not None:
        set_blas_threads(1)
        if n > 1:
            _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="fometa")


def get_threads() -> int | None:
    """The thread count set by :func:`set_threads` (or ``FOMETA_THREADS``), ``None`` if unset."""
    if not _THREADS_READ:
        _from_env()
    return _THREADS


def blocks(tasks: int, parts: int) -> list[slice]:
    """``tasks`` cut into at most ``parts`` contiguous slices of near-equal length (larger first)."""
    parts = max(1, min(parts, tasks))
    base, extra = divmod(tasks, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        out.append(slice(start, stop))
        start = stop
    return out


def map_blocks(fn, tasks: int, max_block: int | None = None) -> list:
    """``[fn(block) for block in ...]`` over contiguous blocks of ``range(tasks)``: at least one
    block per thread, and blocks of at most ``max_block`` tasks. With several threads the blocks
    run on the thread pool; results come back in order and exceptions propagate."""
    threads = get_threads() or 1
    parts = threads if max_block is None else max(threads, -(-tasks // max(1, max_block)))
    slices = blocks(tasks, parts)
    if len(slices) == 1 or _POOL is None:
        return [fn(s) for s in slices]
    return list(_POOL.map(fn, slices))


# --------------------------------------------------------------------------------------
# the allocator
# --------------------------------------------------------------------------------------
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_allocator() -> bool:
    """Keep freed large buffers in glibc's heap for reuse (once per process; glibc only).

    Sets ``M_MMAP_THRESHOLD`` to its maximum (32 MiB) and ``M_TRIM_THRESHOLD`` to 1 GiB.
    ``FOMETA_MALLOC=system`` leaves the allocator as it is. Returns whether it was tuned.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if os.environ.get("FOMETA_MALLOC", "") == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, 32 << 20) == 1 and mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
    _ALLOCATOR_TUNED = ok
    return ok


def _from_env():
    global _THREADS_READ
    _THREADS_READ = True
    value = os.environ.get("FOMETA_THREADS", "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"FOMETA_THREADS must be a positive integer, got {value!r}") from None
        set_threads(n)
