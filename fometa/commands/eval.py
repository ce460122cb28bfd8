"""``fometa eval RUN_DIR``: few-shot accuracy of a run's meta-learned initialization.

Evaluates the checkpoint of ``RUN_DIR`` (or a checkpoint file) on ``--tasks`` tasks (default
10,000, the paper's number) of ``--split``, ``--chunk`` tasks at a time on the task axis, with
the run's evaluation settings (shots, inner iterations, inner mini-batch) unless overridden.
``--mode`` is one batch-norm mode or several separated by commas
(``transductive,per-query``): each task is then adapted once and predicted in every mode.
Prints one JSON object per mode with ``accuracy``, ``ci95`` (half-width of the 95% confidence
interval), ``tasks``, ``mode`` and ``seconds`` (wall time of the whole evaluation); the sine
preset reports ``mse`` instead of ``accuracy``. A progress bar goes to stderr.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

#: flag -> setting overridable here (the rest of the configuration is the run's)
EVAL_FLAGS = {
    "--tasks": "eval.tasks",
    "--split": "eval.split",
    "--shots": "eval.shots",
    "--eval-iters": "eval.inner_iters",
    "--eval-batch": "eval.inner_batch",
    "--queries": "eval.queries_per_class",
    "--chunk": "eval.chunk",
    "--data": "data.path",
    "--backend": "backend",
}


def add_arguments(p):
    from fometa.commands import add_threads_argument

    p.add_argument("run", metavar="RUN", help="a run folder (its checkpoint.h5) or a checkpoint file")
    p.add_argument("--mode", default=None,
                   help="transductive, per-query or support-stats, or several joined by commas (default: the run's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation tasks (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)
    for flag, name in EVAL_FLAGS.items():
        p.add_argument(flag, dest="setting:" + name, default=None, metavar=name.rsplit(".", 1)[-1].upper(),
                       help=f"{name} (default: the run's)")


def run(args) -> int:
    import numpy as np

    from fometa import checkpoint, config, distributed
    from fometa.backends import BackendError
    from fometa.cli import CLIError
    from fometa.commands import apply_threads
    from fometa.commands.train import check_backend, overrides_from_args
    from fometa.data import DataError
    from fometa.progress import ProgressBar
    from fometa.train import CHECKPOINT_FILE, build_learner, check_data, load_splits, make_problem, restore_state

    comm = distributed.world()  # mpiexec -n N: the tasks are split over N ranks; rank 0 prints
    path = Path(args.run)
    ckpt_path = path / CHECKPOINT_FILE if path.is_dir() else path
    try:
        apply_threads(args)
        ckpt = checkpoint.load(ckpt_path)
        cfg = config.from_dict(ckpt.config)
        overrides = overrides_from_args(args, EVAL_FLAGS)
        if args.mode is not None:
            modes = tuple(m.strip() for m in args.mode.split(",") if m.strip())
            bad = [m for m in modes if m not in config.EVAL_MODES]
            if bad or not modes:
                raise CLIError(f"--mode: unknown mode {(bad or [args.mode])[0]!r}; expected "
                               f"{', '.join(config.EVAL_MODES)} or several joined by commas")
            if len(set(modes)) != len(modes):
                raise CLIError(f"--mode: a mode is given twice in {args.mode!r}")
            overrides["eval.mode"] = modes[0]
        else:
            modes = None
        cfg = config.apply_overrides(cfg, overrides)
        modes = modes or (cfg.eval.mode,)
        check_backend(comm.backend_name(cfg.backend))
        splits = load_splits(cfg.data)
        check_data(cfg, splits, eval_splits=(cfg.eval.split,))
    except (config.ConfigError, checkpoint.CheckpointError, DataError, BackendError) as exc:
        raise CLIError(str(exc)) from None
    learner = build_learner(cfg, backend=comm.backend_name(cfg.backend))
    problem = make_problem(cfg, splits)
    state = restore_state(ckpt, learner.backend)
    ev = cfg.eval
    bar = ProgressBar(ev.tasks, label=f"eval {ev.split}", unit="tasks", enabled=not args.quiet and comm.is_root,
                      log_interval=60)
    results = problem.evaluate(learner, state.params, state.inner_state, ev.split, np.random.default_rng(args.seed),
                               ev.tasks, modes=modes, chunk=ev.chunk, progress=lambda done, total: bar.update(done))
    bar.close()
    common = {"split": ev.split, "ways": cfg.model.ways, "shots": ev.shots, "inner_iters": ev.inner_iters,
              "inner_batch": ev.inner_batch, "seed": args.seed, "preset": cfg.preset, "iteration": ckpt.iteration,
              "checkpoint": os.path.abspath(ckpt_path)}
    for res in results.values() if comm.is_root else ():
        print(json.dumps({**res.as_dict(), **common}), flush=True)
    return 0
