"""Packing Mini-ImageNet: every source form and layout gives the same arrays, pixel-identical to
the decoded images; resizing and mode conversion; archive order; the real archive (one split)."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile

import h5py
import numpy as np
import pytest
from PIL import Image

from fometa.data import pack_miniimagenet as pm
from fometa.data.pack_miniimagenet import MiniImageNetPackConfig, pack_miniimagenet

CFG = MiniImageNetPackConfig(images_per_class=3)


def _read(path):
    with h5py.File(path, "r") as f:
        arrays = {}
        for split in f:
            for k in f[split]:
                ds = f[split][k]
                arrays[f"{split}/{k}"] = ds.asstr()[()] if ds.dtype.kind == "O" else ds[()]
        attrs = {k: f.attrs[k] for k in f.attrs}
    return arrays, attrs


def _decode(path):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_packed_contents_equal_decoded_jpegs(mini_folder, mini_packed, gen):
    arrays, attrs = _read(mini_packed)
    assert attrs["dataset"] == "miniimagenet" and attrs["schema_version"] == 1 and attrs["layout"] == "folders"
    for split, wnids in gen.MINI_SPEC.items():
        assert list(arrays[f"{split}/wnids"]) == sorted(wnids)
        images = arrays[f"{split}/images"]
        assert images.shape == (len(wnids), 3, 84, 84, 3) and images.dtype == np.uint8
        for c, wnid in enumerate(sorted(wnids)):
            files = sorted(p.name for p in (mini_folder / split / wnid).iterdir())
            assert list(arrays[f"{split}/filenames"][c]) == files
            for i, name in enumerate(files):
                np.testing.assert_array_equal(images[c, i], _decode(mini_folder / split / wnid / name))
    with h5py.File(mini_packed, "r") as f:
        assert f["train/images"].chunks == (1, 3, 84, 84, 3)
        assert f["train/images"].attrs["sha256"] == hashlib.sha256(f["train/images"][()].tobytes()).hexdigest()
    (source,) = json.loads(attrs["sources"])
    assert source["kind"] == "folder" and source["root"] == "" and len(source["sha256"]) == 64


@pytest.mark.parametrize("form", ["tar", "tar.gz", "zip", "csv-folder", "csv-tar"])
def test_every_source_form_and_layout_gives_the_same_arrays(form, mini_folder, mini_packed, tmp_path, gen):
    if form.startswith("csv"):
        folder = gen.make_mini(tmp_path / "csvsrc", folders=False)
        source = folder if form == "csv-folder" else gen.tar_folder(folder, tmp_path / "m.tar")
    elif form == "zip":
        source = gen.zip_folder(mini_folder, tmp_path / "m.zip")
    else:
        source = gen.tar_folder(mini_folder, tmp_path / f"m.{form}")
    out = pack_miniimagenet(source, tmp_path / "o.h5", CFG, progress=False)
    arrays, attrs = _read(out)
    ref, _ = _read(mini_packed)
    assert arrays.keys() == ref.keys()
    for k in ref:
        np.testing.assert_array_equal(arrays[k], ref[k], err_msg=k)
    assert attrs["layout"] == ("csv" if form.startswith("csv") else "folders")
    (src,) = json.loads(attrs["sources"])
    if not form.endswith("folder"):
        assert src["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()


def test_layout_option_picks_csv_when_both_present(mini_folder, mini_packed, tmp_path):
    out = pack_miniimagenet(mini_folder, tmp_path / "o.h5",
                            MiniImageNetPackConfig(images_per_class=3, layout="csv"), progress=False)
    arrays, attrs = _read(out)
    assert attrs["layout"] == "csv"
    np.testing.assert_array_equal(arrays["train/images"], _read(mini_packed)[0]["train/images"])


def test_archive_order_does_not_matter_and_memory_buffers_flush(mini_folder, mini_packed, tmp_path, monkeypatch):
    # interleave the classes so that several are incomplete at once, and allow one buffer only
    files = sorted(p.relative_to(mini_folder).as_posix() for p in mini_folder.rglob("*.jpg")
                   if "/images/" not in f"/{p.relative_to(mini_folder).as_posix()}")
    order = sorted(files, key=lambda r: (r.rsplit("/", 1)[-1][-6:], r))
    tar = tmp_path / "shuffled.tar"
    with tarfile.open(tar, "w") as tf:
        for rel in order:
            tf.add(mini_folder / rel, f"miniimagenet/{rel}")
    monkeypatch.setattr(pm, "_MAX_BUFFERED_CLASSES", 1)
    out = pack_miniimagenet(tar, tmp_path / "o.h5", CFG, progress=False)
    arrays, _ = _read(out)
    ref, _ = _read(mini_packed)
    for k in ref:
        np.testing.assert_array_equal(arrays[k], ref[k], err_msg=k)


def test_other_sizes_are_resized_and_other_modes_converted(tmp_path, gen):
    folder = gen.make_mini(tmp_path / "src", csv=False)
    rng = np.random.default_rng(5)
    big = folder / "train" / "n00000001" / "n0000000100000001.jpg"
    gray = folder / "train" / "n00000001" / "n0000000100000002.jpg"
    gen.make_jpeg(big, rng, size=(120, 100))
    gen.make_jpeg(gray, rng, mode="L")
    out = pack_miniimagenet(folder, tmp_path / "o.h5", CFG, progress=False)
    images = _read(out)[0]["train/images"]
    with Image.open(big) as img:
        expected = np.asarray(img.convert("RGB").resize((84, 84), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(images[0, 0], expected)
    with Image.open(gray) as img:
        assert img.mode == "L"
        expected = np.asarray(img.convert("RGB"))
    np.testing.assert_array_equal(images[0, 1], expected)
    assert json.loads(_read(out)[1]["packing_options"])["resize"] == "lanczos"


def test_splits_option_packs_a_subset(mini_folder, mini_packed, tmp_path):
    out = pack_miniimagenet(mini_folder, tmp_path / "o.h5",
                            MiniImageNetPackConfig(images_per_class=3, splits=("val",)), progress=False)
    arrays, attrs = _read(out)
    assert sorted(arrays) == ["val/filenames", "val/images", "val/wnids"]
    assert json.loads(attrs["splits"]) == ["val"]
    np.testing.assert_array_equal(arrays["val/images"], _read(mini_packed)[0]["val/images"])


def test_packing_twice_gives_same_arrays_and_attributes(mini_folder, mini_packed, tmp_path):
    again = pack_miniimagenet(mini_folder, tmp_path / "again.h5", CFG, progress=False)
    a, b = _read(mini_packed), _read(again)
    assert a[1] == b[1]
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k], err_msg=k)
    with h5py.File(mini_packed, "r") as fa, h5py.File(again, "r") as fb:
        for k in a[0]:
            assert dict(fa[k].attrs) == dict(fb[k].attrs)


def test_tool_wrapper_shows_progress(mini_folder, tmp_path, gen):
    r = subprocess.run([sys.executable, str(gen.REPO / "tools" / "pack_miniimagenet.py"), "--images-per-class", "3",
                        "--out", str(tmp_path / "o.h5"), str(mini_folder)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "pack miniimagenet" in r.stderr and "12/12" in r.stderr and r.stdout == ""


# -- the real archive (FOMETA_DATA_DIR): the validation split, all 9,600 images --------------
def test_real_miniimagenet_val_split_is_pixel_identical(gen, tmp_path):
    if not gen.REAL_MINI.is_file():
        pytest.skip(f"real Mini-ImageNet archive not found at {gen.REAL_MINI}: {gen.HOW}")
    out = pack_miniimagenet(gen.REAL_MINI, tmp_path / "val.h5", MiniImageNetPackConfig(splits=("val",)),
                            progress=False)
    with h5py.File(out, "r") as f:
        images = f["val/images"]
        wnids = list(f["val/wnids"].asstr()[()])
        filenames = f["val/filenames"].asstr()[()]
        assert images.shape == (16, 600, 84, 84, 3)
        with tarfile.open(gen.REAL_MINI, "r|gz") as tf:
            csv_rows, seen = None, 0
            slot = {f"miniimagenet/val/{w}/{n}": (c, i) for c, w in enumerate(wnids)
                    for i, n in enumerate(filenames[c])}
            current, block = None, None
            for member in tf:
                if member.name == "miniimagenet/val.csv":
                    csv_rows = tf.extractfile(member).read().decode().split()[1:]
                if member.name not in slot:
                    continue
                c, i = slot[member.name]
                if c != current:
                    current, block = c, images[c]
                decoded = np.asarray(Image.open(io.BytesIO(tf.extractfile(member).read())).convert("RGB"))
                if not np.array_equal(block[i], decoded):
                    pytest.fail(f"{member.name} differs from its JPEG decode")
                seen += 1
    assert seen == 9600
    assert sorted({row.split(",")[1] for row in csv_rows}) == wnids
