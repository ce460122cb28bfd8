"""Meta-training: the one loop, for a single run, a group of seeds, several processes and the sine toy.

:func:`train_runs` runs any number of runs (each a :class:`RunProgress`: its configuration, its
generator and meta-state, with a :class:`RunWriter` that owns its log and checkpoints and knows
which MPI rank writes them) through the same iterations:

1. every run draws its meta-batch from its own generator (its problem's ``sample``);
2. a *provider* adapts the meta-batches' tasks and returns each run's per-task results
   (:class:`fometa.meta.TaskResults`): :func:`local_task_results` (one process, run after run),
   :func:`fometa.seeds.task_results` (all runs' tasks on one task axis) or
   :func:`fometa.distributed.task_results` (the tasks shared by MPI ranks);
3. each run's outer step, :meth:`fometa.meta.MetaLearner.apply`, the only one there is;
4. logging every ``eval_interval`` iterations (with the meta-step the outer optimizer reports),
   checkpoints every ``checkpoint_every``, and a clean stop on SIGINT/SIGTERM or at ``stop_at``.

How the loop runs, never what it learns (the progress bar, signal handling, a pause at
``stop_at``), is one :class:`TrainOptions`.

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
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np

from fometa import build, distributed, meta, optim, tree
from fometa import checkpoint as ckpt_io
from fometa import config as C
from fometa.problems import make_problem
from fometa.progress import ProgressBar
from fometa.runfolder import RunFolder, code_version
from fometa.signals import StopSignals

__all__ = ["TrainingError", "TrainResult", "Schedule", "TrainOptions", "RunWriter", "RunProgress", "Provider",
           "local_task_results", "run_loop", "check_group", "prepare", "train_runs", "train"]

_SINGLE = distributed.Single()


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
    state: meta.MetaState | None = None  # the run's final meta-state (parameters, optimizer states, iteration)

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


@dataclass(frozen=True)
class TrainOptions:
    """How the loop runs, never what it learns: a progress bar (``progress``, on ``stream``, default
    stderr) labelled ``label``; SIGINT/SIGTERM caught for a clean stop (``handle_signals``); and a
    pause at iteration ``stop_at`` (with a checkpoint, status ``"stopped"``)."""

    progress: bool = True
    stream: TextIO | None = None
    handle_signals: bool = True
    stop_at: int | None = None
    label: str = "meta-iteration"


# ------------------------------------------------------------------------------------------
# one run in flight: what it writes, and where it stands
# ------------------------------------------------------------------------------------------
class RunWriter:
    """Where one run's records go: its folder's configuration, log, checkpoints and segments
    (:mod:`fometa.runfolder`), written by rank 0 alone when several MPI ranks (``comm``) train it;
    without a folder, the log records stay in :attr:`records`. ``on_log(record)`` sees every record,
    on every rank."""

    def __init__(self, folder: RunFolder | None, comm: distributed.Single = _SINGLE,
                 on_log: Callable[[dict], None] | None = None):
        self.folder, self.comm, self.on_log = folder, comm, on_log
        self.out: RunFolder | None = folder if comm.is_root else None  # the folder this rank writes, if any
        self.records: list[dict] = []
        self.last_checkpoint: int | None = None

    def start(self, cfg: C.RunConfig, resumed_at: int | None) -> dict:
        """Open the run's records for a stretch of training with the configuration ``cfg`` from a checkpoint
        of iteration ``resumed_at`` (``None``: from the start): ``config.json`` is written and the log cut
        back to the checkpoint. Returns the last log record (``{}``: none)."""
        self.last_checkpoint = resumed_at
        if self.out is not None:
            self.out.write_config(cfg)
            code_version()  # which fometa trains this stretch: read now, before its files can change
            self.out.truncate_log(resumed_at if resumed_at is not None else -1)
        return ((self.folder.read_log() if self.folder is not None else []) or [{}])[-1]

    def log(self, record: dict) -> None:
        """Append ``record`` to the run's log."""
        if self.out is not None:
            self.out.append_log(record)
        elif self.folder is None:
            self.records.append(record)
        if self.on_log is not None:
            self.on_log(record)

    def checkpoint(self, cfg: C.RunConfig, state: meta.MetaState, rng: np.random.Generator, extra: dict) -> None:
        """Write the run's checkpoint, after checking that every rank holds the same parameters."""
        distributed.check_same(self.comm, state.params)
        if self.out is not None:
            note = self.out.save_checkpoint(ckpt_io.Checkpoint(
                params=tree.to_host(state.params), inner_state=optim.state_to_host(state.inner_state),
                outer_state=optim.state_to_host(state.outer_state), rng_state=ckpt_io.rng_state(rng),
                iteration=state.iteration, config=C.to_dict(cfg), extra=extra))
            if note:  # the checkpoint it replaced was damaged: set aside, the fallback kept
                print(f"fometa: {note}", file=sys.stderr, flush=True)
        self.last_checkpoint = state.iteration

    def segment(self, start: int, stop: int, seconds: float, status: str) -> None:
        """Note which iterations this stretch of training ran, and with which fometa."""
        if self.out is not None and stop > start:
            self.out.append_segment(start, stop, seconds, status)

    def kept(self) -> str:
        """Which checkpoint survives a failure, for error messages."""
        if self.last_checkpoint is None or self.folder is None:
            return "no checkpoint had been written yet"
        return f"the last good checkpoint, {self.folder.checkpoint_path} at iteration {self.last_checkpoint}, is kept"


class RunProgress:
    """One run in flight: its generator, meta-state, training time and the losses its next log record averages.

    Starts from ``resume`` (a checkpoint), from ``start`` (a ``(MetaState, Generator)`` pair made
    by the caller) or from ``cfg.seed`` (the initialization drawn from the run's generator). Its
    records and checkpoints go to ``writer``; ``label`` names it in errors among several runs.
    """

    def __init__(self, cfg: C.RunConfig, problem, learner: meta.MetaLearner, writer: RunWriter,
                 resume: ckpt_io.Checkpoint | None = None,
                 start: tuple[meta.MetaState, np.random.Generator] | None = None, label: str = ""):
        self.cfg, self.problem, self.learner, self.writer, self.label = cfg, problem, learner, writer, label
        extra: dict = {}
        if resume is None and start is not None:
            self.state, self.rng = start
        else:  # the meta-state on the learner's backend, from the checkpoint or from a fresh initialization
            held: tuple
            if resume is not None:
                self.rng = ckpt_io.make_rng(resume.rng_state)
                held = (resume.params, resume.inner_state, resume.outer_state, resume.iteration)
                extra = dict(resume.extra)
            else:
                self.rng = np.random.default_rng(cfg.seed)
                held = (learner.model.init(self.rng),)
            self.state = learner.init(*held)
        self.last = writer.start(cfg, resume.iteration if resume is not None else None)
        self.start_iteration = self.state.iteration
        self.seconds0 = float(extra.get("seconds", 0.0))
        self.loss_sum = dict(extra.get("loss_sum", {}))
        self.loss_count = int(extra.get("loss_count", 0))

    def extra(self, elapsed: float) -> dict:
        """What a checkpoint keeps besides the state: wall time so far and the losses not yet logged."""
        return {"seconds": self.seconds0 + elapsed, "loss_sum": self.loss_sum, "loss_count": self.loss_count}

    def advance(self, new_state: meta.MetaState, info: dict) -> None:
        """Take the meta-iteration's ``new_state`` and add its losses to the next log record's means."""
        self.state = new_state
        for k in ("loss_first", "loss_last"):
            self.loss_sum[k] = self.loss_sum.get(k, 0.0) + info[k]
        self.loss_count += 1

    def log(self, elapsed: float) -> dict:
        """Log the current iteration's record (mean losses, interval metrics, meta-step, seconds)."""
        it = self.state.iteration
        rec: dict = {"iteration": it}
        if self.loss_count:
            rec.update({k: v / self.loss_count for k, v in self.loss_sum.items()})
        rec.update(self.problem.interval_metrics(self.learner, self.state, it))
        step = self.learner.outer_opt.step_size(it)
        if step is not None:
            rec["meta_step"] = step
        rec["seconds"] = round(self.seconds0 + elapsed, 3)
        self.writer.log(rec)
        self.loss_sum, self.loss_count = {}, 0
        self.last = rec
        return rec

    def checkpoint(self, elapsed: float) -> None:
        """Checkpoint the run, with ``elapsed`` seconds of this stretch added to its wall time."""
        self.writer.checkpoint(self.cfg, self.state, self.rng, self.extra(elapsed))

    @property
    def checkpointed(self) -> bool:
        """Whether the latest checkpoint holds the current iteration."""
        return self.writer.last_checkpoint == self.state.iteration

    def finish(self, status: str, elapsed: float, signal: str = "") -> TrainResult:
        """Note the stretch in the run's records; the run's :class:`TrainResult` with ``status`` (and the
        ``signal`` that interrupted it)."""
        self.writer.segment(self.start_iteration, self.state.iteration, elapsed, status)
        return TrainResult(status, self.state.iteration, self.extra(elapsed)["seconds"], self.last,
                           signal if status == "interrupted" else "", self.state)


# ------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------
#: A provider of per-task results: ``provider(learner, states, meta-batches)`` -> one
#: :class:`~fometa.meta.TaskResults` per run (see the module docstring).
Provider = Callable[[meta.MetaLearner, list, list], list]


def local_task_results(learner: meta.MetaLearner, states: list, task_lists: list) -> list:
    """The provider of one process: each run's meta-batch adapted on its own (see the module docstring)."""
    return [learner.task_results(s, t) for s, t in zip(states, task_lists, strict=True)]


def _check_finite(members: list[RunProgress], pairs, bar: ProgressBar) -> None:
    for m, (new, info) in zip(members, pairs, strict=True):
        if _finite(info, new.params):
            continue
        bar.close()
        losses = f"(first inner loss {info['loss_first']:.4g}, last {info['loss_last']:.4g})"
        advice = "A smaller inner learning rate or meta-step may help."
        if m.label:
            raise TrainingError(f"{m.label}: non-finite loss or parameters at meta-iteration {new.iteration} {losses}; "
                                f"training stopped and for this run {m.writer.kept()}, as are the other runs' last "
                                f"checkpoints. {advice}")
        what = "loss" if not all(math.isfinite(v) for v in info.values()) else "parameters (after a finite loss)"
        raise TrainingError(f"non-finite {what} at meta-iteration {new.iteration} {losses}; training stopped and "
                            f"{m.writer.kept()}. {advice}")


def run_loop(learner: meta.MetaLearner, members: list[RunProgress], schedule: Schedule, *,
             provider: Provider = local_task_results, comm: distributed.Single = _SINGLE,
             options: TrainOptions = TrainOptions()) -> list[TrainResult]:
    """Train ``members`` (:class:`RunProgress`, all of one ``learner``) to ``schedule.meta_iters``.

    Each iteration, the runs furthest behind step together (runs resumed from different
    iterations catch up first): ``provider(learner, states, meta-batches)`` gives their per-task
    results and each takes :meth:`~fometa.meta.MetaLearner.apply`. Returns a :class:`TrainResult`
    per member.
    """
    stop_at = options.stop_at
    limit = schedule.meta_iters if stop_at is None else min(stop_at, schedule.meta_iters)
    start = time.perf_counter()

    def elapsed() -> float:
        return time.perf_counter() - start

    if all(m.state.iteration >= schedule.meta_iters for m in members):
        return [TrainResult("already finished", m.state.iteration, m.seconds0, m.last, state=m.state) for m in members]
    first = min(m.state.iteration for m in members)
    bar = ProgressBar(schedule.meta_iters, initial=first, label=options.label, stream=options.stream,
                      enabled=options.progress and comm.is_root)

    def log(m: RunProgress) -> None:
        m.log(elapsed())
        keys = {k for x in members for k in x.last if k.endswith(("accuracy", "mse"))}
        prefix = "mean_" if len(members) > 1 else ""
        bar.set(**{prefix + k.replace("accuracy", "acc"): float(np.mean([x.last[k] for x in members if k in x.last]))
                   for k in sorted(keys)})

    def finish(status_of: Callable[[RunProgress], str], signal_name: str = "") -> list[TrainResult]:
        bar.close()
        return [m.finish(status_of(m), elapsed(), signal_name) for m in members]

    with StopSignals(install=options.handle_signals) as stop:
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
                pairs = [learner.apply(m.state, r) for m, r in zip(active, results, strict=True)]
            _check_finite(active, pairs, bar)
            for m, (new, info) in zip(active, pairs, strict=True):
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
                    if not m.checkpointed and m.state.iteration > 0:
                        m.checkpoint(elapsed())
                return finish(lambda m: "finished" if m.state.iteration >= schedule.meta_iters else "interrupted",
                              signal_name)
    return finish(lambda m: "finished" if m.state.iteration >= schedule.meta_iters else "stopped")


# ------------------------------------------------------------------------------------------
# the runs: checked and built before anything is written, then trained
# ------------------------------------------------------------------------------------------
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


def prepare(cfgs: Sequence[C.RunConfig], splits: dict | None = None, *, comm: distributed.Single = _SINGLE,
            learner: meta.MetaLearner | None = None,
            data: C.DataConfig | None = None) -> tuple[meta.MetaLearner, dict | None]:
    """``(learner, splits)`` of the runs ``cfgs``, checked before anything is written: they may differ in
    their seed only (:func:`check_group`), their meta-batch can be split over ``comm``'s ranks
    (:func:`fometa.distributed.check_training`), the learner is :func:`fometa.build.build_learner`'s on this
    rank's backend (``learner``: one made of ``cfgs[0]`` already), and the data (``splits``, or else loaded
    from ``data``, by default ``cfgs[0].data``) holds what the settings ask of it. Raises
    :class:`~fometa.config.ConfigError`, ``fometa.data.DataError`` and
    :class:`~fometa.backends.BackendError`."""
    cfg = cfgs[0]
    check_group(cfgs)
    distributed.check_training(comm, cfg.inner, cfg.outer)
    if learner is None:  # on this rank's backend, first: one this machine lacks is refused before the data is read
        backend = comm.backend_name(cfg.backend)
        learner = build.build_learner(cfg, backend=backend)
    if splits is None:
        splits = build.load_splits(data if data is not None else cfg.data)
    build.check_data(cfg, splits)
    return learner, splits


def train_runs(cfgs: Sequence[C.RunConfig], run_dirs: Sequence[str | Path | None], splits: dict | None = None, *,
               resumes: Sequence[ckpt_io.Checkpoint | None] | None = None, provider: Provider = local_task_results,
               comm: distributed.Single | None = None, options: TrainOptions = TrainOptions(),
               learner: meta.MetaLearner | None = None) -> list[TrainResult]:
    """Meta-train the runs ``cfgs`` (one learner: they may differ in their seed only), each in its folder.

    ``run_dirs[r]`` is run ``r``'s folder (``None``: nothing is written, the log records stay in
    memory); ``resumes[r]`` a checkpoint to continue from or ``None``; ``splits`` the data
    (``None`` loads ``cfgs[0].data``); ``learner`` the one :func:`fometa.build.build_learner` makes
    of ``cfgs[0]``, when the caller has it already (:func:`prepare` checks and builds what is not
    given); ``provider`` gives the per-task results. Several runs label the progress bar with their
    number unless ``options`` labels it otherwise. Each run's
    :class:`RunWriter` writes its folder's ``config.json`` before it trains. Returns a
    :class:`TrainResult` per run, or raises :class:`TrainingError`.
    """
    cfgs = list(cfgs)
    run_dirs = list(run_dirs)
    resumes = list(resumes) if resumes is not None else [None] * len(cfgs)
    if not (len(cfgs) == len(run_dirs) == len(resumes)) or not cfgs:
        raise ValueError(f"{len(cfgs)} configurations, {len(run_dirs)} run folders, {len(resumes)} checkpoints")
    comm = comm if comm is not None else _SINGLE
    learner, splits = prepare(cfgs, splits, comm=comm, learner=learner)
    several = len(cfgs) > 1
    if several and options.label == TrainOptions.label:
        options = replace(options, label=f"meta-iteration ({len(cfgs)} seeds)")
    members = [RunProgress(c, make_problem(c, splits, comm), learner,
                           RunWriter(RunFolder(d) if d is not None else None, comm), r,
                           label=f"seed {c.seed} ({d})" if several else "")
               for c, d, r in zip(cfgs, run_dirs, resumes, strict=True)]
    return run_loop(learner, members, Schedule.of(cfgs[0]), provider=provider, comm=comm, options=options)


def train(cfg: C.RunConfig, run_dir: str | Path | None, splits: dict | None = None, *,
          resume: ckpt_io.Checkpoint | None = None, options: TrainOptions = TrainOptions(),
          learner: meta.MetaLearner | None = None) -> TrainResult:
    """Meta-train as ``cfg`` says, in the run folder ``run_dir``; continue from ``resume`` if given.

    ``splits`` are the data (``None`` loads ``cfg.data``); ``learner``, see :func:`train_runs`. The
    folder gets ``cfg`` as its ``config.json``, the log and the checkpoints. Under ``mpiexec -n N`` the
    meta-batch's tasks are shared by the ranks (:func:`fometa.distributed.task_results`). Returns
    when the run reaches ``cfg.meta_iters``, or iteration ``options.stop_at`` (status ``"stopped"``,
    with a checkpoint: a pause that changes nothing), or a signal stops it; raises
    :class:`TrainingError` on a non-finite loss.
    """
    comm = distributed.world()
    provider = distributed.ranks_provider(comm) if comm.size > 1 else local_task_results
    return train_runs([cfg], [Path(run_dir) if run_dir is not None else None], splits, resumes=[resume],
                      provider=provider, comm=comm, options=options, learner=learner)[0]
