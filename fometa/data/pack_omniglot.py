"""Pack Omniglot (Lake et al. 2015) into one HDF5 file: ``pack_omniglot.py --out FILE.h5 SOURCE...``.

Reads the official ``images_background.zip`` and ``images_evaluation.zip`` in place, or their
extracted folders, or a folder holding either. Writes every character of both sets, in the
order background then evaluation, alphabets and characters sorted by name, drawings in file
name order, with:

* ``images105`` the original 105x105 1-bit drawings, bit-packed (pixel-identical to the PNGs);
* ``images28`` the 28x28 float32 images the paper trains on. The default ``resize="reference"``
  reproduces openai/supervised-reptile's ``omniglot.py``: ``Image.open(f).resize((28, 28))`` on the
  mode-'1' PNG (Pillow always resizes mode '1' with NEAREST), then ``np.array(...).astype('float32')``,
  so black ink is 0.0 and the white background 1.0. ``resize="area"`` averages the covered area
  instead (Pillow's BOX filter on the image as float, / 255).

The schema is in ``datasets/README.md``. The output is written to a temporary file and renamed,
so it is never left partial; packing the same inputs twice gives the same arrays and attributes.
"""
from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fometa.data._io import DataError, Progress, array_sha256, atomic_output, dumps, open_image, run_pack
from fometa.data._sources import FileTree, open_tree
from fometa.data.schema import SCHEMA_VERSION

__all__ = ["OmniglotPackConfig", "pack_omniglot", "resolve_sources", "reference_resize", "area_resize",
           "RESIZE_METHODS", "SETS", "main"]

SETS = ("background", "evaluation")
RESIZE_METHODS = {
    "reference": "Pillow Image.resize((28, 28)) of the mode-'1' PNG (NEAREST, as Pillow does for mode '1'), "
                 "then float32: ink 0.0, background 1.0 (openai/supervised-reptile omniglot.py)",
    "area": "area average: the mode-'1' PNG as float (0 or 255) resized with Pillow's BOX filter, / 255, float32",
}


@dataclass(frozen=True)
class OmniglotPackConfig:
    """Packing options, stored in the file's ``packing_options`` attribute.

    ``resize``: ``"reference"`` or ``"area"`` (see :data:`RESIZE_METHODS`);
    ``drawings_per_character``: every character must have exactly this many drawings;
    ``image_size``: side of the original drawings; ``gzip_level``: HDF5 gzip level (0 = none).
    """

    resize: str = "reference"
    drawings_per_character: int = 20
    image_size: int = 105
    gzip_level: int = 4

    def __post_init__(self):
        if self.resize not in RESIZE_METHODS:
            raise ValueError(f"resize must be one of {sorted(RESIZE_METHODS)}, got {self.resize!r}")
        if self.drawings_per_character < 1 or self.image_size < 1 or not 0 <= self.gzip_level <= 9:
            raise ValueError(f"invalid packing options {self}")


def reference_resize(img):
    """The reference preprocessing of one mode-'1' image: 28x28 float32, white = 1.0."""
    return np.array(img.resize((28, 28))).astype("float32")


def area_resize(img):
    """Area-averaged 28x28 float32 in [0, 1] (white = 1.0)."""
    from PIL import Image

    return np.asarray(img.convert("F").resize((28, 28), Image.Resampling.BOX), dtype=np.float32) / np.float32(255)


# ---------------------------------------------------------------------------------------------
# finding the two sets
_SET_DIRS = {f"images_{s}": s for s in SETS}


def _set_from_name(name: str) -> str | None:
    stem = name.split(".", 1)[0]
    return _SET_DIRS.get(stem)


def resolve_sources(sources) -> list[tuple[str, FileTree, str]]:
    """Map SOURCE paths to ``(set, tree, prefix)``: the set's files are ``tree.names`` starting
    with ``prefix`` (``"images_background/"`` inside the official zip, ``""`` in its folder)."""
    found: list[tuple[str, FileTree, str]] = []

    def add(path: Path):
        tree = open_tree(path)
        try:
            _add_tree(path, tree)
        except BaseException:
            tree.close()
            raise

    def _add_tree(path: Path, tree: FileTree):
        if tree.kind == "folder":
            set_name = _set_from_name(path.name)
            if set_name is None:
                raise DataError(path, "cannot tell the set: expected a folder named images_background or "
                                      "images_evaluation, or a folder holding them or their zips")
            found.append((set_name, tree, ""))
            return
        tops = {n.split("/", 1)[0] for n in tree.names if "/" in n}
        inner = sorted(t for t in tops if t in _SET_DIRS)
        if inner:
            for top in inner:
                found.append((_SET_DIRS[top], tree, top + "/"))
        elif (named := _set_from_name(path.name)) is not None:
            found.append((named, tree, ""))
        else:
            raise DataError(path, "wrong folder layout: no images_background/ or images_evaluation/ inside, "
                                  "and the file name does not say the set")

    try:
        _resolve_into(sources, add)
        sets = [s for s, _, _ in found]
        for s in SETS:
            if sets.count(s) > 1:
                raise DataError(found[sets.index(s)][1].path, f"the {s} set is given twice")
            if s not in sets:
                first = sources[0] if sources else "SOURCE"
                raise DataError(first, f"no {s} set given (need images_background and images_evaluation, "
                                       "as zips or folders)")
    except BaseException:
        for tree in {id(t): t for _, t, _ in found}.values():
            tree.close()
        raise
    order = {s: i for i, s in enumerate(SETS)}
    return sorted(found, key=lambda t: order[t[0]])


def _resolve_into(sources, add):
    for source in sources:
        path = Path(source)
        if path.is_dir() and _set_from_name(path.name) is None:
            children = []
            for dirname in _SET_DIRS:
                if (path / dirname).is_dir():
                    children.append(path / dirname)
                elif (path / f"{dirname}.zip").is_file():
                    children.append(path / f"{dirname}.zip")
            if not children:
                raise DataError(path, "wrong folder layout: holds neither images_background[.zip] nor "
                                      "images_evaluation[.zip]")
            for child in children:
                add(child)
        else:
            add(path)


def _index_set(tree: FileTree, prefix: str, config: OmniglotPackConfig):
    """Characters of one set as ``[(alphabet, character, [member names])]``, sorted."""
    chars: dict[tuple[str, str], list[str]] = {}
    for name in tree.names:
        if not name.startswith(prefix):
            if prefix and name.split("/", 1)[0] in _SET_DIRS:
                continue  # the other set of a combined archive
            if prefix:
                raise DataError(tree.display(name), f"unexpected file outside {prefix}")
            continue
        parts = name[len(prefix):].split("/")
        if len(parts) != 3:
            raise DataError(tree.display(name), "wrong folder layout: expected "
                                                f"{prefix}<alphabet>/<character>/<drawing>.png")
        if not parts[2].lower().endswith(".png"):
            raise DataError(tree.display(name), "not a PNG image (expected <drawing>.png)")
        chars.setdefault((parts[0], parts[1]), []).append(name)
    if not chars:
        raise DataError(tree.display(prefix.rstrip("/")), "wrong folder layout: no "
                                                          "<alphabet>/<character>/<drawing>.png files")
    out = []
    for (alphabet, character), names in sorted(chars.items()):
        n, want = len(names), config.drawings_per_character
        if n != want:
            what = "too few" if n < want else "too many"
            raise DataError(tree.display(f"{prefix}{alphabet}/{character}"),
                            f"character has {n} drawings, expected {want} ({what} images)")
        out.append((alphabet, character, sorted(names)))
    return out


def _decode(data: bytes, where: str, size: int):
    img = open_image(data, where)
    if img.format != "PNG":
        raise DataError(where, f"not a PNG image (found {img.format})")
    if img.size != (size, size):
        raise DataError(where, f"image is {img.size[0]}x{img.size[1]}, expected {size}x{size}")
    if img.mode != "1":
        raise DataError(where, f"image mode is {img.mode!r}, expected '1' (1-bit black and white)")
    return img


# ---------------------------------------------------------------------------------------------
def pack_omniglot(sources, out, config: OmniglotPackConfig = OmniglotPackConfig(), force: bool = False,
                  progress: bool = True) -> Path:
    """Pack the Omniglot ``sources`` (zips or folders, both sets) into the HDF5 file ``out``."""
    out = Path(out)
    with atomic_output(out, force=force) as tmp:
        resolved = resolve_sources([str(s) for s in sources])
        try:
            characters = []  # (set, alphabet, character, member names, tree)
            for set_name, tree, prefix in resolved:
                for alphabet, character, names in _index_set(tree, prefix, config):
                    characters.append((set_name, alphabet, character, names, tree))
            sets_of: dict[str, str] = {}
            for set_name, alphabet, *_ in characters:
                if sets_of.setdefault(alphabet, set_name) != set_name:
                    raise DataError(resolved[0][1].path, f"alphabet {alphabet!r} is in both sets")
            bar = Progress(len(characters) * config.drawings_per_character, f"pack omniglot -> {out.name}",
                           enabled=progress)
            images105, images28 = _read_images(characters, config, bar)
            bar.close()
            sources_attr = sorted(({"file": tree.path.name, "kind": tree.kind, "sha256": tree.checksum(),
                                    "sets": [s for s, t, _ in resolved if t is tree]}
                                   for tree in {id(t): t for _, t, _ in resolved}.values()),
                                  key=lambda d: (d["sets"], d["file"]))
            _write(tmp, characters, images105, images28, sources_attr, config)
        finally:
            for _, tree, _ in resolved:
                tree.close()
    return out


def _read_images(characters, config: OmniglotPackConfig, bar: Progress):
    """Decode every drawing: bit-packed 105x105 ``(C, D, 105, 14)`` uint8 and 28x28 float32."""
    n_char, n_draw, size = len(characters), config.drawings_per_character, config.image_size
    images105 = np.zeros((n_char, n_draw, size, (size + 7) // 8), dtype=np.uint8)
    images28 = np.zeros((n_char, n_draw, 28, 28), dtype=np.float32)
    resize = reference_resize if config.resize == "reference" else area_resize
    slot: dict[tuple[int, str], tuple[int, int]] = {}  # (tree, member) -> (character, drawing)
    by_tree: dict[int, tuple[FileTree, list[str]]] = {}
    for c, (_, _, _, names, tree) in enumerate(characters):
        for d, name in enumerate(names):
            slot[(id(tree), name)] = (c, d)
        by_tree.setdefault(id(tree), (tree, []))[1].extend(names)
    for tree, names in by_tree.values():
        for name, data in tree.iter_read(names):
            c, d = slot[(id(tree), name)]
            img = _decode(data, tree.display(name), size)
            images105[c, d] = np.packbits(np.asarray(img, dtype=bool), axis=-1)
            images28[c, d] = resize(img)
            bar.update()
    return images105, images28


def _write(path, characters, images105, images28, sources_attr, config: OmniglotPackConfig) -> None:
    """Write the schema-version-1 Omniglot file (``datasets/README.md``)."""
    import h5py

    import fometa

    n_char, n_draw = images28.shape[:2]
    strings = h5py.string_dtype("utf-8")
    gzip = {"compression": "gzip", "compression_opts": config.gzip_level, "shuffle": True} \
        if config.gzip_level else {}
    block = min(64, max(n_char, 1))
    drawing = np.array([[n.rsplit("/", 1)[-1][: -len(".png")] for n in names] for *_, names, _ in characters],
                       dtype=object).reshape(n_char, n_draw)
    columns = {
        "alphabet": np.array([a for _, a, _, _, _ in characters], dtype=object),
        "character": np.array([ch for _, _, ch, _, _ in characters], dtype=object),
        "set": np.array([s for s, _, _, _, _ in characters], dtype=object),
        "drawing": drawing,
    }
    with h5py.File(path, "w") as f:
        f.attrs["dataset"] = "omniglot"
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["fometa_version"] = fometa.__version__
        f.attrs["packing_options"] = dumps(asdict(config))
        f.attrs["sources"] = dumps(sources_attr)
        f.attrs["num_characters"] = n_char
        f.attrs["num_drawings"] = n_char * n_draw
        for key, arr in columns.items():
            ds = f.create_dataset(key, data=arr, dtype=strings, track_times=False)
            ds.attrs["sha256"] = array_sha256(arr)
        ds = f.create_dataset("images105", data=images105, chunks=(block,) + images105.shape[1:],
                              track_times=False, **gzip)
        ds.attrs["sha256"] = array_sha256(images105)
        ds.attrs["width"] = config.image_size
        ds.attrs["encoding"] = "numpy.packbits(image, axis=-1) of the bool image (True = white = 1)"
        ds = f.create_dataset("images28", data=images28, chunks=(block,) + images28.shape[1:],
                              track_times=False, **gzip)
        ds.attrs["sha256"] = array_sha256(images28)
        ds.attrs["resize"] = config.resize
        ds.attrs["resize_description"] = RESIZE_METHODS[config.resize]


def unpack_images105(packed, width: int = 105):
    """Bool images ``(..., width, width)`` (True = white) from the bit-packed ``images105``."""
    return np.unpackbits(np.asarray(packed), axis=-1, count=width).astype(bool)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``tools/pack_omniglot.py`` and ``fometa data omniglot``."""
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--resize", choices=sorted(RESIZE_METHODS), default="reference",
                   help="how the 28x28 images are made (default: reference, as openai/supervised-reptile)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args) -> OmniglotPackConfig:
    return OmniglotPackConfig(resize=args.resize)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="pack_omniglot.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output HDF5 file (e.g. datasets/omniglot.h5)")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="images_background.zip and images_evaluation.zip, their folders, or a folder holding them")
    add_arguments(p)
    args = p.parse_args(argv)
    pack = functools.partial(pack_omniglot, args.sources, args.out, config_from_args(args), force=args.force)
    return run_pack(pack, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
