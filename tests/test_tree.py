"""Tree arithmetic on ordered ``dict[str, array]``: values, task-axis handling, key checks,
and that no function modifies its arguments."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fometa import get_backend, tree

shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)


@st.composite
def tree_pairs(draw, tasks=None):
    """Two trees with the same keys and shapes (a task axis of length ``tasks`` when given)."""
    names = draw(st.lists(st.sampled_from(["conv0/kernel", "conv0/bias", "bn0/scale", "dense/kernel"]),
                          min_size=1, max_size=4, unique=True))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lead = () if tasks is None else (tasks,)
    shp = {k: lead + draw(shapes) for k in names}
    a = {k: rng.standard_normal(s) for k, s in shp.items()}
    b = {k: rng.standard_normal(s) for k, s in shp.items()}
    return a, b


def _snapshot(t):
    return {k: v.copy() for k, v in t.items()}


def _assert_unchanged(t, snap, what):
    for k in snap:
        np.testing.assert_array_equal(t[k], snap[k], err_msg=f"{what} modified its argument {k!r}")


def _assert_tree_equal(got, want, what, rtol=0.0, atol=0.0):
    assert list(got) == list(want), f"{what}: keys {list(got)} != {list(want)}"
    for k in want:
        assert np.shape(got[k]) == np.shape(want[k]), f"{what}: {k!r} shape {np.shape(got[k])} != {np.shape(want[k])}"
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=f"{what}: {k!r}")


@given(pair=tree_pairs(), s=st.floats(-3, 3), t=st.floats(-1, 2))
def test_elementwise_arithmetic(pair, s, t):
    a, b = pair
    sa, sb = _snapshot(a), _snapshot(b)
    _assert_tree_equal(tree.add(a, b), {k: a[k] + b[k] for k in a}, "add")
    _assert_tree_equal(tree.sub(a, b), {k: a[k] - b[k] for k in a}, "sub")
    _assert_tree_equal(tree.scale(a, s), {k: s * a[k] for k in a}, "scale")
    _assert_tree_equal(tree.axpy(s, a, b), {k: b[k] + s * a[k] for k in a}, "axpy")
    _assert_tree_equal(tree.lerp(a, b, t), {k: a[k] + t * (b[k] - a[k]) for k in a}, "lerp")
    _assert_tree_equal(tree.lerp(a, b, 0.0), a, "lerp at t=0")
    _assert_tree_equal(tree.lerp(a, b, 1.0), b, "lerp at t=1", atol=1e-14)  # a + (b - a): round-off only
    _assert_tree_equal(tree.zeros_like(a), {k: np.zeros_like(a[k]) for k in a}, "zeros_like")
    _assert_unchanged(a, sa, "arithmetic")
    _assert_unchanged(b, sb, "arithmetic")


@given(pair=tree_pairs())
def test_dot_norm_size(pair):
    a, b = pair
    want = sum(float((a[k] * b[k]).sum()) for k in a)
    np.testing.assert_allclose(tree.dot(a, b), want, rtol=1e-12, atol=1e-12, err_msg="dot")
    np.testing.assert_allclose(tree.norm(a), np.sqrt(sum(float((v * v).sum()) for v in a.values())), rtol=1e-12)
    assert tree.size(a) == sum(v.size for v in a.values()), "size"


@given(tasks=st.integers(1, 4), data=st.data())
def test_per_task_dot_and_norm(tasks, data):
    a, b = data.draw(tree_pairs(tasks))
    want = np.array([sum(float((a[k][t] * b[k][t]).sum()) for k in a) for t in range(tasks)])
    got = tree.dot(a, b, per_task=True)
    assert got.shape == (tasks,), f"per-task dot has shape {got.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg="per-task dot")
    np.testing.assert_allclose(tree.norm(a, per_task=True), np.sqrt(tree.dot(a, a, per_task=True)), rtol=1e-12)


@given(tasks=st.integers(1, 4), data=st.data())
def test_stack_unstack_take_task_mean(tasks, data):
    a, _ = data.draw(tree_pairs(tasks))
    snap = _snapshot(a)
    parts = tree.unstack(a)
    assert len(parts) == tasks, f"unstack gave {len(parts)} trees for T={tasks}"
    for t, p in enumerate(parts):
        _assert_tree_equal(p, {k: a[k][t] for k in a}, f"unstack task {t}")
        _assert_tree_equal(tree.take_task(a, t), p, f"take_task({t})")
    _assert_tree_equal(tree.stack(parts), a, "stack(unstack(a))")
    _assert_tree_equal(tree.take_task(a, slice(0, 1)), {k: a[k][:1] for k in a}, "take_task(slice)")
    _assert_tree_equal(tree.mean_tasks(a), {k: a[k].mean(axis=0) for k in a}, "mean_tasks", rtol=1e-15)
    _assert_unchanged(a, snap, "stack/unstack/mean_tasks")


@given(pair=tree_pairs(), tasks=st.integers(1, 4))
def test_broadcast_makes_writable_copies(pair, tasks):
    a, _ = pair
    snap = _snapshot(a)
    b = tree.broadcast(a, tasks)
    for k in a:
        assert b[k].shape == (tasks,) + a[k].shape, f"broadcast {k!r}: {b[k].shape}"
        for t in range(tasks):
            np.testing.assert_array_equal(b[k][t], a[k], err_msg=f"broadcast task {t} of {k!r}")
        b[k][...] = 7.0  # must be writable and must not write through to a
    _assert_unchanged(a, snap, "broadcast")
    _assert_tree_equal(tree.mean_tasks(tree.broadcast(a, tasks)), a, "mean_tasks(broadcast(a))", rtol=1e-15)


def test_broadcast_needs_a_task():
    with pytest.raises(ValueError, match="at least 1"):
        tree.broadcast({"w": np.zeros(2)}, 0)


def test_copy_astype_map():
    a = {"w": np.arange(6.0).reshape(2, 3), "b": np.ones(3)}
    c = tree.copy(a)
    c["w"][0, 0] = 99.0
    assert a["w"][0, 0] == 0.0, "copy must not share memory"
    f = tree.astype(a, np.float32)
    assert all(v.dtype == np.float32 for v in f.values()), {k: v.dtype for k, v in f.items()}
    _assert_tree_equal(tree.map(lambda x, y, z: x + 2 * y - z, a, a, a), {k: 2 * a[k] for k in a}, "map with rest")


def test_to_backend_round_trip():
    a = {"w": np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32), "b": np.zeros(3)}
    for target in ("numpy", get_backend("numpy")):
        on = tree.to_backend(a, target)
        back = tree.to_host(on)
        _assert_tree_equal(back, a, f"to_host(to_backend(a, {target!r}))")
        assert all(type(v) is np.ndarray and v.dtype == a[k].dtype for k, v in back.items()), "round trip types"
    assert tree.allclose(a, tree.copy(a)), "allclose of a tree with its copy"
    assert not tree.allclose(a, tree.scale(a, 2.0) | {"b": a["b"]}), "allclose must notice a difference"


A = {"w": np.ones((2, 3)), "b": np.ones(2)}
MISMATCHED = {
    "missing key": {"w": np.ones((2, 3))},
    "extra key": {"w": np.ones((2, 3)), "b": np.ones(2), "c": np.ones(1)},
    "renamed key": {"w": np.ones((2, 3)), "bias": np.ones(2)},
    "other order": {"b": np.ones(2), "w": np.ones((2, 3))},
}
BINARY = {
    "add": tree.add, "sub": tree.sub, "lerp": lambda a, b: tree.lerp(a, b, 0.5),
    "axpy": lambda a, b: tree.axpy(2.0, a, b), "dot": tree.dot, "map": lambda a, b: tree.map(np.add, a, b),
    "stack": lambda a, b: tree.stack([a, b]), "allclose": tree.allclose,
}


@pytest.mark.parametrize("other", sorted(MISMATCHED))
@pytest.mark.parametrize("op", sorted(BINARY))
def test_key_mismatch_raises(op, other):
    with pytest.raises(ValueError, match="differ in their keys"):
        BINARY[op](A, MISMATCHED[other])


def test_stack_and_unstack_errors():
    with pytest.raises(ValueError, match="empty"):
        tree.stack([])
    with pytest.raises(ValueError, match="task axis"):
        tree.unstack({"w": np.ones((2, 3)), "b": np.ones((3,))})
