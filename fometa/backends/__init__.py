"""Array backends: NumPy on the CPU, CuPy on a GPU, chosen by a string.

A backend is a small object carrying its array module ``xp``, moving arrays to and
from the host, and the few hot kernels (:meth:`Backend.im2col`, :meth:`Backend.col2im` and
their unpadded forms, which the fused engine of :mod:`fometa.models.fused` uses)
that a backend may override. Every generic kernel is written once against ``xp``
(:mod:`fometa.backends.kernels`).

Names: ``"numpy"``, ``"cupy"`` (device 0) and ``"cupy:N"``. ``get_backend()`` with no
name reads the ``FOMETA_BACKEND`` environment variable and falls back to ``"numpy"``.
CuPy is imported only when a CuPy backend is asked for.

The NumPy backend has compiled kernels (:mod:`fometa.backends.numba_kernels`) when numba is
installed (the ``fast`` extra): :meth:`Backend.compiled` returns them, and the hot kernels
above use them. ``FOMETA_NUMBA=0`` turns them off (the NumPy code then runs, as without
numba); ``FOMETA_NUMBA=1`` insists on them (an error where numba is missing). numba is
imported on the first call that could use it, never by ``import fometa``.
"""
from __future__ import annotations

import os
from types import ModuleType

import numpy as np

from fometa.backends import kernels
from fometa.backends.arrays import array_module, is_cupy_array

__all__ = [
    "Backend", "BackendError", "UnknownBackendError", "get_backend", "backend_of", "array_module", "kernels",
    "compiled_kernels",
]

ENV_VAR = "FOMETA_BACKEND"
NUMBA_ENV_VAR = "FOMETA_NUMBA"
_UNRESOLVED = object()
_NUMBA_KERNELS = _UNRESOLVED  # the module, None where numba is missing, or _UNRESOLVED


def compiled_kernels():
    """The compiled CPU kernels (:mod:`fometa.backends.numba_kernels`), or ``None``.

    ``None`` where ``FOMETA_NUMBA`` is ``0`` or numba is not installed; with ``FOMETA_NUMBA=1``
    a missing numba raises :class:`BackendError`. The variable is read on every call (so a test
    or benchmark can compare both paths in one process); numba is imported once, on the first
    call that wants it.
    """
    global _NUMBA_KERNELS
    flag = os.environ.get(NUMBA_ENV_VAR, "").strip()
    if flag not in ("", "0", "1"):
        raise BackendError(f"{NUMBA_ENV_VAR} must be 0 (NumPy kernels) or 1 (compiled kernels), got {flag!r}")
    if flag == "0":
        return None
    if _NUMBA_KERNELS is _UNRESOLVED:
        compiled: ModuleType | None
        try:
            from fometa.backends import numba_kernels as compiled
        except ImportError:
            compiled = None
        _NUMBA_KERNELS = compiled
    if _NUMBA_KERNELS is None and flag == "1":
        raise BackendError(f"{NUMBA_ENV_VAR}=1 asks for compiled kernels, but numba is not installed "
                           "(pip install 'fometa[fast]')")
    return _NUMBA_KERNELS


class BackendError(RuntimeError):
    """A backend was asked for that this machine cannot provide."""


class UnknownBackendError(BackendError, ValueError):
    """A backend name that is not ``numpy``, ``cupy`` or ``cupy:N``."""


class Backend:
    """NumPy backend; the base class every other backend overrides in part."""

    name = "numpy"

    def __init__(self):
        self.xp = np

    def __repr__(self):
        return f"<fometa backend {self.name!r}>"

    # -- moving arrays -------------------------------------------------------
    def asarray(self, a, dtype=None):
        """Return ``a`` as an array of this backend (a no-op when it already is)."""
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a):
        """Return ``a`` as a NumPy array on the host."""
        return np.asarray(a)

    def synchronize(self):
        """Wait for queued device work (a no-op on the CPU); for benchmarks."""

    # -- tuning ---------------------------------------------------------------
    #: Bytes of per-chunk temporaries (im2col matrices) that layers aim for when they split
    #: a batch into chunks: small enough to stay in a CPU core's cache. Chosen by timing
    #: omniglot_cnn on a 2-core EPYC (1 MiB L2); ``None`` turns chunking off.
    chunk_bytes: int | None = 1 << 20

    def chunk_size(self, count: int, bytes_each: int) -> int:
        """How many of ``count`` items (tasks, or images of one task) a layer should process
        at once so that their temporaries, ``bytes_each`` per item, stay near
        :attr:`chunk_bytes`: at least 1, and ``count`` when chunking is off."""
        if self.chunk_bytes is None:
            return count
        return max(1, min(count, self.chunk_bytes // max(1, bytes_each)))

    # -- hot kernels (generic versions; a backend may override) --------------
    def compiled(self):
        """This backend's compiled kernels (:func:`compiled_kernels` on the CPU), or ``None``:
        the fused engine and the flat-buffer inner loop run them in place of their NumPy code."""
        return compiled_kernels()

    def kernels(self):
        """The module of hot kernels to call: the compiled ones (:meth:`compiled`) where there are, else
        the generic :mod:`fometa.backends.kernels`; both have the same functions and numbers."""
        fast = self.compiled()
        return kernels if fast is None else fast

    def im2col(self, xpad, kh, kw, stride, out_h, out_w):
        """The patch tensor ``(T, B, out_h, out_w, kh * kw, C)`` of the padded input ``xpad`` ``(T, B, H, W,
        C)``: each output position's ``kh x kw`` window (:func:`fometa.backends.kernels.im2col`)."""
        return kernels.im2col(xpad, kh, kw, stride, out_h, out_w)

    def col2im(self, cols, padded_shape, kh, kw, stride):
        """The adjoint of :meth:`im2col`: patch gradients ``cols`` summed back into an array of ``padded_shape``."""
        return kernels.col2im(cols, padded_shape, kh, kw, stride)

    def im2col_unpadded(self, x, kh, kw, stride, top, left, out_h, out_w):
        """:meth:`im2col` of ``x`` zero-padded by ``top`` and ``left`` (and as needed on the other sides),
        without making the padded copy; the compiled kernel where there is one."""
        fast = self.compiled()
        if fast is not None:
            return fast.im2col_unpadded(x, kh, kw, stride, top, left, out_h, out_w)
        return kernels.im2col_unpadded(x, kh, kw, stride, top, left, out_h, out_w)

    def col2im_unpadded(self, cols, in_shape, kh, kw, stride, top, left, out=None):
        """The adjoint of :meth:`im2col_unpadded`: patch gradients summed into an array of the unpadded
        ``in_shape`` (``out`` when given, else a new one, returned); the compiled kernel where there is one."""
        fast = self.compiled()
        if fast is not None:
            return fast.col2im_unpadded(cols, in_shape, kh, kw, stride, top, left, out=out)
        return kernels.col2im_unpadded(cols, in_shape, kh, kw, stride, top, left, out=out)


_NUMPY = Backend()
_CACHE: dict[str, Backend] = {"numpy": _NUMPY}


def _parse(name: str) -> tuple[str, int]:
    text = name.strip().lower()
    if text == "numpy":
        return "numpy", 0
    if text == "cupy":
        return "cupy", 0
    if text.startswith("cupy:"):
        dev = text[5:]
        if dev.isdigit():
            return "cupy", int(dev)
    raise UnknownBackendError(
        f"unknown backend {name!r}: expected 'numpy', 'cupy' or 'cupy:N' (N a GPU index)"
    )


def get_backend(name: str | Backend | None = None) -> Backend:
    """Return the backend called ``name`` (``"numpy"``, ``"cupy"``, ``"cupy:N"``).

    ``None`` means the ``FOMETA_BACKEND`` environment variable, else ``"numpy"``. A
    :class:`Backend` instance is returned as it is. Raises :class:`BackendError` naming
    the reason when CuPy is not installed or the GPU is not visible.
    """
    if isinstance(name, Backend):
        return name
    if name is None:
        name = os.environ.get(ENV_VAR) or "numpy"
    kind, device = _parse(name)
    key = "numpy" if kind == "numpy" else f"cupy:{device}"
    if key not in _CACHE:
        from fometa.backends.cupy_backend import CupyBackend

        _CACHE[key] = CupyBackend(device)
    return _CACHE[key]


def backend_of(a) -> Backend:
    """The backend owning array ``a`` (for a CuPy array, the backend of its device)."""
    if is_cupy_array(a):
        return get_backend(f"cupy:{a.device.id}")
    return _NUMPY
