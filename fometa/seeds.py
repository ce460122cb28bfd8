"""Several seeds trained together on the task axis: ``R`` independent runs in one task-batched pass.

Notation as :mod:`fometa.meta`. Runs ``r = 1..R`` differ only in their seed; each has its own
``phi^r``, carried inner state ``s^r``, outer state and ``numpy.random.Generator`` (seeded with
its seed exactly as ``fometa train --seed r`` would be, so its initialization and every task it
draws are the same as that single run's). One meta-iteration:

1. every run draws its meta-batch of ``M`` tasks from its own generator;
2. the ``R * M`` tasks go on one task axis, run ``r``'s at positions ``r*M .. r*M + M - 1``,
   each starting from ``phi^r`` and ``s^r``;
3. one task-batched inner loop (the algorithm's ``pseudo_gradient``) adapts all of them;
4. run ``r``'s per-task results (its own ``M`` tasks) go to its own outer step,
   :meth:`fometa.meta.MetaLearner.apply`: exactly :meth:`~fometa.meta.MetaLearner.step` of run
   ``r`` alone.

:func:`task_results` is this *provider* of per-task results; the outer step and the training
loop (:func:`fometa.train.train_runs`) are the single run's.

Under ``outer.batched = false`` (the reference's serial meta-batch) the inner state flows
from task to task within a run, so the ``M`` tasks of a run cannot share a pass; the runs still
do: ``M`` passes of ``R`` tasks (task ``j`` of every run).

Every kernel computes each task independently of how many tasks share the axis, so on NumPy a
run's parameters are bit for bit those of the same seed trained alone (tested:
``tests/test_seeds.py``). On a GPU the point is speed: ``R`` small runs fill the device better
than one.

On disk (:func:`train_group`) every run is an ordinary run folder (``config.json`` with its own
seed, ``log.jsonl``, ``checkpoint.h5``) that ``fometa eval``, ``fometa plot`` and
``fometa train --resume`` take alone; the group's folder (:class:`fometa.commands.train.SeedGroup`)
holds them as ``seed<N>/`` and a ``seeds.json`` naming them, so ``fometa train --resume GROUP``
continues all of them together.
"""
from __future__ import annotations

from fometa import meta, optim, tree
from fometa import train as T
from fometa.tasks import stack_tasks

__all__ = ["task_results", "step", "train_group"]

# ------------------------------------------------------------------------------------------
# one meta-iteration of R runs
# ------------------------------------------------------------------------------------------
def task_results(learner: meta.MetaLearner, states, task_lists) -> list:
    """Run ``r``'s :class:`~fometa.meta.TaskResults`, for every run, as ``learner.task_results`` of that run alone.

    ``states[r]`` is run ``r``'s :class:`~fometa.meta.MetaState`, ``task_lists[r]`` its meta-batch
    (:meth:`~fometa.meta.MetaLearner.sample`); all runs have the same number of tasks.
    """
    if len(states) != len(task_lists) or not states:
        raise ValueError(f"{len(states)} run states for {len(task_lists)} meta-batches")
    sizes = {len(tl) for tl in task_lists}
    if len(sizes) != 1:
        raise ValueError(f"runs disagree on their meta-batch size: {sorted(sizes)}")
    (m,) = sizes
    if learner.outer.batched:
        steps = learner.to_backend(stack_tasks([t for tl in task_lists for t in tl]))
        phi = tree.concat_tasks([tree.broadcast(s.params, m) for s in states])
        inner = optim.state_concat_tasks([learner.start_state(s, m) for s in states])
        return _split(learner.run_tasks(phi, steps, inner), len(states), m)
    # serial meta-batches: task j of every run in one pass, the inner state flowing within each run
    phi = tree.concat_tasks([tree.broadcast(s.params, 1) for s in states])
    carried = list(states)
    parts: list[list[meta.TaskResults]] = [[] for _ in states]
    for j in range(m):
        steps = learner.to_backend(stack_tasks([tl[j] for tl in task_lists]))
        inner = optim.state_concat_tasks([learner.start_state(c, 1) for c in carried])
        for r, own in enumerate(_split(learner.run_tasks(phi, steps, inner), len(states), 1)):
            parts[r].append(own)
            carried[r] = carried[r]._replace(inner_state=optim.state_mean_tasks(own.inner))
    return [meta.concat_results(p) for p in parts]


def _split(out, runs: int, m: int) -> list:
    """``(G, states, losses)`` of ``runs * m`` tasks as one :class:`~fometa.meta.TaskResults` per run."""
    g, inner, losses = out
    own = [slice(r * m, (r + 1) * m) for r in range(runs)]
    return [meta.TaskResults(tree.take_task(g, s), optim.state_take_task(inner, s), losses[:, s]) for s in own]


def step(learner: meta.MetaLearner, states, task_lists):
    """One meta-iteration of every run: ``(new states, infos)``, each as ``learner.step`` of that run alone."""
    pairs = [learner.apply(s, r) for s, r in zip(states, task_results(learner, states, task_lists), strict=True)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------
def train_group(cfgs, run_dirs, splits=None, *, resumes=None, options: T.TrainOptions | None = None) -> list:
    """Meta-train the runs ``cfgs`` (differing only in their seed) together, one folder each.

    :func:`fometa.train.train_runs` with :func:`task_results` as the provider: the same logs,
    checkpoints, stopping and resuming as each run alone (``resumes[r]``: a checkpoint of run
    ``r`` or ``None``). Runs resumed from different iterations are fine: the runs behind step
    (together) until they catch up. ``seconds`` in logs and checkpoints is the group's wall time
    (each run's share is not separable). Returns a :class:`~fometa.train.TrainResult` per run;
    raises :class:`~fometa.train.TrainingError` naming the seed on a non-finite loss (every run
    keeps its last checkpoint). The progress bar says how many seeds train unless ``options``
    labels it otherwise.
    """
    return T.train_runs(list(cfgs), run_dirs, splits, resumes=resumes, provider=task_results,
                        options=options or T.TrainOptions())
