"""Dense: naive loop reference, gradient checks, task batching, init and shape errors."""
import naive_reference as naive
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from layer_harness import batches, check_layer_gradients, check_task_batching, random_params, seeds, tasks

from fometa.layers import Dense

cases = st.tuples(st.integers(1, 6), st.integers(1, 5), tasks, batches)


def _inputs(case, seed):
    f, o, t, b = case
    layer = Dense(f, o)
    rng = np.random.default_rng(seed)
    return layer, random_params(layer, t, rng), rng.standard_normal((t, b, f)), rng


@given(case=cases, seed=seeds)
def test_forward_matches_naive_loops(case, seed):
    layer, params, x, _ = _inputs(case, seed)
    y, _ = layer.forward(params, x)
    want = naive.per_task(naive.dense, x, params["kernel"], params["bias"])
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12, err_msg=f"{layer}: forward vs naive loops")


@given(case=cases, seed=seeds)
def test_gradients(case, seed):
    layer, params, x, rng = _inputs(case, seed)
    check_layer_gradients(layer, params, x, rng)


@given(case=cases, seed=seeds)
def test_task_batching(case, seed):
    layer, params, x, rng = _inputs(case, seed)
    check_task_batching(layer, params, x, rng)


@given(case=cases, seed=seeds)
def test_need_dx_false_gives_the_same_parameter_gradients(case, seed):
    layer, params, x, rng = _inputs(case, seed)
    y, cache = layer.forward(params, x)
    dy = rng.standard_normal(y.shape)
    _, grads = layer.backward(params, cache, dy)
    dx, grads_no_dx = layer.backward(params, cache, dy, need_dx=False)
    assert dx is None, "need_dx=False returned an input gradient"
    for k in grads:
        np.testing.assert_array_equal(grads_no_dx[k], grads[k], err_msg=f"grad {k!r} with need_dx=False")


def test_init_is_glorot_uniform_with_zero_bias():
    p = Dense(256, 5).init(np.random.default_rng(0))
    limit = np.sqrt(6.0 / (256 + 5))
    assert p["kernel"].shape == (256, 5) and p["bias"].shape == (5,), {k: v.shape for k, v in p.items()}
    assert p["kernel"].dtype == np.float32, p["kernel"].dtype
    assert np.abs(p["kernel"]).max() <= limit, "kernel outside the Glorot-uniform bounds"
    assert np.abs(p["kernel"]).max() > 0.95 * limit, "kernel spread far narrower than Glorot-uniform"
    assert not p["bias"].any(), "bias is not initialized to zero"


def test_wrong_example_shape_raises():
    with pytest.raises(ValueError, match=r"\(4,\)"):
        Dense(4, 2).output_shape((5,))


def test_torch_init_scheme():
    """``init_scheme="torch"``: kernel and bias uniform within 1/sqrt(in_features) (nn.Linear)."""
    p = Dense(64, 40, init_scheme="torch").init(np.random.default_rng(0))
    bound = 1 / np.sqrt(64)
    for k, v in p.items():
        assert v.dtype == np.float32, f"{k}: {v.dtype}"
        assert np.abs(v).max() <= bound, f"{k} exceeds nn.Linear's bound {bound}"
        assert np.abs(v).max() > 0.9 * bound, f"{k} spread far narrower than nn.Linear's"
    with pytest.raises(ValueError, match="init scheme"):
        Dense(2, 2, init_scheme="he").init(np.random.default_rng(0))
