"""Mini-ImageNet read from a packed file (see ``datasets/README.md``) as class-indexed splits.

Each split reads whole classes on demand (one HDF5 chunk, 600 x 84 x 84 x 3 uint8, about
12.7 MB) and keeps the ``cache_classes`` most recently used ones in memory. Examples are
float32 ``(84, 84, 3)`` in [0, 1], ``uint8 / 255`` as in openai/supervised-reptile's
``miniimagenet.py``. The file is opened read-only on first use (again after a fork).
"""
from __future__ import annotations

import numpy as np

from fometa.data._io import DataError
from fometa.data.schema import open_packed, reading, verify_packed
from fometa.data.splits import StoredSplit

__all__ = ["MiniImageNetSplit", "load_miniimagenet"]


class MiniImageNetSplit(StoredSplit):
    """One split of a packed Mini-ImageNet file, classes read on demand with an LRU cache.

    ``names`` are the wnids; ``cache_classes`` bounds the classes held in memory (0: none, each
    ``get`` reads only the requested images). ``cache_info()`` reports hits, misses and size.
    """

    def __init__(self, path, split: str, names, shape, cache_classes: int = 16):
        if cache_classes is None or cache_classes < 0:
            raise ValueError(f"cache_classes must be >= 0, got {cache_classes}")
        self.shape = tuple(shape)  # (classes, images per class, H, W, 3)
        super().__init__(path, split, names, self.shape[2:], cache_classes)

    def _dataset(self):
        return self._h5()[f"{self.split}/images"]

    def num_examples(self, c: int) -> int:
        """The number of images of class ``c`` (600 in Mini-ImageNet)."""
        self._check_class(c)
        return self.shape[1]

    def _read_class(self, c: int) -> np.ndarray:
        return self._dataset()[c]

    def class_uint8(self, c: int) -> np.ndarray:
        """All images of class ``c`` as stored: uint8 ``(600, 84, 84, 3)`` (through the cache)."""
        return self.class_stored(c)

    def get(self, c: int, indices) -> np.ndarray:
        """float32 ``(len(indices), 84, 84, 3)`` in [0, 1]: images ``indices`` of class ``c`` (the class read
        whole and cached)."""
        indices = self._indices(c, indices)
        if self.cache_classes:
            x = self.class_uint8(c)[indices]
        else:
            self.misses += 1
            n = self.num_examples(c)
            unique, inverse = np.unique(indices % n, return_inverse=True)
            with reading(self.path, f"{self.split}/images"):
                x = self._dataset()[self._check_class(c), unique][inverse.reshape(indices.shape)]
        return x.astype(np.float32) / 255


def load_miniimagenet(path, cache_classes: int = 16, verify: bool = False) -> dict:
    """Splits ``{"train", "val", "test"}`` (those packed) of a packed Mini-ImageNet file.

    ``cache_classes``: classes each split keeps in memory (about 12.7 MB each);
    ``verify``: check the stored SHA-256 of every dataset first (reads the whole file).
    """
    if verify:
        verify_packed(path)
    f, info = open_packed(path, "miniimagenet")
    with f:
        splits = {}
        for split in info.attrs.get("splits", ("train", "val", "test")):
            with reading(path, f"{split}/wnids"):
                wnids = f[f"{split}/wnids"].asstr()[()]
            shape = f[f"{split}/images"].shape
            if len(shape) != 5 or shape[0] != len(wnids) or shape[-1] != 3:
                raise DataError(path, f"inconsistent shapes in {split}: {len(wnids)} wnids, images {shape}")
            splits[split] = MiniImageNetSplit(path, split, wnids, shape, cache_classes)
    return splits
