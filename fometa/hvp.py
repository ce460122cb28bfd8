"""Hessian-vector products by central differences of the hand-written gradients.

``H v ~ (grad L(phi + r v) - grad L(phi - r v)) / (2 r)`` with, per task,
``r = c * (1 + ||phi||) / ||v||`` and ``c = cbrt(machine epsilon)`` of the parameters' dtype
(6.1e-6 in float64, 4.9e-3 in float32). The error has two parts: truncation
``O(r^2 ||v||^3 |L'''|)`` and round-off ``O(eps ||grad|| / r)``; the choice of ``r`` balances
them, giving a relative error of about ``eps^(2/3)``: ~1e-10 in float64, ~1e-4..1e-3 in float32
(measured in ``tests/test_hvp.py`` against exact Hessians of quadratics and, for the nets,
against finite differences at several ``r``). Across a ReLU or max-pool kink the difference
quotient sees the jump in the gradient: such networks are piecewise quadratic-free, and the
product is then the average Hessian over the segment ``[phi - r v, phi + r v]``.

Cost: two gradient evaluations per product, for any number of tasks at once.
"""
from __future__ import annotations

import numpy as np

from fometa import tree
from fometa.backends import array_module


def _per_task_scale(a, s):
    """Multiply a task-batched tree by per-task scalars ``s`` of shape ``(T,)``."""
    return tree.map(lambda x: x * s.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype), a)


def default_step(dtype) -> float:
    return float(np.cbrt(np.finfo(dtype).eps))


def hvp(model, params, x, y, v, step: float | None = None):
    """``H v`` of ``model``'s loss at ``params`` on batch ``(x, y)``; task-batched or single-task."""
    single = x.ndim == len(model.input_shape) + 1
    if single:
        params, v = tree.broadcast(params, 1), tree.broadcast(v, 1)
        x, y = x[None], y[None]
    leaf = next(iter(params.values()))
    xp = array_module(leaf)
    c = default_step(leaf.dtype) if step is None else step
    vnorm = tree.norm(v, per_task=True)
    pnorm = tree.norm(params, per_task=True)
    safe = xp.where(vnorm > 0, vnorm, 1.0)
    r = c * (1.0 + pnorm) / safe
    rv = _per_task_scale(v, r)
    _, gp = model.loss_and_grad(tree.add(params, rv), x, y)
    _, gm = model.loss_and_grad(tree.sub(params, rv), x, y)
    out = _per_task_scale(tree.sub(gp, gm), xp.where(vnorm > 0, 0.5 / r, 0.0))
    return tree.take_task(out, 0) if single else out
