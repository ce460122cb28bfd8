"""Pack Mini-ImageNet into one HDF5 file: ``pack_miniimagenet.py --out FILE.h5 SOURCE``.

SOURCE is a folder, ``.zip`` or ``.tar``/``.tar.gz`` in one of two layouts (anywhere up to two
folders deep, e.g. under the top folder ``miniimagenet/``):

* ``folders``: ``{train,val,test}/<wnid>/<image>.jpg`` (openai/supervised-reptile's layout);
* ``csv``: Ravi & Larochelle's release, ``images/<file>.jpg`` plus ``train.csv``, ``val.csv`` and
  ``test.csv`` with the header ``filename,label`` (label = wnid).

With ``layout="auto"`` the folder layout wins when both are present. Classes are sorted by wnid,
images within a class by file name, so both layouts of the same data pack to the same arrays.
Each image is decoded with Pillow, converted to RGB when it is not, and, when it is not 84x84,
resized with the ``resize`` filter (Lanczos by default; ``"error"`` refuses such images).
Each split is stored as uint8 ``(classes, 600, 84, 84, 3)``, one HDF5 chunk per class.

The archive is streamed: a tar is read member by member in archive order (twice: once to list
and check it, once to decode), each class is collected in memory and written when complete, and
at most a few incomplete classes are held at once (about 12.7 MB each), whatever the archive's
size or order. The output is written to a temporary file and renamed: never left partial.
"""
from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import io
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fometa.data._io import DataError, Progress, array_sha256, atomic_output, dumps, open_image, run_pack
from fometa.data._sources import FileTree, open_tree
from fometa.data.schema import MINIIMAGENET_SPLITS, SCHEMA_VERSION

__all__ = ["MiniImageNetPackConfig", "pack_miniimagenet", "find_layout", "RESIZE_FILTERS", "main"]

RESIZE_FILTERS = ("lanczos", "bicubic", "box", "error")
_LAYOUTS = ("auto", "folders", "csv")
_MAX_BUFFERED_CLASSES = 4  # classes held in memory while writing (bounds peak memory)


@dataclass(frozen=True)
class MiniImageNetPackConfig:
    """Packing options, stored in the file's ``packing_options`` attribute.

    ``layout``: ``"auto"``, ``"folders"`` or ``"csv"``; ``images_per_class``: every class must have
    exactly this many images; ``image_size``: side of the stored images; ``resize``: Pillow filter
    for images of another size (``"lanczos"``, ``"bicubic"``, ``"box"``) or ``"error"``;
    ``splits``: which splits to pack (all three by default; fewer for quick checks).
    """

    layout: str = "auto"
    images_per_class: int = 600
    image_size: int = 84
    resize: str = "lanczos"
    splits: tuple[str, ...] = MINIIMAGENET_SPLITS

    def __post_init__(self):
        if self.layout not in _LAYOUTS:
            raise ValueError(f"layout must be one of {_LAYOUTS}, got {self.layout!r}")
        if self.resize not in RESIZE_FILTERS:
            raise ValueError(f"resize must be one of {RESIZE_FILTERS}, got {self.resize!r}")
        if not self.splits or any(s not in MINIIMAGENET_SPLITS for s in self.splits) \
                or len(set(self.splits)) != len(self.splits):
            raise ValueError(f"splits must be distinct names among {MINIIMAGENET_SPLITS}, got {self.splits!r}")
        if self.images_per_class < 1 or self.image_size < 1:
            raise ValueError(f"invalid packing options {self}")
        object.__setattr__(self, "splits", tuple(self.splits))


# ---------------------------------------------------------------------------------------------
# layout
def _children(names, max_depth: int = 2):
    """``prefix -> (dirs, files)`` directly below each folder prefix up to ``max_depth`` deep."""
    out: dict[str, tuple[set, set]] = {}
    for name in names:
        parts = name.split("/")
        for d in range(min(len(parts), max_depth + 1)):
            prefix = "".join(p + "/" for p in parts[:d])
            dirs, files = out.setdefault(prefix, (set(), set()))
            (files if d == len(parts) - 1 else dirs).add(parts[d])
    return out


def find_layout(tree: FileTree, config: MiniImageNetPackConfig) -> tuple[str, str]:
    """``(layout, root prefix)`` of the data in ``tree``, the shallowest match; DataError if none."""
    splits = set(config.splits)
    candidates: dict[str, list[str]] = {"folders": [], "csv": []}
    for prefix, (dirs, files) in _children(tree.names).items():
        if splits <= dirs:
            candidates["folders"].append(prefix)
        if {f"{s}.csv" for s in splits} <= files and "images" in dirs:
            candidates["csv"].append(prefix)
    order = ("folders", "csv") if config.layout == "auto" else (config.layout,)
    for layout in order:
        roots = sorted(candidates[layout], key=lambda p: (p.count("/"), p))
        if len(roots) > 1 and roots[0].count("/") == roots[1].count("/"):
            raise DataError(tree.display(), f"ambiguous layout: both {roots[0] or './'} and {roots[1]} "
                                            f"look like Mini-ImageNet")
        if roots:
            return layout, roots[0]
    want = {"folders": "{" + ",".join(config.splits) + "}/<wnid>/<image>.jpg",
            "csv": "images/ with " + ", ".join(f"{s}.csv" for s in config.splits)}
    raise DataError(tree.display(), "wrong folder layout: expected " + " or ".join(want[layout] for layout in order))


def _classes_from_folders(tree: FileTree, root: str, split: str) -> dict[str, list[str]]:
    classes: dict[str, list[str]] = {}
    base = f"{root}{split}/"
    for name in tree.names:
        if not name.startswith(base):
            continue
        parts = name[len(base):].split("/")
        if len(parts) != 2:
            raise DataError(tree.display(name), f"wrong folder layout: expected {base}<wnid>/<image>.jpg")
        classes.setdefault(parts[0], []).append(name)
    return classes


def _classes_from_csv(tree: FileTree, root: str, split: str) -> dict[str, list[str]]:
    csv_name = f"{root}{split}.csv"
    where = tree.display(csv_name)
    try:
        text = tree.read(csv_name).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(where, "not a UTF-8 text file") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip() for c in rows[0]] != ["filename", "label"]:
        raise DataError(where, "expected the header 'filename,label'")
    present = set(tree.names)
    classes: dict[str, list[str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2 or not row[0] or not row[1]:
            raise DataError(where, f"line {line}: expected 'filename,label'")
        name = f"{root}images/{row[0]}"
        if name not in present:
            raise DataError(where, f"line {line}: {row[0]} is not in {root}images/")
        classes.setdefault(row[1], []).append(name)
    return classes


def _index(tree: FileTree, layout: str, root: str, config: MiniImageNetPackConfig):
    """``{split: [(wnid, [member names])]}``, classes and images sorted, counts checked."""
    read = _classes_from_folders if layout == "folders" else _classes_from_csv
    index: dict[str, list] = {}
    owner: dict[str, str] = {}
    for split in config.splits:
        classes = read(tree, root, split)
        if not classes:
            raise DataError(tree.display(f"{root}{split}"), "wrong folder layout: no classes in this split")
        entries = []
        for wnid, names in sorted(classes.items()):
            if owner.setdefault(wnid, split) != split:
                raise DataError(tree.display(f"{root}{split}"), f"class {wnid} is also in {owner[wnid]}")
            n, want = len(names), config.images_per_class
            if len(set(names)) != n:
                raise DataError(tree.display(f"{root}{split}"), f"class {wnid} lists an image twice")
            if n != want:
                where = f"{root}{split}/{wnid}" if layout == "folders" else f"{root}{split}.csv"
                raise DataError(tree.display(where), f"class {wnid} has {n} images, expected {want} "
                                                     f"({'too few' if n < want else 'too many'} images)")
            entries.append((wnid, sorted(names)))
        index[split] = entries
    return index


def _decode_rgb(data: bytes, where: str, config: MiniImageNetPackConfig):
    from PIL import Image

    img = open_image(data, where)
    if img.mode != "RGB":
        img = img.convert("RGB")
    size = config.image_size
    if img.size != (size, size):
        if config.resize == "error":
            raise DataError(where, f"image is {img.size[0]}x{img.size[1]}, expected {size}x{size}")
        img = img.resize((size, size), getattr(Image.Resampling, config.resize.upper()))
    return np.asarray(img, dtype=np.uint8)


class _ClassBuffers:
    """Collect each class's images in memory and write the class in one go when it is complete.

    An archive whose classes are contiguous (any tar made from a folder) keeps one buffer alive.
    In any other order at most ``_MAX_BUFFERED_CLASSES`` buffers live: beyond that the oldest is
    written out (its filled images, run by run) and dropped, so memory stays bounded.
    """

    def __init__(self, datasets, n: int, shape: tuple):
        self._np = np
        self.datasets, self.n, self.shape = datasets, n, shape
        self.live: dict[tuple[str, int], tuple] = {}  # insertion order = age

    def put(self, split: str, c: int, i: int, image) -> None:
        np = self._np
        key = (split, c)
        if key not in self.live:
            if len(self.live) >= _MAX_BUFFERED_CLASSES:
                self._flush(next(iter(self.live)))
            self.live[key] = (np.empty((self.n,) + self.shape, np.uint8), np.zeros(self.n, bool))
        buf, filled = self.live[key]
        buf[i] = image
        filled[i] = True
        if filled.all():
            self._flush(key)

    def _flush(self, key) -> None:
        np = self._np
        buf, filled = self.live.pop(key)
        split, c = key
        idx = np.flatnonzero(filled)
        if idx.size == 0:
            return
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        for run in np.split(idx, breaks):
            lo, hi = int(run[0]), int(run[-1]) + 1
            self.datasets[split][c, lo:hi] = buf[lo:hi]

    def flush_all(self) -> None:
        while self.live:
            self._flush(next(iter(self.live)))


# ---------------------------------------------------------------------------------------------
def pack_miniimagenet(source, out, config: MiniImageNetPackConfig = MiniImageNetPackConfig(),
                      force: bool = False, progress: bool = True) -> Path:
    """Pack Mini-ImageNet from ``source`` (folder, zip or tar) into the HDF5 file ``out``."""
    import h5py

    import fometa

    out = Path(out)
    n, s = config.images_per_class, config.image_size
    with atomic_output(out, force=force) as tmp:
        with open_tree(source) as tree:
            layout, root = find_layout(tree, config)
            index = _index(tree, layout, root, config)
            slot = {name: (split, c, i) for split, entries in index.items()
                    for c, (_, names) in enumerate(entries) for i, name in enumerate(names)}
            with h5py.File(tmp, "w") as f:
                f.attrs["dataset"] = "miniimagenet"
                f.attrs["schema_version"] = SCHEMA_VERSION
                f.attrs["fometa_version"] = fometa.__version__
                f.attrs["packing_options"] = dumps(asdict(config))
                f.attrs["splits"] = dumps(list(config.splits))
                f.attrs["layout"] = layout
                strings = h5py.string_dtype("utf-8")
                images = {}
                for split, entries in index.items():
                    g = f.create_group(split, track_order=False)
                    g.attrs["num_classes"] = len(entries)
                    wnids = np.array([w for w, _ in entries], dtype=object)
                    ds = g.create_dataset("wnids", data=wnids, dtype=strings, track_times=False)
                    ds.attrs["sha256"] = array_sha256(wnids)
                    files = np.array([[x.rsplit("/", 1)[-1] for x in names] for _, names in entries],
                                     dtype=object).reshape(len(entries), n)
                    ds = g.create_dataset("filenames", data=files, dtype=strings, track_times=False)
                    ds.attrs["sha256"] = array_sha256(files)
                    images[split] = g.create_dataset("images", shape=(len(entries), n, s, s, 3), dtype=np.uint8,
                                                     chunks=(1, n, s, s, 3), track_times=False)
                bar = Progress(len(slot), f"pack miniimagenet -> {out.name}", enabled=progress)
                buffers = _ClassBuffers(images, n, (s, s, 3))
                for name, data in tree.iter_read(sorted(slot)):
                    split, c, i = slot[name]
                    buffers.put(split, c, i, _decode_rgb(data, tree.display(name), config))
                    bar.update()
                buffers.flush_all()
                bar.close()
                for ds in images.values():
                    h = hashlib.sha256()
                    for c in range(ds.shape[0]):
                        h.update(ds[c].tobytes())
                    ds.attrs["sha256"] = h.hexdigest()
                f.attrs["sources"] = dumps([{"file": tree.path.name, "kind": tree.kind, "root": root,
                                             "sha256": tree.checksum()}])
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``tools/pack_miniimagenet.py`` and ``fometa data miniimagenet``."""
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--layout", choices=_LAYOUTS, default="auto",
                   help="folders: {train,val,test}/<wnid>/*.jpg; csv: images/ + {train,val,test}.csv")
    p.add_argument("--resize", choices=RESIZE_FILTERS, default="lanczos",
                   help="filter for images that are not 84x84, or 'error' to refuse them (default lanczos)")
    p.add_argument("--splits", nargs="+", choices=MINIIMAGENET_SPLITS, default=list(MINIIMAGENET_SPLITS),
                   help="splits to pack (default: all three)")
    p.add_argument("--images-per-class", type=int, default=600, help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args) -> MiniImageNetPackConfig:
    return MiniImageNetPackConfig(layout=args.layout, resize=args.resize, splits=tuple(args.splits),
                                  images_per_class=args.images_per_class)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="pack_miniimagenet.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output HDF5 file (e.g. datasets/miniimagenet.h5)")
    p.add_argument("source", metavar="SOURCE", help="folder, .zip or .tar/.tar.gz holding Mini-ImageNet")
    add_arguments(p)
    args = p.parse_args(argv)
    pack = functools.partial(pack_miniimagenet, args.source, args.out, config_from_args(args), force=args.force)
    return run_pack(pack, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
