"""Pack any folder of images into one HDF5 file: ``fometa data folder --source DIR --out FILE.h5``.

DIR is a folder, ``.zip`` or ``.tar``/``.tar.gz`` in one of two layouts (below any number of
single enclosing folders, e.g. the top folder of a zip):

* ``<class>/<image>``: the classes are divided among the splits by ``split`` (fractions of the
  classes, default :data:`DEFAULT_SPLIT`: 80% train, 20% test) with ``split_seed``;
* ``{train,val,test}/<class>/<image>``: the split folders say it (any of the three).

Every class needs at least two images; any file that is not a readable image stops the packing
with its name. Classes are sorted by name, images within a class by file name. Each image
becomes an example by the :class:`~fometa.data.ImageSpec` recipe (``fometa/data/images.py``):
size ``size`` (default: the images' own, when they all share one), ``channels`` (default: 1
when every image is grey, else 3), Pillow filter ``resize`` (default Lanczos, as Mini-ImageNet's
packer), optionally ``bilevel`` (Omniglot's black-and-white drawings) and ``invert``. The spec is
stored in the file, so that :meth:`ImageSpec.for_packed` and every later use apply the same.

:func:`pack_arrays` writes the same kind of file from arrays in memory. The schema (``dataset =
"folder"``) is in ``datasets/README.md``; the output is written to a temporary file and renamed,
never left partial; packing the same inputs twice gives the same arrays and attributes.
Examples are held in memory while packing (about the size of the packed images).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from fometa.data._io import DataError, Progress, array_sha256, atomic_output, dumps, open_image, run_pack
from fometa.data._sources import FileTree, open_tree
from fometa.data.images import RESIZE_FILTERS, ImageSpec, is_grey, oriented_size
from fometa.data.schema import SCHEMA_VERSION, SPLITS

__all__ = ["FolderPackConfig", "pack_folder", "pack_arrays", "find_layout", "divide_classes", "parse_split",
           "parse_size", "DEFAULT_SPLIT", "MIN_IMAGES_PER_CLASS", "main"]

#: how classes are divided when the source has no split folders
DEFAULT_SPLIT = (("train", 0.8), ("test", 0.2))
MIN_IMAGES_PER_CLASS = 2
_LAYOUT_HELP = "<class>/<image> or {train,val,test}/<class>/<image>"
_CHUNK_BYTES = 512 << 10  # below h5py's 1 MiB chunk cache, so row-by-row reads stay cheap


@dataclass(frozen=True)
class FolderPackConfig:
    """Packing options, stored (with the defaults resolved) in the file's ``packing_options``.

    ``size``: ``(height, width)`` of the examples, or ``None`` to keep the images' common size;
    ``channels``: 1, 3 or ``None`` (1 when every image is grey, else 3); ``resize``, ``bilevel``,
    ``threshold``, ``invert``: as :class:`~fometa.data.ImageSpec`; ``split``: ``((name, fraction),
    ...)`` dividing the classes when there are no split folders (``None``: :data:`DEFAULT_SPLIT`;
    an error with split folders); ``split_seed``: seed of that division; ``gzip_level``: HDF5
    gzip level of the images (0 = none).
    """

    size: tuple[int, int] | None = None
    channels: int | None = None
    resize: str = "lanczos"
    bilevel: bool = False
    threshold: int = 128
    invert: bool = False
    split: tuple[tuple[str, float], ...] | None = None
    split_seed: int = 0
    gzip_level: int = 4

    def __post_init__(self):
        if self.size is not None:
            size = tuple(self.size)
            if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
                raise ValueError(f"size must be (height, width) of positive ints, got {self.size!r}")
            object.__setattr__(self, "size", size)
        if self.channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")
        if self.bilevel and self.channels == 3:
            raise ValueError("bilevel images have one channel")
        if self.resize not in RESIZE_FILTERS:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_FILTERS)}, got {self.resize!r}")
        if not 1 <= self.threshold <= 255:
            raise ValueError(f"threshold must be in 1..255, got {self.threshold}")
        if self.split is not None:
            object.__setattr__(self, "split", _check_split([(str(n), f) for n, f in self.split]))
        if not isinstance(self.split_seed, int) or not 0 <= self.gzip_level <= 9:
            raise ValueError(f"invalid packing options {self}")

    def image_spec(self, height: int, width: int, channels: int) -> ImageSpec:
        """The recipe these options give for examples of this size."""
        return ImageSpec(height, width, channels, resize=self.resize, bilevel=self.bilevel, threshold=self.threshold,
                         invert=self.invert)


# ---------------------------------------------------------------------------------------------
# options
def _check_split(split) -> tuple[tuple[str, float], ...]:
    names = [n for n, _ in split]
    if not names or any(n not in SPLITS for n in names) or len(set(names)) != len(names):
        raise ValueError(f"split names must be distinct among {', '.join(SPLITS)}, got {', '.join(names) or 'none'}")
    fractions = [float(f) for _, f in split]
    if any(not math.isfinite(f) or f <= 0 for f in fractions):
        raise ValueError("split fractions must be positive (leave a split out instead of giving it 0)")
    if abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must add up to 1, got {sum(fractions):g}")
    return tuple(sorted(zip(names, fractions, strict=True), key=lambda s: SPLITS.index(s[0])))


def parse_split(text: str) -> tuple[tuple[str, float], ...]:
    """``"0.6,0.2,0.2"`` (train, val, test), ``"0.8,0.2"`` (train, test), ``"1"`` (train only), or
    named: ``"train=0.7,val=0.3"``. ``ValueError`` with the reason otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if any("=" in p for p in parts):
            pairs = [p.split("=", 1) for p in parts]
            if any(len(p) != 2 for p in pairs):
                raise ValueError
            split = [(n.strip(), float(f)) for n, f in pairs]
        else:
            names = {1: ("train",), 2: ("train", "test"), 3: SPLITS}.get(len(parts))
            if names is None:
                raise ValueError
            split = list(zip(names, map(float, parts), strict=True))
    except ValueError:
        raise ValueError(f"cannot read split {text!r}: give 1 to 3 fractions (train[,val],test), e.g. 0.8,0.2, "
                         "or named ones, e.g. train=0.7,val=0.1,test=0.2") from None
    return _check_split(split)


def parse_size(text: str) -> tuple[int, int]:
    """``"28"`` -> ``(28, 28)``; ``"64x48"`` -> height 64, width 48."""
    parts = str(text).lower().split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or min(values) < 1:
        raise ValueError(f"cannot read size {text!r}: give H or HxW in pixels, e.g. 28 or 84x84")
    return (values[0], values[-1])  # H, or H and W


def _split_text(split) -> str:
    return ",".join(f"{n}={f:g}" for n, f in split)


def divide_classes(names, split, seed: int, where) -> dict[str, list[str]]:
    """``{split: sorted class names}``: the classes, sorted then shuffled by ``random.Random(seed)``,
    cut into consecutive runs whose sizes are the fractions of ``split`` rounded by largest remainder
    (ties to the earlier split). :class:`DataError` at ``where`` if a split would get no class."""
    order = sorted(names)
    random.Random(seed).shuffle(order)
    n = len(order)
    quotas = [f * n for _, f in split]
    counts = [math.floor(q + 1e-9) for q in quotas]
    by_remainder = sorted(range(len(split)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    empty = [name for (name, _), k in zip(split, counts, strict=True) if k == 0]
    if empty:
        raise DataError(where, f"{n} classes cannot be divided {_split_text(split)} with a class in every split "
                               f"({', '.join(empty)} would get none): choose other split fractions (1: every class "
                               "in train)")
    out, start = {}, 0
    for (name, _), k in zip(split, counts, strict=True):
        out[name] = sorted(order[start:start + k])
        start += k
    return out


# ---------------------------------------------------------------------------------------------
# layout
def _depth(rel: str) -> int:
    return rel.count("/")


def find_layout(tree: FileTree) -> tuple[str, str, dict]:
    """``(layout, root, classes)``: ``layout`` is ``"splits"`` or ``"classes"``, ``root`` the prefix of
    the data's folder inside ``tree``, ``classes`` ``{split or None: {class: [member names, sorted]}}``.
    :class:`DataError` naming the offending file or folder for any other layout, an empty class or
    split folder, or a class in two splits."""
    if not tree.names:
        raise DataError(tree.display(), f"no files (expected {_LAYOUT_HELP})")
    root = ""
    while True:
        rel = [n[len(root):] for n in tree.names]
        tops = {r.split("/", 1)[0] for r in rel}
        depths = {_depth(r) for r in rel}
        split_tops = tops <= set(SPLITS)
        if depths == {1} and not split_tops:
            layout = "classes"
            break
        if depths == {2} and split_tops:
            layout = "splits"
            break
        if len(tops) == 1 and not split_tops and max(depths) >= 2 and 0 not in depths:
            root += next(iter(tops)) + "/"  # a single enclosing folder (the top folder of a zip)
            continue
        _layout_error(tree, root, rel)
    classes: dict = {}
    for name in tree.names:
        parts = name[len(root):].split("/")
        split = parts[0] if layout == "splits" else None
        classes.setdefault(split, {}).setdefault(parts[-2], []).append(name)
    _check_folders(tree, root, layout, classes)
    return layout, root, {s: {c: sorted(n) for c, n in sorted(cl.items())} for s, cl in classes.items()}


def _layout_error(tree: FileTree, root: str, rel: list[str]):
    loose = [r for r in rel if _depth(r) == 0]
    if loose:
        raise DataError(tree.display(root + loose[0]), f"wrong folder layout: a file outside any class folder "
                                                       f"(expected {_LAYOUT_HELP})")
    in_splits = [r for r in rel if r.split("/", 1)[0] in SPLITS]
    others = [r for r in rel if r.split("/", 1)[0] not in SPLITS]
    if in_splits and others:
        split_dirs = sorted({r.split("/", 1)[0] + "/" for r in in_splits})
        other = others[0].split("/", 1)[0]
        raise DataError(tree.display(root + other), f"mixed layouts: class folder {other}/ beside split folders "
                                                    f"{', '.join(split_dirs)}: put every class in a split folder "
                                                    "(train/, val/, test/), or none")
    if in_splits:
        bad = next(r for r in rel if _depth(r) != 2)
        split = bad.split("/", 1)[0]
        what = "an image directly in a split folder" if _depth(bad) == 1 else "a sub-folder inside a class folder"
        raise DataError(tree.display(root + bad), f"wrong folder layout: {what} (expected {split}/<class>/<image>)")
    bad = next(r for r in rel if _depth(r) != 1)
    raise DataError(tree.display(root + bad), "wrong folder layout: a sub-folder inside a class folder "
                                              "(expected <class>/<image>)")


def _check_folders(tree: FileTree, root: str, layout: str, classes: dict) -> None:
    dirs = [d[len(root):] for d in tree.dirs if d.startswith(root) and len(d) > len(root)]
    for d in dirs:
        parts = d.split("/")
        if layout == "classes" and len(parts) == 1 and parts[0] not in classes[None]:
            raise DataError(tree.display(root + d), "empty class folder (every class needs at least "
                                                    f"{MIN_IMAGES_PER_CLASS} images)")
        if layout == "splits" and len(parts) == 1:
            if parts[0] not in SPLITS:
                raise DataError(tree.display(root + d), f"mixed layouts: folder {d}/ beside split folders: put every "
                                                        "class in a split folder (train/, val/, test/), or none")
            if parts[0] not in classes:
                raise DataError(tree.display(root + d), "split folder holds no classes")
        if layout == "splits" and len(parts) == 2 and parts[1] not in classes.get(parts[0], {}):
            raise DataError(tree.display(root + d), "empty class folder (every class needs at least "
                                                    f"{MIN_IMAGES_PER_CLASS} images)")
    owner: dict[str, str | None] = {}
    for split in SPLITS if layout == "splits" else (None,):
        for c, names in sorted(classes.get(split, {}).items()):
            where = tree.display(root + (f"{split}/{c}" if split else c))
            if len(names) < MIN_IMAGES_PER_CLASS:
                raise DataError(where, f"class has {len(names)} image; every class needs at least "
                                       f"{MIN_IMAGES_PER_CLASS}")
            if owner.setdefault(c, split) != split:
                raise DataError(where, f"class {c} is also in {owner[c]}/ (a class belongs to one split)")


# ---------------------------------------------------------------------------------------------
# packing a folder
def pack_folder(source, out, config: FolderPackConfig = FolderPackConfig(), force: bool = False,
                progress: bool = True) -> Path:
    """Pack the images of ``source`` (folder, zip or tar) into the HDF5 file ``out``; returns ``out``."""
    out = Path(out)
    with atomic_output(out, force=force) as tmp:
        with open_tree(source) as tree:
            layout, root, classes = find_layout(tree)
            where = tree.display(root.rstrip("/"))
            if layout == "splits":
                if config.split is not None:
                    raise DataError(where, "the split folders divide the classes: --split applies only to a "
                                           f"{_LAYOUT_HELP.split(' or ')[0]} layout")
                index = {s: classes[s] for s in SPLITS if s in classes}
            else:
                if len(classes[None]) < 2:
                    raise DataError(where, f"{len(classes[None])} class folder: at least 2 classes are needed")
                config = replace(config, split=config.split or DEFAULT_SPLIT)
                parts = divide_classes(classes[None], config.split, config.split_seed, where)
                index = {s: {c: classes[None][c] for c in parts[s]} for s in parts}
            spec, config = _resolve(tree, root, index, config, progress)
            arrays = _read_images(tree, index, spec, progress, out.name)
            entries = [(split, list(cl), [len(n) for n in cl.values()],
                        [n.rsplit("/", 1)[-1] for names in cl.values() for n in names], arrays[split])
                       for split, cl in index.items()]
            sources = [{"file": tree.path.name, "kind": tree.kind, "root": root, "sha256": tree.checksum()}]
            _write(tmp, entries, spec, config, layout, sources)
    return out


def _resolve(tree: FileTree, root: str, index: dict, config: FolderPackConfig, progress: bool):
    """The spec (size and channels filled in from the images where not given) and the config
    with them resolved. Reads image headers only, and decodes colour images only until one
    with colour is found."""
    names = [n for cl in index.values() for ns in cl.values() for n in ns]
    channels = 1 if config.bilevel else config.channels
    sizes: dict[tuple[int, int], str] = {}
    if config.size is None or channels is None:
        colour = None
        bar = Progress(len(names), f"scan {tree.path.name}", enabled=progress)
        for name, data in tree.iter_read(names):
            img = open_image(data, tree.display(name), load=False)
            sizes.setdefault(oriented_size(img), name)
            if channels is None and colour is None:
                img = open_image(data, tree.display(name))
                if not is_grey(img):
                    colour = name
            bar.update()
        bar.close()
        if channels is None:
            channels = 1 if colour is None else 3
    size = config.size
    if size is None:
        if len(sizes) > 1:
            (s1, n1), (s2, n2) = sorted(sizes.items(), key=lambda kv: kv[1])[:2]
            raise DataError(tree.display(root.rstrip("/")), f"images differ in size ({n1[len(root):]} is "
                                                            f"{s1[0]}x{s1[1]}, {n2[len(root):]} is {s2[0]}x{s2[1]}, "
                                                            "height x width): give --size H[xW]")
        size = next(iter(sizes))
    return config.image_spec(*size, channels), replace(config, size=size, channels=channels)


def _read_images(tree: FileTree, index: dict, spec: ImageSpec, progress: bool, label: str) -> dict:
    """``{split: examples (N, *spec.shape)}``, uint8 for 8-bit specs, else float32, in index order."""
    slot, arrays = {}, {}
    for split, cl in index.items():
        names = [n for ns in cl.values() for n in ns]
        slot.update({name: (split, i) for i, name in enumerate(names)})
        arrays[split] = np.empty((len(names), *spec.shape), dtype=np.uint8 if spec.is_8bit else np.float32)
    bar = Progress(len(slot), f"pack folder -> {label}", enabled=progress)
    for name, data in tree.iter_read(sorted(slot)):
        split, i = slot[name]
        where = tree.display(name)
        img = open_image(data, where)
        arrays[split][i] = spec.pixels(img, where) if spec.is_8bit else spec.values(img, where)
        bar.update()
    bar.close()
    return arrays


# ---------------------------------------------------------------------------------------------
# packing arrays
def pack_arrays(classes, out, config: FolderPackConfig = FolderPackConfig(), *, spec: ImageSpec | None = None,
                force: bool = False) -> Path:
    """Pack arrays in memory into a ``folder`` file ``out``; returns ``out``.

    ``classes``: ``{class name: examples (n, H, W) or (n, H, W, C)}`` with C = 1 or 3, divided
    among splits by ``config.split``/``config.split_seed`` (default :data:`DEFAULT_SPLIT`) as
    ``fometa data folder`` divides class folders; or ``{split: {class name: examples}}`` with
    splits among ``train``, ``val``, ``test``. Examples are uint8 (stored as they are, read as
    ``x / 255``), bool (0 or 255), or float in [0, 1] (stored as float32); every class needs at
    least two, all of one shape. ``spec``: the recipe that made them, recorded in the file for
    later inputs (default: ``config``'s options at the arrays' size). Classes are stored sorted by
    name; ``filenames`` hold each example's index in its array.
    """
    out = Path(out)
    where = "pack_arrays"
    if not isinstance(classes, Mapping) or not classes:
        raise DataError(where, "classes must be a non-empty mapping {class name: array} or {split: {class: array}}")
    nested = [isinstance(v, Mapping) for v in classes.values()]
    if any(nested) and not all(nested):
        raise DataError(where, "give either {class name: array} or {split: {class name: array}}, not both")
    with atomic_output(out, force=force) as tmp:
        if all(nested):
            if config.split is not None:
                raise DataError(where, "the given splits divide the classes: config.split applies only to a flat "
                                       "{class name: array} mapping")
            unknown = sorted(str(s) for s in classes if s not in SPLITS)
            if unknown:
                raise DataError(where, f"unknown split {unknown[0]!r} (splits are {', '.join(SPLITS)})")
            layout = "arrays-splits"
            arrays, shape, floats = _check_arrays({s: classes[s] for s in SPLITS if s in classes}, where)
        else:
            layout = "arrays"
            checked, shape, floats = _check_arrays({"": classes}, where)
            config = replace(config, split=config.split or DEFAULT_SPLIT)
            parts = divide_classes(list(checked[""]), config.split, config.split_seed, where)
            arrays = {s: {c: checked[""][c] for c in parts[s]} for s in parts}
        if spec is None:
            spec = config.image_spec(shape[0], shape[1], 1 if len(shape) == 2 else 3)
        elif spec.shape != shape:
            raise DataError(where, f"spec gives examples of shape {spec.shape}, the arrays hold {shape}")
        if config.size not in (None, shape[:2]) or config.channels not in (None, spec.channels):
            raise DataError(where, f"config asks for size {config.size} and {config.channels} channels, "
                                   f"the arrays hold {shape}")
        config = replace(config, size=(spec.height, spec.width), channels=spec.channels, resize=spec.resize,
                         bilevel=spec.bilevel, threshold=spec.threshold, invert=spec.invert)
        dtype = np.float32 if floats else np.uint8
        entries, digest = [], hashlib.sha256()
        for split, cl in arrays.items():
            names = sorted(cl)
            stack = np.concatenate([_as_dtype(cl[c], dtype) for c in names])
            for c in names:
                digest.update(f"{array_sha256(cl[c])}  {split}/{c}\n".encode())
            entries.append((split, names, [len(cl[c]) for c in names],
                            [str(i) for c in names for i in range(len(cl[c]))], stack))
        sources = [{"file": "", "kind": "arrays", "root": "", "sha256": digest.hexdigest()}]
        _write(tmp, entries, spec, config, layout, sources)
    return out


def _check_arrays(given: dict, where: str):
    """``({split: {name: array}}, example shape, any float)``; :class:`DataError` for bad arrays."""
    out: dict[str, dict] = {}
    shapes: dict[tuple, str] = {}
    owner: dict[str, str] = {}
    floats = False
    for split, cl in given.items():
        if not isinstance(cl, Mapping) or not cl:
            raise DataError(where, f"split {split!r} holds no classes")
        out[split] = {}
        for name, arr in cl.items():
            name = str(name)
            if owner.setdefault(name, split) != split:
                raise DataError(where, f"class {name!r} is in both {owner[name]} and {split}")
            a = np.asarray(arr)
            if a.ndim == 4 and a.shape[-1] == 1:
                a = a[..., 0]
            if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[-1] != 3) or 0 in a.shape[1:]:
                raise DataError(where, f"class {name!r}: examples must be (n, H, W) or (n, H, W, 3), "
                                       f"got shape {a.shape}")
            if len(a) < MIN_IMAGES_PER_CLASS:
                raise DataError(where, f"class {name!r} has {len(a)} example; every class needs at least "
                                       f"{MIN_IMAGES_PER_CLASS}")
            if a.dtype.kind == "f":
                if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
                    raise DataError(where, f"class {name!r}: float values must be finite and in [0, 1]")
                floats = True
            elif a.dtype not in (np.uint8, np.bool_):
                raise DataError(where, f"class {name!r}: examples must be uint8, bool or float in [0, 1], "
                                       f"got {a.dtype}")
            shapes.setdefault(a.shape[1:], name)
            out[split][name] = a
    if len(shapes) > 1:
        (s1, n1), (s2, n2) = list(shapes.items())[:2]
        raise DataError(where, f"classes differ in example shape ({n1!r}: {s1}, {n2!r}: {s2})")
    if len(owner) < 2:
        raise DataError(where, f"{len(owner)} class: at least 2 classes are needed")
    return out, next(iter(shapes)), floats


def _as_dtype(a, dtype):
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * np.uint8(255)
    if dtype == np.float32 and a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255)
    return a.astype(dtype, copy=False)


# ---------------------------------------------------------------------------------------------
def _write(path, entries, spec: ImageSpec, config: FolderPackConfig, layout: str, sources) -> None:
    """Write a schema-version-1 ``folder`` file (``datasets/README.md``). ``entries``: per split
    ``(split, class names, examples per class, file names, examples (N, *shape))``."""
    import h5py

    import fometa

    strings = h5py.string_dtype("utf-8")
    gzip = {"compression": "gzip", "compression_opts": config.gzip_level, "shuffle": True} \
        if config.gzip_level else {}
    with h5py.File(path, "w") as f:
        f.attrs["dataset"] = "folder"
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["fometa_version"] = fometa.__version__
        f.attrs["packing_options"] = dumps(asdict(config))
        f.attrs["sources"] = dumps(sources)
        f.attrs["splits"] = dumps([split for split, *_ in entries])
        f.attrs["layout"] = layout
        f.attrs["image_spec"] = dumps(spec.as_dict())
        f.attrs["num_classes"] = sum(len(names) for _, names, *_ in entries)
        f.attrs["num_images"] = sum(len(files) for *_, files, _ in entries)
        for split, names, counts, files, images in entries:
            g = f.create_group(split, track_order=False)
            g.attrs["num_classes"] = len(names)
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            for key, arr in (("classes", np.array(names, dtype=object)), ("filenames", np.array(files, dtype=object))):
                ds = g.create_dataset(key, data=arr, dtype=strings, track_times=False)
                ds.attrs["sha256"] = array_sha256(arr)
            ds = g.create_dataset("offsets", data=offsets, track_times=False)
            ds.attrs["sha256"] = array_sha256(offsets)
            rows = max(1, min(len(images), _CHUNK_BYTES // max(1, images[0].nbytes)))
            ds = g.create_dataset("images", data=images, chunks=(rows, *images.shape[1:]), track_times=False, **gzip)
            ds.attrs["sha256"] = array_sha256(images)
            ds.attrs["scale"] = 255 if images.dtype == np.uint8 else 1


# ---------------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``python -m fometa.data.pack_folder`` and ``fometa data folder``."""
    p.add_argument("--size", type=_arg(parse_size), default=None, metavar="H[xW]",
                   help="example size in pixels (default: the images' own, when they all share one)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None,
                   help="1 (grey) or 3 (RGB) (default: 1 when every image is grey, else 3)")
    p.add_argument("--resize", choices=RESIZE_FILTERS, default="lanczos",
                   help="Pillow filter for images of another size (default lanczos, as Mini-ImageNet's packer)")
    p.add_argument("--bilevel", action="store_true",
                   help="black-and-white drawings, as Omniglot: threshold without dithering before resizing "
                        "(one channel; use --resize nearest for Omniglot's 0/1 values)")
    p.add_argument("--threshold", type=int, default=128, help="with --bilevel: grey level from which a pixel is white")
    p.add_argument("--invert", action="store_true", help="values are 1 - brightness (light ink on a dark background)")
    p.add_argument("--split", type=_arg(parse_split), default=None, metavar="FRACTIONS",
                   help="without split folders: fractions of the classes for train[,val],test, e.g. 0.6,0.2,0.2 or "
                        "train=0.7,test=0.3; 1 puts every class in train (default 0.8,0.2)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the division of classes (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _arg(parse):
    """``parse`` as an argparse type: its ``ValueError`` message is the one argparse prints."""

    def convert(text):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def config_from_args(args) -> FolderPackConfig:
    try:
        return FolderPackConfig(size=args.size, channels=args.channels, resize=args.resize, bilevel=args.bilevel,
                                threshold=args.threshold, invert=args.invert, split=args.split,
                                split_seed=args.split_seed)
    except ValueError as exc:
        raise DataError("options", str(exc)) from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fometa.data.pack_folder", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output HDF5 file (e.g. datasets/mydata.h5)")
    p.add_argument("source", metavar="SOURCE", help="folder, .zip or .tar/.tar.gz of " + _LAYOUT_HELP)
    add_arguments(p)
    args = p.parse_args(argv)

    def pack(progress):
        return pack_folder(args.source, args.out, config_from_args(args), force=args.force, progress=progress)

    return run_pack(pack, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
