"""The run folder: a training run's files, and how a run is picked up again.

A run folder holds

* ``config.json``: the full resolved configuration (:mod:`fometa.config`);
* ``log.jsonl``: one JSON object per logged evaluation (iteration, mean inner losses since the
  previous line, few-task accuracy or sine MSE, seconds);
* ``checkpoint.h5``: the latest checkpoint (:mod:`fometa.checkpoint`), and ``checkpoint.prev.h5``,
  the one before it: a checkpoint that is cut short or damaged after it was written (a full disk,
  a bad copy) costs the iterations since the previous one, not the run; ``checkpoint.damaged.h5``:
  the last latest checkpoint found damaged, set aside (one is kept) for a look;
* ``segments.jsonl``: one line per stretch of training (the iterations it ran, its wall time, and
  the fometa that ran it: version, git commit where known, and a digest of the package's source),
  so a run trained over several sessions and versions says which code trained which range.

The rule of the fallback: ``checkpoint.prev.h5`` is only ever replaced by a checkpoint that was
written and read back whole. Writing a checkpoint (:meth:`RunFolder.save_checkpoint`) writes the new
one under a temporary name and reads it back (its SHA-256 checks out) before anything moves; the
latest it replaces becomes the previous one only if it too reads back whole, and is otherwise moved
aside to ``checkpoint.damaged.h5`` while the previous one stays. :meth:`RunFolder.load_checkpoint`
takes the latest readable checkpoint whose SHA-256 checks out and says when it had to fall back; a
resume (which holds the folder) also moves the damaged latest aside at once. So a damaged
checkpoint never displaces a good one, and two faults in a row still leave a checkpoint to continue
from. ``fometa train`` holds the folder's lock (:mod:`fometa.lock`) while it writes.

A run folder works from any working folder: its data file is looked for as recorded, then from the
run folder and each folder above it (:meth:`RunFolder.find_data`), so ``runs/x`` trained from the
project's folder with ``--data datasets/x.h5`` finds ``datasets/x.h5`` from anywhere, and its
``config.json`` keeps the path as it was given.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import fometa
from fometa import atomic
from fometa import checkpoint as ckpt_io
from fometa import config as C
from fometa.data import DataError

__all__ = ["RunFolder", "find_data", "CONFIG_FILE", "LOG_FILE", "CHECKPOINT_FILE", "PREVIOUS_CHECKPOINT_FILE",
           "DAMAGED_CHECKPOINT_FILE", "SEGMENTS_FILE", "code_version"]

CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_FILE = "checkpoint.h5"
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.h5"
DAMAGED_CHECKPOINT_FILE = "checkpoint.damaged.h5"
SEGMENTS_FILE = "segments.jsonl"


class RunFolder:
    """The files of one run (see the module docstring)."""

    def __init__(self, path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        """``RUN/config.json``."""
        return self.path / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        """``RUN/log.jsonl``."""
        return self.path / LOG_FILE

    @property
    def checkpoint_path(self) -> Path:
        """``RUN/checkpoint.h5``, the latest checkpoint."""
        return self.path / CHECKPOINT_FILE

    @property
    def previous_checkpoint_path(self) -> Path:
        """``RUN/checkpoint.prev.h5``, the checkpoint before it."""
        return self.path / PREVIOUS_CHECKPOINT_FILE

    @property
    def damaged_checkpoint_path(self) -> Path:
        """``RUN/checkpoint.damaged.h5``, the last latest checkpoint found damaged (set aside)."""
        return self.path / DAMAGED_CHECKPOINT_FILE

    @property
    def segments_path(self) -> Path:
        """``RUN/segments.jsonl``."""
        return self.path / SEGMENTS_FILE

    def holds_run(self) -> bool:
        """Whether the folder holds a run (a configuration or a checkpoint)."""
        return self.config_path.exists() or self.has_checkpoint()

    def has_checkpoint(self) -> bool:
        """Whether the folder holds a checkpoint, latest or previous."""
        return self.checkpoint_path.exists() or self.previous_checkpoint_path.exists()

    # -- configuration ---------------------------------------------------------------------
    def write_config(self, cfg: C.RunConfig) -> None:
        """Write ``cfg`` as ``config.json`` (atomically), creating the folder."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.config_path, json.dumps(C.to_dict(cfg), indent=2) + "\n")

    def read_config(self) -> C.RunConfig:
        """The run's configuration from ``config.json``; raises :class:`~fometa.config.ConfigError` naming the
        file."""
        try:
            d = json.loads(self.config_path.read_text())
        except OSError as exc:
            raise C.ConfigError(f"{self.config_path}: cannot read the run's configuration: "
                                f"{exc.strerror or exc}") from None
        except ValueError as exc:
            raise C.ConfigError(f"{self.config_path}: not valid JSON: {exc}") from None
        return C.from_dict(d)

    def find_data(self, cfg: C.RunConfig) -> C.DataConfig:
        """``cfg.data`` with its file where it is found from here (:func:`find_data`, from this run folder)."""
        return find_data(cfg.data, self.path)

    # -- the log ---------------------------------------------------------------------------
    def read_log(self) -> list[dict]:
        """The log's records (a partly written last line, from a killed run, is skipped)."""
        return _read_jsonl(self.log_path)

    def append_log(self, record: dict) -> None:
        """Append one record to ``log.jsonl``."""
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_log(self, iteration: int) -> None:
        """Drop records after ``iteration`` (written after the checkpoint a resumed run starts from)."""
        if not self.log_path.exists():
            return
        keep = [r for r in self.read_log() if r.get("iteration", 0) <= iteration]
        atomic.write_text(self.log_path, "".join(json.dumps(r) + "\n" for r in keep))

    # -- checkpoints -----------------------------------------------------------------------
    def save_checkpoint(self, ckpt: ckpt_io.Checkpoint) -> str:
        """Write ``ckpt`` as the latest checkpoint, keeping the one it replaces as the previous one if that
        reads back whole (the rule in the module docstring); returns a note (``""`` when all was well)
        when the replaced one was damaged and moved aside instead.

        Raises :class:`~fometa.checkpoint.CheckpointError` (and moves nothing) if the new checkpoint does
        not read back whole."""
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(self.checkpoint_path) as tmp:
            ckpt_io.write(tmp, ckpt)
            try:
                ckpt_io.load(tmp)
            except ckpt_io.CheckpointError as exc:
                raise ckpt_io.CheckpointError(self.checkpoint_path, "the checkpoint just written does not read back "
                                                                    f"whole ({exc.problem}); nothing moved") from None
            note = ""
            if self.checkpoint_path.exists():
                try:
                    ckpt_io.load(self.checkpoint_path)
                except ckpt_io.CheckpointError as exc:
                    note = self._set_aside(str(exc)) + f"; {self.previous_checkpoint_path.name} is kept"
                else:
                    os.replace(self.checkpoint_path, self.previous_checkpoint_path)
        return note

    def _set_aside(self, problem: str) -> str:
        """Move the damaged latest checkpoint to ``checkpoint.damaged.h5`` (replacing an older one)."""
        os.replace(self.checkpoint_path, self.damaged_checkpoint_path)
        return f"{problem}; moved it aside to {self.damaged_checkpoint_path}"

    def load_checkpoint(self, set_aside: bool = False) -> tuple[ckpt_io.Checkpoint, str]:
        """The latest usable checkpoint and a note (``""`` when it is the latest one).

        A latest checkpoint that is missing, unreadable or fails its SHA-256 is passed over for
        the previous one, and the note says so and names the iteration the run restarts from; with
        ``set_aside`` (a resume, holding the folder) a damaged latest is also moved aside to
        ``checkpoint.damaged.h5``, so that no later checkpoint can rotate it into the fallback.
        Raises :class:`~fometa.checkpoint.CheckpointError` when neither can be used.
        """
        try:
            return ckpt_io.load(self.checkpoint_path), ""
        except ckpt_io.CheckpointError as exc:
            if not self.previous_checkpoint_path.exists():
                raise
            latest_error = str(exc)
        try:
            previous = ckpt_io.load(self.previous_checkpoint_path)
        except ckpt_io.CheckpointError as exc:
            raise ckpt_io.CheckpointError(self.path, f"no usable checkpoint ({latest_error}; {exc})") from None
        if set_aside and self.checkpoint_path.exists():
            latest_error = self._set_aside(latest_error)
        return previous, (f"{latest_error}; continuing from the previous checkpoint, "
                          f"{self.previous_checkpoint_path.name} at meta-iteration {previous.iteration}")

    # -- provenance ------------------------------------------------------------------------
    def read_segments(self) -> list[dict]:
        """The records of ``segments.jsonl``, one per stretch of training."""
        return _read_jsonl(self.segments_path)

    def append_segment(self, start: int, stop: int, seconds: float, status: str) -> None:
        """Record a stretch of training: meta-iterations ``start`` to ``stop``, by this fometa."""
        record = {"start": start, "stop": stop, "seconds": round(seconds, 3), "status": status,
                  "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **code_version()}
        with open(self.segments_path, "a") as f:
            f.write(json.dumps(record) + "\n")


def find_data(data: C.DataConfig, run_dir=None) -> C.DataConfig:
    """``data`` with its file where it is found from the working folder: the recorded ``data.path`` as it
    is, else (for a relative path and a run folder ``run_dir``) the first ``<folder>/<path>`` over the
    run folder and each folder above it. The configuration keeps the path as recorded; only reading
    uses the one found.

    Raises :class:`~fometa.data.DataError` naming ``--data`` when the file is nowhere to be found.
    """
    if data.kind == "sine" or data.path is None:
        return data
    given = Path(data.path)
    if given.exists():
        return data
    if run_dir is not None and not given.is_absolute():
        for folder in (Path(run_dir).resolve(), *Path(run_dir).resolve().parents):
            if (folder / given).exists():
                return dataclasses.replace(data, path=str(folder / given))
    where = f"from here, nor from the run folder {run_dir} or a folder above it" if run_dir is not None else "here"
    raise DataError(data.path, f"the run's data file is not found {where}; give it with --data FILE.h5")


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """``{"fometa": version, "commit": git commit or None, "source_sha256": digest}`` of the running fometa.

    The commit is the package folder's git commit (with ``+dirty`` when its files differ from it)
    where fometa runs from a git checkout; the digest covers every ``.py`` file of the package,
    so two installs of the same code agree on it.
    """
    root = Path(fometa.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    commit = None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=False)
        if head.returncode == 0:
            commit = head.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "."],
                                   capture_output=True, text=True, timeout=10, check=False)
            if dirty.returncode == 0 and dirty.stdout.strip():
                commit += "+dirty"
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"fometa": fometa.__version__, "commit": commit, "source_sha256": digest.hexdigest()}
