"""How fometa uses a CPU's cores: task blocks on threads, one BLAS thread each.

Meta-batches and evaluation chunks hold several independent tasks. :func:`map_blocks` cuts the
task axis into contiguous blocks and runs them on ``get_threads()`` threads; NumPy releases the
GIL inside matrix products and large element-wise calls, so the blocks run side by side. While
blocks run in parallel, BLAS (OpenBLAS) runs one thread per call: its own threads gain little
on one task's small matrices and busy-wait against ours. Each task's numbers do not depend on
the blocks (every kernel works per task), so results are identical for every thread count.

The thread count is :func:`set_threads`'s, else ``FOMETA_THREADS``, else the number of cores
this process may run on. ``fometa train``, ``eval`` and ``bench`` take ``--threads``. With
one thread, BLAS keeps its own setting (``OPENBLAS_NUM_THREADS``).

:func:`tune_allocator` keeps glibc's heap from handing large buffers back to the kernel after
every call: without it, each inner step's fresh megabyte-sized temporaries are new pages,
and the page faults cost a quarter of an Omniglot meta-iteration.
"""
from __future__ import annotations

import contextvars
import ctypes
import ctypes.util
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["set_threads", "get_threads", "available_cores", "map_blocks", "blocks", "share", "set_blas_threads",
           "tune_allocator"]

_THREADS: int | None = None  # None: not chosen yet (FOMETA_THREADS, else the cores)
_POOL: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()
_ALLOCATOR_TUNED = False
_BLAS: list | None = None  # [(set_num_threads, get_num_threads)] of the loaded OpenBLAS libraries


# --------------------------------------------------------------------------------------
# BLAS threads
# --------------------------------------------------------------------------------------
def _blas_functions():
    """``(set_num_threads, get_num_threads)`` of the OpenBLAS libraries loaded in this process."""
    global _BLAS
    if _BLAS is not None:
        return _BLAS
    import numpy  # noqa: F401 - make sure NumPy's BLAS is loaded

    found, paths = [], set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if path.startswith("/") and "openblas" in os.path.basename(path).lower():
                    paths.add(path)
    except OSError:
        paths = set()
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", "")):
            setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                found.append((setter, getter))
                break
    _BLAS = found
    return found


def set_blas_threads(n: int) -> bool:
    """Set the thread count of every loaded OpenBLAS; ``False`` when none was found."""
    funcs = _blas_functions()
    for setter, _ in funcs:
        setter(int(n))
    return bool(funcs)


def get_blas_threads() -> int | None:
    """The first loaded OpenBLAS's thread count, ``None`` when none was found."""
    funcs = _blas_functions()
    return int(funcs[0][1]()) if funcs else None


# --------------------------------------------------------------------------------------
# task blocks on threads
# --------------------------------------------------------------------------------------
def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_threads(n: int | None) -> None:
    """Run task blocks on ``n`` threads (``None``: back to ``FOMETA_THREADS`` or the cores)."""
    global _THREADS, _POOL
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    with _LOCK:
        if _POOL is not None:
            _POOL.shutdown(wait=True)
            _POOL = None
        _THREADS = n


def _threads_from_env() -> int:
    value = os.environ.get("FOMETA_THREADS", "").strip()
    if not value:
        return available_cores()
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"FOMETA_THREADS must be a positive integer, got {value!r}")
    return n


def get_threads() -> int:
    """The number of threads that task blocks run on."""
    global _THREADS
    if _THREADS is None:
        _THREADS = _threads_from_env()
    return _THREADS


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=get_threads(), thread_name_prefix="fometa")
        return _POOL


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


def share(n: int, rank: int, size: int) -> tuple[int, int]:
    """Worker ``rank``'s contiguous share ``[lo, hi)`` of ``n`` items split over ``size`` workers.

    The shares are :func:`blocks`'s (the first ``n mod size`` one item longer), empty for the
    workers beyond ``n``; concatenated in rank order they are ``range(n)``.
    """
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


_IN_BLOCK = threading.local()


def map_blocks(fn, tasks: int, max_block: int | None = None, host: bool = True) -> list:
    """``[fn(block) for block in ...]`` over contiguous blocks of ``range(tasks)``: at least one
    block per thread, and blocks of at most ``max_block`` tasks. With several threads the blocks
    run on the thread pool with one BLAS thread each; results come back in order and exceptions
    propagate. ``host=False`` (work on a GPU, which wants one large launch) and calls from inside
    a block run every block on the calling thread."""
    threads = 1 if not host or getattr(_IN_BLOCK, "active", False) else get_threads()
    parts = threads if max_block is None else max(threads, -(-tasks // max(1, max_block)))
    slices = blocks(tasks, parts)
    if len(slices) == 1 or threads == 1:
        return [fn(s) for s in slices]

    def run(ctx, s):
        _IN_BLOCK.active = True
        try:
            return ctx.run(fn, s)
        finally:
            _IN_BLOCK.active = False

    saved = get_blas_threads()
    set_blas_threads(1)
    try:
        # each block runs in a copy of the caller's context: numpy.errstate and other context
        # variables hold on the pool's threads as they do on the caller's
        futures = [_pool().submit(run, contextvars.copy_context(), s) for s in slices]
        return [f.result() for f in futures]
    finally:
        if saved is not None:
            set_blas_threads(saved)


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
