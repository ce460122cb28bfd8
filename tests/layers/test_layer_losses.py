"""Losses: softmax cross-entropy and mean squared error against naive loops, gradient checks
of d loss / d pred for a random cotangent over tasks, task batching, stability and errors."""
import naive_reference as naive
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from layer_harness import assert_gradients, batches, seeds, tasks

from fometa.layers import mse, softmax_cross_entropy

LOSSES = {"softmax_cross_entropy": softmax_cross_entropy, "mse": mse}
cases = st.tuples(st.sampled_from(sorted(LOSSES)), tasks, batches, st.integers(1, 5))


def _inputs(case, seed):
    name, t, b, n = case
    rng = np.random.default_rng(seed)
    if name == "softmax_cross_entropy":
        n = max(n, 2)
        # logits within [-2, 2]: a loss near 0 (a confident, correct prediction) is known only to
        # an absolute round-off of ~1e-16, which a relative gradient check cannot resolve
        pred = rng.uniform(-2, 2, (t, b, n))
        target = rng.integers(0, n, size=(t, b))
    else:
        pred = rng.standard_normal((t, b, n))
        target = rng.standard_normal((t, b, n))
    return LOSSES[name], name, pred, target, rng


@given(case=cases, seed=seeds)
def test_forward_matches_naive_loops(case, seed):
    mod, name, pred, target, _ = _inputs(case, seed)
    loss, _ = mod.forward(pred, target)
    want = np.array([getattr(naive, name)(p, y) for p, y in zip(pred, target, strict=True)])
    assert loss.shape == (pred.shape[0],), f"{name}: loss shape {loss.shape}, want one per task"
    np.testing.assert_allclose(loss, want, rtol=1e-12, atol=1e-13, err_msg=f"{name} vs naive loops")


@given(case=cases, seed=seeds)
def test_gradients(case, seed):
    """``f = sum_t loss[t] * w[t]``; ``backward(cache, w)`` is its gradient in ``pred``."""
    mod, name, pred, target, rng = _inputs(case, seed)
    w = rng.standard_normal(pred.shape[0])
    _, cache = mod.forward(pred, target)
    dpred = mod.backward(cache, w.copy())
    assert dpred.shape == pred.shape, f"{name}: dpred shape {dpred.shape} != {pred.shape}"

    def f(tree):
        return float((mod.forward(tree["pred"], target)[0] * w).sum())

    assert_gradients(f, {"pred": pred}, {"pred": dpred}, rng)


@given(case=cases, seed=seeds)
def test_task_batching(case, seed):
    mod, name, pred, target, rng = _inputs(case, seed)
    w = rng.standard_normal(pred.shape[0])
    loss, cache = mod.forward(pred, target)
    dpred = mod.backward(cache, w.copy())
    for t in range(pred.shape[0]):
        l1, c1 = mod.forward(pred[t : t + 1], target[t : t + 1])
        np.testing.assert_allclose(loss[t : t + 1], l1, rtol=1e-13, err_msg=f"{name}: loss of task {t}")
        np.testing.assert_allclose(
            dpred[t : t + 1], mod.backward(c1, w[t : t + 1].copy()), rtol=1e-13, atol=1e-15,
            err_msg=f"{name}: gradient of task {t}",
        )


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[[1000.0, 0.0, -1000.0], [-1e4, 1e4, 0.0]]])
    loss, cache = softmax_cross_entropy.forward(logits, np.array([[0, 0]]))
    np.testing.assert_allclose(loss, [(0.0 + 2e4) / 2], rtol=1e-12, err_msg="logsumexp must be shifted")
    d = softmax_cross_entropy.backward(cache, np.ones(1))
    assert np.isfinite(d).all(), d


def test_softmax_cross_entropy_accuracy():
    logits = np.array([[[2.0, 1.0], [0.0, 3.0], [5.0, 4.0]]])
    acc = softmax_cross_entropy.accuracy(logits, np.array([[0, 0, 0]]))
    np.testing.assert_allclose(acc, [2 / 3], err_msg="argmax accuracy per task")


def test_float32_stays_float32():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 4)).astype(np.float32)
    loss, cache = softmax_cross_entropy.forward(logits, rng.integers(0, 4, (2, 3)))
    d = softmax_cross_entropy.backward(cache, np.ones(2, np.float32))
    assert loss.dtype == d.dtype == np.float32, (loss.dtype, d.dtype)
    loss, cache = mse.forward(logits, logits[::-1].copy())
    d = mse.backward(cache, np.ones(2, np.float32))
    assert loss.dtype == d.dtype == np.float32, (loss.dtype, d.dtype)


def test_shape_mismatches_raise():
    with pytest.raises(ValueError, match="labels"):
        softmax_cross_entropy.forward(np.zeros((2, 3, 4)), np.zeros((2, 4), dtype=int))
    with pytest.raises(ValueError, match="targets"):
        mse.forward(np.zeros((2, 3, 1)), np.zeros((2, 3)))
