"""Meta-algorithms: the algorithm-level properties of STYLE.md habit 9 and issue 3."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fometa import config as C
from fometa import meta, models, optim, tree
from fometa.tasks import ArrayClasses, stack_tasks

MLP = models.sine_mlp(hidden=6)


def _phi(seed):
    return tree.astype(MLP.init(np.random.default_rng(seed), dtype=np.float64), np.float64) | {}


def _task(rng, k, batch):
    """One regression task's k inner mini-batches (no task axis)."""
    return [(rng.uniform(-5, 5, (batch, 1)), rng.standard_normal((batch, 1))) for _ in range(k)]


def _steps(task):
    return stack_tasks([task])


def _learner(algorithm, inner, eps=1.0, meta_batch=1, batched=True, policy="carry", k=1, batch=3):
    return meta.MetaLearner(
        MLP, algorithm, inner, meta.Interpolate(eps, eps, 10),
        C.InnerConfig(shots=1, batch=batch, iters=k, state_policy=policy),
        C.OuterConfig(meta_batch=meta_batch, batched=batched),
    )


def _sgd_path(phi, task, lr):
    """Plain SGD by hand: the iterates phi_1..phi_{k+1} and gradients g_1..g_k."""
    path, grads = [phi], []
    for x, y in task:
        _, g = MLP.loss_and_grad(path[-1], x, y)
        grads.append(g)
        path.append(tree.axpy(-lr, g, path[-1]))
    return path, grads


seeds = st.integers(0, 2**32 - 1)
lrs = st.sampled_from([0.003, 0.02, 0.1])


@given(seed=seeds, k=st.integers(1, 4), lr=lrs)
def test_meta_step_zero_keeps_and_one_returns_adapted_weights(seed, k, lr):
    rng = np.random.default_rng(seed)
    phi, task = _phi(seed), _task(rng, k, 3)
    adapted, _, _ = meta.adapt(MLP, tree.broadcast(phi, 1), _steps(task), optim.SGD(lr), optim.SGDState())
    for eps, expected in [(0.0, phi), (1.0, tree.take_task(adapted, 0))]:
        learner = _learner(meta.Reptile(), optim.SGD(lr), eps=eps, k=k)
        new, _ = learner.step(learner.init(phi), [task])
        assert tree.allclose(new.params, expected, rtol=1e-12, atol=1e-14), f"meta-step {eps} is wrong"


@given(seed=seeds, lr=lrs)
def test_one_step_reptile_and_fomaml_equal_the_gradient(seed, lr):
    rng = np.random.default_rng(seed)
    phi, task = _phi(seed), _task(rng, 1, 4)
    _, g = MLP.loss_and_grad(phi, *task[0])
    for alg in (meta.Reptile(), meta.FOMAML()):
        G, _, _ = alg.pseudo_gradient(MLP, tree.broadcast(phi, 1), _steps(task), optim.SGD(lr), optim.SGDState())
        assert tree.allclose(tree.take_task(G, 0), g, rtol=1e-9, atol=1e-12), f"{alg.name} != gradient at phi"


@given(seed=seeds, k=st.integers(1, 4), lr=lrs)
def test_fomaml_is_the_last_batch_gradient_after_k_minus_1_steps(seed, k, lr):
    rng = np.random.default_rng(seed)
    phi, task = _phi(seed), _task(rng, k, 3)
    path, grads = _sgd_path(phi, task, lr)
    _, g_last = MLP.loss_and_grad(path[k - 1], *task[-1])
    G, _, _ = meta.FOMAML().pseudo_gradient(MLP, tree.broadcast(phi, 1), _steps(task), optim.SGD(lr), optim.SGDState())
    assert tree.allclose(tree.take_task(G, 0), g_last, rtol=1e-8, atol=1e-11)


@given(seed=seeds, lr=lrs)
def test_two_step_reptile_is_g1_plus_g2(seed, lr):
    rng = np.random.default_rng(seed)
    phi, task = _phi(seed), _task(rng, 2, 3)
    _, (g1, g2) = _sgd_path(phi, task, lr)
    G, _, _ = meta.Reptile().pseudo_gradient(MLP, tree.broadcast(phi, 1), _steps(task), optim.SGD(lr), optim.SGDState())
    assert tree.allclose(tree.take_task(G, 0), tree.add(g1, g2), rtol=1e-8, atol=1e-11)


@given(seed=seeds, k=st.integers(1, 4), lr=lrs)
def test_combinations_reduce_to_reptile_and_fomaml(seed, k, lr):
    rng = np.random.default_rng(seed)
    phi, task = _phi(seed), _task(rng, k, 3)
    args = (MLP, tree.broadcast(phi, 1), _steps(task), optim.SGD(lr), optim.SGDState())
    ones, _, _ = meta.Combination((1.0,) * k).pseudo_gradient(*args)
    last, _, _ = meta.Combination((0.0,) * (k - 1) + (1.0,)).pseudo_gradient(*args)
    rep, _, _ = meta.Reptile().pseudo_gradient(*args)
    fo, _, _ = meta.FOMAML().pseudo_gradient(*args)
    assert tree.allclose(ones, rep, rtol=1e-8, atol=1e-11), "all-ones combination != Reptile"
    assert tree.allclose(last, fo, rtol=1e-8, atol=1e-11), "last-only combination != FOMAML"


def _numerical_gradient(f, params, h=1e-6):
    """Central differences, one coordinate at a time (float64)."""
    out = {}
    for key, value in params.items():
        g = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            plus, minus = dict(params), dict(params)
            e = np.zeros_like(value)
            e[i] = h
            plus[key], minus[key] = value + e, value - e
            g[i] = (f(plus) - f(minus)) / (2 * h)
        out[key] = g
    return out


@given(seed=seeds, k=st.integers(1, 4), lr=lrs)
def test_maml_is_the_gradient_through_the_inner_loop(seed, k, lr):
    """G_MAML = d/dphi L_k(phi_k(phi)), checked against finite differences of that composite."""
    rng = np.random.default_rng(seed)
    phi, task = _phi(seed), _task(rng, k, 3)

    def outer_loss(p):
        path, _ = _sgd_path(p, task[:-1], lr)
        return float(MLP.loss_value(path[-1], *task[-1]))

    G, _, _ = meta.MAML().pseudo_gradient(MLP, tree.broadcast(phi, 1), _steps(task), optim.SGD(lr), optim.SGDState())
    G = tree.take_task(G, 0)
    fd = _numerical_gradient(outer_loss, phi)
    err = float(tree.norm(tree.sub(G, fd)) / tree.norm(fd))
    assert err < 1e-6, f"MAML meta-gradient off by {err:.2e} (relative, in norm)"
    if k > 1:  # and it is not the first-order approximation
        fo, _, _ = meta.FOMAML().pseudo_gradient(MLP, tree.broadcast(phi, 1), _steps(task), optim.SGD(lr),
                                                 optim.SGDState())
        assert float(tree.norm(tree.sub(tree.take_task(fo, 0), fd))) > 10 * float(tree.norm(tree.sub(G, fd)))


@settings(max_examples=20)
@given(seed=seeds, meta_batch=st.integers(1, 4), k=st.integers(1, 3),
       alg=st.sampled_from(["reptile", "fomaml", "maml"]))
def test_task_batched_equals_serial_under_reset(seed, meta_batch, k, alg):
    rng = np.random.default_rng(seed)
    phi = _phi(seed)
    tasks = [_task(rng, k, 3) for _ in range(meta_batch)]
    results = []
    for batched in (True, False):
        learner = _learner(meta.make_algorithm(alg), optim.Adam(0.01), eps=0.5, meta_batch=meta_batch, batched=batched,
                           policy="reset", k=k)
        state = learner.init(phi)
        for _ in range(2):
            state, _ = learner.step(state, tasks)
        results.append(state.params)
    assert tree.allclose(results[0], results[1], rtol=1e-10, atol=1e-13), "task-batched and serial Reptile differ"


def test_serial_carry_passes_adam_state_from_task_to_task():
    rng = np.random.default_rng(0)
    phi = _phi(0)
    tasks = [_task(rng, 2, 3) for _ in range(2)]
    opt = optim.Adam(0.01)
    learner = _learner(meta.Reptile(), opt, eps=1.0, meta_batch=2, batched=False, policy="carry", k=2)
    new, _ = learner.step(learner.init(phi), tasks)
    # by hand: task 2 starts from task 1's final Adam state, and from phi
    p1, s1, _ = meta.adapt(MLP, tree.broadcast(phi, 1), _steps(tasks[0]), opt, optim.state_broadcast(opt.init(phi), 1))
    p2, s2, _ = meta.adapt(MLP, tree.broadcast(phi, 1), _steps(tasks[1]), opt, s1)
    expected = tree.mean_tasks(tree.stack([tree.take_task(p1, 0), tree.take_task(p2, 0)]))
    assert tree.allclose(new.params, expected, rtol=1e-10, atol=1e-13)
    assert int(new.inner_state.count) == 4
    assert tree.allclose(new.inner_state.nu, tree.take_task(s2.nu, 0))


def test_batched_carry_keeps_the_mean_state_and_reset_keeps_none():
    rng = np.random.default_rng(1)
    phi = _phi(1)
    tasks = [_task(rng, 2, 3) for _ in range(3)]
    carry = _learner(meta.Reptile(), optim.Adam(0.01), meta_batch=3, policy="carry", k=2)
    s, _ = carry.step(carry.init(phi), tasks)
    assert int(s.inner_state.count) == 2 and tree.norm(s.inner_state.nu) > 0
    reset = _learner(meta.Reptile(), optim.Adam(0.01), meta_batch=3, policy="reset", k=2)
    s, _ = reset.step(reset.init(phi), tasks)
    assert int(s.inner_state.count) == 0 and float(tree.norm(s.inner_state.nu)) == 0.0


def test_interpolation_anneals_linearly():
    outer = meta.Interpolate(1.0, 0.0, 4)
    g = {"w": np.ones(2)}
    steps = [outer.update(g, outer.init(g), i, scale=1.0)[0]["w"][0] for i in range(5)]
    np.testing.assert_allclose(steps, [-1.0, -0.75, -0.5, -0.25, 0.0])


def test_outer_adam_first_step_is_lr_times_normalized_g():
    rng = np.random.default_rng(2)
    phi = _phi(2)
    learner = meta.MetaLearner(MLP, meta.Reptile(), optim.SGD(0.02), meta.OuterAdam(lr=0.01),
                               C.InnerConfig(shots=1, batch=3, iters=2), C.OuterConfig(meta_batch=1))
    task = _task(rng, 2, 3)
    G, _, _ = meta.Reptile().pseudo_gradient(MLP, tree.broadcast(phi, 1), _steps(task), optim.SGD(0.02),
                                             optim.SGDState())
    new, _ = learner.step(learner.init(phi), [task])
    step = tree.sub(new.params, phi)
    # Adam's first step: lr * sqrt(1 - b2) / (1 - b1) * (1 - b1) g / (sqrt(1 - b2) |g| + eps) ~ lr * sign(g)
    b2 = 0.999
    expected = tree.map(lambda g: -0.01 * np.sqrt(1 - b2) * g[0] / (np.sqrt(1 - b2) * np.abs(g[0]) + 1e-8), G)
    assert tree.allclose(step, expected, rtol=1e-9, atol=1e-15)


def test_conv_net_meta_batch_batched_equals_serial():
    """The same equivalence on a tiny conv-net with batch norm, sampling real tasks."""
    net = models.conv_net("tiny", 3, (6, 6), filters=4, blocks=2, stride=2)
    rng = np.random.default_rng(3)
    ds = ArrayClasses([rng.random((6, 6, 6)) for _ in range(5)])
    phi = tree.astype(net.init(rng), np.float64)
    draws = meta.MetaLearner(net, meta.Reptile(), optim.Adam(0.01), meta.Interpolate(1.0, 0.0, 5),
                             C.InnerConfig(shots=2, batch=4, iters=3), C.OuterConfig(meta_batch=3)).sample(ds, rng)
    out = []
    for batched in (True, False):
        learner = meta.MetaLearner(net, meta.Reptile(), optim.Adam(0.01), meta.Interpolate(1.0, 0.0, 5),
                                   C.InnerConfig(shots=2, batch=4, iters=3, state_policy="reset"),
                                   C.OuterConfig(meta_batch=3, batched=batched))
        s, info = learner.step(learner.init(phi), draws)
        out.append(s.params)
        assert np.isfinite(info["loss_last"])
    assert tree.allclose(out[0], out[1], rtol=1e-10, atol=1e-13)


def test_make_algorithm_errors():
    with pytest.raises(ValueError, match="unknown algorithm"):
        meta.make_algorithm("reptil")
    with pytest.raises(ValueError, match="weights"):
        meta.make_algorithm("combination")
    with pytest.raises(ValueError, match="state_policy"):
        C.InnerConfig(state_policy="keep")
