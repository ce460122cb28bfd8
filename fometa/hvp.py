"""Hessian-vector products by central differences of the hand-written gradients.

``H v ~ (grad L(phi + r v) - grad L(phi - r v)) / (2 r)`` with, per task,
``r = c (1 + ||phi||) / ||v||``: the perturbation has norm ``c (1 + ||phi||)``. The differences
are taken in float64 (float32 inputs are promoted by default and the product cast back).

Why ``c = 1e-7`` and not the textbook ``cbrt(eps) ~ 6e-6``: the nets have ReLU and max-pool
kinks, and a difference quotient whose segment ``[phi - r v, phi + r v]`` crosses kinks
measures the jumps of the gradient, not the Hessian. On the Omniglot net (5 images, 3 tasks)
the product changes by 10x between ``c = 6e-6`` and ``c = 1e-7``, and by 1e-9 (relative)
between ``c = 1e-7`` and ``c = 1e-8``: with ``c = 1e-7`` the segment stays inside the piece
containing ``phi`` and the result is the Hessian of that piece. For smooth losses (the sine
MLP) the error is then round-off dominated, about ``eps ||grad|| / r``: ~1e-9 relative in
float64 (``tests/test_hvp.py`` checks it against an O(h^4) stencil and against the exact
Hessian of a linear least-squares problem). A float32 difference quotient would need
``c ~ 5e-3`` and average the Hessian over many kinks, hence the promotion.

Cost: two float64 gradient evaluations per product, for any number of tasks at once.
"""
from __future__ import annotations

import numpy as np

from fometa import tree
from fometa.backends import array_module


def _per_task_scale(a, s):
    """Multiply a task-batched tree by per-task scalars ``s`` of shape ``(T,)``."""
    return tree.map(lambda x: x * s.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype), a)


DEFAULT_STEP = 1e-7


def hvp(model, params, x, y, v, step: float | None = None, promote: bool = True):
    """``H v`` of ``model``'s loss at ``params`` on batch ``(x, y)``; task-batched or single-task.

    ``step`` is ``c`` of the module docstring (default :data:`DEFAULT_STEP`). With ``promote``
    (the default), float32 inputs are differenced in float64 and the product is cast back.
    """
    leaf = next(iter(params.values()))
    if promote and leaf.dtype != np.float64:
        out = hvp(model, tree.astype(params, np.float64), x.astype(np.float64), y, tree.astype(v, np.float64), step,
                  False)
        return tree.astype(out, leaf.dtype)
    single = x.ndim == len(model.input_shape) + 1
    if single:
        params, v = tree.broadcast(params, 1), tree.broadcast(v, 1)
        x, y = x[None], y[None]
    xp = array_module(leaf)
    c = DEFAULT_STEP if step is None else step
    vnorm = tree.norm(v, per_task=True)
    pnorm = tree.norm(params, per_task=True)
    safe = xp.where(vnorm > 0, vnorm, 1.0)
    r = c * (1.0 + pnorm) / safe
    rv = _per_task_scale(v, r)
    _, gp = model.loss_and_grad(tree.add(params, rv), x, y)
    _, gm = model.loss_and_grad(tree.sub(params, rv), x, y)
    out = _per_task_scale(tree.sub(gp, gm), xp.where(vnorm > 0, 0.5 / r, 0.0))
    return tree.take_task(out, 0) if single else out


def default_step(dtype=None) -> float:
    """The finite-difference scale ``c`` used when none is given (the same for every dtype)."""
    return DEFAULT_STEP
