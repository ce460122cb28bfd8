"""Meta-training: the one loop, for a single run, a group of seeds, several processes and the sine toy.

:func:`train_runs` runs any number of runs (each a :class:`RunProgress`: its configuration, its
generator, meta-state, log and checkpoints) through the same iterations:

1. every run draws its meta-batch from its own generator (its problem's ``sample``);
2. a *provider* adapts the meta-batches' tasks and returns each run's per-task results
   (:class:`fometa.meta.TaskResults`): :func:`local_task_results` (one process, run after run),
   :func:`fometa.seeds.task_results` (all runs' tasks on one task axis) or
   :func:`fometa.distributed.task_results` (the tasks shared by MPI ranks);
3. each run's outer step, :meth:`fometa.meta.MetaLearner.apply`, the only one there is;
4. logging every ``eval_interval`` iterations, checkpoints every ``checkpoint_every``, and a clean
   stop on SIGINT/SIGTERM or at ``stop_at``.

:func:`train` is one run in one run folder (:mod:`fometa.runfolder`), on every rank of an
``mpiexec`` job. Randomness: one ``numpy.random.Generator`` seeded with ``config.seed`` draws the
initialization and every training task; its state is checkpointed. The few evaluation tasks
logged during training come from their own generators (:func:`fometa.problems.eval_rng`), so a
resumed run computes, bit for bit on NumPy, what an uninterrupted one does.

Stopping: SIGINT or SIGTERM lets the current meta-iteration finish, writes a checkpoint and
returns (``status == "interrupted"``); a second signal stops at once (the previous checkpoint
stays valid: writes are atomic). A non-finite loss or parameter raises :class:`TrainingError`
without touching the last good checkpoint.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fometa import build, distributed, meta, optim, tree
from fometa import checkpoint as ckpt_io
from fometa import config as C
from fometa.problems import make_problem
from fometa.progress import ProgressBar
from fometa.runfolder import RunFolder, code_version
from fometa.signals import StopSignals

__all__ = ["TrainingError", "TrainResult", "Schedule", "RunProgress", "local_task_results", "run_loop",
           "train_runs", "train"]


class TrainingError(Exception):
    """Training cannot go on (a non-finite loss); the message says what happened and what was kept."""


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: ``status`` (finished, interrupted, stopped or already finished), its ``iteration``, its
    training wall time in ``seconds`` over all stretches, the ``last`` log record, the ``signal`` that
    interrupted it, and its final meta-state ``state``."""
    status: str  # "finished", "interrupted" (by a signal), "stopped" (at stop_at) or "already finished"
    iteration: int
    seconds: float  # training wall time over all sessions of the run
    last: dict  # the last log record (empty if none)
    signal: str = ""
    state: object = None  # the run's final meta.MetaState (parameters, optimizer states, iteration)

    def as_dict(self) -> dict:
        """The JSON-plain summary a command prints: status, iteration, seconds, the signal if any, and the last
        log record's accuracies (or sine MSE)."""
        d = {"status": self.status, "iteration": self.iteration, "seconds": round(self.seconds, 3)}
        if self.signal:
            d["signal"] = self.signal
        d.update({k: v for k, v in self.last.items() if k.endswith(("accuracy", "mse"))})
        return d


@dataclass(frozen=True)
class Schedule:
    """How long the loop runs and what it writes when: ``meta_iters``, a log record every
    ``eval_interval`` iterations (0: never), a checkpoint every ``checkpoint_every`` (0: at the end)."""

    meta_iters: int
    eval_interval: int = 0
    checkpoint_every: int = 0

    @classmethod
    def of(cls, cfg: C.RunConfig) -> Schedule:
        """The schedule of the configuration ``cfg``: its meta-iterations, logging and checkpoint cadence."""
        return cls(cfg.meta_iters, cfg.eval_interval, cfg.checkpoint_every)


def _finite(info: dict, params) -> bool:
    if not all(math.isfinite(v) for v in info.values()):
        return False
    return all(bool(np.isfinite(tree.to_host({"p": p})["p"]).all()) for p in params.values())


# ------------------------------------------------------------------------------------------
# one run in flight
# ------------------------------------------------------------------------------------------
class RunProgress:
    """One run in flight: its generator, meta-state and the bookkeeping its log and checkpoints keep.

    Starts from ``resume`` (a checkpoint), from ``start`` (a ``(MetaState, Generator)`` pair made
    by the caller) or from ``cfg.seed`` (the initialization drawn from the run's generator). A run
    folder ``run`` gets the log (cut back to the checkpoint's iteration) and checkpoints; without
    one the records stay in :attr:`records`. ``on_log(record)`` sees every record. Under several
    MPI ranks (``comm``) rank 0 alone writes.
    """

    def __init__(self, cfg: C.RunConfig, run: RunFolder | None, problem, learner, resume=None,
                 comm=distributed.Single(), start=None, on_log=None, label: str = ""):
        self.cfg, self.run, self.problem, self.learner, self.comm = cfg, run, problem, learner, comm
        self.on_log, self.label, self.records = on_log, label, []
        writes = run is not None and comm.is_root
        if writes:
            run.path.mkdir(parents=True, exist_ok=True)
            code_version()  # which fometa trains this stretch: read now, before its files can change
        if resume is not None:
            self.rng = ckpt_io.make_rng(resume.rng_state)
            self.state = build.restore_state(resume, learner.backend)
            extra = dict(resume.extra)
        elif start is not None:
            self.state, self.rng = start
            extra = {}
        else:
            self.rng = np.random.default_rng(cfg.seed)
            self.state = learner.init(learner.model.init(self.rng))
            extra = {}
        if writes:
            run.truncate_log(self.state.iteration if resume is not None else -1)
        self.start_iteration = self.state.iteration
        self.seconds0 = float(extra.get("seconds", 0.0))
        self.loss_sum = dict(extra.get("loss_sum", {}))
        self.loss_count = int(extra.get("loss_count", 0))
        self.last_ckpt = resume.iteration if resume is not None else None
        self.last = ((run.read_log() if run is not None else []) or [{}])[-1]

    def extra(self, elapsed: float) -> dict:
        """What a checkpoint keeps besides the state: wall time so far and the losses not yet logged."""
        return {"seconds": self.seconds0 + elapsed, "loss_sum": self.loss_sum, "loss_count": self.loss_count}

    def advance(self, new_state, info: dict) -> None:
        """Take the meta-iteration's ``new_state`` and add its losses to the next log record's means."""
        self.state = new_state
        for k in ("loss_first", "loss_last"):
            self.loss_sum[k] = self.loss_sum.get(k, 0.0) + info[k]
        self.loss_count += 1

    def log(self, elapsed: float) -> dict:
        """Append the current iteration's record (mean losses, interval metrics, meta-step, seconds)."""
        it, outer = self.state.iteration, self.learner.outer_opt
        rec = {"iteration": it}
        if self.loss_count:
            rec.update({k: v / self.loss_count for k, v in self.loss_sum.items()})
        rec.update(self.problem.interval_metrics(self.learner, self.state, it))
        if isinstance(outer, meta.Interpolate):
            rec["meta_step"] = optim.LinearSchedule(outer.meta_step, outer.meta_step_final, outer.meta_iters)(it)
        rec["seconds"] = round(self.seconds0 + elapsed, 3)
        if self.run is not None and self.comm.is_root:
            self.run.append_log(rec)
        elif self.run is None:
            self.records.append(rec)
        if self.on_log is not None:
            self.on_log(rec)
        self.loss_sum, self.loss_count = {}, 0
        self.last = rec
        return rec

    def checkpoint(self, elapsed: float) -> None:
        """Write the run's checkpoint (on rank 0; after checking that every rank holds the same parameters), with
        ``elapsed`` seconds of this stretch added to the run's wall time."""
        distributed.check_same(self.comm, self.state.params)  # several ranks: all hold the same parameters
        if self.run is not None and self.comm.is_root:  # rank 0 alone writes
            s = self.state
            self.run.save_checkpoint(ckpt_io.Checkpoint(
                params=tree.to_host(s.params), inner_state=optim.state_to_host(s.inner_state),
                outer_state=optim.state_to_host(s.outer_state), rng_state=ckpt_io.rng_state(self.rng),
                iteration=s.iteration, config=C.to_dict(self.cfg), extra=self.extra(elapsed)))
        self.last_ckpt = self.state.iteration

    def record_segment(self, elapsed: float, status: str) -> None:
        """Note in the run folder which iterations this stretch of training ran, and with which fometa."""
        if self.run is not None and self.comm.is_root and self.state.iteration > self.start_iteration:
            self.run.append_segment(self.start_iteration, self.state.iteration, elapsed, status)

    def kept(self) -> str:
        """Which checkpoint survives a failure, for error messages."""
        if self.last_ckpt is None or self.run is None:
            return "no checkpoint had been written yet"
        return f"the last good checkpoint, {self.run.checkpoint_path} at iteration {self.last_ckpt}, is kept"

    def result(self, status: str, elapsed: float, signal: str = "") -> TrainResult:
        """The run's :class:`TrainResult` with ``status`` (and the ``signal`` that interrupted it)."""
        return TrainResult(status, self.state.iteration, self.extra(elapsed)["seconds"], self.last,
                           signal if status == "interrupted" else "", self.state)


# ------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------
def local_task_results(learner: meta.MetaLearner, states, task_lists) -> list:
    """The provider of one process: each run's meta-batch adapted on its own (see the module docstring)."""
    return [learner.task_results(s, t) for s, t in zip(states, task_lists)]


def _check_finite(members, pairs, bar) -> None:
    for m, (new, info) in zip(members, pairs):
        if _finite(info, new.params):
            continue
        bar.close()
        losses = f"(first inner loss {info['loss_first']:.4g}, last {info['loss_last']:.4g})"
        advice = "A smaller inner learning rate or meta-step may help."
        if m.label:
            raise TrainingError(f"{m.label}: non-finite loss or parameters at meta-iteration {new.iteration} {losses}; "
                                f"training stopped and for this run {m.kept()}, as are the other runs' last "
                                f"checkpoints. {advice}")
        what = "loss" if not all(map(math.isfinite, info.values())) else "parameters (after a finite loss)"
        raise TrainingError(f"non-finite {what} at meta-iteration {new.iteration} {losses}; training stopped and "
                            f"{m.kept()}. {advice}")


def run_loop(learner: meta.MetaLearner, members: list, schedule: Schedule, *, provider=local_task_results,
             comm=distributed.Single(), stop_at: int | None = None, progress: bool = True, stream=None,
             handle_signals: bool = True, label: str = "meta-iteration") -> list:
    """Train ``members`` (:class:`RunProgress`, all of one ``learner``) to ``schedule.meta_iters``.

    Each iteration, the runs furthest behind step together (runs resumed from different
    iterations catch up first): ``provider(learner, states, meta-batches)`` gives their per-task
    results and each takes :meth:`~fometa.meta.MetaLearner.apply`. Returns a :class:`TrainResult`
    per member.
    """
    limit = schedule.meta_iters if stop_at is None else min(stop_at, schedule.meta_iters)
    start = time.perf_counter()

    def elapsed():
        return time.perf_counter() - start

    if all(m.state.iteration >= schedule.meta_iters for m in members):
        return [TrainResult("already finished", m.state.iteration, m.seconds0, m.last, state=m.state) for m in members]
    first = min(m.state.iteration for m in members)
    bar = ProgressBar(schedule.meta_iters, initial=first, label=label, stream=stream,
                      enabled=progress and comm.is_root)

    def log(m):
        m.log(elapsed())
        keys = {k for x in members for k in x.last if k.endswith(("accuracy", "mse"))}
        prefix = "mean_" if len(members) > 1 else ""
        bar.set(**{prefix + k.replace("accuracy", "acc"): float(np.mean([x.last[k] for x in members if k in x.last]))
                   for k in sorted(keys)})

    def finish(status_of, signal_name=""):
        bar.close()
        out = []
        for m in members:
            status = status_of(m)
            m.record_segment(elapsed(), status)
            out.append(m.result(status, elapsed(), signal_name))
        return out

    with StopSignals(install=handle_signals) as stop:
        for m in members:
            if m.state.iteration == 0 and schedule.eval_interval:
                log(m)
        bar.update(first, force=True)
        while True:
            behind = [m for m in members if m.state.iteration < limit]
            if not behind:
                break
            lo = min(m.state.iteration for m in behind)
            active = [m for m in behind if m.state.iteration == lo]
            tasks = [m.problem.sample(learner, m.rng) for m in active]
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked just below
                results = provider(learner, [m.state for m in active], tasks)
                pairs = [learner.apply(m.state, r) for m, r in zip(active, results)]
            _check_finite(active, pairs, bar)
            for m, (new, info) in zip(active, pairs):
                m.advance(new, info)
                it = new.iteration
                if schedule.eval_interval and (it % schedule.eval_interval == 0 or it == schedule.meta_iters):
                    log(m)
                if it == schedule.meta_iters or it == stop_at or (
                        schedule.checkpoint_every and it % schedule.checkpoint_every == 0):
                    m.checkpoint(elapsed())
            bar.update(min(m.state.iteration for m in members))
            signal_name = next(filter(None, comm.allgather(stop.name)), "")  # a signal to any rank stops all
            if signal_name:
                for m in members:
                    if m.last_ckpt != m.state.iteration and m.state.iteration > 0:
                        m.checkpoint(elapsed())
                return finish(lambda m: "finished" if m.state.iteration >= schedule.meta_iters else "interrupted",
                              signal_name)
    return finish(lambda m: "finished" if m.state.iteration >= schedule.meta_iters else "stopped")


def train_runs(cfgs, run_dirs, splits=None, *, resumes=None, provider=local_task_results, comm=None,
               progress: bool = True, stream=None, handle_signals: bool = True, stop_at: int | None = None,
               label: str = "meta-iteration") -> list:
    """Meta-train the runs ``cfgs`` (one learner: they may differ in their seed only), each in its folder.

    ``run_dirs[r]`` is run ``r``'s folder (``None``: nothing is written, the log records stay in
    memory); ``resumes[r]`` a checkpoint to continue from or ``None``; ``splits`` the data
    (``None`` loads ``cfgs[0].data``). The folders' ``config.json`` is the caller's to write.
    Returns a :class:`TrainResult` per run, or raises :class:`TrainingError`.
    """
    cfgs = list(cfgs)
    run_dirs = list(run_dirs)
    resumes = list(resumes) if resumes is not None else [None] * len(cfgs)
    if not (len(cfgs) == len(run_dirs) == len(resumes)) or not cfgs:
        raise ValueError(f"{len(cfgs)} configurations, {len(run_dirs)} run folders, {len(resumes)} checkpoints")
    comm = comm if comm is not None else distributed.Single()
    cfg = cfgs[0]
    if splits is None:
        splits = build.load_splits(cfg.data)
    build.check_data(cfg, splits)
    learner = build.build_learner(cfg, backend=comm.backend_name(cfg.backend))
    several = len(cfgs) > 1
    members = [RunProgress(c, RunFolder(d) if d is not None else None, make_problem(c, splits, comm), learner, r, comm,
                           label=f"seed {c.seed} ({d})" if several else "")
               for c, d, r in zip(cfgs, run_dirs, resumes)]
    return run_loop(learner, members, Schedule.of(cfg), provider=provider, comm=comm, stop_at=stop_at,
                    progress=progress, stream=stream, handle_signals=handle_signals, label=label)


def train(cfg: C.RunConfig, run_dir, splits=None, *, resume: ckpt_io.Checkpoint | None = None,
          progress: bool = True, stream=None, handle_signals: bool = True, stop_at: int | None = None) -> TrainResult:
    """Meta-train as ``cfg`` says, in the run folder ``run_dir``; continue from ``resume`` if given.

    ``splits`` are the data (``None`` loads ``cfg.data``). The folder's ``config.json`` is
    written by the caller (``fometa train``). Under ``mpiexec -n N`` the meta-batch's tasks are
    shared by the ranks (:func:`fometa.distributed.task_results`). Returns when the run reaches
    ``cfg.meta_iters``, or iteration ``stop_at`` (status ``"stopped"``, with a checkpoint: a pause
    that changes nothing), or a signal stops it; raises :class:`TrainingError` on a non-finite loss.
    """
    comm = distributed.world()
    provider = local_task_results
    if comm.size > 1:
        distributed.check_training(comm, cfg.inner, cfg.outer)

        def provider(learner, states, task_lists):
            return [distributed.task_results(learner, comm, s, t) for s, t in zip(states, task_lists)]

    return train_runs([cfg], [Path(run_dir) if run_dir is not None else None], splits, resumes=[resume],
                      provider=provider, comm=comm, progress=progress, stream=stream, handle_signals=handle_signals,
                      stop_at=stop_at)[0]
