"""Class-indexed splits: what the task sampler draws classes and examples from.

A split is anything with this small interface (:class:`ClassSplit`):

* ``len(split)``: the number of classes ``C``; classes are ``0 .. C-1``;
* ``split.num_examples(c)``: the number of examples of class ``c``;
* ``split.get(c, indices)``: float32 array ``(len(indices), *split.example_shape)`` in [0, 1];
* ``split.example_shape``: the shape of one example, e.g. ``(28, 28)`` or ``(84, 84, 3)``;
* ``split.names``: one name per class (a tuple of str).

:func:`as_class_split` turns a plain mapping ``{class name: array (n, *shape)}`` or a sequence or
stacked array of per-class arrays into one, so samplers accept those as well.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from fometa.data._io import DataError
from fometa.data.schema import reading

__all__ = ["ClassSplit", "StoredSplit", "ArraySplit", "OmniglotSplit", "as_class_split"]


class ClassSplit:
    """Base of the class-indexed splits (see the module docstring for the interface)."""

    names: tuple[str, ...] = ()
    example_shape: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.names)

    def num_examples(self, c: int) -> int:
        """The number of examples of class ``c``."""
        raise NotImplementedError

    def get(self, c: int, indices) -> np.ndarray:
        """float32 ``(len(indices), *example_shape)`` in [0, 1]: the examples ``indices`` of class ``c``."""
        raise NotImplementedError

    def _check_class(self, c) -> int:
        c = int(c)
        if not 0 <= c < len(self):
            raise IndexError(f"class {c} out of range for a split of {len(self)} classes")
        return c

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} classes, example_shape={self.example_shape})"


class StoredSplit(ClassSplit):
    """A split of a packed HDF5 file whose classes are read whole on demand, the ``cache_classes`` most
    recently used ones kept in memory (``None``: every class read; 0: none). The file is opened
    read-only on first use, and again after a fork. Subclasses say how one class is read
    (:meth:`_read_class`) and turn stored values into examples (``get``)."""

    def __init__(self, path, split: str, names, example_shape, cache_classes: int | None):
        if cache_classes is not None and cache_classes < 0:
            raise ValueError(f"cache_classes must be >= 0 or None, got {cache_classes}")
        self.path = str(path)
        self.split = split
        self.names = tuple(str(n) for n in names)
        self.example_shape = tuple(int(n) for n in example_shape)
        self.cache_classes = cache_classes
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._file: Any = None  # the open h5py.File
        self._pid: int | None = None
        self.hits = self.misses = 0

    def _h5(self):
        """The open file (h5py, imported here: reading needs it, importing fometa does not)."""
        if self._file is None or self._pid != os.getpid():
            import h5py

            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise DataError(self.path, f"cannot open: {exc}") from None
            self._pid = os.getpid()
        return self._file

    def _read_class(self, c: int) -> np.ndarray:
        """Every stored example of class ``c``, read from the file."""
        raise NotImplementedError

    def class_stored(self, c: int) -> np.ndarray:
        """All examples of class ``c`` as stored (through the cache)."""
        c = self._check_class(c)
        if c in self._cache:
            self.hits += 1
            self._cache.move_to_end(c)
            return self._cache[c]
        self.misses += 1
        with reading(self.path, f"{self.split}/images"):
            arr = self._read_class(c)
        if self.cache_classes is None or self.cache_classes > 0:
            self._cache[c] = arr
            while self.cache_classes is not None and len(self._cache) > self.cache_classes:
                self._cache.popitem(last=False)
        return arr

    def _indices(self, c: int, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.intp)
        n = self.num_examples(c)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"example index out of range for a class of {n} examples")
        return indices

    def cache_info(self) -> dict:
        """The class cache's ``{"hits", "misses", "size", "max"}``."""
        return {"hits": self.hits, "misses": self.misses, "size": len(self._cache), "max": self.cache_classes}

    def close(self) -> None:
        """Close the file and empty the cache (a later ``get`` reopens it)."""
        if self._file is not None:
            self._file.close()
        self._file = None
        self._cache.clear()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"], state["_pid"], state["_cache"] = None, None, OrderedDict()
        return state


def _as_float01(arr) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255
    return arr.astype(np.float32, copy=False)


class ArraySplit(ClassSplit):
    """A split held in memory as one array per class, each ``(n_c, *example_shape)``.

    uint8 arrays are read as ``x / 255``; others are cast to float32 and must already lie in [0, 1].
    """

    def __init__(self, arrays, names=None):
        arrays = [np.asarray(a) for a in arrays]
        if not arrays:
            raise ValueError("a split needs at least one class")
        shapes = {a.shape[1:] for a in arrays}
        if len(shapes) != 1 or any(a.ndim < 1 or len(a) == 0 for a in arrays):
            raise ValueError(f"every class needs examples of one shape; got shapes {sorted(map(str, shapes))}")
        self._arrays = arrays
        self.example_shape = tuple(arrays[0].shape[1:])
        self.names = tuple(str(n) for n in (names if names is not None else range(len(arrays))))
        if len(self.names) != len(arrays):
            raise ValueError(f"{len(self.names)} names for {len(arrays)} classes")

    def num_examples(self, c: int) -> int:
        """The number of examples of class ``c``."""
        return len(self._arrays[self._check_class(c)])

    def get(self, c: int, indices) -> np.ndarray:
        """float32 ``(len(indices), *example_shape)`` in [0, 1]: the examples ``indices`` of class ``c``."""
        return _as_float01(self._arrays[self._check_class(c)][np.asarray(indices, dtype=np.intp)])


class OmniglotSplit(ClassSplit):
    """Omniglot characters, each optionally seen at several 90-degree rotations as extra classes.

    ``images``: float32 ``(characters, drawings, 28, 28)``; ``rotations``: the multiples ``k`` of 90
    degrees (counter-clockwise) that make classes, ``(0,)`` or ``(0, 1, 2, 3)``. Class ``c`` is
    character ``c // len(rotations)`` rotated by ``90 * rotations[c % len(rotations)]`` degrees,
    computed on the fly with ``np.rot90``, which equals the reference code's
    ``Image.rotate(90 * k)`` on a square image.
    """

    def __init__(self, images: np.ndarray, names, rotations=(0,)):
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise ValueError(f"images must be (characters, drawings, H, W), got shape {images.shape}")
        rotations = tuple(int(k) for k in rotations)
        if not rotations or any(k not in (0, 1, 2, 3) for k in rotations) or len(set(rotations)) != len(rotations):
            raise ValueError(f"rotations must be distinct values among 0, 1, 2, 3; got {rotations}")
        names = [str(n) for n in names]
        if len(names) != len(images):
            raise ValueError(f"{len(names)} names for {len(images)} characters")
        self.images = images
        self.rotations = rotations
        self.characters = tuple(names)
        self.example_shape = tuple(images.shape[2:])
        self.names = tuple(n if k == 0 else f"{n}@rot{90 * k}" for n in names for k in rotations)

    def character(self, c: int) -> int:
        """Index into ``images`` (and ``characters``) of class ``c``."""
        return self._check_class(c) // len(self.rotations)

    def rotation(self, c: int) -> int:
        """Multiple of 90 degrees by which class ``c`` is rotated."""
        return self.rotations[self._check_class(c) % len(self.rotations)]

    def num_examples(self, c: int) -> int:
        """The number of drawings of class ``c`` (20 in Omniglot)."""
        self._check_class(c)
        return self.images.shape[1]

    def get(self, c: int, indices) -> np.ndarray:
        """float32 ``(len(indices), 28, 28)`` in [0, 1]: drawings ``indices`` of class ``c``, rotated as the
        class says."""
        ch, k = divmod(self._check_class(c), len(self.rotations))
        x = self.images[ch][np.asarray(indices, dtype=np.intp)]
        k = self.rotations[k]
        return np.ascontiguousarray(np.rot90(x, k, axes=(1, 2))) if k else x


def as_class_split(obj) -> ClassSplit:
    """``obj`` itself if it is a :class:`ClassSplit` (or has its methods); an :class:`ArraySplit` of a mapping
    ``{name: array}`` (classes in the mapping's order), a sequence of arrays, or a stacked array
    ``(C, n, *shape)``."""
    if isinstance(obj, ClassSplit) or all(hasattr(obj, a) for a in ("num_examples", "get", "example_shape")):
        return obj
    if isinstance(obj, Mapping):
        return ArraySplit(list(obj.values()), names=list(obj.keys()))
    if isinstance(obj, np.ndarray):
        return ArraySplit(list(obj))
    if hasattr(obj, "__len__") and hasattr(obj, "__getitem__"):
        return ArraySplit(list(obj))
    raise TypeError(f"cannot use {type(obj).__name__} as a class split")
