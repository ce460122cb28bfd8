"""Conv2D: naive loop reference (TF 'same' for odd/even sizes and strides, 'valid'), float64
gradient checks of dx, kernel and bias, task batching, shapes and errors.

Each property also draws the NumPy backend's chunk budget, so that the blocked paths (blocks
of tasks, blocks of one task's images, im2col rebuilt in backward) are checked as well."""
import naive_reference as naive
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from layer_harness import (
    batches,
    check_layer_gradients,
    check_task_batching,
    chunk_budgets,
    numpy_chunk_bytes,
    random_params,
    seeds,
    tasks,
)

from fometa.layers import Conv2D


@st.composite
def conv_cases(draw, max_hw=7):
    """A Conv2D and a matching input geometry: kernels 1..4 (even sizes included, square or
    not), strides 1..3, 'same' or 'valid'; 'valid' needs the kernel to fit."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    padding = draw(st.sampled_from(["same", "valid"]))
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    if padding == "valid":
        assume(h >= kh and w >= kw)
    layer = Conv2D(
        in_channels=draw(st.integers(1, 3)),
        out_channels=draw(st.integers(1, 3)),
        kernel_size=kh if kh == kw and draw(st.booleans()) else (kh, kw),
        stride=draw(st.integers(1, 3)),
        padding=padding,
    )
    return layer, draw(tasks), draw(batches), h, w


def _inputs(case, seed):
    layer, t, b, h, w = case
    rng = np.random.default_rng(seed)
    params = random_params(layer, t, rng)
    x = rng.standard_normal((t, b, h, w, layer.in_channels))
    return layer, params, x, rng


@given(case=conv_cases(), seed=seeds, budget=chunk_budgets)
def test_forward_matches_naive_loops(case, seed, budget):
    layer, params, x, _ = _inputs(case, seed)
    with numpy_chunk_bytes(budget):
        y, _ = layer.forward(params, x)
    want = naive.per_task(
        lambda xt, k, bias: naive.conv2d(xt, k, bias, layer.stride, layer.padding),
        x, params["kernel"], params["bias"],
    )
    assert y.shape == want.shape, f"{layer}: output shape {y.shape}, naive reference {want.shape}"
    np.testing.assert_allclose(y, want, rtol=1e-11, atol=1e-11, err_msg=f"{layer}: forward vs naive loops")
    assert y.shape[2:] == layer.output_shape(x.shape[2:]), f"{layer}: output_shape disagrees with forward"


@given(case=conv_cases(), seed=seeds, budget=chunk_budgets)
def test_gradients(case, seed, budget):
    layer, params, x, rng = _inputs(case, seed)
    with numpy_chunk_bytes(budget):
        check_layer_gradients(layer, params, x, rng)


@given(case=conv_cases(), seed=seeds, budget=chunk_budgets)
def test_task_batching(case, seed, budget):
    layer, params, x, rng = _inputs(case, seed)
    with numpy_chunk_bytes(budget):
        check_task_batching(layer, params, x, rng)


@given(case=conv_cases(), seed=seeds, budget=chunk_budgets)
def test_need_dx_false_gives_the_same_parameter_gradients(case, seed, budget):
    """``backward(..., need_dx=False)`` (a network's first layer) skips dx and nothing else."""
    layer, params, x, rng = _inputs(case, seed)
    with numpy_chunk_bytes(budget):
        y, cache = layer.forward(params, x)
        dy = rng.standard_normal(y.shape)
        _, grads = layer.backward(params, cache, dy)
        dx, grads_no_dx = layer.backward(params, cache, dy, need_dx=False)
    assert dx is None, f"{layer}: need_dx=False returned an input gradient"
    for k in grads:
        np.testing.assert_array_equal(grads_no_dx[k], grads[k], err_msg=f"{layer}: grad {k!r} with need_dx=False")


@pytest.mark.parametrize("budget", ["default", None, 1, 100, 5000])
def test_blocking_does_not_change_results(budget):
    """Every chunk budget gives the unblocked forward and backward (float64, to round-off)."""
    layer = Conv2D(3, 4, 3, stride=1)
    rng = np.random.default_rng(5)
    params = random_params(layer, 3, rng)
    x = rng.standard_normal((3, 5, 6, 6, 3))
    with numpy_chunk_bytes(None):
        y0, c0 = layer.forward(params, x)
        dy = rng.standard_normal(y0.shape)
        dx0, g0 = layer.backward(params, c0, dy)
    with numpy_chunk_bytes(budget):
        y, c = layer.forward(params, x)
        dx, g = layer.backward(params, c, dy)
    np.testing.assert_allclose(y, y0, rtol=1e-13, atol=1e-13, err_msg=f"forward, chunk_bytes={budget}")
    np.testing.assert_allclose(dx, dx0, rtol=1e-13, atol=1e-13, err_msg=f"dx, chunk_bytes={budget}")
    for k in g0:
        np.testing.assert_allclose(g[k], g0[k], rtol=1e-12, atol=1e-12, err_msg=f"grad {k!r}, chunk_bytes={budget}")


@pytest.mark.parametrize(
    "h, k, s, out, pads",
    [
        # out = ceil(h / s); total = max((out - 1) s + k - h, 0); before = total // 2
        (28, 3, 2, 14, (0, 1)),
        (14, 3, 2, 7, (0, 1)),
        (7, 3, 2, 4, (1, 1)),
        (4, 3, 2, 2, (0, 1)),
        (84, 3, 1, 84, (1, 1)),
        (5, 2, 1, 5, (0, 1)),
        (5, 4, 1, 5, (1, 2)),
        (6, 4, 3, 2, (0, 1)),
        (2, 5, 3, 1, (1, 2)),
    ],
)
def test_same_padding_places_the_odd_cell_after(h, k, s, out, pads):
    """A single nonzero input cell reveals where the padding went: with the kernel all ones
    and one input cell at row r, output row i sees it iff r lies in its window."""
    layer = Conv2D(1, 1, (k, 1), stride=s, padding="same")
    params = {"kernel": np.ones((1, k, 1, 1, 1)), "bias": np.zeros((1, 1))}
    for r in range(h):
        x = np.zeros((1, 1, h, 1, 1))
        x[0, 0, r, 0, 0] = 1.0
        y, _ = layer.forward(params, x)
        assert y.shape[2] == out, f"h={h} k={k} s={s}: {y.shape[2]} output rows, TensorFlow gives {out}"
        got = [i for i in range(out) if y[0, 0, i, 0, 0] != 0]
        want = [i for i in range(out) if i * s - pads[0] <= r < i * s - pads[0] + k]
        assert got == want, f"h={h} k={k} s={s}, input row {r}: seen by rows {got}, TF padding {pads} gives {want}"


def test_float32_stays_float32():
    layer = Conv2D(2, 3, 3, stride=2)
    rng = np.random.default_rng(0)
    params = random_params(layer, 2, rng, np.float32)
    x = rng.standard_normal((2, 3, 5, 5, 2)).astype(np.float32)
    y, cache = layer.forward(params, x)
    dx, grads = layer.backward(params, cache, np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32, f"float32 in, {y.dtype} / {dx.dtype} out"
    assert all(g.dtype == np.float32 for g in grads.values()), {k: g.dtype for k, g in grads.items()}


def test_init_is_glorot_uniform_with_zero_bias():
    layer = Conv2D(8, 16, 3)
    p = layer.init(np.random.default_rng(0))
    limit = np.sqrt(6.0 / (9 * 8 + 9 * 16))
    assert p["kernel"].shape == (3, 3, 8, 16) and p["bias"].shape == (16,), {k: v.shape for k, v in p.items()}
    assert np.abs(p["kernel"]).max() <= limit, "kernel outside the Glorot-uniform bounds"
    assert np.abs(p["kernel"]).max() > 0.95 * limit, "kernel spread far narrower than Glorot-uniform"
    assert not p["bias"].any(), "bias is not initialized to zero"


@pytest.mark.parametrize("padding, h, kernel", [("valid", 2, 3), ("bogus", 5, 3)])
def test_bad_geometry_raises(padding, h, kernel):
    layer = Conv2D(1, 1, kernel, padding=padding)
    with pytest.raises(ValueError, match="padding|kernel"):
        layer.output_shape((h, h, 1))
