"""CuPy backend: the generic kernels run on a GPU unchanged; only moving arrays differs."""
from __future__ import annotations

import numpy as np

from fometa.backends import Backend, BackendError


class CupyBackend(Backend):
    # A GPU wants the largest launches it can get: never split the task axis.
    chunk_bytes = None

    def __init__(self, device: int = 0):
        try:
            import cupy
        except ImportError as exc:  # not installed, or a broken CUDA install
            raise BackendError(
                f"backend 'cupy:{device}' needs CuPy, which is not installed "
                f"(pip install 'fometa[gpu]'; import failed: {exc})"
            ) from None
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDA driver missing or no device
            raise BackendError(
                f"backend 'cupy:{device}': CuPy is installed but no GPU is visible ({exc})"
            ) from None
        if count == 0:
            raise BackendError(f"backend 'cupy:{device}': CuPy is installed but no GPU is visible")
        if not 0 <= device < count:
            raise BackendError(
                f"backend 'cupy:{device}': no such GPU; {count} visible (indices 0..{count - 1})"
            )
        self.xp = cupy
        self.device = cupy.cuda.Device(device)
        self.name = f"cupy:{device}"

    def compiled(self):
        """None: the compiled kernels are for the CPU; CuPy runs the generic ones."""
        return None

    def asarray(self, a, dtype=None):
        with self.device:
            return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a):
        if type(a).__module__.split(".")[0] == "cupy":
            return a.get()
        return np.asarray(a)

    def synchronize(self):
        self.device.synchronize()
