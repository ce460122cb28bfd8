"""Hessian-vector products by central differences: accuracy against exact and numerical Hessians."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fometa import models, tree
from fometa.hvp import hvp

MLP = models.sine_mlp(hidden=5)


def _problem(seed, tasks=None):
    rng = np.random.default_rng(seed)
    p = tree.astype(MLP.init(rng), np.float64)
    x, y = rng.uniform(-3, 3, (4, 1)), rng.standard_normal((4, 1))
    v = tree.map(lambda a: rng.standard_normal(a.shape), p)
    if tasks:
        p, v = tree.broadcast(p, tasks), tree.broadcast(v, tasks)
        x, y = np.stack([x] * tasks), np.stack([y] * tasks)
    return p, x, y, v


def _hessian_column_product(p, x, y, v, h=1e-4):
    """Reference: differentiate the gradient along v with a 4-point stencil (O(h^4))."""
    def g(t):
        return MLP.loss_and_grad(tree.axpy(t, v, p), x, y)[1]
    num = tree.sub(tree.scale(tree.sub(g(h), g(-h)), 8.0), tree.sub(g(2 * h), g(-2 * h)))
    return tree.scale(num, 1.0 / (12 * h))


@given(seed=st.integers(0, 2**32 - 1))
def test_hvp_float64_matches_a_higher_order_stencil(seed):
    p, x, y, v = _problem(seed)
    ref = _hessian_column_product(p, x, y, v)
    got = hvp(MLP, p, x, y, v)
    err = float(tree.norm(tree.sub(got, ref)) / tree.norm(ref))
    assert err < 1e-7, f"relative error {err:.2e}"


def test_hvp_is_exact_for_a_linear_model_with_squared_error():
    """For y = x w + b with MSE, H = (2/B) [x 1]^T [x 1] exactly."""
    net = models.Sequential("lin", (("fc", models.Dense(3, 1)),), (3,), "mse")
    rng = np.random.default_rng(0)
    p = tree.astype(net.init(rng), np.float64)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))
    v = {"fc/kernel": rng.standard_normal((3, 1)), "fc/bias": rng.standard_normal(1)}
    a = np.concatenate([x, np.ones((5, 1))], axis=1)
    h = 2.0 / 5 * a.T @ a
    exact = h @ np.concatenate([v["fc/kernel"][:, 0], v["fc/bias"]])
    got = hvp(net, p, x, y, v)
    np.testing.assert_allclose(np.concatenate([got["fc/kernel"][:, 0], got["fc/bias"]]), exact, rtol=1e-8)


def test_hvp_task_batched_equals_single_and_zero_vector_gives_zero():
    p, x, y, v = _problem(3, tasks=2)
    batched = hvp(MLP, p, x, y, v)
    single = hvp(MLP, tree.take_task(p, 1), x[1], y[1], tree.take_task(v, 1))
    assert tree.allclose(tree.take_task(batched, 1), single, rtol=1e-12)
    zero = hvp(MLP, p, x, y, tree.zeros_like(v))
    assert float(tree.norm(zero)) == 0.0


def test_hvp_float32_error_is_as_documented():
    p, x, y, v = _problem(4)
    ref = hvp(MLP, p, x, y, v)
    got = hvp(MLP, tree.astype(p, np.float32), x.astype(np.float32), y.astype(np.float32), tree.astype(v, np.float32))
    err = float(tree.norm(tree.sub(tree.astype(got, np.float64), ref)) / tree.norm(ref))
    assert err < 1e-2, f"float32 HVP relative error {err:.2e} exceeds the documented ~1e-3"
