#!/usr/bin/env python
"""Check a packed file against its sources, image by image:
``python tools/verify_packed.py FILE.h5 SOURCE...``.

Independent of the packers' reading code (it reads the archives with zipfile/tarfile directly):

* Omniglot (SOURCE: the two zips): every stored 105x105 drawing equals its PNG pixel for pixel, every
  28x28 image equals the reference preprocessing ``np.array(Image.open(png).resize((28, 28))).astype('float32')``
  (or the area resize the file names), and every PNG is in the file.
* Mini-ImageNet (SOURCE: the folder or .tar/.tar.gz in the ``{train,val,test}/<wnid>/*.jpg`` layout):
  every stored image equals Pillow's RGB decode of its JPEG, and every JPEG of a packed split is in the file.
* A ``folder`` file (``fometa data folder``; SOURCE: the folder, .zip or .tar/.tar.gz it was packed from): every
  image of the source (hidden files and ``__MACOSX/`` aside) is stored once, in its class (and, for a
  ``{train,val,test}/<class>/<image>`` source, its split), equal to its decode made into an example by the
  file's recorded ``image_spec`` (the recipe the file names, :class:`fometa.data.ImageSpec`), and the file
  holds no other image. A file packed from arrays in memory (``pack_arrays``) has no source to check: it is
  refused with that reason.

Also recomputes every dataset's SHA-256 (``verify_packed``) and prints counts and timings as JSON.
Exit status 1 with ``error: <file>: <problem>`` on the first difference.
"""
import argparse
import io
import json
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from fometa.data import DataError, ImageSpec, inspect_packed, verify_packed
from fometa.data.pack_omniglot import area_resize, unpack_images105


def _omniglot(path, sources):
    with h5py.File(path, "r") as f:
        alphabets, characters = f["alphabet"].asstr()[()], f["character"].asstr()[()]
        key = {(a, c): i for i, (a, c) in enumerate(zip(alphabets, characters, strict=True))}
        drawings = f["drawing"].asstr()[()]
        images105 = unpack_images105(f["images105"][()])
        images28 = f["images28"][()]
        method = f["images28"].attrs["resize"]
    seen = 0
    for source in sources:
        with zipfile.ZipFile(source) as z:
            for name in sorted(n for n in z.namelist() if n.endswith(".png")):
                _, alphabet, character, file = name.split("/")
                c = key.get((alphabet, character))
                where = f"{source}/{name}"
                if c is None or file[:-4] not in drawings[c]:
                    raise DataError(where, "not in the packed file")
                d = list(drawings[c]).index(file[:-4])
                img = Image.open(io.BytesIO(z.read(name)))
                img.load()
                if not np.array_equal(images105[c, d], np.asarray(img)):
                    raise DataError(where, "stored 105x105 image differs from the PNG")
                ref = np.array(img.resize((28, 28))).astype("float32") if method == "reference" else area_resize(img)
                if not np.array_equal(images28[c, d], ref):
                    raise DataError(where, f"stored 28x28 image differs from the {method} resize")
                seen += 1
    if seen != drawings.size:
        raise DataError(path, f"holds {drawings.size} drawings but the sources have {seen}")
    return {"alphabets": len({a for a, _ in key}), "characters": len(key), "drawings": seen}


def _miniimagenet(path, source, splits):
    f = h5py.File(path, "r")
    slot = {}
    for split in splits:
        for c, wnid in enumerate(f[f"{split}/wnids"].asstr()[()]):
            for i, name in enumerate(f[f"{split}/filenames"].asstr()[c]):
                slot[f"{split}/{wnid}/{name}"] = (split, c, i)
    found, current, block = set(), None, None

    def check(rel, data, where):
        nonlocal current, block
        split, c, i = slot[rel]
        if (split, c) != current:
            current, block = (split, c), f[f"{split}/images"][c]
        if not np.array_equal(block[i], np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))):
            raise DataError(where, "stored image differs from the JPEG decode")
        found.add(rel)

    def relative(name):
        parts = name.split("/")
        for k in range(len(parts) - 2):
            if parts[k] in splits and len(parts) - k == 3:
                return "/".join(parts[k:])
        return None

    source = Path(source)
    with f:
        if source.is_dir():
            for p in sorted(source.rglob("*")):
                rel = relative(p.relative_to(source).as_posix())
                if rel is not None and p.is_file():
                    if rel not in slot:
                        raise DataError(p, "not in the packed file")
                    check(rel, p.read_bytes(), p)
        else:
            with tarfile.open(source, "r|*") as tf:
                for m in tf:
                    rel = relative(m.name) if m.isfile() else None
                    if rel is not None:
                        if rel not in slot:
                            raise DataError(f"{source}/{m.name}", "not in the packed file")
                        check(rel, tf.extractfile(m).read(), f"{source}/{m.name}")
    if len(found) != len(slot):
        raise DataError(path, f"{len(slot) - len(found)} stored images are not in {source}")
    return {split: list(f_shape) for split, f_shape in _shapes(path, splits).items()} | {"images": len(found)}


def _source_files(source: Path):
    """``(relative name, bytes)`` of every file of a folder, zip or tar (hidden files and ``__MACOSX/`` aside)."""
    def hidden(name):
        return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))

    if source.is_dir():
        for p in sorted(source.rglob("*")):
            rel = p.relative_to(source).as_posix()
            if p.is_file() and not hidden(rel):
                yield rel, p.read_bytes()
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            for name in sorted(z.namelist()):
                if not name.endswith("/") and not hidden(name):
                    yield name, z.read(name)
    else:
        with tarfile.open(source, "r:*") as tf:
            members = sorted((m for m in tf.getmembers() if m.isfile()), key=lambda m: m.name)
            for m in members:
                name = m.name[2:] if m.name.startswith("./") else m.name
                if not hidden(name):
                    yield name, tf.extractfile(m).read()


def _folder(path, source):
    info = inspect_packed(path, "folder")
    if info.attrs.get("layout") not in ("classes", "splits"):
        raise DataError(path, f"packed from arrays in memory (layout {info.attrs.get('layout')!r}): there is no "
                              "source to check it against (its checksums were verified)")
    spec = ImageSpec.from_dict(info.attrs["image_spec"])
    slot, stored = {}, {}  # (split or None, class, file name) -> (split, row); split -> images
    with h5py.File(path, "r") as f:
        for split in info.attrs["splits"]:
            g = f[split]
            offsets, names, files = g["offsets"][()], g["classes"].asstr()[()], g["filenames"].asstr()[()]
            stored[split] = g["images"][()]
            for c, name in enumerate(names):
                for row in range(offsets[c], offsets[c + 1]):
                    key = (split if info.attrs["layout"] == "splits" else None, name, files[row])
                    if key in slot:
                        raise DataError(path, f"holds {'/'.join(filter(None, key))} twice")
                    slot[key] = (split, row)
    seen = set()
    for rel, data in _source_files(Path(source)):
        parts = rel.split("/")
        key = (parts[-3] if info.attrs["layout"] == "splits" and len(parts) >= 3 else None, *parts[-2:]) \
            if len(parts) >= 2 else (None, "", rel)
        where = f"{source}/{rel}"
        if key not in slot:
            raise DataError(where, "not in the packed file")
        split, row = slot[key]
        img = Image.open(io.BytesIO(data))
        img.load()
        example = spec.pixels(img, where) if stored[split].dtype == np.uint8 else spec.values(img, where)
        if not np.array_equal(stored[split][row], example):
            raise DataError(where, "stored image differs from the image made by the file's image_spec")
        seen.add(key)
    if len(seen) != len(slot):
        missing = "/".join(filter(None, sorted(set(slot) - seen)[0]))
        raise DataError(path, f"{len(slot) - len(seen)} stored images are not in {source} (e.g. {missing})")
    return {"layout": info.attrs["layout"], "splits": {s: int(a.shape[0]) for s, a in stored.items()},
            "images": len(seen), "image_spec": spec.as_dict()}


def _shapes(path, splits):
    with h5py.File(path, "r") as f:
        return {s: f[f"{s}/images"].shape for s in splits}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("file", help="packed .h5 file")
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    args = p.parse_args(argv)
    start = time.perf_counter()
    try:
        info = verify_packed(args.file)
        t_checksums = time.perf_counter() - start
        if info.kind == "omniglot":
            report = _omniglot(args.file, args.sources)
        elif info.kind == "folder":
            if len(args.sources) != 1:
                raise DataError(args.file, "a folder file is checked against the one SOURCE it was packed from")
            report = _folder(args.file, args.sources[0])
        else:
            if len(args.sources) != 1:
                raise DataError(args.file, "Mini-ImageNet is checked against one SOURCE")
            report = _miniimagenet(args.file, args.sources[0], inspect_packed(args.file).attrs["splits"])
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report.update(file=args.file, dataset=info.kind, checksums_s=round(t_checksums, 2),
                  total_s=round(time.perf_counter() - start, 2), pixel_identical=True)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
