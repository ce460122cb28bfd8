"""BatchNorm: naive per-channel reference, gradient checks with batch statistics and with
``stats_batch=n`` (statistics from the first n examples; exact backward), leak-freeness,
task batching, and errors."""
import naive_reference as naive
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from layer_harness import check_layer_gradients, check_task_batching, random_params, seeds, tasks

from fometa.layers import BatchNorm


@st.composite
def bn_cases(draw):
    """A BatchNorm, an input shape (T, B, *spatial, C) with 0 to 2 spatial axes, and
    ``stats_batch``: None, or 1..B+1 (B or more means the whole batch)."""
    c = draw(st.integers(1, 3))
    t, b = draw(tasks), draw(st.integers(1, 4))
    spatial = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=2)))
    stats = draw(st.one_of(st.none(), st.integers(1, b + 1)))
    eps = draw(st.sampled_from([1e-3, 1e-5, 0.5]))
    return BatchNorm(c, eps=eps), (t, b) + spatial + (c,), stats


def _inputs(case, seed):
    layer, shape, stats = case
    rng = np.random.default_rng(seed)
    params = random_params(layer, shape[0], rng)
    # a per-channel shift and spread, so the statistics are far from (0, 1)
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3.0, shape[-1]) + rng.uniform(-2, 2, shape[-1])
    return layer, params, x, stats, rng


@given(case=bn_cases(), seed=seeds)
def test_forward_matches_naive_reference(case, seed):
    layer, params, x, stats, _ = _inputs(case, seed)
    y, _ = layer.forward(params, x, stats_batch=stats)
    want = naive.per_task(
        lambda xt, s, o: naive.batchnorm(xt, s, o, layer.eps, stats), x, params["scale"], params["offset"]
    )
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10, err_msg=f"{layer}, stats_batch={stats}")


@given(case=bn_cases(), seed=seeds)
def test_gradients(case, seed):
    layer, params, x, stats, rng = _inputs(case, seed)
    check_layer_gradients(layer, params, x, rng, forward_kwargs={"stats_batch": stats})


@given(case=bn_cases(), seed=seeds)
def test_task_batching(case, seed):
    layer, params, x, stats, rng = _inputs(case, seed)
    check_task_batching(layer, params, x, rng, forward_kwargs={"stats_batch": stats})


@given(case=bn_cases(), seed=seeds)
def test_stats_batch_is_leak_free(case, seed):
    """With ``stats_batch=n``, changing example j >= n changes output j only."""
    layer, params, x, stats, rng = _inputs(case, seed)
    n = stats if stats is not None else x.shape[1]
    for j in range(n, x.shape[1]):
        x2 = x.copy()
        x2[:, j] = rng.standard_normal(x2[:, j].shape) * 10
        y, _ = layer.forward(params, x, stats_batch=n)
        y2, _ = layer.forward(params, x2, stats_batch=n)
        others = [i for i in range(x.shape[1]) if i != j]
        np.testing.assert_array_equal(y[:, others], y2[:, others], err_msg=f"example {j} leaked into others (n={n})")
        assert not np.array_equal(y[:, j], y2[:, j]), f"output {j} ignores its own input"


def test_stats_batch_equals_support_only_statistics():
    """Outputs of the first n examples equal a plain call on those n examples alone."""
    rng = np.random.default_rng(1)
    layer = BatchNorm(3)
    params = random_params(layer, 2, rng)
    x = rng.standard_normal((2, 6, 4, 4, 3))
    y, _ = layer.forward(params, x, stats_batch=4)
    y_support, _ = layer.forward(params, x[:, :4])
    np.testing.assert_allclose(y[:, :4], y_support, rtol=1e-13, atol=1e-13, err_msg="support outputs")


def test_normalizes_with_biased_variance_and_eps():
    x = np.array([1.0, 3.0]).reshape(1, 2, 1)  # mean 2, biased variance 1
    layer = BatchNorm(1, eps=1e-3)
    y, _ = layer.forward({"scale": np.ones((1, 1)), "offset": np.zeros((1, 1))}, x)
    want = np.array([-1.0, 1.0]) / np.sqrt(1.0 + 1e-3)
    np.testing.assert_allclose(y.ravel(), want, rtol=1e-14, err_msg="expected (x - mean) / sqrt(biased var + eps)")


@pytest.mark.parametrize("bad", [0, -2])
def test_stats_batch_below_one_raises(bad):
    layer = BatchNorm(2)
    x = np.zeros((1, 3, 2))
    with pytest.raises(ValueError, match="stats_batch"):
        layer.forward(layer_params(layer), x, stats_batch=bad)


def layer_params(layer, t=1):
    return {k: v[None].repeat(t, axis=0) for k, v in layer.init(np.random.default_rng(0), np.float64).items()}


def test_init_unit_scale_zero_offset_float32():
    p = BatchNorm(5).init(np.random.default_rng(0))
    assert p["scale"].dtype == p["offset"].dtype == np.float32, {k: v.dtype for k, v in p.items()}
    np.testing.assert_array_equal(p["scale"], np.ones(5), err_msg="scale (gamma) must start at 1")
    np.testing.assert_array_equal(p["offset"], np.zeros(5), err_msg="offset (beta) must start at 0")


def test_float32_stays_float32():
    layer = BatchNorm(3)
    rng = np.random.default_rng(0)
    params = random_params(layer, 2, rng, np.float32)
    x = rng.standard_normal((2, 4, 3, 3, 3)).astype(np.float32)
    for stats in (None, 2):
        y, cache = layer.forward(params, x, stats_batch=stats)
        dx, grads = layer.backward(params, cache, np.ones_like(y))
        assert y.dtype == dx.dtype == np.float32, f"stats_batch={stats}: float32 in, {y.dtype} / {dx.dtype} out"
        assert all(g.dtype == np.float32 for g in grads.values()), {k: g.dtype for k, g in grads.items()}
