"""Finite-difference gradient checks along random directions (float64), as Chainer's ``gradient_check``.

For each parameter ``k`` separately, a random direction ``v`` (standard normal) is drawn and the
analytic directional derivative ``<grad_k, v>`` is compared with the central difference

    fd(h) = (f(x + h v e_k) - f(x - h v e_k)) / (2 h).

The relative error is ``|fd - an| / max(|fd|, |an|, floor * G)``, where ``G`` is the largest
``|an|`` over all parameters: gradients that vanish exactly (a conv bias before batch norm)
are then judged on an absolute scale instead of on round-off.

Piecewise-linear functions (ReLU, max-pool) have kinks where a difference quotient is wrong
by design. A direction is therefore accepted only if ``fd(h)`` and ``fd(h/2)`` agree (they do
to ~1e-9, plus round-off, wherever ``f`` is smooth on the segment, whatever the analytic gradient says); if they
do not, a new direction is drawn. The check never looks at the analytic gradient to decide this.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np


class KinkError(RuntimeError):
    """No direction was found along which the function is smooth enough to difference."""


def _fd(f, x, key, v, h):
    plus = dict(x)
    minus = dict(x)
    plus[key] = x[key] + h * v
    minus[key] = x[key] - h * v
    return (float(f(plus)) - float(f(minus))) / (2 * h)


def relative_errors(
    f: Callable[[Mapping], float],
    x: Mapping,
    grad: Mapping,
    rng: np.random.Generator,
    h: float = 1e-6,
    floor: float = 1e-3,
    smooth_tol: float = 1e-7,
    tries: int = 8,
) -> dict[str, float]:
    """Relative error of ``grad[k]`` for every ``k`` in ``grad`` (see the module docstring).

    ``f`` maps a dict of float64 host arrays (``x`` with some entries replaced) to a scalar.
    """
    fds, ans = {}, {}
    # round-off in a difference quotient is about eps * |f| / h: never call that a kink
    noise = 100 * np.finfo(np.float64).eps * (abs(float(f(dict(x)))) + 1.0) / h
    for key in grad:
        g = np.asarray(grad[key], dtype=np.float64)
        if g.shape != np.shape(x[key]):
            raise ValueError(f"gradient for {key!r} has shape {g.shape}, input has {np.shape(x[key])}")
        for _ in range(tries):
            v = rng.standard_normal(g.shape)
            fd1 = _fd(f, x, key, v, h)
            fd2 = _fd(f, x, key, v, h / 2)
            if abs(fd1 - fd2) <= smooth_tol * max(abs(fd1), abs(fd2)) + noise:
                break
        else:
            raise KinkError(f"{key!r}: no smooth direction in {tries} tries (kinks within {h} of x)")
        fds[key] = fd1  # truncation error ~ h^2 |f'''| / 6: far below round-off here
        ans[key] = float((g * v).sum())
    scale = max([abs(a) for a in ans.values()] + [1e-12])
    return {
        k: abs(fds[k] - ans[k]) / max(abs(fds[k]), abs(ans[k]), floor * scale, np.finfo(np.float64).tiny) for k in grad
    }


def assert_gradients(f, x, grad, rng, rtol: float = 1e-6, **kwargs) -> dict[str, float]:
    """:func:`relative_errors`, raising ``AssertionError`` naming every parameter above ``rtol``."""
    errors = relative_errors(f, x, grad, rng, **kwargs)
    bad = {k: e for k, e in errors.items() if not e < rtol}
    if bad:
        detail = ", ".join(f"{k}: {e:.2e}" for k, e in bad.items())
        raise AssertionError(f"gradient check failed (relative error > {rtol:g}): {detail}")
    return errors
