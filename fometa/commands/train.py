"""``fometa train``: meta-train from one of the paper's presets, or continue a stopped run.

``fometa train --preset omniglot-5way-1shot --data datasets/omniglot.h5 --out runs/o5w1s``
builds the configuration as preset, then ``--config FILE`` (TOML or JSON), then flags (every
setting has one, derived from its name: ``inner.lr`` -> ``--inner-lr``; ``--set NAME=VALUE``
reaches any by its dotted name), writes it to
``RUN_DIR/config.json``, and trains, logging to ``RUN_DIR/log.jsonl`` and checkpointing to
``RUN_DIR/checkpoint.h5``. Any packed file trains: ``fometa train --data datasets/mydata.h5 --ways 5``
takes the paper's setting closest to the file's images (:func:`fometa.config.closest_preset`) and
the network that fits them, and records the file's preprocessing (its ``ImageSpec``) in the run's
configuration, so that predicting later prepares new images the same way (``--model-arch``,
``--model-depth`` and ``--model-filters`` choose another network). ``fometa train --resume RUN_DIR``
continues from the checkpoint; a changed setting is refused unless ``--force`` (cadence settings
such as ``--eval-interval`` may change freely). SIGINT/SIGTERM write a checkpoint and exit (130/143). One process at a time
writes a run folder: while one ``fometa train`` holds its lock (:mod:`fometa.lock`), another in
the same folder is refused with the holder's process id (exit 2). The last line of
standard output is one JSON object: status, iteration, seconds and the latest accuracies.
``--seeds 0,1,2,3`` trains several seeds together on the task axis, one run folder each
(:mod:`fometa.commands.train_seeds`). A resume whose latest checkpoint is unreadable or fails its
SHA-256 says so, moves it aside to ``checkpoint.damaged.h5`` and continues from the previous one
(:mod:`fometa.runfolder`); it finds the run's data file from any working folder
(:meth:`~fometa.runfolder.RunFolder.find_data`). A training that fails (a non-finite loss, a data file
that cannot be read) exits with status 1 and one line saying what happened and what became of the run
folder: kept with its checkpoint to resume from, or, when it fails before its first checkpoint,
removed if this command made it.
"""
from __future__ import annotations

import json
import os
import shutil
import sys

from fometa import checkpoint, config, distributed
from fometa.backends import BackendError
from fometa.build import check_data, load_splits
from fometa.commands import train_seeds
from fometa.commands.options import (FLAGS, CLIError, add_setting_arguments, add_threads_argument, check_backend,
                                     default_run_folder, given_settings, new_config, resumed_config, saved_run,
                                     user_error)
from fometa.data import DataError
from fometa.lock import LOCK_FILE, LockedError
from fometa.lock import hold as hold_folder
from fometa.runfolder import RunFolder
from fometa.train import TrainingError, TrainOptions, train


def add_arguments(p):
    p.add_argument("--preset", default=None, help=f"the paper's setting: {', '.join(config.PRESETS)} (default with "
                                                  "--data: the one closest to the file's images and --ways)")
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
                        "RUN_DIR/seed<N> each; --resume RUN_DIR continues them all")
    add_setting_arguments(p.add_argument_group("settings (override the preset)"), FLAGS.values())


def run(args) -> int:
    comm = distributed.world()  # mpiexec -n N: N ranks run this same command; rank 0 alone writes and prints

    def hold(path):  # rank 0 alone writes in the run folder, so it alone holds its lock
        return hold_folder(path) if comm.is_root else None

    if args.seeds is not None or train_seeds.is_group(args.resume):
        if comm.size > 1:
            raise CLIError("--seeds trains its runs in one process; run it without mpiexec")
        return train_seeds.run_group(args)
    try:
        file_settings, flags = given_settings(args)
        resume = lock = None  # lock: held while this process may write in the run folder
        made = False
        if args.resume:
            if args.preset or args.out:
                raise CLIError("--resume continues a run with its own configuration; it takes neither --preset "
                               "nor --out (override single settings with flags)")
            folder = RunFolder(args.resume)
            if not folder.path.is_dir() or not folder.holds_run():
                raise CLIError(f"{folder.path}: no run to resume here (no {folder.config_path.name} or "
                               f"{folder.checkpoint_path.name})")
            lock = hold(folder.path)  # before reading the checkpoint that a running holder may still write
            saved, resume = saved_run(folder, quiet=not comm.is_root, set_aside=True)
            cfg = resumed_config(saved, file_settings, flags, args.force)
        else:
            cfg = new_config(args, file_settings, flags)
            folder = RunFolder(args.out or default_run_folder(cfg))
            made = not folder.path.exists()  # by this command: removed again if it fails before a checkpoint
            if folder.path.exists() and not folder.path.is_dir():
                raise CLIError(f"{folder.path}: exists and is not a folder")
            lock = hold(folder.path) if folder.path.is_dir() else None  # "in use" before "already holds a run"
            if folder.holds_run() or train_seeds.is_group(folder.path):
                raise CLIError(f"{folder.path}: already holds a run; continue it with --resume {folder.path} "
                               "or choose another --out")
        check_backend(comm.backend_name(cfg.backend))  # before the run folder is made
        distributed.check_training(comm, cfg.inner, cfg.outer)
        splits = load_splits(folder.find_data(cfg) if args.resume else cfg.data)
        check_data(cfg, splits)
        comm.barrier()  # every rank has checked the folder before rank 0 writes to it (train's RunWriter)
        if comm.is_root:
            lock = lock or hold(folder.path)
    except (config.ConfigError, checkpoint.CheckpointError, DataError, BackendError, LockedError) as exc:
        raise user_error(exc, args) from None
    if not args.quiet and comm.is_root:
        start = "resuming at meta-iteration " + str(resume.iteration) if resume else "starting"
        print(f"fometa train: {start} {describe_run(cfg)} in {folder.path}", file=sys.stderr, flush=True)
    try:
        result = train(cfg, folder.path, splits, resume=resume, options=TrainOptions(progress=not args.quiet))
    except (TrainingError, DataError, checkpoint.CheckpointError) as exc:  # a TrainingError: the same on every rank
        if comm.is_root:
            print(f"fometa: error: {exc}{after_failure(folder, made, bool(args.resume))}", file=sys.stderr, flush=True)
        elif not isinstance(exc, TrainingError):
            print(f"fometa: error: {comm.label}{exc}", file=sys.stderr, flush=True)
        if not isinstance(exc, TrainingError):  # met by one rank alone: the others are stopped with it
            comm.abort(1)
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


def describe_run(cfg: config.RunConfig) -> str:
    """What a run trains, for its start line: the preset, on the data file it reads (for a file of any images,
    the file first: the preset only lends its settings), the algorithm and the budget."""
    budget = f"{cfg.outer.algorithm}, {cfg.meta_iters} meta-iterations"
    if cfg.data.kind == "sine":
        return f"{cfg.preset} ({budget})"
    if cfg.data.kind == "folder":
        return f"{cfg.data.path} ({cfg.model.ways}-way, the settings of {cfg.preset}; {budget})"
    return f"{cfg.preset} on {cfg.data.path} ({budget})"


def after_failure(folder: RunFolder, made: bool, resumed: bool) -> str:
    """What became of the run folder of a training that failed, said after its error (and done): kept to resume
    from its checkpoint, or left as it was by a resume; a new run that failed before its first checkpoint
    leaves nothing: its folder is removed if this command made it, else emptied of the files it wrote."""
    if folder.has_checkpoint():
        return f"; the run folder keeps its checkpoint: continue with fometa train --resume {folder.path}"
    if resumed:
        return f"; the run folder is left as it was: fometa train --resume {folder.path} starts it again"
    if made:
        shutil.rmtree(folder.path, ignore_errors=True)
        return f"; removed the run folder {folder.path}, made by this training before its first checkpoint"
    for path in (folder.config_path, folder.log_path, folder.segments_path, folder.path / LOCK_FILE):
        if path.exists():
            os.unlink(path)
    return f"; removed the files this training wrote in {folder.path} (it failed before its first checkpoint)"
