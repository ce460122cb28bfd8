"""MaxPool2D: naive loop reference ('same' padding never wins, 'valid'), gradient checks
(kinks handled by the gradient checker's smoothness test), TensorFlow's tie rule, task batching."""
import naive_reference as naive
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from layer_harness import batches, check_layer_gradients, check_task_batching, seeds, tasks

from fometa.layers import MaxPool2D


@st.composite
def pool_cases(draw, max_hw=7):
    pool, stride = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["same", "valid"]))
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    if padding == "valid":
        assume(h >= pool and w >= pool)
    return MaxPool2D(pool, stride, padding), draw(tasks), draw(batches), h, w, draw(st.integers(1, 3))


def _input(case, seed, negative=False):
    layer, t, b, h, w, c = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t, b, h, w, c))
    if negative:  # zero padding would win every window that touches it
        x = -np.abs(x) - 0.5
    return layer, x, rng


@pytest.mark.parametrize("negative", [False, True], ids=["mixed-sign", "all-negative"])
@given(case=pool_cases(), seed=seeds)
def test_forward_matches_naive_loops(case, seed, negative):
    layer, x, _ = _input(case, seed, negative)
    y, _ = layer.forward({}, x)
    want = naive.per_task(lambda xt: naive.maxpool2d(xt, layer.pool, layer.stride, layer.padding), x)
    assert y.shape == want.shape, f"{layer}: output shape {y.shape}, naive reference {want.shape}"
    np.testing.assert_array_equal(y, want, err_msg=f"{layer}: forward vs naive loops (padding must never win)")
    assert y.shape[2:] == layer.output_shape(x.shape[2:]), f"{layer}: output_shape disagrees with forward"


@given(case=pool_cases(), seed=seeds)
def test_gradients(case, seed):
    layer, x, rng = _input(case, seed)
    check_layer_gradients(layer, {}, x, rng)


@given(case=pool_cases(), seed=seeds)
def test_task_batching(case, seed):
    layer, x, rng = _input(case, seed)
    check_task_batching(layer, {}, x, rng)


def test_gradient_goes_to_the_first_maximum_of_a_tie():
    """TensorFlow routes a tied window's gradient to its first maximum in row-major order."""
    x = np.zeros((1, 1, 2, 2, 1))
    x[0, 0, 0, 1, 0] = x[0, 0, 1, 0, 0] = 3.0
    layer = MaxPool2D(2, 2, "same")
    y, cache = layer.forward({}, x)
    dx, _ = layer.backward({}, cache, np.full(y.shape, 5.0))
    want = np.zeros_like(x)
    want[0, 0, 0, 1, 0] = 5.0
    np.testing.assert_array_equal(dx, want, err_msg="tied maximum: gradient must go to the first one only")


def test_paper_geometry():
    """84 -> 42 -> 21 -> 11 -> 6 with 2x2 stride-2 'same' pooling (Mini-ImageNet's feature map)."""
    sizes, h = [], 84
    for _ in range(4):
        h = MaxPool2D(2, 2, "same").output_shape((h, h, 1))[0]
        sizes.append(h)
    assert sizes == [42, 21, 11, 6], sizes


def test_float32_stays_float32():
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5, 3)).astype(np.float32)
    layer = MaxPool2D()
    y, cache = layer.forward({}, x)
    dx, _ = layer.backward({}, cache, np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32, f"float32 in, {y.dtype} / {dx.dtype} out"
