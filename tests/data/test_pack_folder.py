"""Packing any image folder (``fometa data folder``) and arrays (``pack_arrays``): contents equal the
decoded images, both layouts and every source form, determinism, the division of classes, size and
channel defaults, agreement with the Omniglot and Mini-ImageNet packers, loading, ``fometa data info``."""
from __future__ import annotations

import json
import pickle
import shutil
import tarfile

import h5py
import numpy as np
import pytest
from folder_sources import decoded, make_folder, make_image, tar_tree, zip_tree
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from fometa.cli import main
from fometa.data import (
    DataError,
    FolderPackConfig,
    FolderSplit,
    ImageSpec,
    load_folder,
    load_packed,
    pack_arrays,
    verify_packed,
)
from fometa.data import pack_folder as pf
from fometa.data._io import sha256_tree
from fometa.data.pack_folder import DEFAULT_SPLIT, divide_classes, pack_folder, parse_size, parse_split

CLASSES = {"cat": 3, "dog": 2, "eel": 4, "fox": 2, "gnu": 3}
SPLIT_SPEC = {"train": {"ant": 2, "bee": 3}, "val": {"cow": 2}, "test": {"doe": 2, "elk": 3}}


def _read(path):
    """``(datasets, root attributes)`` of a packed file, every dataset read whole."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj.asstr()[()] if obj.dtype.kind == "O" else obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
        attrs = {k: f.attrs[k] for k in f.attrs}
    return arrays, attrs


def _assert_same_file(a, b, ignore=("sources",)):
    (arrays_a, attrs_a), (arrays_b, attrs_b) = _read(a), _read(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
    kept_a, kept_b = ({k: v for k, v in attrs.items() if k not in ignore} for attrs in (attrs_a, attrs_b))
    assert kept_a == kept_b


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    """``images/<class>/<class>_NN.png``: 5 RGB classes of 2-4 images (10x12); do not modify."""
    return make_folder(tmp_path_factory.mktemp("class_folder") / "images", CLASSES)


@pytest.fixture(scope="module")
def class_packed(tmp_path_factory, class_folder):
    return pack_folder(class_folder, tmp_path_factory.mktemp("class_packed") / "images.h5", progress=False)


# -- contents -----------------------------------------------------------------------------------
def test_class_folders_pack_every_image_exactly(class_folder, class_packed):
    arrays, attrs = _read(class_packed)
    assert attrs["dataset"] == "folder" and attrs["schema_version"] == 1 and attrs["layout"] == "classes"
    division = divide_classes(list(CLASSES), DEFAULT_SPLIT, 0, "x")
    assert json.loads(attrs["splits"]) == ["train", "test"] and [len(division[s]) for s in ("train", "test")] == [4, 1]
    assert attrs["num_classes"] == 5 and attrs["num_images"] == sum(CLASSES.values())
    for split, names in division.items():
        assert list(arrays[f"{split}/classes"]) == names
        counts = [CLASSES[c] for c in names]
        np.testing.assert_array_equal(arrays[f"{split}/offsets"], np.cumsum([0, *counts]))
        files = [p for c in names for p in sorted((class_folder / c).iterdir())]
        assert list(arrays[f"{split}/filenames"]) == [p.name for p in files]
        images = arrays[f"{split}/images"]
        assert images.dtype == np.uint8 and images.shape == (len(files), 10, 12, 3)
        for x, path in zip(images, files, strict=True):
            np.testing.assert_array_equal(x, decoded(path), err_msg=path.name)
    assert ImageSpec.from_dict(json.loads(attrs["image_spec"])) == ImageSpec(10, 12, 3)
    options = json.loads(attrs["packing_options"])
    assert options["size"] == [10, 12] and options["channels"] == 3
    assert options["split"] == [["train", 0.8], ["test", 0.2]]
    (source,) = json.loads(attrs["sources"])
    names = sorted(p.relative_to(class_folder).as_posix() for p in class_folder.rglob("*.png"))
    assert source == {"file": "images", "kind": "folder", "root": "", "sha256": sha256_tree(class_folder, names)}
    assert verify_packed(class_packed).kind == "folder"
    with h5py.File(class_packed, "r") as f:
        assert f["train/images"].attrs["scale"] == 255 and f["train/images"].compression == "gzip"


def test_split_folders_are_the_splits(tmp_path):
    src = make_folder(tmp_path / "data", SPLIT_SPEC, mode="L")
    arrays, attrs = _read(pack_folder(src, tmp_path / "d.h5", progress=False))
    assert attrs["layout"] == "splits" and json.loads(attrs["splits"]) == ["train", "val", "test"]
    assert json.loads(attrs["packing_options"])["split"] is None
    for split, classes in SPLIT_SPEC.items():
        assert list(arrays[f"{split}/classes"]) == sorted(classes)
        images = arrays[f"{split}/images"]
        assert images.shape == (sum(classes.values()), 10, 12), "grey images pack to one channel"
        files = [p for c in sorted(classes) for p in sorted((src / split / c).iterdir())]
        for x, path in zip(images, files, strict=True):
            np.testing.assert_array_equal(x, decoded(path))
    # any subset of the three split folders
    shutil.rmtree(src / "val")
    assert json.loads(_read(pack_folder(src, tmp_path / "d2.h5", progress=False))[1]["splits"]) == ["train", "test"]


@pytest.mark.parametrize("form", ["zip", "zip-no-top", "tar", "tar.gz", "tar-dot", "nested-folder"])
def test_every_source_form_gives_the_same_file(form, class_folder, class_packed, tmp_path):
    if form == "zip":
        source = zip_tree(class_folder, tmp_path / "images.zip")
    elif form == "zip-no-top":
        source = zip_tree(class_folder, tmp_path / "images.zip", top=False)
    elif form in ("tar", "tar.gz"):
        source = tar_tree(class_folder, tmp_path / f"images.{form}")
    elif form == "tar-dot":
        source = tar_tree(class_folder, tmp_path / "images.tgz", arcname=".")
    else:
        source = tmp_path / "outer" / "inner" / "images"
        shutil.copytree(class_folder, source)
        source = tmp_path / "outer"
    out = pack_folder(source, tmp_path / "o.h5", progress=False)
    _assert_same_file(out, class_packed)
    (entry,) = json.loads(_read(out)[1]["sources"])
    assert entry["file"] == source.name and len(entry["sha256"]) == 64
    assert entry["kind"] == ("folder" if form == "nested-folder" else form[:3])
    assert entry["root"] == {"zip": "images/", "tar": "images/", "tar.gz": "images/",
                             "nested-folder": "inner/images/"}.get(form, "")


def test_packing_twice_gives_the_same_file(class_folder, class_packed, tmp_path):
    again = pack_folder(class_folder, tmp_path / "again.h5", progress=False)
    _assert_same_file(again, class_packed, ignore=())
    assert again.read_bytes() == class_packed.read_bytes(), "no time stamps or other varying bytes"


# -- dividing classes ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("1", (("train", 1.0),)),
    ("0.8,0.2", (("train", 0.8), ("test", 0.2))),
    ("0.6, 0.2, 0.2", (("train", 0.6), ("val", 0.2), ("test", 0.2))),
    ("test=0.25,train=0.75", (("train", 0.75), ("test", 0.25))),
    ("val=0.5,train=0.5", (("train", 0.5), ("val", 0.5))),
])
def test_parse_split(text, expected):
    assert parse_split(text) == expected


@pytest.mark.parametrize("text, message", [
    ("0.5,0.2", "add up to 1"), ("0.5,0.3,0.1,0.1", "give 1 to 3 fractions"), ("a,b", "cannot read split"),
    ("1,0", "must be positive"), ("train=0.5,dev=0.5", "split names must be distinct among train, val, test"),
    ("train=0.5,train=0.5", "distinct"), ("train=0.5,0.5", "cannot read split"), ("nan", "positive"),
])
def test_parse_split_refuses(text, message):
    with pytest.raises(ValueError, match=message):
        parse_split(text)


def test_parse_size():
    assert parse_size("28") == (28, 28) and parse_size("64x48") == (64, 48) and parse_size("5X7") == (5, 7)
    for bad in ("0", "28x", "x28", "3x4x5", "big", "-2"):
        with pytest.raises(ValueError, match="cannot read size"):
            parse_size(bad)


@given(st.integers(1, 80), st.sampled_from(["1", "0.8,0.2", "0.6,0.2,0.2", "0.5,0.5", "0.9,0.05,0.05",
                                            "train=0.3,val=0.7"]), st.integers(0, 2**31))
def test_divide_classes_is_a_seeded_partition_of_the_asked_sizes(n, text, seed):
    split = parse_split(text)
    names = [f"class{i:03d}" for i in range(n)]
    try:
        parts = divide_classes(names[::-1], split, seed, "where")
    except DataError as exc:
        assert "cannot be divided" in str(exc) and any(f * n < 1 for _, f in split)
        return
    assert list(parts) == [s for s, _ in split]
    assert sorted(c for p in parts.values() for c in p) == names, "every class in exactly one split"
    for s, f in split:
        assert parts[s] == sorted(parts[s]) and len(parts[s]) >= 1
        assert abs(len(parts[s]) - f * n) < 1 + 1e-9, (s, len(parts[s]), f * n)
    assert divide_classes(names, split, seed, "where") == parts, "the order given does not matter; the seed decides"


def test_split_fractions_and_seed_when_packing(tmp_path):
    src = make_folder(tmp_path / "ten", {f"c{i}": 2 for i in range(10)}, size=(4, 4))
    files = {}
    for seed in (3, 4):
        out = pack_folder(src, tmp_path / f"s{seed}.h5", FolderPackConfig(split=parse_split("0.6,0.2,0.2"),
                                                                          split_seed=seed), progress=False)
        arrays, attrs = _read(out)
        files[seed] = {s: list(arrays[f"{s}/classes"]) for s in ("train", "val", "test")}
        assert files[seed] == divide_classes([f"c{i}" for i in range(10)], parse_split("0.6,0.2,0.2"), seed, "")
        assert [len(v) for v in files[seed].values()] == [6, 2, 2]
        options = json.loads(attrs["packing_options"])
        assert options["split_seed"] == seed and options["split"] == [["train", 0.6], ["val", 0.2], ["test", 0.2]]
    assert files[3] != files[4], "another seed divides the classes differently"
    one = _read(pack_folder(src, tmp_path / "one.h5", FolderPackConfig(split=(("train", 1.0),)), progress=False))
    assert json.loads(one[1]["splits"]) == ["train"] and len(one[0]["train/classes"]) == 10


# -- size and channels --------------------------------------------------------------------------
def test_channels_default_to_grey_when_every_image_is_grey(tmp_path):
    grey = make_folder(tmp_path / "grey", {"a": 2, "b": 2}, mode="grey-rgb", size=(6, 5))
    out = pack_folder(grey, tmp_path / "g.h5", FolderPackConfig(split=(("train", 1.0),)), progress=False)
    arrays, attrs = _read(out)
    assert arrays["train/images"].shape == (4, 6, 5)
    np.testing.assert_array_equal(arrays["train/images"][0], decoded(grey / "a" / "a_00.png")[..., 0])
    make_image(grey / "b" / "b_09.png", np.random.default_rng(5), size=(6, 5))  # one colour image
    arrays, _ = _read(pack_folder(grey, tmp_path / "c.h5", FolderPackConfig(split=(("train", 1.0),)), progress=False))
    assert arrays["train/images"].shape == (5, 6, 5, 3)
    forced, _ = _read(pack_folder(grey, tmp_path / "f.h5", FolderPackConfig(channels=1, split=(("train", 1.0),)),
                                  progress=False))
    assert forced["train/images"].shape == (5, 6, 5)


def test_size_resizes_with_the_chosen_filter(tmp_path):
    src = tmp_path / "mixed"
    rng = np.random.default_rng(0)
    for c, size in (("a", (20, 30)), ("b", (9, 9)), ("c", (8, 6))):
        for i in range(2):
            make_image(src / c / f"{i}.png", rng, size=size, mode="L" if c == "b" else "RGB")
    for resize, channels in (("lanczos", 3), ("bilinear", 1), ("nearest", 3)):
        cfg = FolderPackConfig(size=(8, 6), channels=channels, resize=resize, split=(("train", 1.0),))
        arrays, attrs = _read(pack_folder(src, tmp_path / f"{resize}.h5", cfg, progress=False))
        images = arrays["train/images"]
        assert images.shape == ((6, 8, 6, 3) if channels == 3 else (6, 8, 6))
        for x, path in zip(images, sorted(src.rglob("*.png")), strict=True):
            with Image.open(path) as img:
                img = img.convert("RGB" if channels == 3 else "L")
                if img.size != (6, 8):
                    img = img.resize((6, 8), getattr(Image.Resampling, resize.upper()))
                np.testing.assert_array_equal(x, np.asarray(img), err_msg=f"{resize} {path}")
        assert ImageSpec.for_packed(tmp_path / f"{resize}.h5") == ImageSpec(8, 6, channels, resize=resize)


def test_sizes_count_after_the_exif_orientation(tmp_path):
    """A sideways-stored photo with an EXIF orientation has its upright size: no --size needed."""
    src = make_folder(tmp_path / "photos", {"a": 2, "b": 2}, size=(8, 6))
    sideways = np.random.default_rng(7).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(sideways)
    exif = img.getexif()
    exif[0x0112] = 8  # turn 90 degrees counter-clockwise to view
    img.save(src / "b" / "b_02.png", exif=exif)
    arrays, _ = _read(pack_folder(src, tmp_path / "p.h5", FolderPackConfig(split=(("train", 1.0),)), progress=False))
    assert arrays["train/images"].shape == (5, 8, 6, 3)
    np.testing.assert_array_equal(arrays["train/images"][-1], np.rot90(sideways))


def test_invert_stores_inverted_pixels(class_folder, tmp_path):
    cfg = FolderPackConfig(invert=True, split=(("train", 1.0),))
    arrays, _ = _read(pack_folder(class_folder, tmp_path / "i.h5", cfg, progress=False))
    np.testing.assert_array_equal(arrays["train/images"][0], 255 - decoded(class_folder / "cat" / "cat_00.png"))


# -- agreement with the other packers -------------------------------------------------------------
def test_bilevel_folder_of_omniglot_drawings_equals_omniglot_packing(gen, omniglot_packed, tmp_path):
    """Omniglot's characters as class folders, packed with --bilevel --resize nearest --size 28: the
    examples equal ``images28`` and the recorded spec is Omniglot's."""
    src = gen.make_omniglot(tmp_path / "raw")
    chars = tmp_path / "chars"
    for folder in sorted(src.glob("images_*/*/*")):
        shutil.copytree(folder, chars / f"{folder.parent.name}_{folder.name}")
    cfg = FolderPackConfig(size=(28, 28), bilevel=True, resize="nearest", split=(("train", 1.0),))
    out = pack_folder(chars, tmp_path / "o.h5", cfg, progress=False)
    assert ImageSpec.for_packed(out) == ImageSpec.for_packed(omniglot_packed)
    splits = load_packed(out)["train"]
    with h5py.File(omniglot_packed, "r") as f:
        names = [f"{a}_{c}" for a, c in zip(f["alphabet"].asstr()[()], f["character"].asstr()[()], strict=True)]
        images28 = f["images28"][()]
    assert sorted(splits.names) == sorted(names)
    for c, name in enumerate(splits.names):
        np.testing.assert_array_equal(splits.get(c, range(20)), images28[names.index(name)], err_msg=name)


def test_folder_packing_of_miniimagenet_equals_its_packer(gen, tmp_path):
    from fometa.data.pack_miniimagenet import MiniImageNetPackConfig, pack_miniimagenet

    src = gen.make_mini(tmp_path / "m", csv=False)
    mini = pack_miniimagenet(src, tmp_path / "mini.h5", MiniImageNetPackConfig(images_per_class=gen.MINI_N),
                             progress=False)
    folder = pack_folder(tmp_path / "m", tmp_path / "folder.h5", progress=False)
    assert ImageSpec.for_packed(folder) == ImageSpec.for_packed(mini)
    (m, _), (d, _) = _read(mini), _read(folder)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(d[f"{split}/images"], m[f"{split}/images"].reshape(-1, 84, 84, 3))
        np.testing.assert_array_equal(d[f"{split}/classes"], m[f"{split}/wnids"])
        np.testing.assert_array_equal(d[f"{split}/filenames"], m[f"{split}/filenames"].ravel())


def test_a_sample_of_the_real_miniimagenet_jpegs(gen, tmp_path, capsys):
    """The first three classes of the real archive, five JPEGs each, as split folders, through the CLI."""
    if not gen.REAL_MINI.is_file():
        pytest.skip(f"real Mini-ImageNet archive not found at {gen.REAL_MINI}")
    src, taken = tmp_path / "sample", {}
    with tarfile.open(gen.REAL_MINI, "r|gz") as tf:
        for member in tf:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 4 or not parts[3].endswith(".jpg"):
                continue
            wnid = parts[2]
            if wnid not in taken:
                if len(taken) == 3:
                    break
                taken[wnid] = []
            if len(taken[wnid]) < 5:  # the archive holds each class's images together
                taken[wnid].append(parts[3])
                dest = src / ("test" if len(taken) == 3 else "train") / wnid / parts[3]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tf.extractfile(member).read())
    out = tmp_path / "sample.h5"
    assert main(["data", "folder", "--quiet", "--source", str(src), "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""
    splits = load_packed(out)
    assert [len(splits[s]) for s in ("train", "test")] == [2, 1]
    assert ImageSpec.for_packed(out) == ImageSpec(84, 84, 3)
    for split in splits.values():
        assert split.example_shape == (84, 84, 3)
        for c, wnid in enumerate(split.names):
            files = sorted((src / split.split / wnid).iterdir())
            assert split.filenames(c) == [p.name for p in files]
            expected = np.stack([decoded(p) for p in files]).astype(np.float32) / 255
            np.testing.assert_array_equal(split.get(c, range(5)), expected)


# -- pack_arrays ----------------------------------------------------------------------------------
def test_pack_arrays_with_given_splits(tmp_path):
    rng = np.random.default_rng(0)
    given = {"test": {"z": rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)},
             "train": {"b": rng.integers(0, 256, (2, 5, 4), dtype=np.uint8),
                       "a": rng.integers(0, 256, (4, 5, 4, 1), dtype=np.uint8)}}
    out = pack_arrays(given, tmp_path / "a.h5")
    arrays, attrs = _read(out)
    assert json.loads(attrs["splits"]) == ["train", "test"] and attrs["layout"] == "arrays-splits"
    assert list(arrays["train/classes"]) == ["a", "b"], "classes sorted by name"
    np.testing.assert_array_equal(arrays["train/images"], np.concatenate([given["train"]["a"][..., 0],
                                                                          given["train"]["b"]]))
    assert list(arrays["train/filenames"]) == ["0", "1", "2", "3", "0", "1"]
    splits = load_packed(out)
    assert isinstance(splits["train"], FolderSplit) and splits["train"].example_shape == (5, 4)
    np.testing.assert_array_equal(splits["test"].get(0, [2, 0]), given["test"]["z"][[2, 0]].astype(np.float32) / 255)
    assert ImageSpec.for_packed(out) == ImageSpec(5, 4, 1)
    (source,) = json.loads(attrs["sources"])
    assert source["kind"] == "arrays" and len(source["sha256"]) == 64
    _assert_same_file(pack_arrays(given, tmp_path / "b.h5"), out, ignore=())


def test_pack_arrays_divides_a_flat_mapping_like_folders(tmp_path):
    rng = np.random.default_rng(1)
    classes = {f"k{i}": rng.integers(0, 256, (2, 3, 3, 3), dtype=np.uint8) for i in range(7)}
    cfg = FolderPackConfig(split=parse_split("0.6,0.4"), split_seed=5)
    arrays, attrs = _read(pack_arrays(classes, tmp_path / "a.h5", cfg))
    expected = divide_classes(list(classes), cfg.split, 5, "")
    assert {s: list(arrays[f"{s}/classes"]) for s in ("train", "test")} == expected
    assert attrs["layout"] == "arrays"
    folder = make_folder(tmp_path / "f", {f"k{i}": 2 for i in range(7)}, size=(3, 3))
    folder_arrays, _ = _read(pack_folder(folder, tmp_path / "f.h5", cfg, progress=False))
    assert list(folder_arrays["train/classes"]) == expected["train"], "the same division as a folder's"
    default = _read(pack_arrays(classes, tmp_path / "d.h5"))[1]
    assert json.loads(default["packing_options"])["split"] == [list(s) for s in DEFAULT_SPLIT]


def test_pack_arrays_values_floats_and_bools(tmp_path):
    rng = np.random.default_rng(2)
    floats = rng.random((3, 4, 4)).astype(np.float64)
    bools = np.eye(4, dtype=bool)[None].repeat(2, 0)
    given = {"train": {"f": floats, "u": np.full((2, 4, 4), 51, np.uint8), "b": bools}}
    arrays, _ = _read(pack_arrays(given, tmp_path / "a.h5"))
    images = arrays["train/images"]
    assert images.dtype == np.float32, "floats are stored as float32, losslessly"
    split = load_packed(tmp_path / "a.h5")["train"]
    assert split.names == ("b", "f", "u")
    np.testing.assert_array_equal(split.get(0, [0]), np.eye(4, dtype=np.float32)[None])
    np.testing.assert_array_equal(split.get(1, [0, 1, 2]), floats.astype(np.float32))
    np.testing.assert_array_equal(split.get(2, [0]), np.full((1, 4, 4), np.float32(51) / 255))
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["train/images"].attrs["scale"] == 1


# -- loading --------------------------------------------------------------------------------------
def test_load_folder_interface_cache_and_pickling(class_packed):
    splits = load_folder(class_packed, cache_classes=1)
    train = splits["train"]
    assert len(train) == 4 and train.example_shape == (10, 12, 3) and train.names == tuple(sorted(train.names))
    for c in range(len(train)):
        n = train.num_examples(c)
        x = train.get(c, np.arange(n)[::-1])
        assert x.shape == (n, 10, 12, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
        np.testing.assert_array_equal(x[::-1], train.class_stored(c).astype(np.float32) / 255)
        assert len(train._cache) == 1
    assert train.filenames(0) == [f"{train.names[0]}_{i:02d}.png" for i in range(train.num_examples(0))]
    with pytest.raises(IndexError, match="out of range"):
        train.get(0, [99])
    with pytest.raises(IndexError, match="class 4 out of range"):
        train.get(4, [0])
    clone = pickle.loads(pickle.dumps(train))
    np.testing.assert_array_equal(clone.get(1, [0, 1]), train.get(1, [0, 1]))
    train.close()
    np.testing.assert_array_equal(train.get(1, [0]), clone.get(1, [0]))
    assert load_packed(class_packed, cache_classes=0, verify=True)["test"].get(0, [0]).shape == (1, 10, 12, 3)
    with pytest.raises(ValueError, match="cache_classes"):
        load_folder(class_packed, cache_classes=-1)


def test_load_refuses_an_inconsistent_file(class_packed, tmp_path):
    bad = tmp_path / "bad.h5"
    shutil.copy(class_packed, bad)
    with h5py.File(bad, "r+") as f:
        offsets = f["train/offsets"][()]
        offsets[-1] += 1
        del f["train/offsets"]
        f["train/offsets"] = offsets
    with pytest.raises(DataError, match="inconsistent shapes in train"):
        load_folder(bad)
    with pytest.raises(DataError, match="has no sha256 attribute|fails its checksum"):
        verify_packed(bad)
    with h5py.File(bad, "r+") as f:
        del f["test/filenames"]
    with pytest.raises(DataError, match="missing dataset 'test/filenames'"):
        load_folder(bad)


# -- command line -----------------------------------------------------------------------------------
def test_cli_packs_a_folder(class_folder, class_packed, tmp_path, capsys):
    out = tmp_path / "cli.h5"
    assert main(["data", "folder", "--source", str(class_folder), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "pack folder -> cli.h5" in err and f"wrote {out}" in err
    _assert_same_file(out, class_packed, ignore=())
    assert main(["data", "folder", "--quiet", "--source", str(class_folder), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"fometa: error: {out}: output file exists (use --force to overwrite)"
    args = ["--quiet", "--force", "--size", "5x6", "--channels", "1", "--resize", "box", "--split", "train=0.5,val=0.5",
            "--split-seed", "2", "--invert"]
    assert main(["data", "folder", *args, "--source", str(class_folder), "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""
    _, attrs = _read(out)
    assert ImageSpec.for_packed(out) == ImageSpec(5, 6, 1, resize="box", invert=True)
    assert json.loads(attrs["splits"]) == ["train", "val"]
    assert pf.main(["--quiet", "--force", "--out", str(out), str(class_folder)]) == 0
    _assert_same_file(out, class_packed, ignore=())


def test_info_describes_every_kind(class_packed, omniglot_packed, mini_packed, capsys):
    assert main(["data", "info", "--verify", str(class_packed)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dataset"] == "folder" and info["verified"] is True and info["example_shape"] == [10, 12, 3]
    assert info["split_sizes"]["train"]["classes"] == 4 and info["split_sizes"]["test"]["classes"] == 1
    per_class = info["split_sizes"]["train"]["examples_per_class"]
    assert per_class["min"] == 2 and per_class["max"] == 4
    assert info["image_spec"] == ImageSpec(10, 12, 3).as_dict() and info["layout"] == "classes"
    assert info["datasets"]["train/images"]["shape"] == [info["split_sizes"]["train"]["examples"], 10, 12, 3]
    assert all(len(d["sha256"]) == 64 for d in info["datasets"].values())
    assert info["sources"][0]["kind"] == "folder"

    assert main(["data", "info", str(omniglot_packed)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["example_shape"] == [28, 28] and info["image_spec"]["bilevel"] is True
    twenty = {"min": 20, "max": 20}
    assert info["split_sizes"] == {"background": {"classes": 3, "examples": 60, "examples_per_class": twenty},
                                   "evaluation": {"classes": 2, "examples": 40, "examples_per_class": twenty}}
    assert main(["data", "info", str(mini_packed)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["example_shape"] == [84, 84, 3] and info["splits"] == ["train", "val", "test"]
    assert info["split_sizes"]["train"] == {"classes": 2, "examples": 6, "examples_per_class": {"min": 3, "max": 3}}
