"""Several seeds trained together on the task axis: ``R`` independent runs in one task-batched pass.

Notation as :mod:`fometa.meta`. Runs ``r = 1..R`` differ only in their seed; each has its own
``phi^r``, carried inner state ``s^r``, outer state and ``numpy.random.Generator`` (seeded with
its seed exactly as ``fometa train --seed r`` would be, so its initialization and every task it
draws are the same as that single run's). One meta-iteration:

1. every run draws its meta-batch of ``M`` tasks from its own generator;
2. the ``R * M`` tasks go on one task axis, run ``r``'s at positions ``r*M .. r*M + M - 1``,
   each starting from ``phi^r`` and ``s^r``;
3. one task-batched inner loop (the algorithm's ``pseudo_gradient``) adapts all of them;
4. run ``r``'s ``G^r`` is the mean over its own ``M`` tasks, its inner state carries the mean of
   its own tasks' final states, and its own outer step is applied:
   exactly :meth:`fometa.meta.MetaLearner.step` of run ``r`` alone.

Under ``MetaConfig(batched=False)`` (the reference's serial meta-batch) the inner state flows
from task to task within a run, so the ``M`` tasks of a run cannot share a pass; the runs still
do: ``M`` passes of ``R`` tasks (task ``j`` of every run).

Every kernel computes each task independently of how many tasks share the axis, so on NumPy a
run's parameters are bit for bit those of the same seed trained alone (tested:
``tests/test_seeds.py``). On a GPU the point is speed: ``R`` small runs fill the device better
than one.

On disk (:func:`train_group`) every run is an ordinary run folder (``config.json`` with its own
seed, ``log.jsonl``, ``checkpoint.h5``) that ``fometa eval``, ``fometa plot`` and
``fometa train --resume`` take alone; the group's folder holds them as ``seed<N>/`` and a
``seeds.json`` naming them, so ``fometa train --resume GROUP`` continues all of them together.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from fometa import atomic
from fometa import checkpoint as ckpt_io
from fometa import config as C
from fometa import meta, optim, tree
from fometa.backends import array_module
from fometa.progress import ProgressBar
from fometa.tasks import stack_tasks

__all__ = ["pseudo_gradients", "step", "GROUP_FILE", "run_name", "parse_seeds", "SeedGroup", "train_group"]

GROUP_FILE = "seeds.json"


# ------------------------------------------------------------------------------------------
# one meta-iteration of R runs
# ------------------------------------------------------------------------------------------
def _concat(trees):
    """Join task-batched trees along the task axis."""
    return tree.map(lambda *xs: array_module(xs[0]).concatenate(xs), *trees)


def _concat_states(states):
    """Join task-batched optimizer states (NamedTuples of arrays and trees) along the task axis."""
    first = states[0]
    fields = []
    for i, value in enumerate(first):
        parts = [s[i] for s in states]
        fields.append(_concat(parts) if isinstance(value, dict) else array_module(value).concatenate(parts))
    return type(first)(*fields)


def _start_state(learner, state, tasks: int):
    """Run ``state``'s inner state for ``tasks`` tasks: the carried one, or a fresh one under ``reset``."""
    single = state.inner_state if learner.config.state_policy == "carry" else learner.inner_opt.init(state.params)
    return optim.state_broadcast(single, tasks)


def _on_backend(learner, steps):
    be = learner.backend
    return [(be.asarray(x), be.asarray(y)) for x, y in steps]


def pseudo_gradients(learner: meta.MetaLearner, states, task_lists):
    """For each run: ``(G^r, carried inner state, losses (k, M))`` as ``learner.pseudo_gradient`` of that run alone.

    ``states[r]`` is run ``r``'s :class:`~fometa.meta.MetaState`, ``task_lists[r]`` its meta-batch
    (:meth:`~fometa.meta.MetaLearner.sample`); all runs have the same number of tasks.
    """
    if len(states) != len(task_lists) or not states:
        raise ValueError(f"{len(states)} run states for {len(task_lists)} meta-batches")
    m = {len(tl) for tl in task_lists}
    if len(m) != 1:
        raise ValueError(f"runs disagree on their meta-batch size: {sorted(m)}")
    (m,) = m
    alg, opt, model, be = learner.algorithm, learner.inner_opt, learner.model, learner.backend
    carry = learner.config.state_policy == "carry"
    n = len(states)
    if learner.config.batched:
        steps = _on_backend(learner, stack_tasks([t for tl in task_lists for t in tl]))
        phi = _concat([tree.broadcast(s.params, m) for s in states])
        inner = _concat_states([_start_state(learner, s, m) for s in states])
        g, inner, losses = alg.pseudo_gradient(model, phi, steps, opt, inner)
        losses = [be.to_host(loss) for loss in losses]
        out = []
        for r, s in enumerate(states):
            own = slice(r * m, (r + 1) * m)
            carried = optim.state_mean_tasks(optim.state_take_task(inner, own)) if carry else s.inner_state
            out.append((tree.mean_tasks(tree.take_task(g, own)), carried, np.stack([loss[own] for loss in losses])))
        return out
    # serial meta-batches: task j of every run in one pass, the inner state flowing within each run
    phi = _concat([tree.broadcast(s.params, 1) for s in states])
    carried = [s.inner_state for s in states]
    gs = [[] for _ in range(n)]
    rows = [[] for _ in range(n)]
    for j in range(m):
        steps = _on_backend(learner, stack_tasks([tl[j] for tl in task_lists]))
        inner = _concat_states([_start_state(learner, s._replace(inner_state=c), 1) for s, c in zip(states, carried)])
        g, inner, task_losses = alg.pseudo_gradient(model, phi, steps, opt, inner)
        host = [be.to_host(loss) for loss in task_losses]
        for r in range(n):
            own = slice(r, r + 1)
            gs[r].append(tree.take_task(g, own))
            carried[r] = optim.state_mean_tasks(optim.state_take_task(inner, own))
            rows[r].append([h[r] for h in host])
    out = []
    for r, s in enumerate(states):
        losses = np.stack([np.array(col) for col in zip(*rows[r])])
        out.append((tree.mean_tasks(_concat(gs[r])), carried[r] if carry else s.inner_state, losses))
    return out


def step(learner: meta.MetaLearner, states, task_lists):
    """One meta-iteration of every run: ``(new states, infos)``, each as ``learner.step`` of that run alone."""
    new, infos = [], []
    for s, (g, inner, losses) in zip(states, pseudo_gradients(learner, states, task_lists)):
        updates, outer = learner.outer_opt.update(g, s.outer_state, s.iteration, learner.inner_opt.step_size(inner))
        new.append(meta.MetaState(tree.add(s.params, updates), inner, outer, s.iteration + 1))
        infos.append({"loss_first": float(losses[0].mean()), "loss_last": float(losses[-1].mean())})
    return new, infos
