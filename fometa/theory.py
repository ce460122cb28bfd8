"""The paper's Section 5, computed: one inner loop's meta-gradients and their expansions in ``alpha``.

Notation (paper, Section 5.1). ``k`` inner SGD steps with step ``alpha`` on mini-batch losses
``L_1 .. L_k``::

    phi_1 = phi,   phi_{i+1} = phi_i - alpha g_i,   g_i = L_i'(phi_i),
    gbar_i = L_i'(phi_1),   Hbar_i = L_i''(phi_1).

The meta-gradients (pseudo-gradients in gradient units, as :mod:`fometa.meta` returns them)::

    g_FOMAML  = g_k
    g_Reptile = (phi_1 - phi_{k+1}) / alpha = sum_i g_i
    g_MAML    = (I - alpha L_1''(phi_1)) ... (I - alpha L_{k-1}''(phi_{k-1})) g_k      (d/dphi of L_k(phi_k))

and their first-order expansions (Section 5.1)::

    g_i       = gbar_i - alpha Hbar_i sum_{j<i} gbar_j                               + O(alpha^2)
    g_MAML    = gbar_k - alpha Hbar_k sum_{j<k} gbar_j - alpha sum_{j<k} Hbar_j gbar_k + O(alpha^2)

Taking the expectation over tasks and over the order of the ``k`` mini-batches, with
``AvgGrad = E[gbar_1]`` and ``AvgGradInner = E[Hbar_2 gbar_1] = (1/2) d/dphi E[gbar_1 . gbar_2]``::

    E[g_MAML]    = AvgGrad - 2 (k - 1) alpha AvgGradInner          + O(alpha^2)
    E[g_FOMAML]  = AvgGrad -   (k - 1) alpha AvgGradInner          + O(alpha^2)
    E[g_Reptile] = k AvgGrad - (1/2) k (k - 1) alpha AvgGradInner  + O(alpha^2)

and, for any inner-gradient combination ``sum_i w_i g_i`` (Section 6.2),
``(sum_i w_i) AvgGrad - (sum_i (i - 1) w_i) alpha AvgGradInner``.

Everything here takes a model with the interface of :class:`fometa.models.Sequential`
(``loss_and_grad(params, x, y)``, ``loss_value``, ``input_shape``), parameters, and a sequence
of mini-batches ``[(x_1, y_1), ..., (x_k, y_k)]``; single-task arrays, or task-batched ones (a
leading task axis ``T`` on the parameters and on every mini-batch, task ``t`` with its own batches).

The exact quantities are computed from their definitions with the model's own gradients,
independently of :mod:`fometa.meta`, so that tests hold the trainer against them. Hessian-vector
products ``H v`` are exact where the model offers ``hessian_vector_product(params, x, y, v)``
(:class:`Quadratic`); otherwise they are :func:`fometa.hvp.hvp`'s central differences, whose
relative error is about ``eps^(2/3)`` (~1e-10 in float64) on smooth losses. Across a ReLU kink
that difference quotient sees the jump in the gradient, so on ReLU networks the expansions and
products hold only where no unit changes sign over the points evaluated: :func:`relu_pattern`
lets a test check that (``tests/test_theory*.py`` reject such draws).

Section 5.2 (Reptile minimizes the expected squared distance to the tasks' solution sets) is
computed for quadratic tasks with affine solution sets: :func:`solution_set`,
:func:`mean_squared_distance`, :func:`closest_point`, :func:`reptile_fixed_point`.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fometa import tree
from fometa.backends import array_module
from fometa.hvp import default_step, hvp
from fometa.layers import ReLU
from fometa.tasks import stack_tasks

__all__ = [
    "Quadratic", "SGDPath", "sgd_path", "hessian_vector", "reptile_gradient", "fomaml_gradient",
    "combination_gradient", "maml_gradient", "maml_objective", "maml_product_formula",
    "Taylor", "Expansion", "expand", "Moments", "task_moments", "estimate_moments",
    "update_coefficients", "combination_coefficients", "expected_update", "all_orders",
    "gradient_inner_product", "directional_derivative", "relu_pattern", "hessian_norm",
    "AffineSet", "solution_set", "mean_squared_distance", "closest_point", "reptile_fixed_point",
]


# --------------------------------------------------------------------------------------
# a problem where everything has a closed form
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Quadratic:
    """Random quadratics as a model: example ``e`` has loss ``0.5 (phi - c_e)^T A_e (phi - c_e) + b_e^T phi``.

    A mini-batch's loss is the mean over its examples, so ``L'' = mean_e A_e`` (``A_e`` is
    symmetrized) and ``L' = mean_e A_e (phi - c_e) + b_e``. Example ``e`` is one array
    ``[A_e | c_e | b_e]`` of shape ``(dim, dim + 2)`` (see :meth:`examples`); labels are unused
    (any ``(B,)`` array). ``phi`` is held as two leaves, ``"u"`` (its first ``split`` entries) and
    ``"v"`` (the rest), so that the tree arithmetic of the trainer is exercised on several leaves.
    It has the model interface :mod:`fometa.meta` uses, and exact Hessians.
    """

    dim: int
    split: int = 1

    def __post_init__(self):
        if not 0 < self.split < self.dim:
            raise ValueError(f"split must be between 1 and dim - 1 = {self.dim - 1}, got {self.split}")

    @property
    def input_shape(self) -> tuple[int, int]:
        """The per-example input shape ``(dim, dim + 2)``: an example carries its ``A_e``, ``c_e`` and ``b_e``."""
        return (self.dim, self.dim + 2)

    def param_shapes(self) -> dict:
        """``{"u": (split,), "v": (dim - split,)}``: ``phi`` cut in two named parts."""
        return {"u": (self.split,), "v": (self.dim - self.split,)}

    def init(self, rng: np.random.Generator, dtype=np.float64) -> dict:
        """Standard normal parameters of ``dtype``."""
        return self.unflatten(rng.standard_normal(self.dim).astype(dtype))

    @staticmethod
    def examples(A, c, b) -> np.ndarray:
        """Pack ``A`` ``(..., n, n)``, ``c`` and ``b`` ``(..., n)`` into examples ``(..., n, n + 2)``."""
        return np.concatenate([A, c[..., None], b[..., None]], axis=-1)

    # -- flat vectors <-> parameter trees --------------------------------------------
    def flatten(self, params):
        """``phi`` as one array ``(..., dim)``."""
        return array_module(params["u"]).concatenate([params["u"], params["v"]], axis=-1)

    def unflatten(self, vec) -> dict:
        """The parameter tree of the flat vector ``vec`` (``(..., dim)``)."""
        return {"u": vec[..., : self.split], "v": vec[..., self.split :]}

    # -- the model interface ------------------------------------------------------------
    def _parts(self, x):
        n = self.dim
        A = x[..., :n]
        return 0.5 * (A + np.swapaxes(A, -1, -2)), x[..., n], x[..., n + 1]

    def _single(self, x) -> bool:
        if x.ndim not in (3, 4) or tuple(x.shape[-2:]) != self.input_shape:
            raise ValueError(f"quadratic examples must have shape (B, {self.dim}, {self.dim + 2}) or (T, B, ...), got "
                             f"{x.shape}")
        return x.ndim == 3

    def loss_and_grad(self, params, x, y=None):
        """Mean loss over the mini-batch and its gradient (task-batched where ``x`` is ``(T, B, n, n + 2)``)."""
        A, c, b = self._parts(x)
        phi = self.flatten(params)
        d = (phi[..., None, :] if self._single(x) else phi[:, None, :]) - c  # (..., B, n)
        Ad = np.einsum("...ij,...j->...i", A, d)
        loss = (0.5 * np.einsum("...i,...i->...", d, Ad) + np.einsum("...i,...i->...", b, d + c)).mean(axis=-1)
        return loss, self.unflatten((Ad + b).mean(axis=-2))

    def loss_value(self, params, x, y=None):
        """The per-task loss of ``params`` on the examples ``x``."""
        return self.loss_and_grad(params, x, y)[0]

    def hessian(self, x):
        """The mini-batch loss's Hessian ``mean_e A_e``: ``(n, n)``, or ``(T, n, n)``."""
        self._single(x)
        return self._parts(x)[0].mean(axis=-3)

    def hessian_vector_product(self, params, x, y, v):
        """Exact ``L''(phi) v`` (independent of ``phi``)."""
        return self.unflatten(np.einsum("...ij,...j->...i", self.hessian(x), self.flatten(v)))


# --------------------------------------------------------------------------------------
# exact meta-gradients, from their definitions
# --------------------------------------------------------------------------------------
class SGDPath(NamedTuple):
    """The inner loop's path: ``params`` ``phi_1 .. phi_{k+1}``, ``grads`` ``g_1 .. g_k`` and ``losses``
    ``L_i(phi_i)``."""
    params: list  # phi_1 .. phi_{k+1}
    grads: list  # g_1 .. g_k, g_i = L_i'(phi_i)
    losses: list  # L_i(phi_i)


def sgd_path(model, params, batches, alpha: float) -> SGDPath:
    """The inner loop ``phi_{i+1} = phi_i - alpha g_i`` over ``batches`` (Section 5.1)."""
    phis, grads, losses = [params], [], []
    for x, y in batches:
        loss, g = model.loss_and_grad(phis[-1], x, y)
        grads.append(g)
        losses.append(loss)
        phis.append(tree.axpy(-alpha, g, phis[-1]))
    return SGDPath(phis, grads, losses)


def hessian_vector(model, params, x, y, v, step: float | None = None):
    """``L''(params) v`` on the mini-batch ``(x, y)``: exact where the model offers it, else :func:`fometa.hvp.hvp`."""
    exact = getattr(model, "hessian_vector_product", None)
    if exact is not None:
        return exact(params, x, y, v)
    return hvp(model, params, x, y, v, step=step)


def _sum(trees):
    total = trees[0]
    for t in trees[1:]:
        total = tree.add(total, t)
    return total


def combination_gradient(model, params, batches, alpha: float, weights: Sequence[float]):
    """``sum_i w_i g_i`` along the SGD path (Section 6.2's inner-gradient combinations)."""
    if len(weights) != len(batches):
        raise ValueError(f"{len(weights)} weights for {len(batches)} mini-batches")
    path = sgd_path(model, params, batches, alpha)
    return _sum([tree.scale(g, float(w)) for w, g in zip(weights, path.grads, strict=True)])


def reptile_gradient(model, params, batches, alpha: float):
    """``g_Reptile = (phi_1 - phi_{k+1}) / alpha = sum_i g_i``."""
    return _sum(sgd_path(model, params, batches, alpha).grads)


def fomaml_gradient(model, params, batches, alpha: float):
    """``g_FOMAML = g_k = L_k'(phi_k)``, after ``k - 1`` steps on the first mini-batches."""
    return sgd_path(model, params, batches, alpha).grads[-1]


def maml_gradient(model, params, batches, alpha: float, hvp_step: float | None = None):
    """``g_MAML = prod_{j<k} (I - alpha L_j''(phi_j)) L_k'(phi_k)``: the gradient of :func:`maml_objective`.

    Evaluated right to left, one Hessian-vector product per inner step, at the points ``phi_j``
    of the SGD path (Hessians are symmetric, so this is the chain rule's transposed Jacobian).
    """
    path = sgd_path(model, params, batches, alpha)
    v = path.grads[-1]
    for j in range(len(batches) - 2, -1, -1):
        x, y = batches[j]
        v = tree.axpy(-alpha, hessian_vector(model, path.params[j], x, y, v, hvp_step), v)
    return v


def maml_objective(model, params, batches, alpha: float):
    """``L_k(phi_k)``: the held-out loss after ``k - 1`` SGD steps; MAML's gradient is its derivative in ``phi``."""
    path = sgd_path(model, params, batches[:-1], alpha)
    x, y = batches[-1]
    return model.loss_value(path.params[-1], x, y)


def maml_product_formula(model, params, batches, alpha: float):
    """``g_MAML`` with explicit Hessian matrices, for models with ``hessian(x)`` and ``flatten`` (:class:`Quadratic`).

    Returns ``(I - alpha H_1) ... (I - alpha H_{k-1}) g_k`` as a flat vector ``(..., n)``; the
    Hessians of a quadratic do not depend on the point, so ``H_j = L_j''`` anywhere.
    """
    g_k = model.flatten(fomaml_gradient(model, params, batches, alpha))
    n = g_k.shape[-1]
    product = np.eye(n)
    for x, _ in batches[:-1]:
        product = product @ (np.eye(n) - alpha * model.hessian(x))
    return np.einsum("...ij,...j->...i", product, g_k)


# --------------------------------------------------------------------------------------
# first-order expansions
# --------------------------------------------------------------------------------------
class Taylor(NamedTuple):
    """A first-order expansion ``c0 + alpha * c1`` of a parameter-shaped vector."""

    c0: dict
    c1: dict

    def at(self, alpha: float) -> dict:
        """The first-order expansion's value at step size ``alpha``: ``c0 + alpha c1``."""
        return tree.axpy(alpha, self.c1, self.c0)


class Expansion(NamedTuple):
    """Section 5.1's leading-order terms, all at ``phi_1``."""

    gbar: list  # gbar_i = L_i'(phi_1)
    inner: list  # Taylor of g_i: gbar_i - alpha Hbar_i sum_{j<i} gbar_j
    maml: Taylor  # gbar_k - alpha Hbar_k sum_{j<k} gbar_j - alpha sum_{j<k} Hbar_j gbar_k

    @property
    def fomaml(self) -> Taylor:
        """FOMAML's expansion: that of ``g_k``."""
        return self.inner[-1]

    @property
    def reptile(self) -> Taylor:
        """Reptile's expansion: that of ``sum_i g_i``."""
        return self.combination([1.0] * len(self.inner))

    def combination(self, weights: Sequence[float]) -> Taylor:
        """``sum_i w_i g_i`` to first order."""
        if len(weights) != len(self.inner):
            raise ValueError(f"{len(weights)} weights for {len(self.inner)} mini-batches")
        return Taylor(
            _sum([tree.scale(t.c0, float(w)) for w, t in zip(weights, self.inner, strict=True)]),
            _sum([tree.scale(t.c1, float(w)) for w, t in zip(weights, self.inner, strict=True)]),
        )


def expand(model, params, batches, hvp_step: float | None = None) -> Expansion:
    """The first-order expansions of ``g_1 .. g_k`` and of ``g_MAML`` around ``phi_1 = params``.

    Costs ``k`` gradients and ``2 (k - 1)`` Hessian-vector products, all at ``phi_1``.
    """
    gbar = [model.loss_and_grad(params, x, y)[1] for x, y in batches]
    zero = tree.zeros_like(gbar[0])
    inner = [Taylor(gbar[0], zero)]
    prefix = gbar[0]  # sum_{j<i} gbar_j
    for i in range(1, len(batches)):
        x, y = batches[i]
        inner.append(Taylor(gbar[i], tree.scale(hessian_vector(model, params, x, y, prefix, hvp_step), -1.0)))
        prefix = tree.add(prefix, gbar[i])
    last = gbar[-1]
    c1 = inner[-1].c1
    for j in range(len(batches) - 1):
        x, y = batches[j]
        c1 = tree.sub(c1, hessian_vector(model, params, x, y, last, hvp_step))
    return Expansion(gbar, inner, Taylor(last, c1))


# --------------------------------------------------------------------------------------
# expected updates: AvgGrad and AvgGradInner
# --------------------------------------------------------------------------------------
class Moments(NamedTuple):
    """A task's ``avg_grad`` (``AvgGrad = E[gbar_1]``) and ``avg_grad_inner`` (``AvgGradInner = E[Hbar_2
    gbar_1]``)."""
    avg_grad: dict  # AvgGrad = E[gbar_1]
    avg_grad_inner: dict | None  # AvgGradInner = E[Hbar_2 gbar_1] (None with one mini-batch)


def task_moments(model, params, batches, hvp_step: float | None = None) -> Moments:
    """AvgGrad and AvgGradInner of a task, the expectation over a uniformly random order of its ``k >= 2`` batches.

    Under a random order, ``gbar_1`` is any batch's gradient and ``(Hbar_2, gbar_1)`` any ordered
    pair of distinct batches: ``AvgGrad = mean_i gbar_i`` and
    ``AvgGradInner = mean_{i != j} Hbar_i gbar_j = sum_i Hbar_i (S - gbar_i) / (k (k - 1))``,
    ``S = sum_j gbar_j`` (``k`` Hessian-vector products). Task-batched inputs give per-task moments.
    With one mini-batch there is no pair to average over: AvgGradInner is then ``None`` (every
    expected update multiplies it by zero at ``k = 1``).
    """
    k = len(batches)
    if k < 1:
        raise ValueError("a task needs at least one mini-batch")
    gbar = [model.loss_and_grad(params, x, y)[1] for x, y in batches]
    if k == 1:
        return Moments(gbar[0], None)
    total = _sum(gbar)
    inner = _sum([hessian_vector(model, params, x, y, tree.sub(total, g), hvp_step)
                  for (x, y), g in zip(batches, gbar, strict=True)])
    return Moments(tree.scale(total, 1.0 / k), tree.scale(inner, 1.0 / (k * (k - 1))))


def _stack_tasks(tasks):
    return stack_tasks([list(t) for t in tasks])


def estimate_moments(model, params, tasks, hvp_step: float | None = None) -> Moments:
    """Monte-Carlo AvgGrad and AvgGradInner at single-task ``params`` over sampled ``tasks``.

    ``tasks``: a list of tasks, each a list of ``k`` single-task mini-batches ``(x, y)`` of one
    shape; all tasks run at once on the task axis. Returns the means over tasks of
    :func:`task_moments` (unbiased estimates of the expectations over the task distribution).
    """
    steps = _stack_tasks(tasks)
    per_task = task_moments(model, tree.broadcast(params, len(tasks)), steps, hvp_step)
    inner = None if per_task.avg_grad_inner is None else tree.mean_tasks(per_task.avg_grad_inner)
    return Moments(tree.mean_tasks(per_task.avg_grad), inner)


def update_coefficients(algorithm: str, k: int) -> tuple[float, float]:
    """``(a, b)`` with ``E[g] = a AvgGrad - b alpha AvgGradInner + O(alpha^2)`` after ``k`` mini-batches (Section
    5.1)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if algorithm == "maml":
        return 1.0, 2.0 * (k - 1)
    if algorithm == "fomaml":
        return 1.0, float(k - 1)
    if algorithm == "reptile":
        return float(k), 0.5 * k * (k - 1)
    raise ValueError(f"unknown algorithm {algorithm!r}; expected 'maml', 'fomaml' or 'reptile'")


def combination_coefficients(weights: Sequence[float]) -> tuple[float, float]:
    """``(a, b)`` for ``sum_i w_i g_i``: ``a = sum_i w_i``, ``b = sum_i (i - 1) w_i`` (``i`` from 1)."""
    w = [float(v) for v in weights]
    return sum(w), sum(i * v for i, v in enumerate(w))


def expected_update(moments: Moments, coefficients: tuple[float, float], alpha: float):
    """``a AvgGrad - b alpha AvgGradInner``: the first-order prediction of an expected meta-gradient."""
    a, b = coefficients
    out = tree.scale(moments.avg_grad, a)
    if b == 0:
        return out
    if moments.avg_grad_inner is None:
        raise ValueError("this update needs AvgGradInner, which takes at least 2 mini-batches")
    return tree.axpy(-b * alpha, moments.avg_grad_inner, out)


def all_orders(batches) -> list[list]:
    """The ``k!`` orderings of ``k`` mini-batches (for exact expectations over the order)."""
    return [list(p) for p in itertools.permutations(batches)]


# --------------------------------------------------------------------------------------
# the inner-product identity: AvgGradInner = (1/2) d/dphi E[gbar_1 . gbar_2]
# --------------------------------------------------------------------------------------
def gradient_inner_product(model, params, batches):
    """``mean_{i != j} gbar_i . gbar_j``: ``E[gbar_1 . gbar_2]`` under a random order of the batches (per task)."""
    k = len(batches)
    if k < 2:
        raise ValueError(f"the inner product needs at least 2 mini-batches, got {k}")
    gbar = [model.loss_and_grad(params, x, y)[1] for x, y in batches]
    total = _sum(gbar)
    per_task = batches[0][0].ndim == len(model.input_shape) + 2
    squares = sum(tree.dot(g, g, per_task=per_task) for g in gbar)
    return (tree.dot(total, total, per_task=per_task) - squares) / (k * (k - 1))


def directional_derivative(fn, params, direction, step: float | None = None):
    """``(fn(phi + h d) - fn(phi - h d)) / (2 h)`` with ``h = step * (1 + |phi|) / |d|``.

    ``step`` defaults to the cube root of the dtype's machine epsilon (the truncation/round-off
    balance of a central difference); exact up to round-off where ``fn`` is quadratic.
    ``fn`` maps single-task parameters to a scalar; ``params`` and ``direction`` are single-task trees.
    """
    leaf = next(iter(params.values()))
    c = default_step(leaf.dtype) if step is None else step
    dnorm = float(tree.norm(direction))
    if dnorm == 0.0:
        return 0.0
    h = c * (1.0 + float(tree.norm(params))) / dnorm
    return (float(fn(tree.axpy(h, direction, params))) - float(fn(tree.axpy(-h, direction, params)))) / (2.0 * h)


# --------------------------------------------------------------------------------------
# guards and scales for numerical checks on networks
# --------------------------------------------------------------------------------------
def relu_pattern(model, params, x) -> np.ndarray | None:
    """Which ReLU inputs are positive, over every unit of every ReLU layer of a Sequential model.

    Host booleans ``(units,)`` for single-task inputs, ``(T, units)`` for task-batched ones;
    ``None`` for models without ReLU layers. Two points with the same pattern lie in one smooth
    piece of the network's loss on that batch (barring a unit that crosses its kink and back
    between them), where Taylor expansions and difference quotients mean what they say.
    """
    relu = {name for name, layer in getattr(model, "layers", ()) if isinstance(layer, ReLU)}
    if not relu:
        return None
    single = x.ndim == len(model.input_shape) + 1
    if single:
        params, x = tree.broadcast(params, 1), x[None]
    masks = []
    for lname, layer in model.layers:
        local = {k.split("/", 1)[1]: v for k, v in params.items() if k.startswith(lname + "/")}
        if lname in relu:
            masks.append(np.asarray(x > 0).reshape(x.shape[0], -1))
        x, _ = layer.forward(local, x)
    out = np.concatenate(masks, axis=1)
    return out[0] if single else out


def hessian_norm(model, params, batches, iters: int = 20, rng: np.random.Generator | None = None,
                 hvp_step=None) -> float:
    """Largest ``|eigenvalue|`` of the Hessians ``L_i''(params)`` over the batches, by power iteration (single-task)."""
    rng = np.random.default_rng(0) if rng is None else rng
    best = 0.0
    for x, y in batches:
        v = tree.map(lambda p: rng.standard_normal(p.shape).astype(p.dtype), params)
        lam = 0.0
        for _ in range(iters):
            nv = float(tree.norm(v))
            if nv == 0.0:
                break
            v = tree.scale(v, 1.0 / nv)
            hv = hessian_vector(model, params, x, y, v, hvp_step)
            lam = float(tree.norm(hv))
            v = hv
        best = max(best, lam)
    return best


# --------------------------------------------------------------------------------------
# Section 5.2: the squared distance to the tasks' solution sets
# --------------------------------------------------------------------------------------
class AffineSet(NamedTuple):
    """``{phi : X phi = y}``: a member ``point`` and the orthogonal projector onto its normal space (the row space
    of ``X``)."""

    point: np.ndarray
    projector: np.ndarray

    def distance(self, phi) -> float:
        """Euclidean distance from ``phi`` to the set: ``|P (phi - point)|``."""
        return float(np.linalg.norm(self.projector @ (np.asarray(phi) - self.point)))

    def nearest(self, phi) -> np.ndarray:
        """The set's closest point to ``phi``: ``phi - P (phi - point)``."""
        phi = np.asarray(phi)
        return phi - self.projector @ (phi - self.point)


def solution_set(features, targets, rtol: float = 1e-9) -> AffineSet:
    """The solutions of the linear system ``features @ phi = targets`` (a task's zero-loss set in least squares)."""
    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64).reshape(-1)
    pinv = np.linalg.pinv(X)
    point = pinv @ y
    if np.linalg.norm(X @ point - y) > rtol * (1.0 + np.linalg.norm(y)) * max(1.0, np.linalg.norm(X)):
        raise ValueError("the linear system has no solution: the task's loss has no zero")
    return AffineSet(point, pinv @ X)


def mean_squared_distance(phi, sets: Sequence[AffineSet]) -> float:
    """The paper's Section 5.2 objective ``mean_tau (1/2) D(phi, W_tau)^2``."""
    return float(np.mean([0.5 * s.distance(phi) ** 2 for s in sets]))


def closest_point(sets: Sequence[AffineSet]) -> np.ndarray:
    """The minimizer of :func:`mean_squared_distance`: ``phi`` with ``mean_tau P_tau (phi - point_tau) = 0``."""
    P = np.mean([s.projector for s in sets], axis=0)
    rhs = np.mean([s.projector @ s.point for s in sets], axis=0)
    return _solve_unique(P, rhs, "the solution sets' normal spaces do not span the parameter space: no unique "
                                 "minimizer")


def reptile_fixed_point(hessians, points, alpha: float, k: int | None) -> np.ndarray:
    """Where Reptile with ``k`` full-batch inner SGD steps stops moving, on quadratic tasks.

    Task ``tau`` has loss Hessian ``A_tau`` and a minimizer ``s_tau`` (``points``); its inner loop
    maps ``phi`` to ``s + (I - alpha A)^k (phi - s)``, so Reptile's expected update vanishes where
    ``mean_tau M_tau (phi - s_tau) = 0``, ``M_tau = I - (I - alpha A_tau)^k``. As ``k -> infinity``
    (``k=None``; needs ``0 < alpha lambda < 2`` on every nonzero eigenvalue) ``M_tau`` tends to the
    projector onto ``A_tau``'s range, and the fixed point to :func:`closest_point` of the tasks'
    minimizer sets (Section 5.2).
    """
    Ms = []
    for A in hessians:
        A = np.asarray(A, dtype=np.float64)
        n = A.shape[0]
        if k is None:
            w, V = np.linalg.eigh(0.5 * (A + A.T))
            tol = max(n, 1) * np.finfo(np.float64).eps * max(1.0, float(np.abs(w).max(initial=0.0)))
            nonzero = np.abs(w) > tol
            if np.any(np.abs(1.0 - alpha * w[nonzero]) >= 1.0):
                raise ValueError("the inner loop diverges or stalls: alpha times an eigenvalue is outside (0, 2)")
            Ms.append(V[:, nonzero] @ V[:, nonzero].T)
        else:
            Ms.append(np.eye(n) - np.linalg.matrix_power(np.eye(n) - alpha * A, k))
    M = np.mean(Ms, axis=0)
    rhs = np.mean([m @ np.asarray(s, dtype=np.float64) for m, s in zip(Ms, points, strict=True)], axis=0)
    return _solve_unique(M, rhs, "Reptile's fixed point is not unique here")


def _solve_unique(M, rhs, message: str) -> np.ndarray:
    w = np.linalg.svd(M, compute_uv=False)
    if w.min() <= 1e-12 * max(1.0, w.max()):
        raise ValueError(message)
    return np.linalg.solve(M, rhs)
