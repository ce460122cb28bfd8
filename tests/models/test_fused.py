"""The fused fast path (fometa.models.fused, fometa.inner.adapt_flat) against the layer-by-layer specification.

``Sequential(..., fused=False)`` runs the layers of fometa/layers one by one; the default
model runs fometa.models.fused. Both must compute the same losses, outputs and gradients (float64:
to 1e-10; float32: to round-off), the flat-buffer inner loop must equal the plain one, and a
task's numbers must not depend on the other tasks in its call or on the thread count. The tests
taking ``fast_path`` run twice: on the NumPy code and on the compiled kernels (the ``fast``
extra; tests/backends/test_numba_kernels.py holds the two to each other bit for bit).
"""
import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fometa import inner, meta, models, optim, parallel, tree
from fometa.backends import kernels
from fometa.layers.padding import out_size_and_pads
from fometa.models import fused


@pytest.fixture(params=["numpy", "compiled"])
def fast_path(request, monkeypatch):
    """The fused engine on its NumPy code (``FOMETA_NUMBA=0``) or on the compiled kernels."""
    if request.param == "compiled":
        pytest.importorskip("numba", reason="the fast extra (numba) is not installed")
    monkeypatch.setenv("FOMETA_NUMBA", "1" if request.param == "compiled" else "0")
    return request.param


def reference(model):
    return dataclasses.replace(model, fused=False)


def batch(model, rng, tasks, size, dtype):
    x = rng.random((tasks, size) + tuple(model.input_shape)).astype(dtype)
    y = rng.integers(0, model.output_shape[0], size=(tasks, size))
    return x, y


def params_for(model, rng, tasks, dtype):
    """Perturbed parameters, so that biases, scales and offsets all matter."""
    base = model.init(rng, dtype=dtype)
    return {k: (np.repeat(v[None], tasks, 0) + 0.3 * rng.standard_normal((tasks,) + v.shape)).astype(dtype)
            for k, v in base.items()}


def assert_trees_close(a, b, rtol, what, global_scale=False):
    """Leaf-wise ``max|a - b| <= rtol * max|b|``; with ``global_scale`` on the largest entry of
    the whole tree (conv biases before batch norm have a zero gradient up to round-off)."""
    top = max(np.abs(np.asarray(v, np.float64)).max() for v in b.values())
    for k in a:
        x, y = np.asarray(a[k], np.float64), np.asarray(b[k], np.float64)
        scale = top if global_scale else max(np.abs(y).max(), 1e-30)
        err = np.abs(x - y).max() / scale
        assert err <= rtol, f"{what}: {k} differs by {err:.3g} of its largest entry (allowed {rtol})"


NETS = {
    "stride2": lambda: models.conv_net("s2", 3, (9, 9), filters=4, blocks=3, stride=2),
    "pool": lambda: models.conv_net("pool", 4, (11, 10, 3), filters=3, blocks=3, pool=True),
    "pool-even": lambda: models.conv_net("pool-even", 2, (8, 8, 2), filters=3, blocks=2, pool=True),
    "stride1": lambda: models.conv_net("s1", 3, (6, 7, 1), filters=5, blocks=2),
}


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("tasks", [1, 3])
def test_fused_matches_layers_float64(fast_path, name, tasks):
    model = NETS[name]()
    rng = np.random.default_rng(len(name) + tasks)
    p = params_for(model, rng, tasks, np.float64)
    x, y = batch(model, rng, tasks, 7, np.float64)
    loss_f, grads_f = model.loss_and_grad(p, x, y)
    loss_r, grads_r = reference(model).loss_and_grad(p, x, y)
    np.testing.assert_allclose(loss_f, loss_r, rtol=1e-12)
    assert_trees_close(grads_f, grads_r, 1e-10, "gradient", global_scale=True)
    for stats_batch in (None, 3):
        out_f = model.forward(p, x, stats_batch=stats_batch)
        out_r = reference(model).forward(p, x, stats_batch=stats_batch)
        np.testing.assert_allclose(out_f, out_r, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.loss_value(p, x, y), loss_r, rtol=1e-12)


@pytest.mark.parametrize("which", ["omniglot", "miniimagenet"])
def test_fused_matches_layers_float32_paper_nets(fast_path, which):
    model = models.omniglot_cnn(5) if which == "omniglot" else models.miniimagenet_cnn(5)
    rng = np.random.default_rng(1)
    p = params_for(model, rng, 2, np.float32)
    x, y = batch(model, rng, 2, 5, np.float32)
    loss_f, grads_f = model.loss_and_grad(p, x, y)
    loss_r, grads_r = reference(model).loss_and_grad(p, x, y)
    np.testing.assert_allclose(loss_f, loss_r, rtol=1e-5)
    # conv biases before batch norm have a zero gradient up to round-off; judge every
    # gradient on the scale of the largest gradient of the network
    top = max(np.abs(g).max() for g in grads_r.values())
    for k in grads_r:
        err = np.abs(grads_f[k] - grads_r[k]).max() / top
        assert err < 1e-4, f"{k}: fused and layer-by-layer gradients differ by {err:.3g} of the largest gradient"
    assert grads_f["conv0/kernel"].dtype == np.float32


def test_fused_gradient_matches_finite_differences(fast_path):
    model = NETS["pool"]()
    rng = np.random.default_rng(3)
    p = params_for(model, rng, 1, np.float64)
    x, y = batch(model, rng, 1, 5, np.float64)
    _, grads = model.loss_and_grad(p, x, y)
    for key in ("conv0/kernel", "bn1/scale", "conv2/kernel", "dense/kernel"):
        v = rng.standard_normal(p[key].shape)
        h = 1e-6
        plus = {**p, key: p[key] + h * v}
        minus = {**p, key: p[key] - h * v}
        fd = (model.loss_value(plus, x, y) - model.loss_value(minus, x, y)) / (2 * h)
        an = np.sum(grads[key] * v)
        assert abs(fd[0] - an) <= 1e-6 * max(1.0, abs(an)), f"{key}: finite difference {fd[0]} vs gradient {an}"


@pytest.mark.parametrize("name", ["stride2", "pool"])
def test_a_task_does_not_depend_on_the_others(fast_path, name):
    model = NETS[name]()
    rng = np.random.default_rng(5)
    p = params_for(model, rng, 3, np.float32)
    x, y = batch(model, rng, 3, 6, np.float32)
    loss, grads = model.loss_and_grad(p, x, y)
    for t in range(3):
        one_loss, one = model.loss_and_grad(tree.take_task(p, slice(t, t + 1)), x[t : t + 1], y[t : t + 1])
        assert one_loss[0] == loss[t]
        for k in grads:
            assert np.array_equal(one[k][0], grads[k][t]), f"task {t}, {k}: batched and single-task gradients differ"


@pytest.mark.parametrize("opt", [optim.Adam(1e-2), optim.SGD(0.1)], ids=["adam", "sgd"])
@pytest.mark.parametrize("keep", [False, True])
def test_flat_inner_loop_equals_plain_loop(fast_path, opt, keep):
    model = NETS["stride2"]()
    rng = np.random.default_rng(7)
    p = params_for(model, rng, 3, np.float64)
    steps = [batch(model, rng, 3, 5, np.float64) for _ in range(4)]
    state = opt.init(p, tasks=3) if isinstance(opt, optim.Adam) else opt.init(p)
    assert inner.supports_flat(model, opt) and not inner.supports_flat(reference(model), opt)
    phi_f, st_f, tr_f = meta.adapt(model, p, steps, opt, state, keep=keep)
    phi_r, st_r, tr_r = meta.adapt(reference(model), p, steps, opt, state, keep=keep)
    assert_trees_close(phi_f, phi_r, 1e-10, "adapted parameters")
    for lf, lr in zip(tr_f.losses, tr_r.losses, strict=True):
        np.testing.assert_allclose(lf, lr, rtol=1e-10)
    if isinstance(opt, optim.Adam):
        assert_trees_close(st_f.nu, st_r.nu, 1e-9, "second moment")
        np.testing.assert_array_equal(st_f.count, st_r.count)
    if keep:
        assert len(tr_f.params) == len(tr_r.params) == 5 and len(tr_f.directions) == 4
        for a, b in zip(tr_f.directions, tr_r.directions, strict=True):
            assert_trees_close(a, b, 1e-9, "direction", global_scale=True)
    # the inputs are never modified
    assert_trees_close(p, params_for(model, np.random.default_rng(7), 3, np.float64), 0.0, "input parameters")


@pytest.mark.parametrize("threads", [2, 3])
def test_thread_count_does_not_change_results(fast_path, threads):
    model = NETS["pool"]()
    rng = np.random.default_rng(11)
    p = params_for(model, rng, 5, np.float32)
    steps = [batch(model, rng, 5, 4, np.float32) for _ in range(3)]
    opt = optim.Adam(1e-3)
    state = opt.init(p, tasks=5)
    before = parallel.get_threads()
    try:
        parallel.set_threads(1)
        one = meta.adapt(model, p, steps, opt, state)
        parallel.set_threads(threads)
        many = meta.adapt(model, p, steps, opt, state, keep=True)
    finally:
        parallel.set_threads(before)
    for k in one[0]:
        assert np.array_equal(one[0][k], many[0][k]), f"{k}: {threads} threads changed the adapted parameters"
        assert np.array_equal(one[1].nu[k], many[1].nu[k])
    for a, b in zip(one[2].losses, many[2].losses, strict=True):
        assert np.array_equal(a, b)


@given(
    tasks=st.integers(1, 2), batch_=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 3),
    k=st.integers(1, 4), stride=st.integers(1, 3), padding=st.sampled_from(["same", "valid"]),
)
def test_unpadded_kernels_equal_padded_ones(tasks, batch_, h, w, c, k, stride, padding):
    assume(padding == "same" or (h >= k and w >= k))
    oh, top, bottom = out_size_and_pads(h, k, stride, padding)
    ow, left, right = out_size_and_pads(w, k, stride, padding)
    rng = np.random.default_rng(h * 100 + w)
    x = rng.standard_normal((tasks, batch_, h, w, c))
    xpad = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right), (0, 0)))
    assert np.array_equal(kernels.im2col_unpadded(x, k, k, stride, top, left, oh, ow),
                          kernels.im2col(xpad, k, k, stride, oh, ow))
    cols = rng.standard_normal((tasks, batch_, oh, ow, k * k, c))
    want = kernels.col2im(cols, xpad.shape, k, k, stride)[:, :, top : top + h, left : left + w]
    np.testing.assert_allclose(kernels.col2im_unpadded(cols, x.shape, k, k, stride, top, left), want, rtol=1e-12,
                               atol=1e-12)


def test_flat_layout_round_trip():
    model = NETS["stride2"]()
    rng = np.random.default_rng(2)
    p = params_for(model, rng, 2, np.float32)
    layout = tree.FlatLayout(model.param_shapes())
    flat = layout.flatten(p)
    assert flat.shape == (2, tree.size(model.init(rng)))
    views = layout.views(flat)
    assert_trees_close(views, p, 0.0, "round trip")
    flat[:, 0] = 123.0  # views share the buffer
    assert views[next(iter(views))].reshape(2, -1)[0, 0] == 123.0
    with pytest.raises(ValueError, match="keys"):
        layout.flatten({"x": flat})


@pytest.mark.parametrize("budget", [0, 2000, 20000])
def test_patches_built_in_blocks_when_large(fast_path, monkeypatch, budget):
    """Above PATCH_BLOCK_BYTES the patch matrices are built in blocks of tasks or of one task's
    images, twice (forward and backward); the numbers stay the same to round-off."""
    model = NETS["pool"]()
    rng = np.random.default_rng(13)
    p = params_for(model, rng, 3, np.float64)
    x, y = batch(model, rng, 3, 5, np.float64)
    kept = model.loss_and_grad(p, x, y)
    monkeypatch.setattr(fused, "PATCH_BLOCK_BYTES", budget)
    blocked = model.loss_and_grad(p, x, y)
    np.testing.assert_allclose(blocked[0], kept[0], rtol=1e-13)
    assert_trees_close(blocked[1], kept[1], 1e-12, "gradient", global_scale=True)
    # per-task results stay independent of the other tasks in the call
    one_loss, one = model.loss_and_grad(tree.take_task(p, slice(1, 2)), x[1:2], y[1:2])
    for k in one:
        assert np.array_equal(one[k][0], blocked[1][k][1]), k


def test_pool_gradient_goes_to_the_first_of_tied_maxima():
    """TensorFlow's rule: with ties in a window, the first maximum in row-major order takes it all."""
    y = np.zeros((1, 1, 4, 4, 2))
    y[0, 0, :2, :2, 0] = [[1.0, 3.0], [3.0, 3.0]]  # three tied maxima: (0, 1) takes the gradient
    y[0, 0, 2:, 2:, 1] = [[5.0, 5.0], [5.0, 5.0]]  # all tied: (2, 2) takes it
    y[0, 0, :, :, 1] += np.arange(16).reshape(4, 4) * (y[0, 0, :, :, 1] == 0)  # no ties elsewhere
    best, winner = fused._pool_forward(y, with_winner=True)
    np.testing.assert_array_equal(best, y.reshape(1, 1, 2, 2, 2, 2, 2).max(axis=(3, 5)))
    dout = np.arange(1.0, 9.0).reshape(1, 1, 2, 2, 2)
    grad = fused._pool_backward(winner, y.shape, dout)
    assert grad[0, 0, 0, 1, 0] == dout[0, 0, 0, 0, 0] and grad[0, 0, 1, 0, 0] == 0 and grad[0, 0, 1, 1, 0] == 0
    assert grad[0, 0, 2, 2, 1] == dout[0, 0, 1, 1, 1] and grad[0, 0, 3, 3, 1] == 0
    assert np.isclose(grad.sum(), dout.sum())  # every window passes its gradient on exactly once
    from fometa.layers import MaxPool2D

    layer = MaxPool2D()
    _, cache = layer.forward({}, y)
    want, _ = layer.backward({}, cache, dout)
    np.testing.assert_array_equal(grad, want)


# --------------------------------------------------------------------------------------
# Winograd F(2x2, 3x3) (tests/backends/test_winograd.py holds its transforms to the patch products)
# --------------------------------------------------------------------------------------
def test_winograd_runs_where_its_traffic_is_no_larger_than_the_patches():
    """Stride-1 3x3 blocks with 4 (C_in + C_out) <= 9 C_in: Mini-ImageNet's but its first; none of Omniglot's."""
    def flags(model):
        return [op.winograd for op in fused.net_for(model).ops if isinstance(op, fused.ConvBlock)]

    assert flags(models.miniimagenet_cnn(5)) == [False, True, True, True]
    assert flags(models.omniglot_cnn(5)) == [False] * 4
    assert flags(NETS["stride1"]()) == [False, True] and flags(NETS["pool"]()) == [True] * 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_winograd_and_patches_agree(fast_path, monkeypatch, dtype):
    """FOMETA_WINOGRAD=0 runs the same network on patches: equal to round-off (float64: 1e-10 of the
    largest gradient; float32: 1e-4, the fused path's tolerance against the layers)."""
    model = models.miniimagenet_cnn(5)
    rng = np.random.default_rng(4)
    p = params_for(model, rng, 2, dtype)
    x, y = batch(model, rng, 2, 4, dtype)
    runs = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("FOMETA_WINOGRAD", flag)
        runs[flag] = model.loss_and_grad(p, x, y)
    (loss_w, grads_w), (loss_p, grads_p) = runs["1"], runs["0"]
    np.testing.assert_allclose(loss_w, loss_p, rtol=1e-12 if dtype == np.float64 else 1e-5)
    assert_trees_close(grads_w, grads_p, 1e-10 if dtype == np.float64 else 1e-4, "Winograd against patches",
                       global_scale=True)
    assert not np.array_equal(grads_w["conv1/kernel"], grads_p["conv1/kernel"]), "the switch changed nothing"


def test_the_winograd_switch_names_its_values(monkeypatch):
    monkeypatch.setenv("FOMETA_WINOGRAD", "yes")
    model = NETS["pool"]()
    rng = np.random.default_rng(0)
    p = params_for(model, rng, 1, np.float32)
    x, y = batch(model, rng, 1, 2, np.float32)
    with pytest.raises(ValueError, match="FOMETA_WINOGRAD must be 0 .* or 1"):
        model.loss_and_grad(p, x, y)
