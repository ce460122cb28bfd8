"""Graph replay of the meta-iteration: the ``--graph auto|on|off`` switch and its hook.

A meta-iteration launches the same sequence of kernels on arrays of the same shapes every time;
on a GPU that sequence can be captured once as a CUDA graph and replayed, which removes the
per-kernel launch overhead that dominates small task batches. The capture itself is CuPy-only
and lives in a module of its own, ``fometa/graph_cuda.py`` (not written yet), exposing
``capture(step, backend) -> step``; this module only decides whether to use it:

* ``off``: the plain step;
* ``auto``: graph replay on a CuPy backend when the capture module is present, the plain step
  otherwise (always on NumPy);
* ``on``: graph replay, or an error (:class:`GraphError`) when the backend is NumPy or the
  capture module is missing.

:func:`runner` wraps any step callable (``MetaLearner.step``, :func:`fometa.seeds.step`) and
returns one with the same signature, so the training loops call it and nothing else changes.
"""
from __future__ import annotations

import importlib
import importlib.util

from fometa.backends import get_backend

__all__ = ["MODES", "GraphError", "enabled", "runner"]

MODES = ("auto", "on", "off")
CAPTURE_MODULE = "fometa.graph_cuda"


class GraphError(ValueError):
    """Graph replay was asked for (``on``) where it cannot run; the message says why."""


def _capture_available() -> bool:
    return importlib.util.find_spec(CAPTURE_MODULE) is not None


def enabled(mode: str, backend) -> bool:
    """Whether steps on ``backend`` (a name or a Backend) replay a captured graph under ``mode``."""
    if mode not in MODES:
        raise GraphError(f"--graph must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        return False
    be = get_backend(backend)
    if not be.name.startswith("cupy"):
        if mode == "on":
            raise GraphError("--graph on needs the cupy backend")
        return False
    if not _capture_available():
        if mode == "on":
            raise GraphError(f"--graph on: this fometa has no CUDA-graph capture yet ({CAPTURE_MODULE} is missing)")
        return False
    return True


def runner(step, backend, mode: str = "auto"):
    """``step`` itself, or its graph-replaying version when :func:`enabled` (same signature)."""
    if not enabled(mode, backend):
        return step
    return importlib.import_module(CAPTURE_MODULE).capture(step, get_backend(backend))
