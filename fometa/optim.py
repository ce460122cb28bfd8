"""Optimizers as pure ``init``/``update`` pairs with explicit state (as optax).

``state = opt.init(params)``; ``updates, state = opt.update(grads, state)``;
``params = tree.add(params, updates)``. Parameters may carry a leading task axis ``T``;
per-task quantities in the state (Adam's step count) then have shape ``(T,)`` and every task
is updated independently, exactly as ``T`` separate single-task calls would be.

Besides ``update``, an optimizer has ``precondition(state, vector)``: the linear map that its
last step applied to the gradient, holding the state fixed (``lr * v`` for SGD). Second-order
MAML differentiates through inner steps with it (:mod:`fometa.meta`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from fometa import tree
from fometa.backends import array_module


def _per_task(value, like):
    """Reshape a scalar or ``(T,)`` array so it broadcasts against ``like``'s leaf."""
    if getattr(value, "ndim", 0) == 0:
        return value
    return value.reshape(value.shape + (1,) * (like.ndim - value.ndim))


class SGDState(NamedTuple):
    """Plain SGD's state: none."""


@dataclass(frozen=True)
class SGD:
    """Plain gradient descent: ``update = -lr * g``."""

    lr: float

    def init(self, params) -> SGDState:
        """The (empty) state: plain SGD keeps none."""
        return SGDState()

    def update(self, grads, state: SGDState):
        """``(updates, state)``: ``-lr * grads``."""
        return tree.scale(grads, -self.lr), state

    def precondition(self, state: SGDState, vector):
        """``lr * vector``: the linear map the step applies to a gradient."""
        return tree.scale(vector, self.lr)

    def step_size(self, state) -> float:
        """The scale dividing a parameter change into gradient units (the learning rate)."""
        return self.lr


class AdamState(NamedTuple):
    """Adam's state: the step ``count`` (0-d, or ``(T,)`` for task-batched parameters) and the moment trees
    ``mu`` (unused when ``beta1 = 0``) and ``nu``."""
    count: Any  # steps taken, an array: 0-d, or (T,) for task-batched parameters
    mu: dict  # first moment (all zeros, unused, when beta1 == 0)
    nu: dict  # second moment


@dataclass(frozen=True)
class Adam:
    """Adam as TensorFlow's ``AdamOptimizer`` (Kingma & Ba, Algorithm 1 with epsilon-hat).

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``, ``t += 1``,
    ``update = -lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``.
    The paper's inner loop uses ``beta1 = 0`` (the default here).
    """

    lr: float
    beta1: float = 0.0
    beta2: float = 0.999
    eps: float = 1e-8

    def init(self, params, tasks: int | None = None) -> AdamState:
        """Zero state; ``tasks`` gives a ``(T,)`` step count for task-batched parameters."""
        leaf = next(iter(params.values()))
        xp = array_module(leaf)
        count = xp.zeros(() if tasks is None else (tasks,), dtype=xp.int64)
        return AdamState(count, tree.zeros_like(params), tree.zeros_like(params))

    def lr_t(self, count, xp):
        """The step size ``lr * sqrt(1 - b2^t) / (1 - b1^t)`` after ``count`` steps (float64, per task)."""
        t = count.astype(xp.float64)
        return self.lr * xp.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)

    def update(self, grads, state: AdamState):
        """``(updates, state)``: one Adam step per task on ``grads`` (bias-corrected step size; ``beta1 = 0``
        keeps no first moment)."""
        xp = array_module(next(iter(grads.values())))
        count = state.count + 1
        b1, b2 = self.beta1, self.beta2
        if b1 == 0.0:
            mu = state.mu  # m_t = g_t: no need to keep it
        else:
            mu = tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)

        def second_moment(v, g):  # b2 * v + (1 - b2) * g^2, with one temporary
            out = g * g
            out *= 1 - b2
            prev = v * b2
            out += prev
            return out

        nu = tree.map(second_moment, state.nu, grads)
        lr_t = self.lr_t(count, xp)  # float64, per task
        first = grads if b1 == 0.0 else mu

        def step(m, v):  # -lr_t * m / (sqrt(v) + eps), in the parameters' precision
            out = xp.sqrt(v)
            out += self.eps
            xp.divide(m, out, out=out)
            out *= _per_task(-lr_t, m).astype(m.dtype)
            return out

        return tree.map(step, first, nu), AdamState(count, mu, nu)

    def precondition(self, state: AdamState, vector):
        """``lr_t * v / (sqrt(nu) + eps)`` with the state after the step (``nu`` held fixed)."""
        xp = array_module(next(iter(vector.values())))
        lr_t = self.lr_t(state.count, xp)
        return tree.map(
            lambda x, v: (_per_task(lr_t, x) * x / (xp.sqrt(v) + self.eps)).astype(x.dtype, copy=False),
            vector,
            state.nu,
        )

    def step_size(self, state) -> float:
        """The learning rate ``lr``: the unit that turns a displacement back into gradient units (Reptile's
        ``G``)."""
        return self.lr


def state_mean_tasks(state):
    """Average an optimizer state over its task axis (the ``carry`` policy of task-batched runs)."""
    if isinstance(state, AdamState):
        # every task of a meta-batch took the same number of steps from the same count
        return AdamState(state.count[0], tree.mean_tasks(state.mu), tree.mean_tasks(state.nu))
    return state


def state_broadcast(state, tasks: int):
    """Copy a single-task optimizer state onto ``tasks`` tasks."""
    if isinstance(state, AdamState):
        xp = array_module(state.count)
        return AdamState(
            xp.repeat(xp.asarray(state.count)[None], tasks, axis=0),
            tree.broadcast(state.mu, tasks),
            tree.broadcast(state.nu, tasks),
        )
    return state


def state_take_task(state, index):
    """Task ``index``'s slice of a task-batched optimizer state (SGD's empty state as it is)."""
    if isinstance(state, AdamState):
        return AdamState(state.count[index], tree.take_task(state.mu, index), tree.take_task(state.nu, index))
    return state


def state_concat_tasks(states):
    """Join task-batched optimizer states along their task axis, in order."""
    first = states[0]
    if isinstance(first, AdamState) and len(states) > 1:
        xp = array_module(first.count)
        return AdamState(xp.concatenate([s.count for s in states], axis=0), tree.concat_tasks([s.mu for s in states]),
                         tree.concat_tasks([s.nu for s in states]))
    return first


def state_to_host(state):
    """The state as plain host arrays (for checkpoints and save/restore)."""
    if isinstance(state, AdamState):
        return AdamState(np.asarray(tree.to_host({"c": state.count})["c"]), tree.to_host(state.mu),
                         tree.to_host(state.nu))
    return state


@dataclass(frozen=True)
class LinearSchedule:
    """``value(i) = start + (end - start) * min(i / steps, 1)`` (the paper anneals the meta-step to 0)."""

    start: float
    end: float
    steps: int

    def __call__(self, i: int) -> float:
        frac = min(i / self.steps, 1.0) if self.steps > 0 else 1.0
        return self.start + (self.end - self.start) * frac
