"""Meta-algorithms: Reptile, FOMAML, the paper's inner-gradient combinations, and MAML.

Notation (paper, Section 5): ``k`` inner steps on mini-batch losses ``L_1..L_k`` starting at
``phi_1 = phi``; step ``i`` moves ``phi_{i+1} = phi_i - lr * u_i``, where ``u_i`` is the step's
*direction in gradient units* (``u_i = g_i = L_i'(phi_i)`` for SGD; Adam's preconditioned
gradient otherwise). Each algorithm turns one task's inner loop into a *pseudo-gradient* ``G``,
in the same units:

* Reptile: ``G = (phi - phi_tilde) / lr = sum_i u_i`` (``phi_tilde = phi_{k+1}``);
* FOMAML: ``G = u_k``, the last step's direction (optionally on a separate final mini-batch);
* :class:`Combination`: ``G = sum_i w_i u_i`` (all ones = Reptile, last only = FOMAML, 1/k = average);
* MAML: ``G = (I - P_1 H_1) ... (I - P_{k-1} H_{k-1}) L_k'(phi_k)`` with ``H_j = L_j''(phi_j)`` and
  ``P_j`` the optimizer's step map (``lr * I`` for SGD, so ``G = prod_j (I - lr L_j''(phi_j)) g_k``;
  for Adam the diagonal preconditioner with its second moment held fixed). Hessian-vector products by
  central differences (:mod:`fometa.hvp`).

The outer step averages ``G`` over the meta-batch and applies an outer optimizer:
:class:`Interpolate` is the paper's ``phi <- phi + eps (mean_i(phi_tilde_i) - phi) = phi - eps * lr * G``
with ``eps`` annealed linearly; :class:`OuterAdam` runs Adam on ``G``.

A meta-batch runs *serially* (one task after another on the task axis of length 1, the inner
optimizer's state flowing from task to task under the ``carry`` policy: the reference's behaviour)
or *task-batched* (all tasks in one pass on the task axis; under ``carry`` the next iteration
starts from the mean of the tasks' final states). Under ``reset`` every task starts from a fresh
state, and the two modes compute the same update.

One meta-iteration is two halves. A *provider* runs the meta-batch's inner loops and returns,
per task and in task order, ``G_i``, the task's final inner state ``s_i`` and its inner losses
(:class:`TaskResults`); :meth:`MetaLearner.task_results` is the provider of one process.
:meth:`MetaLearner.apply` is the outer step, written once: it reduces the per-task results in
task order (``G = mean_i G_i``; the carried state ``mean_i s_i``, or the last task's when
serial) and applies the outer optimizer. Other ways of running are other providers of the same
per-task results: several seeds on one task axis (:mod:`fometa.seeds`) and the tasks of a
meta-batch split over MPI processes (:mod:`fometa.distributed`); the numbers each task gets do
not depend on its company, so every provider gives the outer step the same input.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from fometa import optim, tree
from fometa.backends import get_backend
from fometa.config import ALGORITHMS, InnerConfig, OuterConfig
from fometa.hvp import hvp
from fometa.inner import Trajectory, adapt  # noqa: F401 - Trajectory re-exported
from fometa.tasks import stack_tasks, training_batches


# --------------------------------------------------------------------------------------
# algorithms: each maps (phi, the task's inner mini-batches) to a pseudo-gradient G
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reptile:
    """``G = (phi - phi_tilde) / lr``: the whole inner loop's displacement (Algorithm 1/2)."""

    name = "reptile"
    tail_shots = None

    def pseudo_gradient(self, model, params, steps, opt, state):
        """Run the inner loop ``steps`` from ``params`` with ``opt`` (state ``state``); return ``(G, final inner
        state, losses (k, T))`` with ``G = (phi - phi_tilde) / lr``."""
        phi_tilde, state, traj = adapt(model, params, steps, opt, state)
        return tree.scale(tree.sub(params, phi_tilde), 1.0 / opt.step_size(state)), state, traj.losses


@dataclass(frozen=True)
class Combination:
    """``G = sum_i w_i u_i`` over the ``k = len(weights)`` inner step directions (paper, Section 6)."""

    weights: tuple[float, ...]
    tail_shots: int | None = None
    name: str = "combination"

    def pseudo_gradient(self, model, params, steps, opt, state):
        """Run the inner loop ``steps`` from ``params``; return ``(G, final inner state, losses (k, T))`` with
        ``G = sum_i w_i u_i``."""
        if len(steps) != len(self.weights):
            raise ValueError(f"{len(self.weights)} weights for {len(steps)} inner steps")
        _, state, traj = adapt(model, params, steps, opt, state, keep=True)
        g = None
        for w, u in zip(self.weights, traj.directions, strict=True):
            if w != 0:
                g = tree.scale(u, w) if g is None else tree.axpy(w, u, g)
        return (g if g is not None else tree.zeros_like(params)), state, traj.losses


@dataclass(frozen=True)
class FOMAML:
    """``G = u_k``: the last inner step's direction (``tail_shots``: a separate final mini-batch)."""

    tail_shots: int | None = None
    name = "fomaml"

    def pseudo_gradient(self, model, params, steps, opt, state):
        """Run the inner loop ``steps`` from ``params``; return ``(G, final inner state, losses (k, T))`` with
        ``G = u_k``, the last step's direction."""
        phi_k, state, traj = adapt(model, params, steps[:-1], opt, state)
        phi_next, state, last = adapt(model, phi_k, steps[-1:], opt, state)
        return tree.scale(tree.sub(phi_k, phi_next), 1.0 / opt.step_size(state)), state, traj.losses + last.losses


@dataclass(frozen=True)
class MAML:
    """Second-order MAML: back-propagate ``L_k'(phi_k)`` through the first ``k - 1`` inner steps.

    Each step back multiplies by ``(I - H_j P_j)`` (``H_j`` the Hessian of ``L_j`` at ``phi_j``,
    ``P_j`` the optimizer's step map), one Hessian-vector product per step. The ``k``-th mini-batch
    is the held-out loss; no step is taken on it (the inner state advances ``k - 1`` steps).
    ``hvp_step`` overrides the finite-difference scale of :func:`fometa.hvp.hvp`.
    """

    tail_shots: int | None = None
    hvp_step: float | None = None
    name = "maml"

    def pseudo_gradient(self, model, params, steps, opt, state):
        """Run the inner loop ``steps`` from ``params``; return ``(G, final inner state, losses (k, T))`` with
        MAML's ``G``, back-propagated through the inner steps by Hessian-vector products."""
        _, state, traj = adapt(model, params, steps[:-1], opt, state, keep=True)
        x_k, y_k = steps[-1]
        loss_k, v = model.loss_and_grad(traj.params[-1], x_k, y_k)
        for j in range(len(steps) - 2, -1, -1):
            x, y = steps[j]
            pv = opt.precondition(traj.states[j], v)
            v = tree.sub(v, hvp(model, traj.params[j], x, y, pv, step=self.hvp_step))
        return v, state, traj.losses + [loss_k]


def make_algorithm(name: str, *, tail_shots: int | None = None, weights: Sequence[float] | None = None):
    """The algorithm called ``name``: one of :data:`~fometa.config.ALGORITHMS` (``outer.algorithm``'s
    values), or ``"combination"`` with ``weights``."""
    if name == "reptile":
        if tail_shots is not None:
            raise ValueError("tail_shots applies to fomaml/maml, not reptile")
        return Reptile()
    if name == "fomaml":
        return FOMAML(tail_shots)
    if name == "maml":
        return MAML(tail_shots)
    if name == "combination":
        if not weights:
            raise ValueError("the combination algorithm needs weights")
        return Combination(tuple(float(w) for w in weights), tail_shots)
    raise ValueError(f"unknown algorithm {name!r}; expected one of {ALGORITHMS + ('combination',)}")


# --------------------------------------------------------------------------------------
# outer optimizers, applied to the meta-batch mean of G
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interpolate:
    """``phi <- phi - eps_t * scale * G`` with ``eps_t`` linear from ``meta_step`` to ``meta_step_final``.

    With ``scale`` the inner learning rate and ``G`` Reptile's, this is the paper's
    ``phi + eps_t (mean(phi_tilde) - phi)``: ``eps = 0`` keeps ``phi``, ``eps = 1`` gives the
    adapted weights.
    """

    meta_step: float = 1.0
    meta_step_final: float = 0.0
    meta_iters: int = 1

    def init(self, params):
        """The (empty) outer state: the schedule needs none."""
        return optim.SGDState()

    def step_size(self, iteration: int) -> float:
        """The meta-step ``eps_t`` at ``iteration``."""
        return optim.LinearSchedule(self.meta_step, self.meta_step_final, self.meta_iters)(iteration)

    def update(self, g, state, iteration: int, scale: float):
        """``(update, state)``: ``-eps_t * scale * g``, ``eps_t`` the meta-step at ``iteration`` (``scale`` is
        the inner step size turning ``G`` back into a displacement)."""
        return tree.scale(g, -self.step_size(iteration) * scale), state


@dataclass(frozen=True)
class OuterAdam:
    """Adam on the pseudo-gradient (``lr`` in parameter units per step)."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def _adam(self):
        return optim.Adam(self.lr, self.beta1, self.beta2, self.eps)

    def init(self, params):
        """Adam's zero state for ``params``."""
        return self._adam().init(params)

    def step_size(self, iteration: int) -> None:
        """``None``: Adam has no one meta-step (each parameter's step is scaled by its own moments)."""
        return None

    def update(self, g, state, iteration: int, scale: float):
        """``(update, state)``: one Adam step on the pseudo-gradient ``g`` (``iteration`` and ``scale`` are
        unused)."""
        return self._adam().update(g, state)


# --------------------------------------------------------------------------------------
# the meta-learner: sampling, the inner-state policy, serial or task-batched meta-batches
# --------------------------------------------------------------------------------------
class MetaState(NamedTuple):
    """The meta-learner's state: the initialization ``params`` (``phi``), the carried ``inner_state`` and the
    ``outer_state`` (single-task), and the ``iteration``."""
    params: dict  # phi, single-task
    inner_state: object  # the inner optimizer's carried state (single-task)
    outer_state: object
    iteration: int


class TaskResults(NamedTuple):
    """What a provider hands the outer step: per-task results of a meta-batch, in task order."""

    g: dict  # G_i of each task: leaves (T, ...)
    inner: object  # each task's final inner-optimizer state (task-batched, T tasks)
    losses: np.ndarray  # the inner losses L_1 .. L_k of each task, host (k, T)


@dataclass
class MetaLearner:
    """Meta-training of ``model``'s initialization with one algorithm, inner and outer optimizer.

    The run's :class:`~fometa.config.InnerConfig` (``inner``) says how a training task is drawn
    (``shots`` examples of each of the model's classes, ``iters`` mini-batches of ``batch``) and
    whether the inner state is carried (``state_policy``); its :class:`~fometa.config.OuterConfig`
    (``outer``) how many tasks a meta-batch has and whether they run in one pass (``batched``).
    ``inner_opt`` and ``outer_opt`` are the optimizers built from them (:mod:`fometa.build`).
    """

    model: Any
    algorithm: Any
    inner_opt: Any
    outer_opt: Any
    inner: InnerConfig = field(default_factory=InnerConfig)
    outer: OuterConfig = field(default_factory=OuterConfig)
    backend: Any = None

    def __post_init__(self):
        self.backend = get_backend(self.backend)

    def init(self, params, inner_state=None, outer_state=None, iteration: int = 0) -> MetaState:
        """The meta-state on the learner's backend for the initialization ``params``: at iteration 0 with
        fresh inner and outer optimizer states, or with the states given (a checkpoint's, on the host) at
        ``iteration``."""
        be = self.backend
        params = tree.to_backend(params, be)
        inner = self.inner_opt.init(params) if inner_state is None else tree.to_backend(inner_state, be)
        outer = self.outer_opt.init(params) if outer_state is None else tree.to_backend(outer_state, be)
        return MetaState(params, inner, outer, iteration)

    def sample(self, ds, rng: np.random.Generator):
        """Draw the meta-batch: a list of ``outer.meta_batch`` tasks, each a list of inner ``(x, y)`` steps, of as
        many classes as the model has outputs."""
        c = self.inner
        return [
            training_batches(
                ds, rng, ways=self.model.output_shape[-1], shots=c.shots, batch=c.batch, iters=c.iters,
                replacement=c.replacement, tail_shots=self.algorithm.tail_shots,
            )
            for _ in range(self.outer.meta_batch)
        ]

    def to_backend(self, steps):
        """Host ``(x, y)`` steps as arrays of this learner's backend."""
        be = self.backend
        return [(be.asarray(x), be.asarray(y)) for x, y in steps]

    def start_state(self, state: MetaState, tasks: int):
        """The inner state ``tasks`` tasks start from: the carried one, or a fresh one under ``reset``."""
        single = state.inner_state if self.inner.state_policy == "carry" else self.inner_opt.init(state.params)
        return optim.state_broadcast(single, tasks)

    def run_tasks(self, phi, steps, inner):
        """The algorithm on task-batched ``phi``, ``steps`` and start state ``inner``: ``(G_i, s_i, losses (k, T))``."""
        g, inner, losses = self.algorithm.pseudo_gradient(self.model, phi, steps, self.inner_opt, inner)
        return g, inner, np.stack([self.backend.to_host(loss) for loss in losses])

    def task_results(self, state: MetaState, tasks) -> TaskResults:
        """The provider of one process: every task of the meta-batch ``tasks`` adapted from ``state``.

        Task-batched, all tasks go through one pass; serially, task ``i`` starts from the state
        task ``i - 1`` left (under ``carry``), so the tasks run one after another.
        """
        if self.outer.batched:
            n = len(tasks)
            return TaskResults(*self.run_tasks(tree.broadcast(state.params, n), self.to_backend(stack_tasks(tasks)),
                                               self.start_state(state, n)))
        phi, carried, parts = tree.broadcast(state.params, 1), state, []
        for task in tasks:
            g, inner, losses = self.run_tasks(phi, self.to_backend(stack_tasks([task])), self.start_state(carried, 1))
            parts.append(TaskResults(g, inner, losses))
            carried = carried._replace(inner_state=optim.state_mean_tasks(inner))
        return concat_results(parts)

    def reduce(self, state: MetaState, results: TaskResults):
        """``(G, carried inner state)`` of a meta-batch's per-task results, reduced in task order."""
        g = tree.mean_tasks(results.g)
        if self.inner.state_policy == "reset":
            return g, state.inner_state
        if self.outer.batched:
            return g, optim.state_mean_tasks(results.inner)
        last = results.losses.shape[1] - 1  # serial: the state the last task left
        return g, optim.state_mean_tasks(optim.state_take_task(results.inner, slice(last, last + 1)))

    def pseudo_gradient(self, state: MetaState, tasks):
        """Mean pseudo-gradient over the meta-batch ``tasks``, the next inner state, and losses ``(k, T)``."""
        results = self.task_results(state, tasks)
        return (*self.reduce(state, results), results.losses)

    def apply(self, state: MetaState, results: TaskResults) -> tuple[MetaState, dict]:
        """The outer step: reduce a provider's per-task ``results`` and apply the outer optimizer."""
        g, inner = self.reduce(state, results)
        updates, outer = self.outer_opt.update(g, state.outer_state, state.iteration, self.inner_opt.step_size(inner))
        params = tree.add(state.params, updates)
        info = {"loss_first": float(results.losses[0].mean()), "loss_last": float(results.losses[-1].mean())}
        return MetaState(params, inner, outer, state.iteration + 1), info

    def step(self, state: MetaState, tasks) -> tuple[MetaState, dict]:
        """One meta-iteration on the drawn meta-batch ``tasks`` (see :meth:`sample`)."""
        return self.apply(state, self.task_results(state, tasks))

    def train_step(self, state: MetaState, ds, rng: np.random.Generator):
        """One meta-iteration on a meta-batch drawn from the data set ``ds`` with ``rng``: ``(new MetaState,
        info)``, ``info`` holding the mean first and last inner losses."""
        return self.step(state, self.sample(ds, rng))


def concat_results(parts) -> TaskResults:
    """Per-task results of consecutive groups of tasks joined along the task axis, in order."""
    if len(parts) == 1:
        return parts[0]
    return TaskResults(tree.concat_tasks([p.g for p in parts]), optim.state_concat_tasks([p.inner for p in parts]),
                       np.concatenate([p.losses for p in parts], axis=1))


def results_to_host(results: TaskResults) -> TaskResults:
    """``results`` as host arrays (to send to other processes)."""
    return TaskResults(tree.to_host(results.g), optim.state_to_host(results.inner), results.losses)


def results_to_backend(results: TaskResults, backend) -> TaskResults:
    """``results`` on ``backend``."""
    return TaskResults(tree.to_backend(results.g, backend), tree.to_backend(results.inner, backend), results.losses)
