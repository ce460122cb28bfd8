"""Meta-training runs: build the learner a :class:`~fometa.config.RunConfig` describes, run its loop,
log, checkpoint, resume exactly.

A *run folder* holds ``config.json`` (the full resolved configuration), ``log.jsonl`` (one JSON
object per evaluation: iteration, mean inner losses since the previous line, few-task train/test
accuracy or sine MSE, seconds) and ``checkpoint.h5`` (:mod:`fometa.checkpoint`).

Randomness: one ``numpy.random.Generator`` seeded with ``config.seed`` draws the initialization
and every training task; its state is checkpointed. The few evaluation tasks logged during
training come from their own generators, seeded by ``(seed, split, iteration)``, so how often
and how much is evaluated never changes what is trained, and a resumed run computes, bit for
bit on NumPy, what an uninterrupted one does.

Stopping: SIGINT or SIGTERM lets the current meta-iteration finish, writes a checkpoint and
returns (``status == "interrupted"``); a second signal stops at once (the previous checkpoint
stays valid: writes are atomic). A non-finite loss or parameter raises :class:`TrainingError`
without touching the last good checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fometa import atomic, distributed
from fometa import checkpoint as ckpt_io
from fometa import config as C
from fometa import graph, meta, models, optim, tree
from fometa.backends import get_backend
from fometa.progress import ProgressBar

__all__ = [
    "TrainingError", "RunFolder", "TrainResult", "build_model", "build_learner", "load_splits", "check_data",
    "make_problem", "FewShotProblem", "SineProblem", "train", "restore_state", "StopSignals",
]

CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_FILE = "checkpoint.h5"


class TrainingError(Exception):
    """Training cannot go on (a non-finite loss); the message says what happened and what was kept."""


# ------------------------------------------------------------------------------------------
# building blocks
# ------------------------------------------------------------------------------------------
def build_model(cfg: C.ModelConfig):
    """The network of ``cfg`` (the paper's, or a narrower one when ``filters`` is set) with ``cfg.init``'s
    initializer."""
    if cfg.arch == "sine_mlp":
        return models.sine_mlp(init=cfg.init)  # the sine preset: "torch", as the reference demo
    if cfg.arch == "omniglot_cnn":
        if cfg.filters is None:
            return models.omniglot_cnn(cfg.ways, init=cfg.init)
        return models.conv_net(f"omniglot_cnn({cfg.ways}, filters={cfg.filters})", cfg.ways, (28, 28),
                               filters=cfg.filters, blocks=4, stride=2, init=cfg.init)
    if cfg.filters is None:
        return models.miniimagenet_cnn(cfg.ways, init=cfg.init)
    return models.conv_net(f"miniimagenet_cnn({cfg.ways}, filters={cfg.filters})", cfg.ways, (84, 84, 3),
                           filters=cfg.filters, blocks=4, pool=True, init=cfg.init)


def inner_optimizer(cfg: C.InnerConfig):
    if cfg.optimizer == "sgd":
        return optim.SGD(cfg.lr)
    return optim.Adam(cfg.lr, cfg.beta1, cfg.beta2, cfg.eps)


def outer_optimizer(cfg: C.OuterConfig, meta_iters: int):
    if cfg.optimizer == "adam":
        return meta.OuterAdam(cfg.adam_lr)
    return meta.Interpolate(cfg.meta_step, cfg.meta_step_final, meta_iters)


def build_learner(cfg: C.RunConfig, backend=None) -> meta.MetaLearner:
    """The :class:`~fometa.meta.MetaLearner` of ``cfg`` (``backend`` overrides ``cfg.backend``)."""
    model = build_model(cfg.model)
    inner, outer = cfg.inner, cfg.outer
    ways, shots = (1, 1) if cfg.data.kind == "sine" else (cfg.model.ways, inner.shots)
    return meta.MetaLearner(
        model=model,
        algorithm=meta.make_algorithm(outer.algorithm, tail_shots=outer.tail_shots),
        inner_opt=inner_optimizer(inner),
        outer_opt=outer_optimizer(outer, cfg.meta_iters),
        config=meta.MetaConfig(ways=ways, shots=shots, inner_batch=inner.batch, inner_iters=inner.iters,
                               meta_batch=outer.meta_batch, replacement=inner.replacement,
                               batched=outer.batched, state_policy=inner.state_policy),
        backend=backend if backend is not None else cfg.backend,
    )


def load_splits(cfg: C.DataConfig) -> dict | None:
    """The class-indexed splits of ``cfg``'s packed file (``None`` for sine); raises ``fometa.data.DataError``."""
    from fometa import data

    if cfg.kind == "sine":
        return None
    if cfg.path is None:
        raise data.DataError("<no file>", f"no {cfg.kind} data file given (use --data FILE.h5)")
    if cfg.kind == "omniglot":
        data.inspect_packed(cfg.path, "omniglot")
        try:
            return data.load_omniglot(cfg.path, protocol=cfg.protocol, seed=cfg.split_seed,
                                      train_characters=cfg.train_characters, augment_rotations=cfg.augment_rotations)
        except ValueError as exc:  # e.g. more train characters than the file holds
            raise data.DataError(cfg.path, str(exc)) from None
    data.inspect_packed(cfg.path, "miniimagenet")
    return data.load_miniimagenet(cfg.path)


def _min_examples(split) -> int:
    return min(split.num_examples(c) for c in range(len(split)))


def check_data(cfg: C.RunConfig, splits, eval_splits=("train", "test")) -> None:
    """Raise :class:`~fometa.config.ConfigError` where ``cfg`` asks more of ``splits`` than they hold."""
    if splits is None:
        return
    w = cfg.model.ways
    need_train = cfg.inner.shots + (cfg.outer.tail_shots or 0)
    need_eval = cfg.eval.shots + cfg.eval.queries_per_class
    for name in dict.fromkeys(("train",) + tuple(eval_splits)):
        if name not in splits:
            raise C.ConfigError(f"the data file has no {name!r} split (it has {', '.join(splits)})")
        split = splits[name]
        if w > len(split):
            raise C.ConfigError(f"a {w}-way task needs {w} classes, but the {name} split has {len(split)}")
        have = _min_examples(split)
        if name == "train" and need_train > have:
            extra = f" + {cfg.outer.tail_shots} tail shots" if cfg.outer.tail_shots else ""
            raise C.ConfigError(f"training tasks need {cfg.inner.shots} train shots{extra} per class, but a class of "
                                f"the train split has only {have} examples")
        if name in eval_splits and need_eval > have:
            raise C.ConfigError(f"evaluation needs {cfg.eval.shots} shots + {cfg.eval.queries_per_class} "
                                f"quer{'y' if cfg.eval.queries_per_class == 1 else 'ies'} per class, but a class "
                                f"of the {name} split has only {have} examples")


def restore_state(ckpt: ckpt_io.Checkpoint, backend) -> meta.MetaState:
    """The :class:`~fometa.meta.MetaState` a checkpoint holds, on ``backend``."""
    be = get_backend(backend)
    return meta.MetaState(tree.to_backend(ckpt.params, be), _state_to(ckpt.inner_state, be),
                          _state_to(ckpt.outer_state, be), ckpt.iteration)


def _state_to(state, be):
    if isinstance(state, optim.AdamState):
        return optim.AdamState(be.asarray(state.count), tree.to_backend(state.mu, be), tree.to_backend(state.nu, be))
    return state


def eval_rng(seed: int, split: str, iteration: int) -> np.random.Generator:
    """The generator of the few evaluation tasks logged at ``iteration`` (independent of training's)."""
    return np.random.default_rng([seed, {"train": 1, "val": 2, "test": 3}.get(split, 4), iteration])


# ------------------------------------------------------------------------------------------
# problems: what a training task is and how an initialization is scored
# ------------------------------------------------------------------------------------------
class FewShotProblem:
    """N-way K-shot classification on class-indexed splits, scored by query accuracy."""

    metric = "accuracy"

    def __init__(self, cfg: C.RunConfig, splits: dict):
        self.cfg, self.splits = cfg, splits

    def sample(self, learner, rng):
        return learner.sample(self.splits["train"], rng)

    def eval_config(self, shots=None, inner_iters=None, inner_batch=None):
        from fometa.evaluate import EvalConfig

        ev = self.cfg.eval
        try:
            return EvalConfig(ways=self.cfg.model.ways, shots=ev.shots if shots is None else shots,
                              inner_batch=ev.inner_batch if inner_batch is None else inner_batch,
                              inner_iters=ev.inner_iters if inner_iters is None else inner_iters,
                              queries_per_class=ev.queries_per_class, replacement=ev.replacement, mode=ev.mode)
        except ValueError as exc:
            raise C.ConfigError(str(exc)) from None

    def evaluate(self, learner, params, inner_state, split, rng, tasks, *, modes=None, chunk=None,
                 progress=None, eval_cfg=None, resume=None, on_chunk=None) -> dict:
        """``{mode: EvalResult}`` over ``tasks`` tasks of ``split`` (``resume``, ``on_chunk``: see fometa.evaluate)."""
        from fometa.distributed import evaluate  # fometa.evaluate.evaluate, split over MPI ranks if any

        cfg = eval_cfg or self.eval_config()
        modes = tuple(modes or (cfg.mode,))
        return evaluate(learner.model, params, self.splits[split], rng, cfg, learner.inner_opt, inner_state,
                        tasks=tasks, chunk=chunk or self.cfg.eval.chunk, backend=learner.backend,
                        progress=progress, modes=modes, resume=resume, on_chunk=on_chunk)

    def interval_metrics(self, learner, state, iteration) -> dict:
        out = {}
        for split in ("train", "test"):
            res = self.evaluate(learner, state.params, state.inner_state, split,
                                eval_rng(self.cfg.seed, split, iteration), self.cfg.interval_tasks,
                                chunk=min(self.cfg.eval.chunk, self.cfg.interval_tasks))
            out[f"{split}_accuracy"] = next(iter(res.values())).accuracy
        return out


class SineProblem:
    """The sine-wave regression of :mod:`fometa.sine`, scored by mean squared error on the grid."""

    metric = "mse"

    def __init__(self, cfg: C.RunConfig):
        from fometa import sine

        self.cfg, self.sine = cfg, sine
        steps = -(-len(sine.GRID) // cfg.inner.batch)
        self.sine_cfg = sine.SineConfig(
            algorithm=cfg.outer.algorithm, meta_iters=cfg.meta_iters, inner_lr=cfg.inner.lr,
            inner_batch=cfg.inner.batch, inner_epochs=cfg.inner.iters // steps, meta_step=cfg.outer.meta_step,
            meta_step_final=cfg.outer.meta_step_final, eval_tasks=cfg.eval.tasks, eval_points=cfg.eval.shots,
            eval_steps=cfg.eval.inner_iters, seed=cfg.seed, init="torch",
        )

    def sample(self, learner, rng):
        return [self.sine.training_steps(rng, self.sine_cfg) for _ in range(learner.config.meta_batch)]

    def evaluate(self, learner, params, inner_state, split, rng, tasks, *, modes=None, chunk=None,
                 progress=None, eval_cfg=None) -> dict:
        """``{"regression": SineResult}``: MSE after the evaluation's SGD steps, over ``tasks`` tasks."""
        from fometa.evaluate import mean_ci95

        start = time.perf_counter()
        final, _, _ = self.sine.evaluate(tree.to_host(params), replace(self.sine_cfg, eval_tasks=tasks), rng)
        mean, ci = mean_ci95(final)
        if progress is not None:
            progress(tasks, tasks)
        return {"regression": SineResult(mean, ci, tasks, "regression", time.perf_counter() - start)}

    def interval_metrics(self, learner, state, iteration) -> dict:
        res = self.evaluate(learner, state.params, None, "test", eval_rng(self.cfg.seed, "test", iteration),
                            self.cfg.interval_tasks)
        return {"test_mse": res["regression"].mse}


@dataclass(frozen=True)
class SineResult:
    mse: float
    ci95: float
    tasks: int
    mode: str
    seconds: float

    def as_dict(self) -> dict:
        return {"mse": self.mse, "ci95": self.ci95, "tasks": self.tasks, "mode": self.mode, "seconds": self.seconds}


def make_problem(cfg: C.RunConfig, splits):
    return SineProblem(cfg) if cfg.data.kind == "sine" else FewShotProblem(cfg, splits)


# ------------------------------------------------------------------------------------------
# the run folder
# ------------------------------------------------------------------------------------------
class RunFolder:
    """The files of one run: ``config.json``, ``log.jsonl``, ``checkpoint.h5``."""

    def __init__(self, path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    def holds_run(self) -> bool:
        return self.config_path.exists() or self.checkpoint_path.exists()

    def write_config(self, cfg: C.RunConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.config_path, json.dumps(C.to_dict(cfg), indent=2) + "\n")

    def read_config(self) -> C.RunConfig:
        try:
            d = json.loads(self.config_path.read_text())
        except OSError as exc:
            raise C.ConfigError(f"{self.config_path}: cannot read the run's configuration: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise C.ConfigError(f"{self.config_path}: not valid JSON: {exc}") from None
        return C.from_dict(d)

    def read_log(self) -> list[dict]:
        """The log's records (a partly written last line, from a killed run, is skipped)."""
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def append_log(self, record: dict) -> None:
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_log(self, iteration: int) -> None:
        """Drop records after ``iteration`` (written after the checkpoint a resumed run starts from)."""
        if not self.log_path.exists():
            return
        keep = [r for r in self.read_log() if r.get("iteration", 0) <= iteration]
        atomic.write_text(self.log_path, "".join(json.dumps(r) + "\n" for r in keep))


# ------------------------------------------------------------------------------------------
# signals
# ------------------------------------------------------------------------------------------
class StopSignals:
    """Within ``with StopSignals() as stop:``, SIGINT/SIGTERM set ``stop.signal`` instead of killing.

    A second signal raises :class:`KeyboardInterrupt` at once. Outside the main thread
    (where handlers cannot be installed) nothing is caught.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal = None
        self._old = {}

    def _handle(self, signum, frame):
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        return False

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""


# ------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainResult:
    status: str  # "finished", "interrupted" (by a signal), "stopped" (at stop_at) or "already finished"
    iteration: int
    seconds: float  # training wall time over all sessions of the run
    last: dict  # the last log record (empty if none)
    signal: str = ""

    def as_dict(self) -> dict:
        d = {"status": self.status, "iteration": self.iteration, "seconds": round(self.seconds, 3)}
        if self.signal:
            d["signal"] = self.signal
        d.update({k: v for k, v in self.last.items() if k.endswith(("accuracy", "mse"))})
        return d


def _finite(info: dict, params) -> bool:
    if not all(math.isfinite(v) for v in info.values()):
        return False
    return all(bool(np.isfinite(tree.to_host({"p": p})["p"]).all()) for p in params.values())


def _checkpoint(run: RunFolder, cfg, state, rng, extra, comm=distributed.Single()) -> None:
    distributed.check_same(comm, state.params)  # several ranks: all hold the same parameters
    if not comm.is_root:  # rank 0 alone writes
        return
    ckpt_io.save(run.checkpoint_path, ckpt_io.Checkpoint(
        params=tree.to_host(state.params), inner_state=optim.state_to_host(state.inner_state),
        outer_state=optim.state_to_host(state.outer_state), rng_state=ckpt_io.rng_state(rng),
        iteration=state.iteration, config=C.to_dict(cfg), extra=extra))


class RunProgress:
    """One run in flight: its generator, meta-state and the bookkeeping its log and checkpoints keep.

    Starts from ``resume`` (a checkpoint) or from ``cfg.seed``; the log is cut back to the
    checkpoint's iteration (a fresh start keeps no old records). Under several MPI ranks
    (``comm``) rank 0 alone writes. Used by :func:`train` and by :func:`fometa.seeds.train_group`
    (one per seed), so a run's files do not depend on which of the two trained it.
    """

    def __init__(self, cfg: C.RunConfig, run: RunFolder, problem, learner, resume=None, comm=distributed.Single()):
        self.cfg, self.run, self.problem, self.learner, self.comm = cfg, run, problem, learner, comm
        if comm.is_root:
            run.path.mkdir(parents=True, exist_ok=True)
        if resume is not None:
            self.rng = ckpt_io.make_rng(resume.rng_state)
            self.state = restore_state(resume, learner.backend)
            extra = dict(resume.extra)
        else:
            self.rng = np.random.default_rng(cfg.seed)
            self.state = learner.init(learner.model.init(self.rng))
            extra = {}
        if comm.is_root:
            run.truncate_log(self.state.iteration if resume is not None else -1)
        self.seconds0 = float(extra.get("seconds", 0.0))
        self.loss_sum = dict(extra.get("loss_sum", {}))
        self.loss_count = int(extra.get("loss_count", 0))
        self.last_ckpt = resume.iteration if resume is not None else None
        self.last = (run.read_log() or [{}])[-1]

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
        if self.comm.is_root:
            self.run.append_log(rec)
        self.loss_sum, self.loss_count = {}, 0
        self.last = rec
        return rec

    def checkpoint(self, elapsed: float) -> None:
        _checkpoint(self.run, self.cfg, self.state, self.rng, self.extra(elapsed), self.comm)
        self.last_ckpt = self.state.iteration

    def kept(self) -> str:
        """Which checkpoint survives a failure, for error messages."""
        if self.last_ckpt is None:
            return "no checkpoint had been written yet"
        return f"the last good checkpoint, {self.run.checkpoint_path} at iteration {self.last_ckpt}, is kept"


def train(cfg: C.RunConfig, run_dir, splits=None, *, resume: ckpt_io.Checkpoint | None = None,
          progress: bool = True, stream=None, handle_signals: bool = True, stop_at: int | None = None) -> TrainResult:
    """Meta-train as ``cfg`` says, in the run folder ``run_dir``; continue from ``resume`` if given.

    ``splits`` are the data (``None`` loads ``cfg.data``). The folder's ``config.json`` is
    written by the caller (``fometa train``). Returns when the run reaches ``cfg.meta_iters``,
    or iteration ``stop_at`` (status ``"stopped"``, with a checkpoint: a pause that changes
    nothing), or a signal stops it; raises :class:`TrainingError` on a non-finite loss.
    """
    comm = distributed.world()  # several MPI ranks share each meta-batch; rank 0 alone writes
    run = RunFolder(run_dir)
    if splits is None:
        splits = load_splits(cfg.data)
    check_data(cfg, splits)
    learner = build_learner(cfg, backend=comm.backend_name(cfg.backend))
    step = distributed.make_step(learner, comm)
    step = graph.runner(step, learner.backend, cfg.graph)
    rp = RunProgress(cfg, run, make_problem(cfg, splits), learner, resume, comm)
    start = time.perf_counter()
    bar = ProgressBar(cfg.meta_iters, initial=rp.state.iteration, label="meta-iteration", stream=stream,
                      enabled=progress and comm.is_root)

    def elapsed():
        return time.perf_counter() - start

    def log():
        rec = rp.log(elapsed())
        bar.set(**{k.replace("accuracy", "acc"): v for k, v in rec.items() if k.endswith(("accuracy", "mse"))})

    if rp.state.iteration >= cfg.meta_iters:
        return TrainResult("already finished", rp.state.iteration, rp.seconds0, rp.last)
    stops = StopSignals() if handle_signals else contextlib.nullcontext(StopSignals())
    with stops as stop:
        if rp.state.iteration == 0 and cfg.eval_interval:
            log()
        bar.update(rp.state.iteration, force=True)
        while rp.state.iteration < cfg.meta_iters:
            tasks = rp.problem.sample(learner, rp.rng)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked just below
                new_state, info = step(rp.state, tasks)
            if not _finite(info, new_state.params):
                bar.close()
                what = "loss" if not all(map(math.isfinite, info.values())) else "parameters (after a finite loss)"
                raise TrainingError(
                    f"non-finite {what} at meta-iteration {new_state.iteration} (first inner loss "
                    f"{info['loss_first']:.4g}, last {info['loss_last']:.4g}); training stopped and {rp.kept()}. "
                    "A smaller inner learning rate or meta-step may help.")
            rp.advance(new_state, info)
            it = rp.state.iteration
            if cfg.eval_interval and (it % cfg.eval_interval == 0 or it == cfg.meta_iters):
                log()
            signal_name = next(filter(None, comm.allgather(stop.name)), "")  # a signal to any rank stops all
            pause = it == stop_at or bool(signal_name)
            if it == cfg.meta_iters or pause or (cfg.checkpoint_every and it % cfg.checkpoint_every == 0):
                rp.checkpoint(elapsed())
            bar.update(it)
            if pause and it < cfg.meta_iters:
                bar.close()
                if signal_name:
                    return TrainResult("interrupted", it, rp.extra(elapsed())["seconds"], rp.last, signal_name)
                return TrainResult("stopped", it, rp.extra(elapsed())["seconds"], rp.last)
    bar.close()
    return TrainResult("finished", rp.state.iteration, rp.extra(elapsed())["seconds"], rp.last)
