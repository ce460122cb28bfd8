"""The three kinds of problem the theory tests draw, in float64, and checks of the problems themselves.

* ``quadratic``: :class:`fometa.theory.Quadratic` with random symmetric ``A_e`` (spectral scale ~1),
  where gradients, Hessians and MAML's product are closed forms;
* ``sine``: a small tanh MLP (:func:`fometa.models.sine_mlp`) on sine-wave regression tasks;
* ``convnet``: a tiny conv-net with batch norm and ReLU (:func:`fometa.models.conv_net`, 4x4 inputs,
  two stride-2 blocks) on random images and labels.

The step ``alpha`` is drawn as ``frac / lambda``, ``lambda`` the largest Hessian eigenvalue (in
absolute value) of the problem's mini-batch losses at ``phi``, so that ``alpha lambda`` -- the
quantity the ``O(alpha^2)`` remainders are small in -- is controlled whatever the problem's scale.

ReLU kinks: :class:`KinkGuard` wraps a model and notes whether any gradient evaluation of a
mini-batch found a ReLU sign pattern different from the other evaluations of the same
mini-batch. Expansions and difference quotients hold only inside one smooth piece, so the
tests compute everything through the guard first and ``assume`` that nothing crossed.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fometa import models, theory, tree

KINDS = ("quadratic", "sine", "convnet")
seeds = st.integers(0, 2**32 - 1)


class KinkGuard:
    """A model wrapper that records whether a mini-batch was ever evaluated on two sides of a ReLU kink."""

    def __init__(self, model):
        self.model = model
        self.patterns = {}
        self.crossed = False

    def __getattr__(self, name):
        return getattr(self.model, name)

    def _check(self, params, x):
        pattern = theory.relu_pattern(self.model, params, x)
        if pattern is None:
            return
        single = x.ndim == len(self.model.input_shape) + 1
        xs, pats = (x[None], pattern[None]) if single else (x, pattern)
        for xt, pt in zip(xs, pats, strict=True):
            key = np.ascontiguousarray(xt).tobytes()
            seen = self.patterns.setdefault(key, pt)
            if not np.array_equal(seen, pt):
                self.crossed = True

    def loss_and_grad(self, params, x, y):
        self._check(params, x)
        return self.model.loss_and_grad(params, x, y)

    def loss_value(self, params, x, y):
        self._check(params, x)
        return self.model.loss_value(params, x, y)


class Problem(NamedTuple):
    kind: str
    model: object  # a KinkGuard around the model
    params: dict  # phi, single-task float64
    tasks: list  # tasks, each a list of k single-task mini-batches (x, y)
    curvature: float  # largest |Hessian eigenvalue| of the mini-batch losses at phi

    @property
    def batches(self):
        return self.tasks[0]

    def alpha(self, frac: float) -> float:
        return frac / max(self.curvature, 1e-3)


def _quadratic(rng, k, n_tasks, dim, batch):
    model = theory.Quadratic(dim, split=max(1, dim // 2))
    tasks = []
    for _ in range(n_tasks):
        centre = rng.standard_normal(dim)  # the task: its examples scatter around a task centre
        task = []
        for _ in range(k):
            G = rng.standard_normal((batch, dim, dim))
            A = (G + np.swapaxes(G, 1, 2)) / (2.0 * np.sqrt(dim)) + 0.5 * np.eye(dim)
            c = centre + rng.standard_normal((batch, dim))
            task.append((model.examples(A, c, 0.3 * rng.standard_normal((batch, dim))), np.zeros(batch)))
        tasks.append(task)
    return model, model.init(rng), tasks


def _sine(rng, k, n_tasks, hidden, batch):
    model = models.sine_mlp(hidden=hidden, init="torch")
    tasks = []
    for _ in range(n_tasks):
        amp, phase = rng.uniform(0.1, 5.0), rng.uniform(0.0, 2 * np.pi)
        task = []
        for _ in range(k):
            x = rng.uniform(-5.0, 5.0, (batch, 1))
            task.append((x, amp * np.sin(x + phase)))
        tasks.append(task)
    return model, model.init(rng, dtype=np.float64), tasks


def _convnet(rng, k, n_tasks, filters, batch, ways=3):
    model = models.conv_net("tiny_convnet", ways, (4, 4), filters=filters, blocks=2, stride=2)
    params = model.init(rng, dtype=np.float64)
    # batch-norm scales and offsets away from their initial 1 and 0, so that no symmetry hides an error
    params = {key: v + 0.3 * rng.standard_normal(v.shape) if key.startswith("bn") else v for key, v in params.items()}
    tasks = [[(rng.random((batch, 4, 4)), rng.integers(0, ways, batch)) for _ in range(k)] for _ in range(n_tasks)]
    return model, params, tasks


@st.composite
def problems(draw, kind: str, k=st.integers(1, 4), n_tasks=st.just(1)) -> Problem:
    """A problem of ``kind`` with ``n_tasks`` tasks of ``k`` mini-batches each (sizes drawn small)."""
    k, n_tasks, seed = draw(k), draw(n_tasks), draw(seeds)
    rng = np.random.default_rng(seed)
    if kind == "quadratic":
        model, params, tasks = _quadratic(rng, k, n_tasks, draw(st.integers(2, 5)), draw(st.integers(1, 3)))
    elif kind == "sine":
        model, params, tasks = _sine(rng, k, n_tasks, draw(st.integers(2, 6)), draw(st.integers(2, 5)))
    elif kind == "convnet":
        model, params, tasks = _convnet(rng, k, n_tasks, draw(st.integers(1, 2)), draw(st.integers(3, 5)))
    else:
        raise ValueError(kind)
    guard = KinkGuard(model)
    batches = [b for task in tasks for b in task]
    curvature = theory.hessian_norm(guard, params, batches, iters=8, rng=np.random.default_rng(seed))
    return Problem(kind, guard, params, tasks, curvature)


def random_direction(params, rng):
    return tree.map(lambda p: rng.standard_normal(p.shape), params)


def rel_err(a, b) -> float:
    """``|a - b| / (|a| + |b|)`` over whole trees (0 when both vanish)."""
    den = float(tree.norm(a)) + float(tree.norm(b))
    return float(tree.norm(tree.sub(a, b))) / den if den > 0 else 0.0


# ---------------------------------------------------------------------------------------------
# the problems themselves
# ---------------------------------------------------------------------------------------------
@given(seed=seeds, dim=st.integers(2, 5), batch=st.integers(1, 3), tasks=st.integers(1, 3))
def test_quadratic_gradient_and_hessian_are_exact(seed, dim, batch, tasks):
    rng = np.random.default_rng(seed)
    model, phi, task_list = _quadratic(rng, 1, tasks, dim, batch)
    x, y = task_list[0][0]
    A, c, b = model._parts(x)
    flat = model.flatten(phi)
    expected_loss = np.mean([0.5 * (flat - c[e]) @ A[e] @ (flat - c[e]) + b[e] @ flat for e in range(batch)])
    loss, g = model.loss_and_grad(phi, x, y)
    assert np.isclose(loss, expected_loss, rtol=1e-12), "quadratic loss is not the mean of the example losses"
    v = random_direction(phi, rng)
    fd = theory.directional_derivative(lambda p: model.loss_value(p, x, y), phi, v)
    # central differences of a quadratic are exact up to round-off: judge on the scale |g| |v| (cancellation)
    scale = float(tree.norm(g)) * float(tree.norm(v))
    assert abs(float(tree.dot(g, v)) - fd) <= 1e-7 * scale, "quadratic gradient disagrees with finite differences"
    hv = model.hessian_vector_product(phi, x, y, v)
    fd_h = tree.scale(tree.sub(model.loss_and_grad(tree.axpy(1.0, v, phi), x, y)[1], g), 1.0)
    assert rel_err(hv, fd_h) < 1e-10, "for a quadratic, g(phi + v) - g(phi) must be H v exactly"
    # task-batched calls compute what single-task calls compute
    steps = [(np.stack([t[0][0] for t in task_list]), np.stack([t[0][1] for t in task_list]))]
    losses, grads = model.loss_and_grad(tree.broadcast(phi, tasks), *steps[0])
    for t, task in enumerate(task_list):
        lt, gt = model.loss_and_grad(phi, *task[0])
        assert np.isclose(losses[t], lt, rtol=1e-13) and rel_err(tree.take_task(grads, t), gt) < 1e-13, \
            f"task {t} differs when batched"


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_problems_are_float64_and_curvature_is_a_scale(kind, data):
    p = data.draw(problems(kind, k=st.integers(1, 2)))
    assert all(v.dtype == np.float64 for v in p.params.values()), "theory checks run in float64"
    assert np.isfinite(p.curvature) and p.curvature > 0, "the problem has no curvature to scale alpha by"


def test_kink_guard_notices_a_sign_change():
    model = models.conv_net("tiny_convnet", 2, (4, 4), filters=1, blocks=1, stride=2)
    rng = np.random.default_rng(0)
    phi = model.init(rng, dtype=np.float64)
    x, y = rng.random((3, 4, 4)), np.array([0, 1, 0])
    guard = KinkGuard(model)
    guard.loss_and_grad(phi, x, y)
    guard.loss_and_grad(phi, x, y)
    assert not guard.crossed, "the same point cannot have two ReLU patterns"
    flipped = dict(phi, **{"bn0/offset": phi["bn0/offset"] + 10.0})  # every unit of block 0 turns on
    guard.loss_and_grad(flipped, x, y)
    assert guard.crossed, "moving every unit across its kink went unnoticed"
