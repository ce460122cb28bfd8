"""The run folder: a training run's files, and how a run is picked up again.

A run folder holds

* ``config.json``: the full resolved configuration (:mod:`fometa.config`);
* ``log.jsonl``: one JSON object per logged evaluation (iteration, mean inner losses since the
  previous line, few-task accuracy or sine MSE, seconds);
* ``checkpoint.h5``: the latest checkpoint (:mod:`fometa.checkpoint`), and ``checkpoint.prev.h5``,
  the one before it: a checkpoint that is cut short or damaged after it was written (a full disk,
  a bad copy) costs the iterations since the previous one, not the run;
* ``segments.jsonl``: one line per stretch of training (the iterations it ran, its wall time, and
  the fometa that ran it: version, git commit where known, and a digest of the package's source),
  so a run trained over several sessions and versions says which code trained which range.

Writing a checkpoint moves the latest to ``checkpoint.prev.h5`` and then writes the new one
atomically; :meth:`RunFolder.load_checkpoint` takes the latest readable one whose SHA-256 checks
out, and says when it had to fall back. ``fometa train`` holds the folder's lock
(:mod:`fometa.lock`) while it writes.
"""
from __future__ import annotations

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

__all__ = ["RunFolder", "CONFIG_FILE", "LOG_FILE", "CHECKPOINT_FILE", "PREVIOUS_CHECKPOINT_FILE", "SEGMENTS_FILE",
           "code_version"]

CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_FILE = "checkpoint.h5"
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.h5"
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
            raise C.ConfigError(f"{self.config_path}: cannot read the run's configuration: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise C.ConfigError(f"{self.config_path}: not valid JSON: {exc}") from None
        return C.from_dict(d)

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
    def save_checkpoint(self, ckpt: ckpt_io.Checkpoint) -> None:
        """Keep the latest checkpoint as the previous one, then write ``ckpt`` as the latest (atomically)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self.checkpoint_path.exists():
            os.replace(self.checkpoint_path, self.previous_checkpoint_path)
        ckpt_io.save(self.checkpoint_path, ckpt)

    def load_checkpoint(self) -> tuple[ckpt_io.Checkpoint, str]:
        """The latest usable checkpoint and a note (``""`` when it is the latest one).

        A latest checkpoint that is missing, unreadable or fails its SHA-256 is passed over for
        the previous one, and the note says so and names the iteration the run restarts from.
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
