"""Checks shared by the layer tests: gradient checks of a layer, and task batching.

Hypothesis draws the geometry; values come from a NumPy generator seeded by a drawn integer,
so a failing example is reproduced by its printed seed.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from hypothesis import strategies as st

from fometa.backends import get_backend
from fometa.gradcheck import relative_errors

seeds = st.integers(0, 2**32 - 1)
tasks = st.integers(1, 4)
batches = st.integers(1, 3)

INPUT = "<input>"  # key of the layer input in a gradient-check tree (never a parameter name)

# NumPy's chunk budget for layers that split a batch into blocks (Backend.chunk_bytes): the
# default, off, and budgets small enough that the small test shapes split by tasks or images.
chunk_budgets = st.sampled_from(["default", None, 1, 100, 1000, 5000])


@contextmanager
def numpy_chunk_bytes(budget):
    """Run with the NumPy backend's ``chunk_bytes`` set to ``budget`` (``"default"``: unchanged)."""
    be = get_backend("numpy")
    if budget == "default":
        yield
        return
    had = "chunk_bytes" in vars(be)
    old = vars(be).get("chunk_bytes")
    be.chunk_bytes = budget
    try:
        yield
    finally:
        if had:
            be.chunk_bytes = old
        else:
            del be.chunk_bytes


def assert_gradients(f, x, grad, rng, rtol=1e-6, attempts=3, **gradcheck):
    """:func:`fometa.gradcheck.assert_gradients`, drawing fresh directions for a failing parameter.

    A direction ``v`` that happens to be nearly orthogonal to the gradient makes ``<grad, v>``
    small, and the round-off in ``f`` (about ``eps |f| / h``) then shows as a large relative
    error although the gradient is right: over thousands of checks a run would fail now and
    then. A wrong gradient is wrong along almost every direction, so a parameter fails only if
    all ``attempts`` independent directions give a relative error of ``rtol`` or more.
    """
    history = {k: [] for k in grad}
    failing = list(grad)
    for _ in range(attempts):
        errors = relative_errors(f, x, grad, rng, **gradcheck)  # all keys: the floor's scale stays the same
        for k in failing:
            history[k].append(errors[k])
        failing = [k for k in failing if not errors[k] < rtol]
        if not failing:
            return {k: min(v) for k, v in history.items()}
    detail = ", ".join(f"{k}: {', '.join(f'{e:.2e}' for e in history[k])}" for k in failing)
    raise AssertionError(f"gradient check failed (relative error > {rtol:g} along {attempts} directions): {detail}")


def random_params(layer, t: int, rng: np.random.Generator, dtype=np.float64) -> dict:
    """Task-batched parameters of ``layer`` with random (not initial) values: every
    parameter, a bias or a batch-norm offset included, takes part in the checks."""
    return {k: rng.standard_normal((t,) + tuple(s)).astype(dtype) for k, s in layer.param_shapes().items()}


def check_layer_gradients(layer, params: dict, x, rng: np.random.Generator, forward_kwargs=None, **gradcheck):
    """Gradient check of ``dx`` and every parameter gradient of ``layer``.

    The scalar objective is ``f = sum(forward(params, x) * w)`` for a fixed random ``w``;
    its gradient is what ``backward(params, cache, w)`` returns.
    """
    kw = forward_kwargs or {}
    y, cache = layer.forward(params, x, **kw)
    w = rng.standard_normal(y.shape)
    dx, grads = layer.backward(params, cache, w.copy())
    assert list(grads) == list(params), f"{layer}: gradient keys {list(grads)} != parameter keys {list(params)}"
    for k in params:
        assert grads[k].shape == params[k].shape, f"{layer}: grad {k!r} shape {grads[k].shape} != {params[k].shape}"
    assert dx.shape == x.shape, f"{layer}: dx shape {dx.shape} != input shape {x.shape}"

    def f(tree):
        out, _ = layer.forward({k: tree[k] for k in params}, tree[INPUT], **kw)
        return float((out * w).sum())

    assert_gradients(f, {**params, INPUT: x}, {**grads, INPUT: dx}, rng, **gradcheck)


def check_task_batching(layer, params: dict, x, rng: np.random.Generator, forward_kwargs=None):
    """Task ``t`` of a T-task call equals a separate single-task (T = 1) call on task ``t``:
    forward outputs, ``dx`` and every parameter gradient."""
    kw = forward_kwargs or {}
    y, cache = layer.forward(params, x, **kw)
    dy = rng.standard_normal(y.shape)
    dx, grads = layer.backward(params, cache, dy.copy())
    for t in range(x.shape[0]):
        p1 = {k: v[t : t + 1] for k, v in params.items()}
        y1, c1 = layer.forward(p1, x[t : t + 1], **kw)
        dx1, g1 = layer.backward(p1, c1, dy[t : t + 1].copy())
        np.testing.assert_allclose(y[t : t + 1], y1, rtol=1e-12, atol=1e-12, err_msg=f"{layer}: forward of task {t}")
        np.testing.assert_allclose(dx[t : t + 1], dx1, rtol=1e-12, atol=1e-12, err_msg=f"{layer}: dx of task {t}")
        for k in params:
            np.testing.assert_allclose(
                grads[k][t : t + 1], g1[k], rtol=1e-12, atol=1e-12, err_msg=f"{layer}: grad {k!r} of task {t}"
            )
