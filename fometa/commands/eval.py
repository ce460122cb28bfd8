"""``fometa eval RUN``: few-shot accuracy of a run's meta-learned initialization.

Evaluates the checkpoint of ``RUN`` (a run folder, a checkpoint file or a shipped model's name:
``fometa eval omniglot-5way --data datasets/omniglot.h5``) on ``--eval-tasks`` tasks (default
10,000, the paper's number) of ``--eval-split``, ``--eval-chunk`` tasks at a time on the task axis,
drawn from ``--eval-seed``, with the run's evaluation settings (shots, inner iterations, inner
mini-batch) unless overridden: each setting under the flag ``fometa train`` gives it.
``--eval-mode`` is one batch-norm mode or several separated by commas
(``transductive,per-query``): each task is then adapted once and predicted in every mode.
Prints one JSON object per mode with ``accuracy``, ``ci95`` (half-width of the 95% confidence
interval), ``tasks``, ``mode`` and ``seconds`` (wall time of the whole evaluation); the sine
preset reports ``mse`` instead of ``accuracy``. A progress bar goes to stderr. The run's data file is
found from any working folder (:func:`fometa.runfolder.find_data`: as recorded, else from the run
folder and each folder above it); ``--data`` gives another.
"""
from __future__ import annotations

import contextlib
import json
import signal
import sys
from pathlib import Path

import numpy as np

from fometa import checkpoint, config, distributed, pretrained
from fometa.backends import BackendError
from fometa.build import build_learner, check_data, load_splits
from fometa.commands.options import (
    CLIError,
    add_moved_flag,
    add_setting_arguments,
    add_threads_argument,
    check_backend,
    overrides_from_args,
    typed_flag,
    user_error,
)
from fometa.data import DataError
from fometa.evaluate import PartialError, load_partial, save_partial
from fometa.problems import make_problem
from fometa.progress import ProgressBar
from fometa.runfolder import find_data
from fometa.signals import StopSignals

#: the settings an evaluation may override (the rest of the configuration is the run's)
SETTINGS = ("eval.tasks", "eval.split", "eval.mode", "eval.shots", "eval.inner_iters", "eval.inner_batch",
            "eval.queries_per_class", "eval.replacement", "eval.chunk", "data.path", "backend")


def add_arguments(p):
    p.add_argument("run", metavar="RUN",
                   help="a run folder (its checkpoint.h5), a checkpoint file or a shipped model's name (fometa models)")
    p.add_argument("--eval-seed", type=int, default=0, metavar="SEED", help="seed of the evaluation tasks (default 0)")
    add_moved_flag(p, "--seed", "is the run's own seed; the evaluation tasks' seed is --eval-seed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--partial", metavar="FILE", default=None,
                   help="keep the per-task results in FILE (JSON) after every chunk, and continue from it if it "
                        "exists: a long evaluation can be stopped (SIGINT/SIGTERM) and resumed, with the result "
                        "of an uninterrupted one")
    add_threads_argument(p)
    add_setting_arguments(p.add_argument_group("settings (override the run's)"), SETTINGS, "the run's",
                          notes={"eval.mode": "the run's; several joined by commas: each task is adapted once and "
                                              "predicted in each mode"})


def _modes(args) -> tuple[str, ...] | None:
    """The batch-norm modes of ``--eval-mode`` (one, or several joined by commas); the setting takes the first."""
    given = getattr(args, "setting:eval.mode", None)
    if given is None:
        return None
    flag = typed_flag(args, "eval.mode")
    modes = tuple(m.strip() for m in given.split(",") if m.strip())
    bad = [m for m in modes if m not in config.EVAL_MODES]
    if bad or not modes:
        raise CLIError(f"{flag}: unknown mode {(bad or [given])[0]!r}; expected {', '.join(config.EVAL_MODES)} or "
                       "several joined by commas")
    if len(set(modes)) != len(modes):
        raise CLIError(f"{flag}: a mode is given twice in {given!r}")
    setattr(args, "setting:eval.mode", modes[0])
    return modes


def _source(ref, path) -> str:
    """What the output names the checkpoint by: a shipped model by its name (its file's place is this
    installation's business), a run folder's or a file's checkpoint by the path as given."""
    return str(path) if Path(ref).exists() else str(ref)


def _run_folder(ref):
    """Where the run's data file is also looked for (:func:`fometa.runfolder.find_data`): the run folder, or the
    folder of a checkpoint file (``None`` for a shipped model's name)."""
    path = Path(ref)
    if not path.exists():
        return None
    return path if path.is_dir() else path.parent


def run(args) -> int:
    comm = distributed.world()  # mpiexec -n N: the tasks are split over N ranks; rank 0 prints
    try:
        ckpt, ckpt_path, note = pretrained.load_run(args.run)
        if note and comm.is_root:
            print(f"fometa eval: {note}", file=sys.stderr, flush=True)
        modes = _modes(args)
        overrides = overrides_from_args(args, SETTINGS)
        cfg = config.apply_overrides(config.from_dict(ckpt.config), overrides)
        modes = modes or (cfg.eval.mode,)
        check_backend(comm.backend_name(cfg.backend))
        splits = load_splits(cfg.data if "data.path" in overrides else find_data(cfg.data, _run_folder(args.run)))
        check_data(cfg, splits, eval_splits=(cfg.eval.split,), training=False)
    except (config.ConfigError, checkpoint.CheckpointError, pretrained.RegistryError, DataError, BackendError) as exc:
        raise user_error(exc, args) from None
    learner = build_learner(cfg, backend=comm.backend_name(cfg.backend))
    problem = make_problem(cfg, splits, comm)
    state = learner.init(ckpt.params, ckpt.inner_state, ckpt.outer_state, ckpt.iteration)
    ev = cfg.eval
    keep = None
    if args.partial is not None:
        if cfg.data.kind == "sine":
            raise CLIError("--partial: the sine preset's evaluation is not kept in parts")
        keep = _Partial(Path(args.partial), _partial_settings(cfg, ckpt, state.params, modes, args.eval_seed), ev.tasks,
                        comm)
    bar = ProgressBar(ev.tasks, initial=keep.resume.done if keep and keep.resume else 0, label=f"eval {ev.split}",
                      unit="tasks", enabled=not args.quiet and comm.is_root, log_interval=60)
    try:
        with StopSignals() if keep else contextlib.nullcontext() as stop:  # a signal stops a kept one cleanly
            results = problem.evaluate(
                learner, state.params, state.inner_state, ev.split, np.random.default_rng(args.eval_seed), ev.tasks,
                modes=modes, chunk=ev.chunk, progress=lambda done, total: bar.update(done),
                **({"resume": keep.resume, "on_chunk": lambda p: keep.save(p, stop)} if keep else {}))
    except DataError as exc:  # a damaged data file, met while reading its examples
        bar.close()
        raise CLIError(str(exc)) from None
    except _Stopped as exc:
        bar.close()
        if comm.is_root:
            print(f"fometa eval: stopped by {exc.signal} after {exc.done} of {ev.tasks} tasks; {args.partial} keeps "
                  "them. Continue with the same command.", file=sys.stderr)
        return 128 + int(getattr(signal, exc.signal))
    bar.close()
    common = {"split": ev.split, "ways": cfg.model.ways, "shots": ev.shots, "inner_iters": ev.inner_iters,
              "inner_batch": ev.inner_batch, "seed": args.eval_seed, "preset": cfg.preset, "iteration": ckpt.iteration,
              "checkpoint": _source(args.run, ckpt_path)}
    for res in results.values() if comm.is_root else ():
        print(json.dumps({**res.as_dict(), **common}), flush=True)
    return 0


class _Stopped(Exception):
    def __init__(self, signal_name: str, done: int):
        super().__init__(signal_name)
        self.signal, self.done = signal_name, done


def _partial_settings(cfg, ckpt, params, modes, seed) -> dict:
    """What a kept partial evaluation must match: the parameters (by digest), the tasks and how they are adapted.

    Not the number of tasks: the first ``n`` tasks of a seed are the same for any total, so a kept
    evaluation can also be extended (``--tasks 2000``, then ``--tasks 10000``)."""
    d = config.to_dict(cfg)
    settings = {"params_sha256": checkpoint.tree_digest(params), "iteration": ckpt.iteration, "seed": seed,
                "modes": list(modes),
                "eval": {k: v for k, v in d["eval"].items() if k not in ("chunk", "mode", "tasks")},
                "data": {k: v for k, v in d["data"].items() if k != "path"}, "ways": cfg.model.ways,
                "backend": cfg.backend}
    return json.loads(json.dumps(settings))  # as it reads back from the file


class _Partial:
    """``fometa eval --partial FILE``: the kept progress, saved after every chunk (rank 0 writes)."""

    def __init__(self, path: Path, settings: dict, tasks: int, comm):
        self.path, self.settings, self.tasks, self.comm = path, settings, tasks, comm
        try:
            self.resume = load_partial(path, settings)
        except PartialError as exc:
            raise CLIError(f"--partial: {exc}") from None
        if self.resume is not None and self.resume.done > tasks:
            raise CLIError(f"--partial: {path} already holds {self.resume.done} tasks, more than the {tasks} asked for")

    def save(self, progress, stop) -> None:
        if self.comm.is_root:
            save_partial(self.path, self.settings, progress)
        signal_name = next(filter(None, self.comm.allgather(stop.name)), "")  # a signal to any rank stops all
        if signal_name and progress.done < self.tasks:
            raise _Stopped(signal_name, progress.done)
