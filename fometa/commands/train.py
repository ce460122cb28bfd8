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
such as ``--eval-interval`` may change freely). SIGINT/SIGTERM write a checkpoint and exit (130/143). One process at a
time writes a run folder: while one ``fometa train`` holds its lock (:mod:`fometa.lock`), another in
the same folder is refused with the holder's process id (exit 2). The last line of
standard output is one JSON object: status, iteration, seconds and the latest accuracies.
A resume whose latest checkpoint is unreadable or fails its
SHA-256 says so, moves it aside to ``checkpoint.damaged.h5`` and continues from the previous one
(:mod:`fometa.runfolder`); it finds the run's data file from any working folder
(:meth:`~fometa.runfolder.RunFolder.find_data`). A training that fails (a non-finite loss, a data file
that cannot be read) exits with status 1 and one line saying what happened and what became of the run
folder: kept with its checkpoint to resume from, or, when it fails before its first checkpoint,
removed if this command made it.

``--seeds 0,1,2,3`` (or ``0-3``) trains several seeds together on the task axis (:mod:`fometa.seeds`):
``RUN_DIR/seeds.json`` and one ordinary run folder per seed, ``RUN_DIR/seed0`` .. ``RUN_DIR/seed3``
(each with its ``config.json``, its own ``seed``, ``log.jsonl`` and ``checkpoint.h5``: ``fometa eval``,
``plot`` and ``train --resume`` take each alone), and one JSON line per run on standard output;
``fometa train --resume RUN_DIR`` continues all of them.

The command parses, resolves what to train in one place (:func:`resolve`: the runs' configurations,
folders and checkpoints), checks the runs and builds what they share before anything is written
(:func:`fometa.train.prepare`: the learner on this machine's backend, the data), and hands the runs
over to the one training loop (:func:`fometa.train.train`, or :func:`fometa.train.train_runs` with
:func:`fometa.seeds.task_results` for several seeds on one task axis).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fometa import atomic, config, distributed, seeds
from fometa.backends import BackendError, UnknownBackendError
from fometa.checkpoint import Checkpoint, CheckpointError
from fometa.commands.options import (
    FLAGS,
    CLIError,
    add_setting_arguments,
    add_threads_argument,
    overrides_from_args,
    user_error,
)
from fometa.data import DataError
from fometa.lock import LOCK_FILE, LockedError, RunLock
from fometa.lock import hold as hold_folder
from fometa.runfolder import RunFolder
from fometa.train import TrainingError, TrainOptions, TrainResult, prepare, train, train_runs

#: the errors of a start that are the user's to mend: one line, exit status 2, nothing written
USER_ERRORS = (config.ConfigError, CheckpointError, DataError, BackendError, LockedError)


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


# ------------------------------------------------------------------------------------------
# a group of seeds on disk: one run folder per seed
# ------------------------------------------------------------------------------------------
#: the file naming a group's seeds and their run folders
GROUP_FILE = "seeds.json"


def run_name(seed: int) -> str:
    """The folder of seed ``seed``'s run inside its group's folder."""
    return f"seed{seed}"


class SeedGroup:
    """The folder of a group of runs: ``seeds.json`` (``{"seeds": [...], "runs": [...]}``) and one run folder per
    seed."""

    def __init__(self, path):
        self.path = Path(path)

    @property
    def file(self) -> Path:
        """``GROUP/seeds.json``."""
        return self.path / GROUP_FILE

    def holds_group(self) -> bool:
        """Whether the folder holds a seed group."""
        return self.file.exists()

    def run_dirs(self, seeds) -> list[Path]:
        """The run folder of each seed: ``GROUP/seed<N>``."""
        return [self.path / run_name(s) for s in seeds]

    def write(self, seeds) -> None:
        """Write ``seeds.json`` (the seeds and their run folders), creating the folder."""
        self.path.mkdir(parents=True, exist_ok=True)
        record = {"seeds": list(seeds), "runs": [run_name(s) for s in seeds]}
        atomic.write_text(self.file, json.dumps(record, indent=2) + "\n")

    def read(self) -> list[tuple[int, Path]]:
        """``[(seed, run folder), ...]``; :class:`~fometa.config.ConfigError` for an unreadable file."""
        try:
            record = json.loads(self.file.read_text())
            pairs = [(int(s), self.path / str(r)) for s, r in zip(record["seeds"], record["runs"], strict=True)]
        except OSError as exc:
            raise config.ConfigError(f"{self.file}: cannot read the group of seeds: {exc.strerror or exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise config.ConfigError(f"{self.file}: not a valid group of seeds ({exc})") from None
        if not pairs:
            raise config.ConfigError(f"{self.file}: names no runs")
        return pairs


# ------------------------------------------------------------------------------------------
# what to train, resolved in one place
# ------------------------------------------------------------------------------------------
@dataclass
class Runs:
    """What one ``fometa train`` trains: each run's resolved configuration, its folder and the checkpoint it
    continues from (``None``: from the start); the folder of the group when several seeds train together;
    whether this command makes the (run's or group's) folder; and the locks this process holds on them
    (rank 0 alone writes, so it alone holds them)."""

    cfgs: list[config.RunConfig] = field(default_factory=list)
    folders: list[RunFolder] = field(default_factory=list)
    resumes: list[Checkpoint | None] = field(default_factory=list)
    group: SeedGroup | None = None
    made: bool = False
    locks: list[RunLock] = field(default_factory=list)

    @property
    def path(self) -> Path:
        """The folder that ``--resume`` continues: the group's, or the one run's."""
        return self.group.path if self.group is not None else self.folders[0].path

    def hold(self, comm: distributed.Single, *paths) -> None:
        """Hold the lock of each of ``paths`` (rank 0 only), each once."""
        for path in paths if comm.is_root else ():
            if all(lock.path != Path(path) for lock in self.locks):
                self.locks.append(hold_folder(path))

    def release(self) -> None:
        for lock in self.locks:
            lock.release()


def resolve(args, comm: distributed.Single) -> Runs:
    """The runs that ``args`` ask for, resolved in one place: a new run's settings as preset, then
    ``--config``, then flags (:func:`fometa.config.new_run_config`); a stopped run's as its own, then
    ``--config`` and flags, refused where they change what it learns unless ``--force``
    (:func:`fometa.config.resumed_run_config`); each run's
    folder, checked to be free or to hold the run to continue, and held (:mod:`fometa.lock`) while it
    exists, before anything in it is read; and the checkpoints to continue from. Raises :class:`CLIError`
    and the errors of :data:`USER_ERRORS`."""
    several = args.seeds is not None or is_group(args.resume)
    if several and comm.size > 1:
        raise CLIError("--seeds trains its runs in one process; run it without mpiexec")
    file_settings = config.load_file(args.config) if args.config else {}
    flags = overrides_from_args(args)
    if args.resume:
        return _resumed(args, file_settings, flags, several, comm)
    return _new(args, file_settings, flags, several, comm)


def is_group(path) -> bool:
    """Whether ``path`` is the folder of a group of seeds (it holds ``seeds.json``)."""
    return path is not None and SeedGroup(path).holds_group()


def _new(args, file_settings: dict, flags: dict, several: bool, comm: distributed.Single) -> Runs:
    seed_list: list[int] = []
    if several:
        try:
            seed_list = parse_seeds(args.seeds)
        except ValueError as exc:
            raise CLIError(f"--seeds: {exc}") from None
        if "seed" in flags:
            raise CLIError("give --seed or --seeds, not both")
    base = config.new_run_config(args.preset, file_settings, flags, args.config)
    path = Path(args.out or default_run_folder(base))
    if path.exists() and not path.is_dir():
        raise CLIError(f"{path}: exists and is not a folder")
    group = SeedGroup(path) if several else None
    if group is not None:
        cfgs = [config.apply_overrides(base, {"seed": seed}) for seed in seed_list]
        folders = [RunFolder(run_dir) for run_dir in group.run_dirs(seed_list)]
    else:
        cfgs, folders = [base], [RunFolder(path)]
    # made by this command: removed again if the run fails before its first checkpoint
    runs = Runs(cfgs, folders, [None] * len(cfgs), group, made=not path.exists())
    runs.hold(comm, *(p for p in [path, *(f.path for f in folders)] if p.is_dir()))  # "in use" first
    if is_group(path) or any(f.holds_run() for f in [RunFolder(path), *folders]):
        raise CLIError(f"{path}: already holds a run; continue it with --resume {path} or choose another --out")
    return runs


def _resumed(args, file_settings: dict, flags: dict, several: bool, comm: distributed.Single) -> Runs:
    group = SeedGroup(args.resume) if several else None
    if group is not None:
        if args.preset or args.out or args.seeds:
            raise CLIError("--resume continues a group of seeds with its own configuration; it takes neither "
                           "--preset, --out nor --seeds (override single settings with flags)")
        if "seed" in flags:
            raise CLIError("--seed: the runs of a group keep their seeds")
        pairs: list[tuple[int | None, Path]] = list(group.read())
    else:
        if args.preset or args.out:
            raise CLIError("--resume continues a run with its own configuration; it takes neither --preset "
                           "nor --out (override single settings with flags)")
        pairs = [(None, Path(args.resume))]
    runs = Runs(group=group)
    for seed, run_dir in pairs:
        folder = RunFolder(run_dir)
        if not folder.path.is_dir() or not folder.holds_run():
            what = "no run to resume here" if seed is None else f"the run of seed {seed} is missing"
            raise CLIError(f"{folder.path}: {what} (no {folder.config_path.name} or {folder.checkpoint_path.name})")
        runs.hold(comm, *([group.path] if group is not None else []), folder.path)  # before reading the checkpoint
        saved, resume = saved_run(folder, quiet=not comm.is_root, set_aside=True)
        if group is not None and saved.seed != seed:
            raise CLIError(f"{folder.path}: its run has seed {saved.seed}, but {group.file} says {seed}")
        where, keep = ("", ("preset",)) if seed is None else (f" ({folder.path})", ("preset", "seed"))
        runs.cfgs.append(config.resumed_run_config(saved, file_settings, flags, args.force, where, keep))
        runs.folders.append(folder)
        runs.resumes.append(resume)
    return runs


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2,3"`` or ``"0-3"`` (or a mix, ``"0-2,7"``) as a list of distinct non-negative seeds."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        try:
            values = range(int(lo), int(hi) + 1) if dash else [int(part)]
        except ValueError:
            raise ValueError("seeds are non-negative integers or ranges a-b separated by commas, got "
                             f"{text!r}") from None
        if dash and int(hi) < int(lo):
            raise ValueError(f"empty seed range {part!r}")
        seeds.extend(values)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {text!r}")
    return seeds


def saved_run(folder: RunFolder, quiet: bool = False,
              set_aside: bool = False) -> tuple[config.RunConfig, Checkpoint | None]:
    """A stopped run's configuration and the checkpoint to continue it from: the latest, or the previous one
    if the latest is damaged (said on stderr unless ``quiet``; with ``set_aside``, by a caller holding the
    folder, the damaged file is also moved aside: :meth:`fometa.runfolder.RunFolder.load_checkpoint`);
    ``None`` when the run stopped before its first checkpoint (the configuration is then its folder's
    ``config.json``)."""
    resume = None
    if folder.has_checkpoint():
        resume, note = folder.load_checkpoint(set_aside=set_aside)
        if note and not quiet:
            print(f"fometa train: {note}", file=sys.stderr, flush=True)
    return (config.from_dict(resume.config) if resume is not None else folder.read_config()), resume


def default_run_folder(cfg: config.RunConfig) -> str:
    """Where a new run goes without ``--out``: ``runs/<preset>``, for a folder file ``runs/<its name>``."""
    if cfg.data.kind == "folder" and cfg.data.path:
        return os.path.join("runs", os.path.splitext(os.path.basename(cfg.data.path))[0])
    return os.path.join("runs", cfg.preset)


# ------------------------------------------------------------------------------------------
# the command: resolve, check the data, hand the runs to the one loop, report
# ------------------------------------------------------------------------------------------
def run(args) -> int:
    comm = distributed.world()  # mpiexec -n N: N ranks run this same command; rank 0 alone writes and prints
    try:
        runs = resolve(args, comm)
        # what the settings ask of this machine (the backend), of comm's ranks and of the data, before the
        # run folders are made
        data = runs.folders[0].find_data(runs.cfgs[0]) if args.resume else None
        learner, splits = prepare(runs.cfgs, comm=comm, data=data)
        comm.barrier()  # every rank has checked the folders before rank 0 writes to them (train's RunWriter)
        runs.hold(comm, *([runs.path] if runs.group is not None else []), *(f.path for f in runs.folders))
        if runs.group is not None and not args.resume:
            runs.group.write([c.seed for c in runs.cfgs])  # each run's config.json: its RunWriter (fometa.train)
    except UnknownBackendError as exc:
        raise CLIError(f"--backend: {exc}") from None
    except USER_ERRORS as exc:
        raise user_error(exc, args) from None
    if not args.quiet and comm.is_root:
        print(start_line(runs), file=sys.stderr, flush=True)
    options = TrainOptions(progress=not args.quiet)
    try:
        if runs.group is not None:  # the seeds share one task axis (fometa.seeds)
            results = train_runs(runs.cfgs, [f.path for f in runs.folders], splits, resumes=runs.resumes,
                                 provider=seeds.task_results, options=options, learner=learner)
        else:  # one run, on every rank of an mpiexec job (fometa.distributed)
            results = [train(runs.cfgs[0], runs.folders[0].path, splits, resume=runs.resumes[0], options=options,
                             learner=learner)]
    except (TrainingError, DataError, CheckpointError) as exc:  # a TrainingError: the same on every rank
        if comm.is_root:
            after = "" if runs.group is not None else after_failure(runs.folders[0], runs.made, bool(args.resume))
            print(f"fometa: error: {exc}{after}", file=sys.stderr, flush=True)
        elif not isinstance(exc, TrainingError):
            print(f"fometa: error: {comm.label}{exc}", file=sys.stderr, flush=True)
        if not isinstance(exc, TrainingError):  # met by one rank alone: the others are stopped with it
            comm.abort(1)
        return 1
    finally:
        runs.release()
    return report(runs, results, comm)


def start_line(runs: Runs) -> str:
    """The line a training starts with: where it starts (or resumes), what it trains and where."""
    at = sorted({r.iteration for r in runs.resumes if r is not None})
    start = f"resuming at meta-iteration {', '.join(map(str, at))}" if at else "starting"
    if runs.group is None:
        return f"fometa train: {start} {describe_run(runs.cfgs[0])} in {runs.path}"
    cfg = runs.cfgs[0]
    return (f"fometa train: {start} {cfg.preset} ({cfg.outer.algorithm}, {cfg.meta_iters} meta-iterations) "
            f"for seeds {', '.join(str(c.seed) for c in runs.cfgs)} in {runs.path}")


def describe_run(cfg: config.RunConfig) -> str:
    """What a run trains, for its start line: the preset, on the data file it reads (for a file of any images,
    the file first: the preset only lends its settings), the algorithm and the budget."""
    budget = f"{cfg.outer.algorithm}, {cfg.meta_iters} meta-iterations"
    if cfg.data.kind == "sine":
        return f"{cfg.preset} ({budget})"
    if cfg.data.kind == "folder":
        return f"{cfg.data.path} ({cfg.model.ways}-way, the settings of {cfg.preset}; {budget})"
    return f"{cfg.preset} on {cfg.data.path} ({budget})"


def report(runs: Runs, results: list[TrainResult], comm: distributed.Single) -> int:
    """One JSON line per run on standard output and, for a stop by a signal, how to continue on stderr (rank 0
    alone prints); the exit status: 130 for SIGINT, 143 for SIGTERM, else 0."""
    stopped = [r for r in results if r.status == "interrupted"]
    if comm.is_root:
        for cfg, folder, result in zip(runs.cfgs, runs.folders, results, strict=True):
            seed = {"seed": cfg.seed} if runs.group is not None else {}
            print(json.dumps({"run": str(folder.path), **seed, **result.as_dict()}), flush=True)
        if stopped:
            written = "checkpoints" if runs.group is not None else "checkpoint"
            print(f"fometa train: stopped by {stopped[0].signal} at meta-iteration "
                  f"{max(r.iteration for r in results)}; {written} written. Continue with: fometa train --resume "
                  f"{runs.path}", file=sys.stderr)
    if not stopped:
        return 0
    return 130 if stopped[0].signal == "SIGINT" else 143


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
