"""Section 5.2: Reptile minimizes the expected squared distance to the tasks' solution manifolds.

Linear regression tasks ``y = X w`` with fewer examples than parameters (a Dense layer with bias,
mean squared error): task ``tau``'s zero-loss set ``W_tau = {phi : Xt phi = y}`` (``Xt = [X, 1]``) is an
affine subspace, and ``k`` full-batch SGD steps map ``phi`` to
``s + (I - alpha A)^k (phi - s)``, ``A = 2 Xt^T Xt / m`` -- towards the nearest point of ``W_tau``,
reached as ``k -> infinity``. So

* the trainer's Reptile update ``alpha G`` tends to ``grad (1/2) D(phi, W_tau)^2 = P_tau (phi - s_tau)``
  (``P_tau`` the projector onto ``W_tau``'s normal space), within ``rho^k`` of it;
* the trainer's fixed point (where the meta-step averaged over the tasks vanishes) is
  :func:`fometa.theory.reptile_fixed_point`, and tends, within a ``rho^k`` bound, to the minimizer
  of ``mean_tau (1/2) D(phi, W_tau)^2`` (:func:`fometa.theory.closest_point`).

``rho = max_tau max |1 - alpha lambda|`` over the nonzero eigenvalues ``lambda`` of ``A_tau``.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given, note
from hypothesis import strategies as st

from fometa import config as C
from fometa import meta, models, optim, theory, tree
from fometa.layers import Dense


def linear_regression(features: int):
    return models.Sequential("linear_regression", (("fc", Dense(features, 1)),), (features,), "mse")


def flat(params) -> np.ndarray:
    return np.concatenate([params["fc/kernel"][:, 0], params["fc/bias"]])


def unflat(vec) -> dict:
    return {"fc/kernel": np.asarray(vec[:-1])[:, None].copy(), "fc/bias": np.asarray(vec[-1:]).copy()}


@st.composite
def regression_tasks(draw):
    d = draw(st.integers(2, 5))  # input features; phi has n = d + 1 entries (kernel and bias)
    m = draw(st.integers(1, d))  # examples per task: m < n, so every task has a line, plane... of solutions
    n = d + 1
    count = draw(st.integers(math.ceil(n / m), math.ceil(n / m) + 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    tasks = []
    for _ in range(count):
        x = rng.standard_normal((m, d))
        w = rng.standard_normal(n)
        tasks.append((x, (np.hstack([x, np.ones((m, 1))]) @ w)[:, None]))
    return d, tasks


def _setting(tasks, frac):
    sets, hessians = [], []
    for x, y in tasks:
        Xt = np.hstack([x, np.ones((len(x), 1))])
        sets.append(theory.solution_set(Xt, y[:, 0]))
        hessians.append(2.0 * Xt.T @ Xt / len(x))
    top = max(np.linalg.eigvalsh(A).max() for A in hessians)
    alpha = frac / top
    rho = 0.0
    for A in hessians:
        w = np.linalg.eigvalsh(A)
        nonzero = w[w > 1e-9 * top]
        rho = max(rho, float(np.abs(1.0 - alpha * nonzero).max()))
    mean_p = np.mean([s.projector for s in sets], axis=0)
    return sets, hessians, alpha, rho, float(np.linalg.eigvalsh(mean_p).min())


def _learner(model, alpha, k, tasks, eps=1.0):
    return meta.MetaLearner(
        model, meta.Reptile(), optim.SGD(alpha), meta.Interpolate(eps, eps, 1),
        C.InnerConfig(shots=1, batch=1, iters=k), C.OuterConfig(meta_batch=tasks),
    )


def _trainer_fixed_point(model, tasks, alpha, k, n):
    """The fixed point of the trainer's meta-step ``S`` (affine in ``phi`` here), from ``S`` at ``0`` and the unit
    vectors."""
    learner = _learner(model, alpha, k, len(tasks))
    batches = [[(x, y)] * k for x, y in tasks]  # full-batch inner steps

    def step(vec):
        new, _ = learner.step(learner.init(unflat(vec)), batches)
        return flat(new.params)

    base = step(np.zeros(n))
    J = np.stack([step(e) - base for e in np.eye(n)], axis=1)
    return np.linalg.solve(np.eye(n) - J, base)


KS = (1, 2, 4, 8, 16)


@given(problem=regression_tasks(), frac=st.floats(0.2, 0.9))
def test_reptile_fixed_point_approaches_the_closest_point_to_the_solution_sets(problem, frac):
    d, tasks = problem
    n = d + 1
    model = linear_regression(d)
    sets, hessians, alpha, rho, spread = _setting(tasks, frac)
    assume(spread > 0.02)  # the normal spaces span R^n comfortably: a unique, well-conditioned minimizer
    note(f"alpha {alpha}, rho {rho}, lambda_min(mean P) {spread}")
    best = theory.closest_point(sets)
    points = [s.point for s in sets]
    assert np.allclose(theory.reptile_fixed_point(hessians, points, alpha, None), best, rtol=1e-8, atol=1e-8), (
        "with a converged inner loop, Reptile's fixed point must be the minimizer of the mean squared distance"
    )
    f_best = theory.mean_squared_distance(best, sets)
    scale = 1.0 + np.linalg.norm(best)
    for k in KS:
        fixed = _trainer_fixed_point(model, tasks, alpha, k, n)
        predicted = theory.reptile_fixed_point(hessians, points, alpha, k)
        assert np.allclose(fixed, predicted, rtol=1e-7,
                           atol=1e-8 * scale), f"k={k}: trainer fixed point {fixed} != theory {predicted}"
        # |fp_k - best| <= rho^k max_tau D(fp_k, W_tau) / lambda_min(mean P)
        bound = rho**k * max(s.distance(fixed) for s in sets) / spread
        err = np.linalg.norm(fixed - best)
        assert err <= bound * (1 + 1e-6) + 1e-9 * scale, \
            f"k={k}: fixed point is {err} from the minimizer, bound {bound}"
        assert theory.mean_squared_distance(fixed, sets) >= f_best - 1e-10 * scale**2, "something beat the minimizer"
    # as the inner loop converges, the fixed point reaches the minimizer
    assume(rho < 0.999)
    k_big = int(math.ceil(math.log(1e-12) / math.log(max(rho, 1e-3))))
    far = theory.reptile_fixed_point(hessians, points, alpha, k_big)
    assert np.linalg.norm(far - best) <= 1e-7 * scale, \
        f"k={k_big}: still {np.linalg.norm(far - best)} from the minimizer"


@given(problem=regression_tasks(), frac=st.floats(0.2, 0.9), seed=st.integers(0, 2**32 - 1))
def test_reptile_update_tends_to_the_gradient_of_the_squared_distance(problem, frac, seed):
    d, tasks = problem
    model = linear_regression(d)
    sets, _, alpha, rho, _ = _setting(tasks, frac)
    phi = np.random.default_rng(seed).standard_normal(d + 1)
    for (x, y), s in zip(tasks, sets, strict=True):
        grad = s.projector @ (phi - s.point)  # grad of (1/2) D(phi, W)^2
        assert np.isclose(0.5 * s.distance(phi) ** 2 - 0.5 * s.distance(phi - 1e-6 * grad) ** 2,
                          1e-6 * grad @ grad, rtol=1e-4, atol=1e-12), "P (phi - s) is not the gradient of (1/2) D^2"
        for k in KS:
            G, _, _ = meta.Reptile().pseudo_gradient(model, tree.broadcast(unflat(phi), 1), [(x[None], y[None])] * k,
                                                      optim.SGD(alpha), optim.SGDState())
            step = alpha * flat(tree.take_task(G, 0))  # phi - phi_tilde
            bound = rho**k * np.linalg.norm(grad) * (1 + 1e-6) + 1e-9 * (1 + np.linalg.norm(phi))
            assert np.linalg.norm(step - grad) <= bound, (
                f"k={k}: phi - phi_tilde is {np.linalg.norm(step - grad)} from grad (1/2) D^2, bound "
                f"{rho**k * np.linalg.norm(grad)}"
            )
            assert np.allclose(s.nearest(phi), phi - grad), "the nearest point of W is phi - P (phi - s)"


def test_iterating_reptile_reaches_its_fixed_point():
    """Run the trainer itself, meta-step after meta-step: it settles where the theory says."""
    rng = np.random.default_rng(0)
    d, m, count, k = 3, 2, 3, 8
    tasks = []
    for _ in range(count):
        x = rng.standard_normal((m, d))
        tasks.append((x, (np.hstack([x, np.ones((m, 1))]) @ rng.standard_normal(d + 1))[:, None]))
    sets, hessians, alpha, _, _ = _setting(tasks, 0.5)
    eps = 1.0
    # the meta-step is phi <- phi - eps mean_tau M_tau (phi - s_tau): it contracts by max |1 - eps mu|,
    # mu in eig(mean M)
    mean_m = np.mean([np.eye(d + 1) - np.linalg.matrix_power(np.eye(d + 1) - alpha * A, k) for A in hessians], axis=0)
    contraction = float(np.abs(1.0 - eps * np.linalg.eigvals(mean_m)).max())
    assert contraction < 1.0
    iterations = int(math.ceil(math.log(1e-9) / math.log(contraction)))
    learner = _learner(linear_regression(d), alpha, k, count, eps=eps)
    state = learner.init(unflat(rng.standard_normal(d + 1)))
    batches = [[(x, y)] * k for x, y in tasks]
    for _ in range(iterations):
        state, _ = learner.step(state, batches)
    predicted = theory.reptile_fixed_point(hessians, [s.point for s in sets], alpha, k)
    assert np.allclose(flat(state.params), predicted, rtol=1e-6, atol=1e-8), (
        f"after {iterations} meta-iterations (contraction {contraction}) Reptile is not at its fixed point"
    )
    closest = theory.closest_point(sets)
    distances = [theory.mean_squared_distance(p, sets) for p in (flat(state.params), closest)]
    assert distances[0] >= distances[1] - 1e-12, \
        f"mean squared distance at the fixed point and the minimum: {distances}"
