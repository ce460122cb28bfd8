"""Optimizers: pure init/update pairs, task axis, TensorFlow's Adam rule."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fometa import optim, tree


def _tree(rng, tasks=None, dtype=np.float64):
    lead = () if tasks is None else (tasks,)
    return {"a": rng.standard_normal(lead + (3, 2)).astype(dtype), "b": rng.standard_normal(lead + (4,)).astype(dtype)}


def _adam_reference(grads_seq, lr, b1, b2, eps):
    """Kingma & Ba with TensorFlow's epsilon-hat, one array, plain Python loop."""
    m = np.zeros_like(grads_seq[0])
    v = np.zeros_like(grads_seq[0])
    x = np.zeros_like(grads_seq[0])
    for t, g in enumerate(grads_seq, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        x = x - lr_t * m / (np.sqrt(v) + eps)
    return x


@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 6), beta1=st.sampled_from([0.0, 0.5, 0.9]))
def test_adam_matches_reference_loop(seed, steps, beta1):
    rng = np.random.default_rng(seed)
    opt = optim.Adam(1e-2, beta1=beta1)
    params = tree.zeros_like(_tree(rng))
    state = opt.init(params)
    seq = [_tree(rng) for _ in range(steps)]
    for g in seq:
        upd, state = opt.update(g, state)
        params = tree.add(params, upd)
    for k in params:
        ref = _adam_reference([g[k] for g in seq], 1e-2, beta1, 0.999, 1e-8)
        np.testing.assert_allclose(params[k], ref, rtol=1e-12, atol=1e-15, err_msg=f"Adam differs on {k}")
    assert int(state.count) == steps


@given(seed=st.integers(0, 2**32 - 1), tasks=st.integers(1, 4), steps=st.integers(1, 4))
def test_adam_task_batched_equals_separate(seed, tasks, steps):
    rng = np.random.default_rng(seed)
    opt = optim.Adam(1e-3)
    seq = [_tree(rng, tasks) for _ in range(steps)]
    p = tree.zeros_like(seq[0])
    s = opt.init(p, tasks=tasks)
    for g in seq:
        u, s = opt.update(g, s)
        p = tree.add(p, u)
    for t in range(tasks):
        q = tree.take_task(tree.zeros_like(seq[0]), t)
        st_t = opt.init(q)
        for g in seq:
            u, st_t = opt.update(tree.take_task(g, t), st_t)
            q = tree.add(q, u)
        assert tree.allclose(q, tree.take_task(p, t), rtol=1e-13, atol=1e-16), f"task {t} differs"


def test_adam_float32_stays_float32():
    rng = np.random.default_rng(0)
    g = _tree(rng, 2, np.float32)
    opt = optim.Adam(1e-3)
    u, s = opt.update(g, opt.init(g, tasks=2))
    assert all(v.dtype == np.float32 for v in u.values())
    assert all(v.dtype == np.float32 for v in s.nu.values())


def test_sgd_update_and_precondition():
    rng = np.random.default_rng(1)
    g = _tree(rng)
    opt = optim.SGD(0.5)
    u, s = opt.update(g, opt.init(g))
    assert tree.allclose(u, tree.scale(g, -0.5))
    assert tree.allclose(opt.precondition(s, g), tree.scale(g, 0.5))


def test_adam_precondition_is_the_step_map():
    """The step equals -precondition(state_after, g) for beta1 = 0."""
    rng = np.random.default_rng(2)
    opt = optim.Adam(1e-2)
    g = _tree(rng, 3)
    s = opt.init(g, tasks=3)
    for _ in range(3):
        u, s = opt.update(g, s)
    assert tree.allclose(u, tree.scale(opt.precondition(s, g), -1.0), rtol=1e-12)


def test_state_mean_and_broadcast():
    rng = np.random.default_rng(3)
    opt = optim.Adam(1e-3)
    g = _tree(rng, 3)
    _, s = opt.update(g, opt.init(g, tasks=3))
    mean = optim.state_mean_tasks(s)
    assert int(mean.count) == 1
    assert tree.allclose(mean.nu, tree.mean_tasks(s.nu))
    back = optim.state_broadcast(mean, 2)
    assert back.count.shape == (2,) and tree.allclose(tree.take_task(back.nu, 1), mean.nu)


def test_linear_schedule():
    sched = optim.LinearSchedule(1.0, 0.0, 100)
    assert sched(0) == 1.0 and sched(50) == 0.5 and sched(100) == 0.0 and sched(200) == 0.0
