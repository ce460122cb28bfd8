"""``fometa train --seeds 0,1,2,3``: several seeds trained together on the task axis (:mod:`fometa.seeds`).

``fometa train --preset P --seeds 0-3 --out runs/x`` writes ``runs/x/seeds.json`` and one ordinary
run folder per seed, ``runs/x/seed0`` .. ``runs/x/seed3`` (each with its ``config.json``, its own
``seed``, ``log.jsonl`` and ``checkpoint.h5``: ``fometa eval``, ``plot`` and ``train --resume`` take
each alone). ``fometa train --resume runs/x`` continues all of them. Standard output gets one JSON
line per run. Called by :mod:`fometa.commands.train`, which owns the arguments.
"""
from __future__ import annotations

import json
import sys

from fometa import checkpoint, config, seeds
from fometa.backends import BackendError
from fometa.build import check_data, load_splits
from fometa.commands.options import (CLIError, check_backend, default_run_folder, given_settings, new_config,
                                     resumed_config, saved_run, user_error)
from fometa.data import DataError
from fometa.lock import LockedError, hold
from fometa.runfolder import RunFolder
from fometa.train import TrainingError, TrainOptions


def is_group(path) -> bool:
    """Whether ``path`` is the folder of a group of seeds (it holds ``seeds.json``)."""
    return path is not None and seeds.SeedGroup(path).holds_group()


def _resume_group(args, file_settings, flags):
    if args.preset or args.out or args.seeds:
        raise CLIError("--resume continues a group of seeds with its own configuration; it takes neither --preset, "
                       "--out nor --seeds (override single settings with flags)")
    if "seed" in flags:
        raise CLIError("--seed: the runs of a group keep their seeds")
    group = seeds.SeedGroup(args.resume)
    cfgs, dirs, resumes = [], [], []
    for seed, path in group.read():
        folder = RunFolder(path)
        if not folder.path.is_dir() or not folder.holds_run():
            raise CLIError(f"{folder.path}: the run of seed {seed} is missing (no {folder.config_path.name} or "
                           f"{folder.checkpoint_path.name})")
        saved, resume = saved_run(folder, quiet=args.quiet)
        if saved.seed != seed:
            raise CLIError(f"{folder.path}: its run has seed {saved.seed}, but {group.file} says {seed}")
        cfgs.append(resumed_config(saved, file_settings, flags, args.force, f" ({folder.path})",
                                   keep=("preset", "seed")))
        dirs.append(folder.path)
        resumes.append(resume)
    return group, cfgs, dirs, resumes


def _new_group(args, file_settings, flags):
    try:
        seed_list = seeds.parse_seeds(args.seeds)
    except ValueError as exc:
        raise CLIError(f"--seeds: {exc}") from None
    if "seed" in flags:
        raise CLIError("give --seed or --seeds, not both")
    base = new_config(args, file_settings, flags)
    cfgs = [config.apply_overrides(base, {"seed": s}) for s in seed_list]
    group = seeds.SeedGroup(args.out or default_run_folder(base))
    if group.path.exists() and not group.path.is_dir():
        raise CLIError(f"{group.path}: exists and is not a folder")
    dirs = group.run_dirs(seed_list)
    if group.holds_group() or RunFolder(group.path).holds_run() or any(RunFolder(d).holds_run() for d in dirs):
        raise CLIError(f"{group.path}: already holds a run; continue it with --resume {group.path} "
                       "or choose another --out")
    return group, cfgs, dirs, [None] * len(cfgs)


def run_group(args) -> int:
    try:
        file_settings, flags = given_settings(args)
        make = _resume_group if args.resume else _new_group
        group, cfgs, dirs, resumes = make(args, file_settings, flags)
        seeds.check_group(cfgs)
        check_backend(cfgs[0].backend)  # before any folder is made
        splits = load_splits(RunFolder(dirs[0]).find_data(cfgs[0]) if args.resume else cfgs[0].data)
        check_data(cfgs[0], splits)
        # one writer: the group's folder and every seed's run folder (fometa/lock.py)
        locks = [hold(group.path)] + [hold(d) for d in dirs]
        if not args.resume:
            group.write([c.seed for c in cfgs])  # each run's config.json: its RunWriter (fometa.train)
    except (config.ConfigError, checkpoint.CheckpointError, DataError, BackendError, LockedError) as exc:
        raise user_error(exc, args) from None
    cfg = cfgs[0]
    if not args.quiet:
        at = sorted({r.iteration for r in resumes if r is not None})
        start = f"resuming at meta-iteration {', '.join(map(str, at))}" if at else "starting"
        print(f"fometa train: {start} {cfg.preset} ({cfg.outer.algorithm}, {cfg.meta_iters} meta-iterations) "
              f"for seeds {', '.join(str(c.seed) for c in cfgs)} in {group.path}", file=sys.stderr, flush=True)
    try:
        results = seeds.train_group(cfgs, dirs, splits, resumes=resumes, options=TrainOptions(progress=not args.quiet))
    except TrainingError as exc:
        print(f"fometa: error: {exc}", file=sys.stderr)
        return 1
    finally:
        for lock in locks:
            lock.release()
    for c, d, result in zip(cfgs, dirs, results):
        print(json.dumps({"run": str(d), "seed": c.seed, **result.as_dict()}), flush=True)
    stopped = [r for r in results if r.status == "interrupted"]
    if stopped:
        name = stopped[0].signal
        print(f"fometa train: stopped by {name} at meta-iteration {max(r.iteration for r in results)}; checkpoints "
              f"written. Continue with: fometa train --resume {group.path}", file=sys.stderr)
        return 130 if name == "SIGINT" else 143
    return 0
