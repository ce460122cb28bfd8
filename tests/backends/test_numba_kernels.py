"""The compiled kernels (fometa/backends/numba_kernels.py) against the NumPy code they replace.

The compiled path must compute what the NumPy fast path computes: bit for bit wherever the
NumPy path's sums run row after row (every layer with more than one channel; with one channel
NumPy's einsum sums in another order and the two agree to round-off), so that a run trains the
same with and without numba. Through the NumPy fast path that also holds it to the
layer-by-layer specification (float64: 1e-10), and the float64 gradient checks run through it.
``FOMETA_NUMBA`` chooses the path; numba itself is imported only when a kernel is wanted.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fometa import backends, inner, meta, models, optim, parallel, tree
from fometa import config as C
from fometa.backends import BackendError, get_backend, kernels
from fometa.gradcheck import assert_gradients
from fometa.layers.padding import out_size_and_pads

numba_kernels = pytest.importorskip("fometa.backends.numba_kernels", reason="the fast extra (numba) is not installed")


def run_both(monkeypatch, fn):
    """``fn()`` on the NumPy fast path, then on the compiled one: ``(numpy_result, compiled_result)``."""
    monkeypatch.setenv("FOMETA_NUMBA", "0")
    plain = fn()
    monkeypatch.setenv("FOMETA_NUMBA", "1")
    return plain, fn()


def assert_same(a, b, what, exact=True, rtol=0.0):
    """Trees, arrays or tuples of them equal bit for bit (``exact``), else to ``rtol`` of the largest entry."""
    if isinstance(a, dict):
        for k in a:
            assert_same(a[k], b[k], f"{what}: {k}", exact, rtol)
        return
    if isinstance(a, (tuple, list)):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{what}[{i}]", exact, rtol)
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, f"{what}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
    if exact:
        assert np.array_equal(a, b), f"{what}: compiled and NumPy paths differ by {np.abs(a - b).max():.3g}"
    else:
        scale = max(np.abs(b).max(), 1e-30)
        err = np.abs(a.astype(np.float64) - b).max() / scale
        assert err <= rtol, \
        f"{what}: compiled and NumPy paths differ by {err:.3g} of the largest entry ({rtol} allowed)"


def perturbed(model, rng, tasks, dtype):
    base = model.init(rng, dtype=dtype)
    return {k: (np.repeat(v[None], tasks, 0) + 0.3 * rng.standard_normal((tasks,) + v.shape)).astype(dtype)
            for k, v in base.items()}


def data(model, rng, tasks, batch, dtype):
    x = rng.random((tasks, batch) + tuple(model.input_shape)).astype(dtype)
    return x, rng.integers(0, model.output_shape[0], size=(tasks, batch))


# --------------------------------------------------------------------------------------
# the switch
# --------------------------------------------------------------------------------------
def test_import_fometa_does_not_import_numba():
    code = "import sys, fometa, fometa.models, fometa.inner; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "import fometa pulled in numba"


def test_the_switch_chooses_the_kernels(monkeypatch):
    be = get_backend("numpy")
    monkeypatch.setenv("FOMETA_NUMBA", "0")
    assert be.compiled() is None
    monkeypatch.delenv("FOMETA_NUMBA")
    assert be.compiled() is numba_kernels
    monkeypatch.setenv("FOMETA_NUMBA", "1")
    assert be.compiled() is numba_kernels
    monkeypatch.setenv("FOMETA_NUMBA", "yes")
    with pytest.raises(BackendError, match="FOMETA_NUMBA must be 0"):
        be.compiled()


def test_asking_for_missing_compiled_kernels_says_how_to_get_them(monkeypatch):
    monkeypatch.setattr(backends, "_NUMBA_KERNELS", None)  # as where numba is not installed
    monkeypatch.delenv("FOMETA_NUMBA", raising=False)
    assert backends.compiled_kernels() is None
    monkeypatch.setenv("FOMETA_NUMBA", "1")
    with pytest.raises(BackendError, match=r"pip install 'fometa\[fast\]'"):
        backends.compiled_kernels()


def test_the_gpu_backend_has_no_compiled_kernels():
    from fometa.backends.cupy_backend import CupyBackend

    assert CupyBackend.compiled(object.__new__(CupyBackend)) is None


# --------------------------------------------------------------------------------------
# single kernels
# --------------------------------------------------------------------------------------
@given(
    tasks=st.integers(1, 2), batch=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 5),
    k=st.integers(1, 4), stride=st.integers(1, 3), padding=st.sampled_from(["same", "valid"]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_patch_kernels_equal_the_generic_ones(tasks, batch, h, w, c, k, stride, padding, dtype):
    assume(padding == "same" or (h >= k and w >= k))
    oh, top, _ = out_size_and_pads(h, k, stride, padding)
    ow, left, _ = out_size_and_pads(w, k, stride, padding)
    rng = np.random.default_rng(h * 100 + w * 10 + c)
    x = rng.standard_normal((tasks, batch, h, w, c)).astype(dtype)
    assert_same(numba_kernels.im2col_unpadded(x, k, k, stride, top, left, oh, ow),
                kernels.im2col_unpadded(x, k, k, stride, top, left, oh, ow), "im2col")
    cols = rng.standard_normal((tasks, batch, oh, ow, k * k, c)).astype(dtype)
    want = kernels.col2im_unpadded(cols, x.shape, k, k, stride, top, left)
    assert_same(numba_kernels.col2im_unpadded(cols, x.shape, k, k, stride, top, left), want, "col2im")
    for kernel in (numba_kernels, kernels):  # into part of a larger array, as the blocked backward pass does
        big = np.zeros((tasks + 1,) + x.shape[1:], dtype)
        kernel.col2im_unpadded(cols, x.shape, k, k, stride, top, left, out=big[1:])
        assert_same(big[1:], want, f"{kernel.__name__}.col2im_unpadded(out=)")
        assert not big[0].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta1", [0.0, 0.9])
def test_adam_in_place_equals_update_then_add(dtype, beta1):
    rng = np.random.default_rng(3)
    opt = optim.Adam(1e-2, beta1=beta1)
    flat = rng.standard_normal((3, 50)).astype(dtype)
    state = optim.AdamState(np.array([0, 4, 9]), {"flat": rng.random((3, 50)).astype(dtype)},
                            {"flat": rng.random((3, 50)).astype(dtype)})
    g = rng.standard_normal((3, 50)).astype(dtype)
    updates, want_state = opt.update({"flat": g}, state)
    want = flat + updates["flat"]
    got, mu, nu = flat.copy(), state.mu["flat"].copy(), state.nu["flat"].copy()
    numba_kernels.adam_flat(got, g, nu, mu, -opt.lr_t(state.count + 1, np), beta1, opt.beta2, opt.eps)
    assert_same(got, want, "parameters")
    assert_same(nu, want_state.nu["flat"], "second moment")
    if beta1:
        assert_same(mu, want_state.mu["flat"], "first moment")


def test_pool_ties_go_to_the_first_maximum(monkeypatch):
    """A zero conv kernel makes every position of a window equal: the first one takes the gradient."""
    model = models.conv_net("ties", 3, (6, 5, 2), filters=3, blocks=2, pool=True)
    rng = np.random.default_rng(0)
    p = perturbed(model, rng, 2, np.float64)
    p["conv1/kernel"][:] = 0.0
    x, y = data(model, rng, 2, 3, np.float64)
    plain, fast = run_both(monkeypatch, lambda: model.loss_and_grad(p, x, y))
    assert_same(fast, plain, "loss and gradients")


# --------------------------------------------------------------------------------------
# whole networks: bit for bit the NumPy fast path
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["omniglot", "miniimagenet"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_paper_nets_equal_the_numpy_path(monkeypatch, which, dtype):
    model = models.omniglot_cnn(5) if which == "omniglot" else models.miniimagenet_cnn(5)
    rng = np.random.default_rng(1)
    p = perturbed(model, rng, 2, dtype)
    x, y = data(model, rng, 2, 5, dtype)
    plain, fast = run_both(monkeypatch, lambda: (model.loss_and_grad(p, x, y), model.forward(p, x, stats_batch=2)))
    assert_same(fast, plain, f"{which} {np.dtype(dtype).name}")


@given(
    ways=st.integers(2, 4), h=st.integers(3, 10), w=st.integers(3, 10), c=st.integers(1, 3),
    filters=st.integers(1, 4), blocks=st.integers(1, 3), stride=st.integers(1, 2), pool=st.booleans(),
    tasks=st.integers(1, 3), batch=st.integers(1, 4), stats_batch=st.integers(1, 3),
    dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16),
)
def test_small_random_nets_equal_the_numpy_path(ways, h, w, c, filters, blocks, stride, pool, tasks, batch,
                                                 stats_batch, dtype, seed):
    assume(not (pool and stride == 2))
    model = models.conv_net("net", ways, (h, w, c), filters=filters, blocks=blocks, stride=stride, pool=pool)
    rng = np.random.default_rng(seed)
    p = perturbed(model, rng, tasks, dtype)
    x, y = data(model, rng, tasks, batch, dtype)
    with pytest.MonkeyPatch.context() as mp:
        plain, fast = run_both(mp, lambda: (model.loss_and_grad(p, x, y), model.forward(p, x, stats_batch=stats_batch)))
    # one filter: NumPy's einsum sums a lone channel in another order than row after row
    exact = filters > 1
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    loss, grads = fast[0]
    assert_same(loss, plain[0][0], "loss", exact, rtol)
    top = max(np.abs(g).max() for g in plain[0][1].values())
    for k in grads:  # a conv bias before batch norm has a zero gradient up to round-off: judge on the largest
        if exact:
            assert_same(grads[k], plain[0][1][k], k)
        else:
            err = np.abs(grads[k] - plain[0][1][k]).max() / top
            assert err <= rtol, f"{k}: compiled and NumPy gradients differ by {err:.3g} of the largest gradient"
    assert_same(fast[1], plain[1], "forward with support statistics", exact, rtol)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("opt", [optim.Adam(1e-2), optim.Adam(1e-2, beta1=0.5), optim.SGD(0.1)],
                         ids=["adam", "adam-b1", "sgd"])
def test_inner_loop_equals_the_numpy_path(monkeypatch, threads, opt):
    model = models.conv_net("s2", 3, (9, 9), filters=4, blocks=3, stride=2)
    rng = np.random.default_rng(7)
    p = perturbed(model, rng, 3, np.float32)
    steps = [data(model, rng, 3, 5, np.float32) for _ in range(4)]
    state = opt.init(p, tasks=3) if isinstance(opt, optim.Adam) else opt.init(p)
    before = parallel.get_threads()
    try:
        parallel.set_threads(threads)
        plain, fast = run_both(monkeypatch, lambda: inner.adapt_flat(model, p, steps, opt, state))
    finally:
        parallel.set_threads(before)
    assert_same(fast[0], plain[0], "adapted parameters")
    assert_same(fast[2].losses, plain[2].losses, "losses")
    if isinstance(opt, optim.Adam):
        assert_same(fast[1].nu, plain[1].nu, "second moment")
        assert_same(fast[1].mu, plain[1].mu, "first moment")
        assert np.array_equal(fast[1].count, plain[1].count)


def test_a_reptile_step_equals_the_numpy_path(monkeypatch):
    model = models.omniglot_cnn(5)
    rng = np.random.default_rng(2)
    params = model.init(rng)
    learner = meta.MetaLearner(model, meta.make_algorithm("reptile"), optim.Adam(1e-3), meta.Interpolate(1.0, 0.0, 10),
                               C.InnerConfig(shots=2, batch=5, iters=3), C.OuterConfig(meta_batch=3))
    from fometa.tasks import ArrayClasses

    ds = ArrayClasses([rng.random((4, 28, 28), dtype=np.float32) for _ in range(8)])
    tasks = learner.sample(ds, np.random.default_rng(0))
    plain, fast = run_both(monkeypatch, lambda: learner.step(learner.init(params), tasks)[0])
    assert_same(fast.params, plain.params, "meta parameters")


# --------------------------------------------------------------------------------------
# float64 gradient checks through the compiled path (as tests/models/test_model_gradients.py
# checks the default path: a conv bias before batch norm has a zero gradient, judged against
# 1% of the largest one; Mini-ImageNet takes a smaller step clear of its many kinks)
# --------------------------------------------------------------------------------------
def check_gradients(model, p, x, y, rng, **gradcheck):
    loss, grads = model.loss_and_grad(p, x, y)

    def f(q):
        return float(model.loss_value(q, x, y).sum())

    errors = assert_gradients(f, p, grads, rng, floor=1e-2, **gradcheck)
    assert set(errors) == set(model.param_shapes()), "every parameter must be checked"
    np.testing.assert_allclose(loss, model.loss_value(p, x, y), rtol=1e-13)


@settings(max_examples=min(settings().max_examples, 12))
@given(
    h=st.integers(3, 8), w=st.integers(3, 8), filters=st.integers(1, 3), blocks=st.integers(1, 2),
    stride=st.integers(1, 2), pool=st.booleans(), tasks=st.integers(1, 2), batch=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_gradients_of_small_nets_through_the_compiled_path(h, w, filters, blocks, stride, pool, tasks, batch, seed):
    model = models.conv_net("net", 3, (h, w, 2), filters=filters, blocks=blocks, stride=stride, pool=pool)
    rng = np.random.default_rng(seed)
    p = perturbed(model, rng, tasks, np.float64)
    x, y = data(model, rng, tasks, batch, np.float64)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOMETA_NUMBA", "1")
        check_gradients(model, p, x, y, rng)


@pytest.mark.parametrize("which", ["omniglot", "miniimagenet"])
def test_gradients_of_the_paper_nets_through_the_compiled_path(monkeypatch, which):
    monkeypatch.setenv("FOMETA_NUMBA", "1")
    rng = np.random.default_rng(1803)
    if which == "omniglot":
        model = models.omniglot_cnn(5)
        p = perturbed(model, rng, 2, np.float64)
        x, y = data(model, rng, 2, 3, np.float64)
        check_gradients(model, p, x, y, rng)
    else:
        model = models.miniimagenet_cnn(5)
        base = model.init(rng, dtype=np.float64)
        p = {k: (v + 0.1 * rng.standard_normal(v.shape))[None] for k, v in base.items()}
        x, y = data(model, rng, 1, 2, np.float64)
        check_gradients(model, p, x, y, rng, h=1e-7)


def test_bench_times_both_kernels_in_one_run():
    out = subprocess.run([sys.executable, "-m", "fometa", "bench", "--tasks", "1", "--repeat", "1", "--warmup", "0",
                          "--kernels", "numba,numpy", "--json"], capture_output=True, text=True, timeout=600,
                         check=True)
    figures = [json.loads(line) for line in out.stdout.splitlines()]
    assert [f["kernels"] for f in figures] == ["numba", "numpy"], out.stdout
    bad = subprocess.run([sys.executable, "-m", "fometa", "bench", "--kernels", "fortran"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "unknown kernels 'fortran'" in bad.stderr


def test_a_nan_propagates_through_the_compiled_relu_and_pool_as_through_numpy():
    """A non-finite input must reach the loss (the training loop stops on it), as np.maximum propagates NaN."""
    pytest.importorskip("numba")
    from fometa import models

    rng = np.random.default_rng(0)
    for model in (models.conv_net("tiny-pool", 3, (8, 8, 3), filters=4, blocks=2, pool=True),
                  models.conv_net("tiny-stride", 3, (8, 8), filters=4, blocks=2, stride=2)):
        params = model.init(rng)
        x = rng.random((2, 6) + model.input_shape, dtype=np.float32)
        x[1, 2] = np.nan
        loss, _ = model.loss_and_grad(tree.broadcast(params, 2), x, rng.integers(0, 3, (2, 6)))
        assert np.isfinite(loss[0]) and np.isnan(loss[1]), f"{model.name}: {loss}"
