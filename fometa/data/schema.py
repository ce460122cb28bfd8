"""The packed-file schema (version 1; described in full in ``datasets/README.md``) and checks
that a file follows it.

Every packed file has the root attributes ``dataset`` (``"omniglot"``, ``"miniimagenet"`` or
``"folder"``), ``schema_version`` (int), ``fometa_version``, ``packing_options`` and ``sources``
(canonical JSON), and a ``sha256`` attribute on each dataset (:func:`~fometa.data._io.array_sha256`
of its values). ``folder`` files (``fometa data folder``, :func:`fometa.data.pack_arrays`) also
record their preprocessing, ``image_spec`` (:class:`fometa.data.ImageSpec` as JSON).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fometa.data._io import DataError, Progress, array_sha256

__all__ = ["SCHEMA_VERSION", "KINDS", "SPLITS", "PackedInfo", "open_packed", "inspect_packed", "verify_packed",
           "required_datasets"]

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


def verify_packed(path, progress: bool = False) -> PackedInfo:
    """Recompute every dataset's SHA-256 and compare it with its ``sha256`` attribute.

    Raises :class:`DataError` naming the first dataset that differs. Reads large datasets one
    row (one character or class) at a time.
    """
    import hashlib


    f, info = open_packed(path)
    try:
        names = required_datasets(info.kind, info.attrs)
        bar = Progress(len(names), f"verify {Path(path).name}", enabled=progress)
        for name in names:
            ds = f[name]
            expected = _attr(ds.attrs.get("sha256"))
            if expected is None:
                raise DataError(path, f"dataset '{name}' has no sha256 attribute")
            if ds.dtype.kind in "OSU" or ds.ndim == 0 or ds.size < (1 << 22):
                actual = array_sha256(ds.asstr()[()] if ds.dtype.kind == "O" else ds[()])
            else:
                h = hashlib.sha256()
                for i in range(ds.shape[0]):
                    h.update(np.ascontiguousarray(ds[i], dtype=ds.dtype.newbyteorder("<")).tobytes())
                actual = h.hexdigest()
            if actual != expected:
                raise DataError(path, f"dataset '{name}' fails its checksum (corrupt file?)")
            bar.update()
    finally:
        f.close()
    return info
