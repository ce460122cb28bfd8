"""Checkpoints: everything a run needs to continue exactly where it stopped, in one HDF5 file.

A checkpoint holds the meta-learned parameters ``phi``, the inner and outer optimizers' states,
the state of the run's one ``numpy.random.Generator``, the iteration, the configuration (JSON)
and a few counters (``extra``). Restoring all of them makes a resumed run compute, on the NumPy
backend, bit for bit what an uninterrupted run computes.

File layout (``format = "fometa-checkpoint"``, ``format_version = 1``)::

    /                attrs: format, format_version, fometa_version, iteration, config (JSON),
                     rng_state (JSON of ``rng.bit_generator.state``), extra (JSON), sha256
    /params/<name>   one dataset per parameter (``"conv0/kernel"`` nests as groups); the
                     order is the ``names`` attribute (JSON list) of ``/params``
    /inner_state     an optimizer state (see :func:`_write_state`): attr ``type`` ("AdamState",
    /outer_state     "SGDState"); Adam's ``count`` dataset and ``mu``/``nu`` groups like /params

``sha256`` covers every stored array and attribute, so a damaged file is refused rather than
silently resumed. Writes are atomic: the file is written beside its destination under a
temporary name, flushed to disk, then renamed over it, so the previous checkpoint stays valid
until the new one is complete. h5py is imported inside the functions that use it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fometa import __version__, optim
from fometa.atomic import atomic_path
from fometa.backends import backend_of

__all__ = ["Checkpoint", "CheckpointError", "save", "write", "load", "FORMAT", "FORMAT_VERSION", "rng_state",
           "make_rng", "tree_digest"]

FORMAT = "fometa-checkpoint"
FORMAT_VERSION = 1
_STATE_TYPES = {"AdamState": optim.AdamState, "SGDState": optim.SGDState}


class CheckpointError(Exception):
    """A file that is not a usable fometa checkpoint: ``str(exc)`` is ``'<file>: <problem>'``."""

    def __init__(self, file, problem: str):
        self.file, self.problem = str(file), problem
        super().__init__(f"{file}: {problem}")


@dataclass
class Checkpoint:
    """The state of a run after ``iteration`` meta-iterations (host NumPy arrays)."""

    params: dict
    inner_state: object
    outer_state: object
    rng_state: dict
    iteration: int
    config: dict
    extra: dict = field(default_factory=dict)


def rng_state(rng: np.random.Generator) -> dict:
    """The generator's full state (JSON-serializable)."""
    return dict(rng.bit_generator.state)


def make_rng(state: dict) -> np.random.Generator:
    """A generator in exactly ``state`` (as returned by :func:`rng_state`)."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    bit_gen = getattr(np.random, str(name), None)
    if bit_gen is None or not isinstance(bit_gen, type) or not issubclass(bit_gen, np.random.BitGenerator):
        raise ValueError(f"unknown bit generator {name!r}")
    bg = bit_gen()
    bg.state = state
    return np.random.Generator(bg)


# ------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------
def _host(a) -> np.ndarray:
    if isinstance(a, (np.ndarray, np.generic, int, float)):
        return np.asarray(a)
    return np.asarray(backend_of(a).to_host(a))


def _write_tree(group, tree: dict, digest):
    names = list(tree)
    group.attrs["names"] = json.dumps(names)
    digest.update(group.attrs["names"].encode())
    for name in names:
        arr = _host(tree[name])
        group.create_dataset(name, data=arr, track_times=False)
        _digest_array(digest, name, arr)


def _digest_array(digest, name, arr):
    digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
    digest.update(np.ascontiguousarray(arr).tobytes())


def tree_digest(tree: dict) -> str:
    """SHA-256 of a parameter tree (names, dtypes, shapes and values, on any backend), as hex."""
    digest = hashlib.sha256()
    for name, value in tree.items():
        _digest_array(digest, name, _host(value))
    return digest.hexdigest()


def _write_state(group, state, digest):
    kind = type(state).__name__
    if kind not in _STATE_TYPES:
        raise TypeError(f"cannot checkpoint an optimizer state of type {kind}")
    group.attrs["type"] = kind
    digest.update(kind.encode())
    if isinstance(state, optim.AdamState):
        count = _host(state.count)
        group.create_dataset("count", data=count, track_times=False)
        _digest_array(digest, "count", count)
        _write_tree(group.create_group("mu"), state.mu, digest)
        _write_tree(group.create_group("nu"), state.nu, digest)


def save(path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` atomically (temporary file beside it, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        write(tmp, ckpt)
    return path


def write(file, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` into ``file`` as it is (not atomically: :func:`save` is the atomic write)."""
    import h5py

    digest = hashlib.sha256()
    with h5py.File(file, "w") as f:
        attrs = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "fometa_version": __version__,
            "iteration": int(ckpt.iteration),
            "config": json.dumps(ckpt.config, sort_keys=True),
            "rng_state": json.dumps(ckpt.rng_state, sort_keys=True),
            "extra": json.dumps(ckpt.extra, sort_keys=True),
        }
        for k, v in attrs.items():
            f.attrs[k] = v
        _digest_attrs(digest, attrs)
        _write_tree(f.create_group("params"), ckpt.params, digest)
        _write_state(f.create_group("inner_state"), ckpt.inner_state, digest)
        _write_state(f.create_group("outer_state"), ckpt.outer_state, digest)
        f.attrs["sha256"] = digest.hexdigest()


def _digest_attrs(digest, attrs: dict):
    for k in ("format", "format_version", "iteration", "config", "rng_state", "extra"):
        digest.update(f"{k}={attrs[k]}\n".encode())


# ------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------
def _str(v):
    return v.decode() if isinstance(v, bytes) else (v.item() if hasattr(v, "item") else v)


def _read_tree(group, digest) -> dict:
    names = json.loads(_str(group.attrs["names"]))
    digest.update(_str(group.attrs["names"]).encode())
    out = {}
    for name in names:
        arr = np.asarray(group[name][()])
        out[name] = arr
        _digest_array(digest, name, arr)
    return out


def _read_state(group, digest):
    kind = _str(group.attrs["type"])
    if kind not in _STATE_TYPES:
        raise KeyError(f"unknown optimizer state type {kind!r}")
    digest.update(kind.encode())
    if kind == "SGDState":
        return optim.SGDState()
    count = np.asarray(group["count"][()])
    _digest_array(digest, "count", count)
    mu = _read_tree(group["mu"], digest)
    nu = _read_tree(group["nu"], digest)
    return optim.AdamState(count, mu, nu)


def load(path) -> Checkpoint:
    """Read a checkpoint; :class:`CheckpointError` for a missing, foreign, damaged or newer file."""
    import h5py

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(path, "is a folder, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise CheckpointError(path, "not a readable HDF5 file (corrupt or truncated checkpoint?)") from None
    with f:
        fmt = _str(f.attrs.get("format", ""))
        if fmt != FORMAT:
            raise CheckpointError(path, "not a fometa checkpoint (no 'fometa-checkpoint' format marker)")
        version = _str(f.attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise CheckpointError(path, f"checkpoint format version {version!r} is not one this fometa reads "
                                        f"(version {FORMAT_VERSION})")
        try:
            digest = hashlib.sha256()
            keys = ("format", "format_version", "iteration", "config", "rng_state", "extra")
            attrs = {k: _str(f.attrs[k]) for k in keys}
            _digest_attrs(digest, attrs)
            params = _read_tree(f["params"], digest)
            inner = _read_state(f["inner_state"], digest)
            outer = _read_state(f["outer_state"], digest)
            stored = _str(f.attrs["sha256"])
            ckpt = Checkpoint(params, inner, outer, json.loads(attrs["rng_state"]), int(attrs["iteration"]),
                              json.loads(attrs["config"]), json.loads(attrs["extra"]))
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise CheckpointError(path, f"corrupt checkpoint: {exc}") from None
    if digest.hexdigest() != stored:
        raise CheckpointError(path, "corrupt checkpoint: its contents do not match their checksum")
    try:
        make_rng(ckpt.rng_state)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(path, f"corrupt checkpoint: bad generator state ({exc})") from None
    return ckpt
