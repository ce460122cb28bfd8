"""Which array module an array belongs to: NumPy, or CuPy (never imported here unless the array is CuPy's)."""
from __future__ import annotations

import numpy as np

__all__ = ["array_module", "is_cupy_array"]


def is_cupy_array(a) -> bool:
    """Whether ``a`` is a CuPy array (decided by its type's module, without importing CuPy)."""
    return type(a).__module__.split(".")[0] == "cupy"


def array_module(a):
    """The array module (numpy or cupy) that ``a`` belongs to; never imports CuPy itself."""
    if is_cupy_array(a):
        import cupy

        return cupy
    return np
