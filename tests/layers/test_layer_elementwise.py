"""ReLU, Tanh, Flatten and Reshape: naive references, gradient checks (ReLU inputs drawn
away from its kink), task batching, and the ReLU gradient at 0 (taken as 0, as TensorFlow)."""
import naive_reference as naive
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from layer_harness import batches, check_layer_gradients, check_task_batching, seeds, tasks

from fometa.layers import Flatten, ReLU, Reshape, Tanh

example_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


def _x(t, b, shape, seed, away_from_zero=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t, b) + shape)
    if away_from_zero:  # |x| >= 0.05: no kink within the difference step
        x = np.sign(x) * (np.abs(x) + 0.05)
    return x, rng


@given(t=tasks, b=batches, shape=example_shapes, seed=seeds)
def test_relu(t, b, shape, seed):
    x, rng = _x(t, b, shape, seed, away_from_zero=True)
    y, _ = ReLU().forward({}, x)
    np.testing.assert_array_equal(y, naive.relu(x), err_msg="relu forward")
    check_layer_gradients(ReLU(), {}, x, rng)
    check_task_batching(ReLU(), {}, x, rng)


def test_relu_gradient_at_zero_is_zero():
    x = np.array([-1.0, 0.0, 2.0]).reshape(1, 1, 3)
    y, cache = ReLU().forward({}, x)
    dx, _ = ReLU().backward({}, cache, np.ones_like(x))
    np.testing.assert_array_equal(dx.ravel(), [0.0, 0.0, 1.0], err_msg="relu gradient at -1, 0, 2")


@given(t=tasks, b=batches, shape=example_shapes, seed=seeds)
def test_tanh(t, b, shape, seed):
    x, rng = _x(t, b, shape, seed)
    # |x| <= 2.5: where tanh saturates, 1 - y^2 is a cancellation known only to ~1e-16 absolute,
    # both analytically and by differences, which a relative check cannot resolve
    x = np.clip(1.5 * x, -2.5, 2.5)
    y, _ = Tanh().forward({}, x)
    np.testing.assert_allclose(y, naive.tanh(x), rtol=1e-14, atol=1e-15, err_msg="tanh forward")
    check_layer_gradients(Tanh(), {}, x, rng)
    check_task_batching(Tanh(), {}, x, rng)


@given(t=tasks, b=batches, shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), seed=seeds)
def test_flatten(t, b, shape, seed):
    x, rng = _x(t, b, shape, seed)
    layer = Flatten()
    y, _ = layer.forward({}, x)
    assert y.shape == (t, b, int(np.prod(shape))), y.shape
    assert layer.output_shape(shape) == y.shape[2:], "output_shape disagrees with forward"
    np.testing.assert_array_equal(y, naive.per_task(naive.flatten, x), err_msg="flatten must be row-major (H, W, C)")
    check_layer_gradients(layer, {}, x, rng)
    check_task_batching(layer, {}, x, rng)


@given(t=tasks, b=batches, hw=st.integers(1, 5), seed=seeds)
def test_reshape_adds_a_channel_axis(t, b, hw, seed):
    x, rng = _x(t, b, (hw, hw + 1), seed)
    layer = Reshape((hw, hw + 1, 1))
    y, _ = layer.forward({}, x)
    assert y.shape == (t, b, hw, hw + 1, 1), y.shape
    np.testing.assert_array_equal(y[..., 0], x, err_msg="reshape moved values")
    check_layer_gradients(layer, {}, x, rng)
    check_task_batching(layer, {}, x, rng)


def test_reshape_rejects_a_size_change():
    with pytest.raises(ValueError, match="reshape"):
        Reshape((28, 28, 1)).output_shape((28, 27))


@pytest.mark.parametrize("layer", [ReLU(), Tanh(), Flatten(), Reshape((6,))], ids=lambda layer: type(layer).__name__)
def test_float32_stays_float32_and_no_params(layer):
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 3)).astype(np.float32)
    y, cache = layer.forward({}, x)
    dx, grads = layer.backward({}, cache, np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32, f"{layer}: float32 in, {y.dtype} / {dx.dtype} out"
    assert grads == {} and layer.param_shapes() == {} and layer.init(np.random.default_rng(0)) == {}, layer
