"""The packed-file schema (version 1; described in full in ``datasets/README.md``) and checks
that a file follows it.

Every packed file has the root attributes ``dataset`` (``"omniglot"``, ``"miniimagenet"`` or
``"folder"``), ``schema_version`` (int), ``fometa_version``, ``packing_options`` and ``sources``
(canonical JSON), and a ``sha256`` attribute on each dataset (:func:`~fometa.data._io.array_sha256`
of its values). ``folder`` files (``fometa data folder``, :func:`fometa.data.pack_arrays`) also
record their preprocessing, ``image_spec`` (:class:`fometa.data.ImageSpec` as JSON).

A damaged file (bytes overwritten or lost after it was written) shows in two ways: a compressed chunk
that cannot be read back, or values that no longer match their dataset's ``sha256``. Every read of a
packed file goes through :func:`reading`, which turns the first into a one-line
:class:`~fometa.data.DataError` naming the file and the dataset and saying how to check and mend it;
:func:`check_packed` finds both, dataset by dataset (``fometa data info --verify``).
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fometa.data._io import DataError, Progress, array_sha256

__all__ = ["SCHEMA_VERSION", "KINDS", "SPLITS", "PackedInfo", "open_packed", "inspect_packed", "verify_packed",
           "check_packed", "required_datasets", "reading"]

SCHEMA_VERSION = 1
KINDS = ("omniglot", "miniimagenet", "folder")
OMNIGLOT_DATASETS = ("alphabet", "character", "set", "drawing", "images105", "images28")
MINIIMAGENET_SPLITS = ("train", "val", "test")
MINIIMAGENET_DATASETS = ("images", "wnids", "filenames")
SPLITS = MINIIMAGENET_SPLITS  # the split names any packed file may hold, in this order
FOLDER_DATASETS = ("images", "offsets", "classes", "filenames")


@dataclass(frozen=True)
class PackedInfo:
    """What a packed file holds: its kind, schema version and root attributes (JSON decoded)."""

    path: str
    kind: str
    schema_version: int
    attrs: dict = field(repr=False)


def _attr(value):
    if isinstance(value, bytes):
        value = value.decode()
    if hasattr(value, "item"):
        value = value.item()
    return value


def required_datasets(kind: str, attrs: dict) -> list[str]:
    if kind == "omniglot":
        return list(OMNIGLOT_DATASETS)
    splits = attrs.get("splits", MINIIMAGENET_SPLITS)
    names = FOLDER_DATASETS if kind == "folder" else MINIIMAGENET_DATASETS
    return [f"{s}/{d}" for s in splits for d in names]


def open_packed(path, kind: str | None = None):
    """Open a packed file read-only and check it: returns ``(h5py.File, PackedInfo)``.

    Raises :class:`DataError` for a missing or non-HDF5 file, a file without fometa attributes,
    an unknown schema version, a kind other than ``kind`` (when given), or a missing dataset.
    The caller closes the file.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(path, f"not a readable HDF5 file: {exc}") from None
    try:
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        for key in ("packing_options", "sources", "splits", "image_spec"):
            if isinstance(attrs.get(key), str):
                try:
                    attrs[key] = json.loads(attrs[key])
                except ValueError:
                    raise DataError(path, f"attribute '{key}' is not valid JSON") from None
        found = attrs.get("dataset")
        if found is None or "schema_version" not in attrs:
            raise DataError(path, "not a fometa packed file (no 'dataset'/'schema_version' attributes)")
        if found not in KINDS:
            raise DataError(path, f"unknown dataset kind {found!r} (expected one of {', '.join(KINDS)})")
        version = attrs["schema_version"]
        if version != SCHEMA_VERSION:
            raise DataError(path, f"unknown schema version {version!r} (this fometa reads version "
                                  f"{SCHEMA_VERSION}; repack the data with this version)")
        if kind is not None and found != kind:
            raise DataError(path, f"holds {found}, expected {kind}")
        splits = attrs.get("splits")
        if found == "folder" and (not isinstance(splits, list) or not splits
                                  or any(s not in SPLITS for s in splits) or len(set(splits)) != len(splits)):
            raise DataError(path, f"'splits' attribute must list distinct names among {', '.join(SPLITS)}, "
                                  f"got {splits!r}")
        for name in required_datasets(found, attrs):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise DataError(path, f"missing dataset '{name}'")
    except DataError:
        f.close()
        raise
    return f, PackedInfo(str(path), found, int(version), attrs)


def inspect_packed(path, kind: str | None = None) -> PackedInfo:
    """Check a packed file (as :func:`open_packed`) and say what it holds."""
    f, info = open_packed(path, kind)
    f.close()
    return info


def _unreadable(name: str, exc: BaseException) -> str:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"dataset '{name}' cannot be read ({reason})"


@contextlib.contextmanager
def reading(path, name: str):
    """Within the block, a failed read of dataset ``name`` of packed file ``path`` (h5py's ``OSError``, such as
    "filter returned failure during read" for a damaged compressed chunk) is a one-line
    :class:`~fometa.data.DataError` naming both and saying how to check and mend the file."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        raise DataError(path, f"{_unreadable(name, exc)}: the file is damaged; pack it again (fometa data info "
                              f"--verify {path} lists every damaged dataset)") from None


def _digest(ds) -> str:
    """:func:`~fometa.data._io.array_sha256` of a dataset's values, large ones read one row at a time."""
    import hashlib

    if ds.dtype.kind in "OSU" or ds.ndim == 0 or ds.size < (1 << 22):
        return array_sha256(ds.asstr()[()] if ds.dtype.kind == "O" else ds[()])
    h = hashlib.sha256()
    for i in range(ds.shape[0]):
        h.update(np.ascontiguousarray(ds[i], dtype=ds.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


def check_packed(path, progress: bool = False) -> list[dict]:
    """Recompute every dataset's SHA-256 and compare it with its ``sha256`` attribute: the findings, one per
    dataset that fails (an empty list for a sound file).

    A finding is ``{"dataset": name, "sha256": stored, "computed": recomputed or None, "problem": text}``:
    values that differ from their checksum, or a dataset that cannot be read at all (``computed`` is
    ``None``). Reads large datasets one row (one character or class) at a time. Raises
    :class:`~fometa.data.DataError` only for a file that is no packed file at all (:func:`open_packed`).
    """
    f, info = open_packed(path)
    findings = []
    try:
        names = required_datasets(info.kind, info.attrs)
        bar = Progress(len(names), f"verify {Path(path).name}", enabled=progress)
        for name in names:
            expected: str | None = None
            computed: str | None = None
            problem: str | None
            try:
                ds = f[name]
                expected = _attr(ds.attrs.get("sha256"))
                if expected is not None:
                    computed = _digest(ds)
            except (OSError, RuntimeError) as exc:
                problem = _unreadable(name, exc)
            else:
                if expected is None:
                    problem = f"dataset '{name}' has no sha256 attribute"
                elif computed != expected:
                    assert computed is not None  # digested when there is a checksum to compare with
                    problem = (f"dataset '{name}' fails its checksum (stored {expected[:12]}…, "
                               f"computed {computed[:12]}…)")
                else:
                    problem = None
            if problem is not None:
                findings.append({"dataset": name, "sha256": expected, "computed": computed, "problem": problem})
            bar.update()
    finally:
        f.close()
    return findings


def describe_findings(findings: list[dict]) -> str:
    """The findings of :func:`check_packed` as one line."""
    return "; ".join(x["problem"] for x in findings) + ": the file is damaged; pack it again"


def verify_packed(path, progress: bool = False) -> PackedInfo:
    """Recompute every dataset's SHA-256 and compare it with its ``sha256`` attribute (:func:`check_packed`).

    Raises :class:`DataError` naming every dataset that fails, on one line.
    """
    findings = check_packed(path, progress)
    if findings:
        raise DataError(path, describe_findings(findings))
    return inspect_packed(path)
