"""``fometa train``: meta-train from one of the paper's presets, or continue a stopped run.

``fometa train --preset omniglot-5way-1shot --data datasets/omniglot.h5 --out runs/o5w1s``
builds the configuration as preset, then ``--config FILE`` (TOML or JSON), then flags (every
setting has one; ``--set NAME=VALUE`` reaches any by its dotted name), writes it to
``RUN_DIR/config.json``, and trains, logging to ``RUN_DIR/log.jsonl`` and checkpointing to
``RUN_DIR/checkpoint.h5``. ``fometa train --resume RUN_DIR`` continues from the checkpoint;
a changed setting is refused unless ``--force`` (cadence settings such as ``--eval-interval``
may change freely). SIGINT/SIGTERM write a checkpoint and exit (130/143). One process at a time
writes a run folder: while one ``fometa train`` holds its lock (:mod:`fometa.lock`), another in
the same folder is refused with the holder's process id (exit 2). The last line of
standard output is one JSON object: status, iteration, seconds and the latest accuracies.
``--seeds 0,1,2,3`` trains several seeds together on the task axis, one run folder each
(:mod:`fometa.commands.train_seeds`); ``--graph auto|on|off`` chooses CUDA-graph replay (:mod:`fometa.graph`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def _bool_flag(name: str) -> bool:
    from fometa import config

    return config._base_type(config.settings()[config.FLAGS[name]])[0] is bool


def add_arguments(p):
    from fometa.commands import add_threads_argument

    from fometa import config

    p.add_argument("--preset", default=None, help=f"the paper's setting: {', '.join(config.PRESETS)}")
    p.add_argument("--config", default=None, metavar="FILE", help="TOML or JSON settings (applied after the preset)")
    p.add_argument("--out", default=None, metavar="RUN_DIR", help="new run folder (default runs/<preset>)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    p.add_argument("--force", action="store_true", help="resume even though settings differ from the run's")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any setting by its dotted name, e.g. --set inner.beta2=0.99 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)
    p.add_argument("--seeds", default=None, metavar="LIST",
                   help="train several seeds together on the task axis, e.g. 0,1,2,3 or 0-3: one run folder "
                        "RUN_DIR/seed<N> each (fometa/seeds.py); --resume RUN_DIR continues them all")
    g = p.add_argument_group("settings (override the preset; see fometa/config.py)")
    for flag, name in config.FLAGS.items():
        dest = "setting:" + name
        if _bool_flag(flag):
            g.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=name)
        else:
            g.add_argument(flag, dest=dest, default=None, metavar=name.rsplit(".", 1)[-1].upper(), help=name)


def overrides_from_args(args, flags=None) -> dict:
    """``{setting: value}`` of the flags given (``--set`` last), with flag names in errors."""
    from fometa import config
    from fometa.cli import CLIError

    out = {}
    for flag, name in (flags or config.FLAGS).items():
        value = getattr(args, "setting:" + name, None)
        if value is None:
            continue
        try:
            out[name] = config.parse_value(name, value)
        except config.ConfigError as exc:
            raise CLIError(f"{flag}: {exc}") from None
    for item in getattr(args, "set", []) or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f"--set needs NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = config.parse_value(name.strip(), value.strip())
        except config.ConfigError as exc:
            raise CLIError(f"--set: {exc}") from None
    if out.get("data.path"):
        out["data.path"] = os.path.abspath(out["data.path"])
    return out


def _new_config(args, file_settings: dict, flags: dict):
    from fometa import config
    from fometa.cli import CLIError

    name = args.preset or file_settings.get("preset")
    if name is None:
        raise CLIError(f"no preset: give --preset NAME (one of {', '.join(config.PRESETS)}) or a --config file "
                       "with preset = \"NAME\"")
    base = config.preset(name)
    if args.preset and file_settings.get("preset") not in (None, args.preset):
        raise CLIError(f"--preset {args.preset} contradicts preset = {file_settings['preset']!r} in {args.config}")
    settings = {k: v for k, v in file_settings.items() if k != "preset"}
    if "data.path" in settings and settings["data.path"] is not None and args.config:
        # a relative path in a config file is relative to that file
        settings["data.path"] = os.path.join(os.path.dirname(os.path.abspath(args.config)), settings["data.path"])
    cfg = config.apply_overrides(base, {**settings, **flags})
    if cfg.data.path is not None:
        cfg = config.apply_overrides(cfg, {"data.path": os.path.abspath(cfg.data.path)})
    return cfg


def check_backend(name) -> None:
    """Raise :class:`~fometa.cli.CLIError` unless backend ``name`` can be used here."""
    from fometa.backends import get_backend
    from fometa.cli import CLIError

    try:
        get_backend(name)
    except ValueError as exc:  # an unknown name (BackendError: one this machine lacks, caught by the CLI)
        raise CLIError(f"--backend: {exc}") from None


def check_graph(cfg) -> None:
    """Raise :class:`~fometa.cli.CLIError` unless graph replay can run as ``cfg.graph`` asks."""
    from fometa.cli import CLIError
    from fometa.graph import GraphError, enabled

    try:
        enabled(cfg.graph, cfg.backend)
    except GraphError as exc:
        raise CLIError(str(exc)) from None


def _describe(differences) -> str:
    return "; ".join(f"{name}: {old!r} in the run, {new!r} now" for name, old, new in differences)


def run(args) -> int:
    from fometa import checkpoint, config, distributed
    from fometa.backends import BackendError
    from fometa.cli import CLIError
    from fometa.commands.train_seeds import is_group, run_group
    from fometa.data import DataError
    from fometa.commands import apply_threads
    from fometa.lock import LockedError
    from fometa.lock import hold as hold_folder
    from fometa.train import RunFolder, TrainingError, check_data, load_splits, train

    comm = distributed.world()  # mpiexec -n N: N ranks run this same command; rank 0 alone writes and prints

    def hold(path):  # rank 0 alone writes in the run folder, so it alone holds its lock
        return hold_folder(path) if comm.is_root else None

    apply_threads(args)
    if args.seeds is not None or is_group(args.resume):
        if comm.size > 1:
            raise CLIError("--seeds trains its runs in one process; run it without mpiexec")
        return run_group(args)
    try:
        file_settings = config.load_file(args.config) if args.config else {}
        flags = overrides_from_args(args)
        resume = lock = None  # lock: held while this process may write in the run folder
        if args.resume:
            if args.preset or args.out:
                raise CLIError("--resume continues a run with its own configuration; it takes neither --preset "
                               "nor --out (override single settings with flags)")
            folder = RunFolder(args.resume)
            if not folder.path.is_dir() or not folder.holds_run():
                raise CLIError(f"{folder.path}: no run to resume here (no {folder.config_path.name} or "
                               f"{folder.checkpoint_path.name})")
            lock = hold(folder.path)  # before reading the checkpoint that a running holder may still write
            if folder.checkpoint_path.exists():
                resume = checkpoint.load(folder.checkpoint_path)
                saved = config.from_dict(resume.config)
            else:  # stopped before its first checkpoint: start it again from its configuration
                saved = folder.read_config()
            if file_settings.get("preset") not in (None, saved.preset):
                raise CLIError(f"{args.config} names preset {file_settings['preset']!r}, the run is {saved.preset!r}")
            cfg = config.apply_overrides(saved, {**{k: v for k, v in file_settings.items() if k != "preset"}, **flags})
            differences = config.diff(saved, cfg, ignore=config.RESUME_FREE)
            if differences and not args.force:
                raise CLIError(f"the configuration differs from the run's: {_describe(differences)} "
                               "(use --force to resume with the new settings anyway)")
        else:
            cfg = _new_config(args, file_settings, flags)
            folder = RunFolder(args.out or os.path.join("runs", cfg.preset))
            if folder.path.exists() and not folder.path.is_dir():
                raise CLIError(f"{folder.path}: exists and is not a folder")
            lock = hold(folder.path) if folder.path.is_dir() else None  # "in use" before "already holds a run"
            if folder.holds_run() or is_group(folder.path):
                raise CLIError(f"{folder.path}: already holds a run; continue it with --resume {folder.path} "
                               "or choose another --out")
        check_backend(comm.backend_name(cfg.backend))  # before the run folder is made
        check_graph(cfg)
        distributed.check_training(comm, cfg.outer.meta_batch, cfg.outer.batched, cfg.inner.state_policy)
        splits = load_splits(cfg.data)
        check_data(cfg, splits)
        comm.barrier()  # every rank has checked the folder before rank 0 writes to it
        if comm.is_root:
            lock = lock or hold(folder.path)
            folder.write_config(cfg)
    except (config.ConfigError, checkpoint.CheckpointError, DataError, BackendError, LockedError) as exc:
        raise CLIError(str(exc)) from None
    if not args.quiet and comm.is_root:
        start = "resuming at meta-iteration " + str(resume.iteration) if resume else "starting"
        print(f"fometa train: {start} {cfg.preset} ({cfg.outer.algorithm}, {cfg.meta_iters} meta-iterations) "
              f"in {folder.path}", file=sys.stderr, flush=True)
    try:
        result = train(cfg, folder.path, splits, resume=resume, progress=not args.quiet)
    except TrainingError as exc:  # the same on every rank
        if comm.is_root:
            print(f"fometa: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if lock is not None:
            lock.release()
    if comm.is_root:
        print(json.dumps({"run": str(folder.path), **result.as_dict()}), flush=True)
    if result.status == "interrupted":
        if comm.is_root:
            print(f"fometa train: stopped by {result.signal} at meta-iteration {result.iteration}; checkpoint "
                  f"written. Continue with: fometa train --resume {folder.path}", file=sys.stderr)
        return 130 if result.signal == "SIGINT" else 143
    return 0
