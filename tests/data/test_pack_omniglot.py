"""Packing Omniglot: contents, pixel identity with the PNGs, the reference 28x28 preprocessing,
determinism, source forms, and (when FOMETA_DATA_DIR points at them) the real archives."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest
from PIL import Image

from fometa.data._io import KNOWN_SHA256
from fometa.data.pack_omniglot import OmniglotPackConfig, area_resize, main, pack_omniglot, unpack_images105


def _read(path):
    with h5py.File(path, "r") as f:
        arrays = {k: (f[k].asstr()[()] if f[k].dtype.kind == "O" else f[k][()]) for k in f}
        attrs = {k: f.attrs[k] for k in f.attrs}
        ds_attrs = {k: dict(f[k].attrs) for k in f}
    return arrays, attrs, ds_attrs


def _zip_pngs(zip_paths):
    """{(alphabet, character): [(drawing, PIL image)]} from the zips, sorted by drawing."""
    out = {}
    for zp in zip_paths:
        with zipfile.ZipFile(zp) as z:
            for name in sorted(n for n in z.namelist() if n.endswith(".png")):
                _, alphabet, character, drawing = name.split("/")
                img = Image.open(io.BytesIO(z.read(name)))
                img.load()
                out.setdefault((alphabet, character), []).append((drawing[:-4], img))
    return out


def _reference_28(img):
    """openai/supervised-reptile omniglot.py: Image.open(f).resize((28, 28)), np.array(...).astype('float32')."""
    return np.array(img.resize((28, 28))).astype("float32")


def test_packed_contents_equal_pngs_and_reference(omniglot_zips, omniglot_packed):
    arrays, attrs, ds_attrs = _read(omniglot_packed)
    assert attrs["dataset"] == "omniglot" and attrs["schema_version"] == 1
    assert list(arrays["alphabet"]) == ["Alpha", "Alpha", "Beta", "Gamma", "Gamma"]
    assert list(arrays["character"]) == ["character01", "character02", "character01", "character01", "character02"]
    assert list(arrays["set"]) == ["background"] * 3 + ["evaluation"] * 2
    assert arrays["images105"].shape == (5, 20, 105, 14) and arrays["images105"].dtype == np.uint8
    assert arrays["images28"].shape == (5, 20, 28, 28) and arrays["images28"].dtype == np.float32
    pngs = _zip_pngs(omniglot_zips)
    images105 = unpack_images105(arrays["images105"])
    for c, key in enumerate(zip(arrays["alphabet"], arrays["character"], strict=True)):
        drawings = pngs[key]
        assert list(arrays["drawing"][c]) == [d for d, _ in drawings]
        for d, (_, img) in enumerate(drawings):
            np.testing.assert_array_equal(images105[c, d], np.asarray(img), err_msg=f"105x105 differs at {key} {d}")
            np.testing.assert_array_equal(arrays["images28"][c, d], _reference_28(img),
                                          err_msg=f"28x28 differs from the reference at {key} {d}")
    assert set(np.unique(arrays["images28"])) <= {0.0, 1.0}
    assert ds_attrs["images28"]["resize"] == "reference"
    sources = json.loads(attrs["sources"])
    assert [(s["file"], s["kind"], s["sets"]) for s in sources] == [
        ("images_background.zip", "zip", ["background"]), ("images_evaluation.zip", "zip", ["evaluation"])]
    import hashlib

    for s, zp in zip(sources, omniglot_zips, strict=True):
        assert s["sha256"] == hashlib.sha256(zp.read_bytes()).hexdigest()
    assert json.loads(attrs["packing_options"])["resize"] == "reference"


def test_packing_twice_gives_same_arrays_and_attributes(omniglot_zips, omniglot_packed, tmp_path):
    again = pack_omniglot(omniglot_zips, tmp_path / "again.h5", progress=False)
    a, b = _read(omniglot_packed), _read(again)
    assert a[1] == b[1] and a[2] == b[2]
    assert a[0].keys() == b[0].keys()
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k], err_msg=k)


def test_folders_zips_and_parent_folder_agree(omniglot_zips, omniglot_packed, tmp_path, gen):
    src = omniglot_zips[0].parent.parent / "src"
    from_folders = pack_omniglot([src / "images_background", src / "images_evaluation"], tmp_path / "f.h5",
                                 progress=False)
    from_parent = pack_omniglot([omniglot_zips[0].parent], tmp_path / "p.h5", progress=False)
    ref = _read(omniglot_packed)
    for other in (from_folders, from_parent):
        arrays, _, _ = _read(other)
        for k in ref[0]:
            np.testing.assert_array_equal(arrays[k], ref[0][k], err_msg=f"{other.name}: {k}")
    kinds = [s["kind"] for s in json.loads(_read(from_folders)[1]["sources"])]
    assert kinds == ["folder", "folder"]
    assert json.loads(_read(from_parent)[1]["sources"]) == json.loads(ref[1]["sources"])


def test_area_resize_is_named_and_averages(omniglot_zips, tmp_path):
    out = pack_omniglot(omniglot_zips, tmp_path / "area.h5", OmniglotPackConfig(resize="area"), progress=False)
    arrays, attrs, ds_attrs = _read(out)
    assert ds_attrs["images28"]["resize"] == "area"
    assert json.loads(attrs["packing_options"])["resize"] == "area"
    img = _zip_pngs(omniglot_zips)[("Alpha", "character01")][0][1]
    np.testing.assert_array_equal(arrays["images28"][0, 0], area_resize(img))
    x = arrays["images28"]
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 and len(np.unique(x)) > 2
    # area averaging keeps the ink fraction of the 105x105 drawing
    ink105 = 1 - unpack_images105(arrays["images105"]).mean()
    assert abs((1 - x.mean()) - ink105) < 0.01


def test_main_shows_progress_on_stderr_and_returns_zero(omniglot_zips, tmp_path, capsys):
    rc = main(["--out", str(tmp_path / "o.h5"), *map(str, omniglot_zips)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "pack omniglot" in err and "100/100" in err and "100%" in err


def test_tool_wrapper_runs_as_a_script(omniglot_zips, tmp_path, gen):
    r = subprocess.run([sys.executable, str(gen.REPO / "tools" / "pack_omniglot.py"), "--quiet",
                        "--out", str(tmp_path / "o.h5"), *map(str, omniglot_zips)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o.h5").is_file() and r.stderr == ""


# -- the real archives (FOMETA_DATA_DIR) ------------------------------------------------------
def test_real_omniglot_counts_and_checksums(real_omniglot_packed, gen):
    arrays, attrs, _ = _read(real_omniglot_packed)
    assert len(set(arrays["alphabet"])) == 50
    assert len(arrays["alphabet"]) == 1623 and arrays["images28"].shape == (1623, 20, 28, 28)
    assert int(attrs["num_drawings"]) == 32460 == arrays["drawing"].size
    assert (arrays["set"] == "background").sum() == 964 and (arrays["set"] == "evaluation").sum() == 659
    assert len(set(arrays["alphabet"][arrays["set"] == "background"])) == 30
    # the archives' checksums are the official ones that downloads are checked against (no other file needed)
    assert {s["file"]: s["sha256"] for s in json.loads(attrs["sources"])} == KNOWN_SHA256


def test_real_omniglot_pixels_equal_pngs_and_reference(real_omniglot_packed, gen):
    arrays, _, _ = _read(real_omniglot_packed)
    index = {key: c for c, key in enumerate(zip(arrays["alphabet"], arrays["character"], strict=True))}
    checked = 0
    for zp in (gen.REAL_OMNIGLOT / "images_background.zip", gen.REAL_OMNIGLOT / "images_evaluation.zip"):
        with zipfile.ZipFile(zp) as z:
            for name in sorted(n for n in z.namelist() if n.endswith(".png")):  # streamed: memory stays small
                _, alphabet, character, drawing = name.split("/")
                c = index[(alphabet, character)]
                d = checked % 20
                assert arrays["drawing"][c, d] == drawing[:-4], name
                img = Image.open(io.BytesIO(z.read(name)))
                img.load()
                if not np.array_equal(unpack_images105(arrays["images105"][c, d]), np.asarray(img)):
                    pytest.fail(f"105x105 image differs from the PNG at {name}")
                if not np.array_equal(arrays["images28"][c, d], _reference_28(img)):
                    pytest.fail(f"28x28 image differs from the reference preprocessing at {name}")
                checked += 1
    assert checked == 32460 == arrays["drawing"].size


def test_real_omniglot_paper_split_matches_datasets_splits(real_omniglot_packed, gen):
    from fometa.data import load_omniglot

    spec = json.loads((gen.REPO / "datasets" / "splits" / "omniglot_paper_seed0.json").read_text())
    splits = load_omniglot(real_omniglot_packed, seed=0, augment_rotations=False)
    assert list(splits["train"].names) == spec["train"]
    assert list(splits["test"].names) == spec["test"]
    assert (len(spec["train"]), len(spec["test"])) == (1200, 423)
