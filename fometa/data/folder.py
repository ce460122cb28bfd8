"""A ``folder`` file (``fometa data folder``, :func:`fometa.data.pack_arrays`) read as class-indexed splits.

Each split stores its examples in one array ``images (N, H, W[, 3])``, class ``c`` being rows
``offsets[c]:offsets[c + 1]`` (classes may differ in size). A split reads whole classes on demand
(one contiguous slice) and keeps the ``cache_classes`` most recently used ones in memory (all
of them by default: these files are usually small). Examples are float32 in [0, 1]: uint8
``images`` are read as ``x / 255`` (as Mini-ImageNet), float32 ones as they are. The file is
opened read-only on first use (again after a fork).
"""
from __future__ import annotations

import numpy as np

from fometa.data._io import DataError
from fometa.data.schema import open_packed, reading, verify_packed
from fometa.data.splits import StoredSplit

__all__ = ["FolderSplit", "load_folder"]


class FolderSplit(StoredSplit):
    """One split of a ``folder`` file: ``names`` are the class names, ``offsets`` ``(C + 1,)`` the
    class boundaries in the split's rows; ``cache_classes``: classes kept in memory (``None``: all)."""

    def __init__(self, path, split: str, names, offsets, example_shape, scale: int, cache_classes: int | None = None):
        super().__init__(path, split, names, example_shape, cache_classes)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.scale = scale

    def _group(self):
        return self._h5()[self.split]

    def num_examples(self, c: int) -> int:
        """The number of images of class ``c``."""
        c = self._check_class(c)
        return int(self.offsets[c + 1] - self.offsets[c])

    def _read_class(self, c: int) -> np.ndarray:
        return self._group()["images"][self.offsets[c]:self.offsets[c + 1]]

    def get(self, c: int, indices) -> np.ndarray:
        """float32 ``(len(indices), *example_shape)`` in [0, 1]: images ``indices`` of class ``c`` (the class
        read whole and cached)."""
        x = self.class_stored(c)[self._indices(c, indices)]
        return x.astype(np.float32) / np.float32(self.scale) if x.dtype == np.uint8 else x.astype(np.float32)

    def filenames(self, c: int) -> list[str]:
        """Source file names of class ``c``'s examples (for :func:`~fometa.data.pack_arrays`: indices)."""
        c = self._check_class(c)
        with reading(self.path, f"{self.split}/filenames"):
            return list(self._group()["filenames"].asstr()[self.offsets[c]:self.offsets[c + 1]])


def load_folder(path, cache_classes: int | None = None, verify: bool = False) -> dict:
    """Splits ``{"train", "val", "test"}`` (those in the file) of a ``folder`` file as :class:`FolderSplit`.

    ``cache_classes``: classes each split keeps in memory (``None``: every class read);
    ``verify``: check the stored SHA-256 of every dataset first (reads the whole file).
    """
    if verify:
        verify_packed(path)
    f, info = open_packed(path, "folder")
    with f:
        splits = {}
        for split in info.attrs["splits"]:
            g = f[split]
            with reading(path, f"{split}/classes"):
                names = g["classes"].asstr()[()]
            with reading(path, f"{split}/offsets"):
                offsets = g["offsets"][()]
            images = g["images"]
            n = images.shape[0]
            if offsets.shape != (len(names) + 1,) or offsets[0] != 0 or offsets[-1] != n \
                    or (np.diff(offsets) < 1).any() or g["filenames"].shape != (n,):
                raise DataError(path, f"inconsistent shapes in {split}: {len(names)} classes, offsets "
                                      f"{offsets.shape}, images {images.shape}, filenames {g['filenames'].shape}")
            if images.dtype not in (np.uint8, np.float32) or images.ndim not in (3, 4) \
                    or (images.ndim == 4 and images.shape[-1] != 3):
                raise DataError(path, f"{split}/images must be uint8 or float32 (N, H, W[, 3]), got "
                                      f"{images.dtype} {images.shape}")
            scale = 255 if images.dtype == np.uint8 else 1
            splits[split] = FolderSplit(path, split, names, offsets, images.shape[1:], scale, cache_classes)
    return splits
