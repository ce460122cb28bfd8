"""Bad input: each case gives a one-line ``error: <file>: <problem>``, a non-zero exit status, and
no output (nor temporary) file left behind."""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from fometa.data import DataError, load_miniimagenet, load_omniglot, verify_packed
from fometa.data import pack_miniimagenet as pm
from fometa.data import pack_omniglot as po


def _error_line(capsys):
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got {lines}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def _omniglot_error(capsys, out_dir, no_output_left, sources, file, problem, extra=()):
    rc = po.main(["--quiet", "--out", str(out_dir / "o.h5"), *extra, *map(str, sources)])
    line = _error_line(capsys)
    assert rc != 0
    assert f"error: {file}" in line and problem in line, line
    no_output_left(out_dir)
    return line


def _mini_error(capsys, out_dir, no_output_left, source, file, problem, extra=()):
    rc = pm.main(["--quiet", "--images-per-class", "3", "--out", str(out_dir / "o.h5"), *extra, str(source)])
    line = _error_line(capsys)
    assert rc != 0
    assert f"error: {file}" in line and problem in line, line
    no_output_left(out_dir)
    return line


@pytest.fixture
def omni_src(tmp_path, gen):
    """A fresh generated Omniglot (folders) that a test may break."""
    return gen.make_omniglot(tmp_path / "src")


@pytest.fixture
def mini_src(tmp_path, gen):
    """A fresh generated Mini-ImageNet (folder layout) that a test may break."""
    return gen.make_mini(tmp_path / "msrc", csv=False)


# -- Omniglot --------------------------------------------------------------------------------
def test_omniglot_missing_archive(capsys, out_dir, no_output_left, omniglot_zips, tmp_path):
    missing = tmp_path / "images_evaluation.zip"
    _omniglot_error(capsys, out_dir, no_output_left, [omniglot_zips[0], missing], missing, "no such file")


def test_omniglot_missing_set(capsys, out_dir, no_output_left, omniglot_zips):
    _omniglot_error(capsys, out_dir, no_output_left, [omniglot_zips[0]], omniglot_zips[0], "no evaluation set")


def test_omniglot_truncated_zip(capsys, out_dir, no_output_left, omniglot_zips, tmp_path, gen):
    bad = gen.truncate(omniglot_zips[1], tmp_path / "images_evaluation.zip")
    _omniglot_error(capsys, out_dir, no_output_left, [omniglot_zips[0], bad], bad, "truncated or corrupt")


def test_omniglot_corrupt_member(capsys, out_dir, no_output_left, omniglot_zips, tmp_path):
    import zipfile

    with zipfile.ZipFile(omniglot_zips[1]) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(".png"))
    data = bytearray(omniglot_zips[1].read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 4: start + 20] = bytes(16)  # inside the first PNG's compressed data
    bad = tmp_path / "images_evaluation.zip"
    bad.write_bytes(bytes(data))
    line = _omniglot_error(capsys, out_dir, no_output_left, [omniglot_zips[0], bad], bad, "")
    assert "corrupt" in line or "not a readable image" in line


def test_omniglot_wrong_folder_layout(capsys, out_dir, no_output_left, omni_src):
    png = next((omni_src / "images_evaluation" / "Gamma" / "character01").iterdir())
    shutil.move(png, omni_src / "images_evaluation" / "Gamma" / png.name)
    _omniglot_error(capsys, out_dir, no_output_left, [omni_src], omni_src / "images_evaluation" / "Gamma" / png.name,
                    "wrong folder layout")


def test_omniglot_source_folder_without_sets(capsys, out_dir, no_output_left, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _omniglot_error(capsys, out_dir, no_output_left, [empty], empty, "wrong folder layout")


def test_omniglot_non_image_file(capsys, out_dir, no_output_left, omni_src):
    bad = omni_src / "images_background" / "Alpha" / "character01" / "notes.txt"
    bad.write_text("hello")
    _omniglot_error(capsys, out_dir, no_output_left, [omni_src], bad, "not a PNG image")


def test_omniglot_unreadable_png(capsys, out_dir, no_output_left, omni_src, gen):
    bad = next((omni_src / "images_background" / "Beta" / "character01").iterdir())
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    # packed from zips: the error names the member inside the archive
    zips = [gen.zip_folder(omni_src / f"images_{s}", omni_src / f"images_{s}.zip")
            for s in ("background", "evaluation")]
    member = f"images_background/Beta/character01/{bad.name}"
    _omniglot_error(capsys, out_dir, no_output_left, zips, f"{zips[0]}/{member}", "not a readable image")


def test_omniglot_image_of_wrong_size(capsys, out_dir, no_output_left, omni_src, gen):
    bad = next((omni_src / "images_evaluation" / "Gamma" / "character02").iterdir())
    gen.make_png(bad, np.random.default_rng(0), size=64)
    _omniglot_error(capsys, out_dir, no_output_left, [omni_src], bad, "image is 64x64, expected 105x105")


def test_omniglot_image_of_wrong_mode(capsys, out_dir, no_output_left, omni_src, gen):
    bad = next((omni_src / "images_evaluation" / "Gamma" / "character02").iterdir())
    gen.make_png(bad, np.random.default_rng(0), mode="L")
    _omniglot_error(capsys, out_dir, no_output_left, [omni_src], bad, "expected '1'")


def test_omniglot_character_with_too_few_drawings(capsys, out_dir, no_output_left, omni_src):
    char = omni_src / "images_background" / "Alpha" / "character02"
    sorted(char.iterdir())[-1].unlink()
    _omniglot_error(capsys, out_dir, no_output_left, [omni_src], char, "19 drawings, expected 20 (too few images)")


def test_omniglot_existing_output_needs_force(capsys, out_dir, omniglot_zips):
    out = out_dir / "o.h5"
    out.write_bytes(b"keep me")
    rc = po.main(["--quiet", "--out", str(out), *map(str, omniglot_zips)])
    line = _error_line(capsys)
    assert rc != 0 and f"error: {out}: output file exists (use --force" in line
    assert out.read_bytes() == b"keep me" and sorted(p.name for p in out_dir.iterdir()) == ["o.h5"]
    assert po.main(["--quiet", "--force", "--out", str(out), *map(str, omniglot_zips)]) == 0
    assert h5py.is_hdf5(out) and sorted(p.name for p in out_dir.iterdir()) == ["o.h5"]


def test_interrupted_packing_leaves_nothing(out_dir, no_output_left, omniglot_zips, monkeypatch):
    calls = []

    def boom(*args):
        calls.append(1)
        if len(calls) > 10:
            raise KeyboardInterrupt
        return real(*args)

    real = po._decode
    monkeypatch.setattr(po, "_decode", boom)
    with pytest.raises(KeyboardInterrupt):
        po.pack_omniglot(omniglot_zips, out_dir / "o.h5", progress=False)
    no_output_left(out_dir)


# -- Mini-ImageNet ---------------------------------------------------------------------------
def test_mini_missing_archive(capsys, out_dir, no_output_left, tmp_path):
    missing = tmp_path / "miniimagenet.tar.gz"
    _mini_error(capsys, out_dir, no_output_left, missing, missing, "no such file")


@pytest.mark.parametrize("suffix", ["tar.gz", "tar"])
def test_mini_truncated_tar(capsys, out_dir, no_output_left, mini_folder, tmp_path, gen, suffix):
    full = gen.tar_folder(mini_folder, tmp_path / f"full.{suffix}")
    bad = gen.truncate(full, tmp_path / f"miniimagenet.{suffix}", 0.6)
    _mini_error(capsys, out_dir, no_output_left, bad, bad, "truncated or corrupt")


def test_mini_truncated_zip(capsys, out_dir, no_output_left, mini_folder, tmp_path, gen):
    bad = gen.truncate(gen.zip_folder(mini_folder, tmp_path / "full.zip"), tmp_path / "m.zip")
    _mini_error(capsys, out_dir, no_output_left, bad, bad, "truncated or corrupt")


def test_mini_wrong_folder_layout(capsys, out_dir, no_output_left, mini_src):
    shutil.rmtree(mini_src / "test")
    _mini_error(capsys, out_dir, no_output_left, mini_src.parent, mini_src.parent, "wrong folder layout")


def test_mini_file_at_wrong_depth(capsys, out_dir, no_output_left, mini_src):
    stray = mini_src / "train" / "stray.jpg"
    shutil.copy(next((mini_src / "val" / "n00000010").iterdir()), stray)
    _mini_error(capsys, out_dir, no_output_left, mini_src.parent, stray, "wrong folder layout")


def test_mini_non_image_file(capsys, out_dir, no_output_left, mini_src):
    bad = sorted((mini_src / "val" / "n00000010").iterdir())[1]
    bad.write_text("not an image")
    _mini_error(capsys, out_dir, no_output_left, mini_src.parent, bad, "not a readable image")


def test_mini_image_of_wrong_size_when_resizing_is_refused(capsys, out_dir, no_output_left, mini_src, gen):
    bad = sorted((mini_src / "test" / "n00000020").iterdir())[2]
    gen.make_jpeg(bad, np.random.default_rng(1), size=(60, 60))
    _mini_error(capsys, out_dir, no_output_left, mini_src.parent, bad, "image is 60x60, expected 84x84",
                extra=["--resize", "error"])


def test_mini_class_with_too_few_images(capsys, out_dir, no_output_left, mini_src):
    cls = mini_src / "train" / "n00000002"
    sorted(cls.iterdir())[0].unlink()
    _mini_error(capsys, out_dir, no_output_left, mini_src.parent, cls, "has 2 images, expected 3 (too few images)")


def test_mini_csv_naming_a_missing_image(capsys, out_dir, no_output_left, tmp_path, gen):
    base = gen.make_mini(tmp_path / "csvsrc", folders=False)
    victim = sorted((base / "images").iterdir())[0]
    victim.unlink()
    csv = base / "train.csv" if victim.name.startswith("n0000000") else base / "val.csv"
    _mini_error(capsys, out_dir, no_output_left, base, csv, f"{victim.name} is not in")


def test_mini_existing_output_needs_force(capsys, out_dir, mini_folder):
    out = out_dir / "o.h5"
    out.write_bytes(b"keep me")
    rc = pm.main(["--quiet", "--images-per-class", "3", "--out", str(out), str(mini_folder)])
    assert rc != 0 and f"error: {out}: output file exists" in _error_line(capsys)
    assert out.read_bytes() == b"keep me"


# -- packed files ----------------------------------------------------------------------------
@pytest.fixture
def packed_copy(omniglot_packed, tmp_path):
    dest = tmp_path / "copy.h5"
    shutil.copy(omniglot_packed, dest)
    return dest


def test_unknown_schema_version(packed_copy):
    with h5py.File(packed_copy, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(DataError, match=r"unknown schema version 99") as info:
        load_omniglot(packed_copy)
    assert str(info.value).startswith(f"{packed_copy}: ") and "\n" not in str(info.value)


def test_missing_dataset(packed_copy):
    with h5py.File(packed_copy, "r+") as f:
        del f["images28"]
    with pytest.raises(DataError, match=r"missing dataset 'images28'"):
        load_omniglot(packed_copy)


def test_missing_split_dataset(mini_packed, tmp_path):
    dest = tmp_path / "m.h5"
    shutil.copy(mini_packed, dest)
    with h5py.File(dest, "r+") as f:
        del f["val/images"]
    with pytest.raises(DataError, match=r"missing dataset 'val/images'"):
        load_miniimagenet(dest)


def test_wrong_kind_and_not_packed(packed_copy, tmp_path):
    with pytest.raises(DataError, match="holds omniglot, expected miniimagenet"):
        load_miniimagenet(packed_copy)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        load_omniglot(junk)
    with h5py.File(tmp_path / "bare.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(DataError, match="not a fometa packed file"):
        load_omniglot(tmp_path / "bare.h5")
    with pytest.raises(DataError, match="no such file"):
        load_omniglot(tmp_path / "absent.h5")


def test_corrupted_values_fail_the_checksum(packed_copy):
    with h5py.File(packed_copy, "r+") as f:
        f["images28"][0, 0, 0, 0] = 0.5
    load_omniglot(packed_copy, train_characters=2)  # no check unless asked
    with pytest.raises(DataError, match="'images28' fails its checksum"):
        verify_packed(packed_copy)
    with pytest.raises(DataError, match="fails its checksum"):
        load_omniglot(packed_copy, verify=True)


def test_cli_reports_a_bad_packed_file_in_one_line(packed_copy, capsys):
    from fometa.cli import main

    with h5py.File(packed_copy, "r+") as f:
        f.attrs["schema_version"] = 2
    assert main(["data", "info", str(packed_copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"fometa: error: {packed_copy}: unknown schema version 2 (this fometa reads version 1; " \
                  "repack the data with this version)"
