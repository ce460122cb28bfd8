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
import time
from pathlib import Path

import numpy as np

from fometa import atomic
from fometa import config as C
from fometa import graph, meta, optim, tree
from fometa import train as T
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


# ------------------------------------------------------------------------------------------
# the group on disk
# ------------------------------------------------------------------------------------------
def run_name(seed: int) -> str:
    """The folder of seed ``seed``'s run inside its group's folder."""
    return f"seed{seed}"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2,3"`` or ``"0-3"`` (or a mix, ``"0-2,7"``) as a list of distinct non-negative seeds."""
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        try:
            values = range(int(lo), int(hi) + 1) if dash else [int(part)]
        except ValueError:
            raise ValueError(f"seeds are non-negative integers or ranges a-b separated by commas, got {text!r}") from None
        if dash and int(hi) < int(lo):
            raise ValueError(f"empty seed range {part!r}")
        seeds.extend(values)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {text!r}")
    return seeds


class SeedGroup:
    """The folder of a group of runs: ``seeds.json`` (``{"seeds": [...], "runs": [...]}``) and one run folder per seed."""

    def __init__(self, path):
        self.path = Path(path)

    @property
    def file(self) -> Path:
        return self.path / GROUP_FILE

    def holds_group(self) -> bool:
        return self.file.exists()

    def run_dirs(self, seeds) -> list[Path]:
        return [self.path / run_name(s) for s in seeds]

    def write(self, seeds) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        record = {"seeds": list(seeds), "runs": [run_name(s) for s in seeds]}
        atomic.write_text(self.file, json.dumps(record, indent=2) + "\n")

    def read(self) -> list[tuple[int, Path]]:
        """``[(seed, run folder), ...]``; :class:`~fometa.config.ConfigError` for an unreadable file."""
        try:
            record = json.loads(self.file.read_text())
            pairs = [(int(s), self.path / str(r)) for s, r in zip(record["seeds"], record["runs"], strict=True)]
        except OSError as exc:
            raise C.ConfigError(f"{self.file}: cannot read the group of seeds: {exc.strerror or exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise C.ConfigError(f"{self.file}: not a valid group of seeds ({exc})") from None
        if not pairs:
            raise C.ConfigError(f"{self.file}: names no runs")
        return pairs


def check_group(cfgs) -> None:
    """Raise :class:`~fometa.config.ConfigError` unless the configurations differ in their seed only."""
    for cfg in cfgs[1:]:
        differences = C.diff(cfgs[0], cfg, ignore={"seed"})
        if differences:
            raise C.ConfigError("the runs of a group must differ only in their seed; "
                                + "; ".join(f"{n}: {a!r} vs {b!r}" for n, a, b in differences))
    seeds = [c.seed for c in cfgs]
    if len(set(seeds)) != len(seeds):
        raise C.ConfigError(f"the runs of a group need distinct seeds, got {seeds}")


# ------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------
def _mean_metrics(members) -> dict:
    """The mean over the runs of each metric in their latest log records (for the progress bar)."""
    keys = {k for m in members for k in m.last if k.endswith(("accuracy", "mse"))}
    return {"mean_" + k.replace("accuracy", "acc"): float(np.mean([m.last[k] for m in members if k in m.last]))
            for k in sorted(keys)}


def train_group(cfgs, run_dirs, splits=None, *, resumes=None, progress: bool = True, stream=None,
                handle_signals: bool = True, stop_at: int | None = None) -> list:
    """Meta-train the runs ``cfgs`` (differing only in their seed) together, one folder each.

    As :func:`fometa.train.train` for each run (same logs, checkpoints, stopping and resuming;
    ``resumes[r]`` a checkpoint of run ``r`` or ``None``), but each meta-iteration is one
    :func:`step` of all runs. Runs resumed from different iterations are fine: the runs behind
    step (together) until they catch up. ``seconds`` in logs and checkpoints is the group's wall
    time (each run's share is not separable). Returns a
    :class:`~fometa.train.TrainResult` per run; raises :class:`~fometa.train.TrainingError`
    naming the seed on a non-finite loss (every run keeps its last checkpoint).
    """
    cfgs = list(cfgs)
    run_dirs = [Path(d) for d in run_dirs]
    resumes = list(resumes) if resumes is not None else [None] * len(cfgs)
    if not (len(cfgs) == len(run_dirs) == len(resumes)) or not cfgs:
        raise ValueError(f"{len(cfgs)} configurations, {len(run_dirs)} run folders, {len(resumes)} checkpoints")
    check_group(cfgs)
    cfg = cfgs[0]
    if splits is None:
        splits = T.load_splits(cfg.data)
    T.check_data(cfg, splits)
    learner = T.build_learner(cfg)
    group_step = graph.runner(lambda states, tasks: step(learner, states, tasks), learner.backend, cfg.graph)
    members = [T.RunProgress(c, T.RunFolder(d), T.make_problem(c, splits), learner, r)
               for c, d, r in zip(cfgs, run_dirs, resumes)]
    limit = cfg.meta_iters if stop_at is None else min(stop_at, cfg.meta_iters)
    start = time.perf_counter()

    def elapsed():
        return time.perf_counter() - start

    def results(status_of, signal_name=""):
        return [T.TrainResult(status_of(m), m.state.iteration, m.extra(elapsed())["seconds"], m.last,
                              signal_name if status_of(m) == "interrupted" else "") for m in members]

    if all(m.state.iteration >= cfg.meta_iters for m in members):
        return [T.TrainResult("already finished", m.state.iteration, m.seconds0, m.last) for m in members]
    first = min(m.state.iteration for m in members)
    bar = ProgressBar(cfg.meta_iters, initial=first, label=f"meta-iteration ({len(members)} seeds)", stream=stream,
                      enabled=progress)
    stops = T.StopSignals() if handle_signals else contextlib.nullcontext(T.StopSignals())
    with stops as stop:
        for m in members:
            if m.state.iteration == 0 and cfg.eval_interval:
                m.log(elapsed())
        bar.update(first, force=True)
        while True:
            behind = [m for m in members if m.state.iteration < limit]
            if not behind:
                break
            lo = min(m.state.iteration for m in behind)
            active = [m for m in behind if m.state.iteration == lo]
            tasks = [m.problem.sample(learner, m.rng) for m in active]
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked just below
                new_states, infos = group_step([m.state for m in active], tasks)
            for m, new, info in zip(active, new_states, infos):
                if not T._finite(info, new.params):
                    bar.close()
                    raise T.TrainingError(
                        f"seed {m.cfg.seed} ({m.run.path}): non-finite loss or parameters at meta-iteration "
                        f"{new.iteration} (first inner loss {info['loss_first']:.4g}, last {info['loss_last']:.4g}); "
                        f"the group stopped and for this run {m.kept()}, as are the other runs' last checkpoints. "
                        "A smaller inner learning rate or meta-step may help.")
            for m, new, info in zip(active, new_states, infos):
                m.advance(new, info)
                it = new.iteration
                if cfg.eval_interval and (it % cfg.eval_interval == 0 or it == cfg.meta_iters):
                    m.log(elapsed())
                    bar.set(**_mean_metrics(members))
                if it == cfg.meta_iters or it == stop_at or (cfg.checkpoint_every and it % cfg.checkpoint_every == 0):
                    m.checkpoint(elapsed())
            bar.update(min(m.state.iteration for m in members))
            if stop.signal is not None:
                for m in members:
                    if m.last_ckpt != m.state.iteration and m.state.iteration > 0:
                        m.checkpoint(elapsed())
                bar.close()
                return results(lambda m: "finished" if m.state.iteration >= cfg.meta_iters else "interrupted",
                               stop.name)
    bar.close()
    return results(lambda m: "finished" if m.state.iteration >= cfg.meta_iters else "stopped")
