"""Bad input to ``fometa data folder`` and ``pack_arrays``: one line naming the file or folder and the
problem, a non-zero exit status, and no output (nor temporary) file left behind."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from folder_sources import make_folder, make_image, zip_tree

from fometa.cli import main
from fometa.data import DataError, FolderPackConfig, ImageSpec, pack_arrays
from fometa.data import pack_folder as pf

CLASSES = {"cat": 2, "dog": 3, "eel": 2, "fox": 2, "gnu": 2}


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.fixture
def src(tmp_path):
    """A fresh ``<class>/<image>`` folder that a test may break."""
    return make_folder(tmp_path / "images", CLASSES)


def _fails(capsys, out_dir, no_output_left, source, file, problem, extra=()):
    """Both entry points: the module's ``main`` (``error: ...``, status 1) and ``fometa data folder``
    (``fometa: error: ...``, status 2)."""
    lines = []
    for prefix, run in (("error: ", pf.main), ("fometa: error: ", lambda a: main(["data", "folder", *a]))):
        args = ["--quiet", *extra, "--out", str(out_dir / "o.h5")]
        rc = run([*args, str(source)] if run is pf.main else [*args, "--source", str(source)])
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1, f"expected one error line, got {err}"
        assert rc == (1 if run is pf.main else 2)
        assert err[0].startswith(f"{prefix}{file}: ") and problem in err[0], err[0]
        no_output_left(out_dir)
        lines.append(err[0])
    return lines[0]


def test_missing_source(capsys, out_dir, no_output_left, tmp_path):
    _fails(capsys, out_dir, no_output_left, tmp_path / "absent", tmp_path / "absent", "no such file or folder")


def test_empty_folder(capsys, out_dir, no_output_left, tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "cat" / ".DS_Store").write_bytes(b"hidden files do not count")
    empty = tmp_path / "empty"
    _fails(capsys, out_dir, no_output_left, empty, empty, "no files (expected <class>/<image>")


def test_file_that_is_not_an_image(capsys, out_dir, no_output_left, src):
    (src / "dog" / "notes.txt").write_text("not an image")
    _fails(capsys, out_dir, no_output_left, src, src / "dog" / "notes.txt",
           "not a readable image (format not recognized)")


def test_truncated_image_inside_a_zip(capsys, out_dir, no_output_left, src, tmp_path):
    png = src / "eel" / "eel_01.png"
    png.write_bytes(png.read_bytes()[:60])
    archive = zip_tree(src, tmp_path / "images.zip")
    _fails(capsys, out_dir, no_output_left, archive, f"{archive}/images/eel/eel_01.png", "not a readable image",
           extra=["--size", "4", "--channels", "3"])  # found while packing, not while scanning


def test_truncated_archive(capsys, out_dir, no_output_left, src, tmp_path, gen):
    bad = gen.truncate(zip_tree(src, tmp_path / "whole.zip"), tmp_path / "images.zip")
    _fails(capsys, out_dir, no_output_left, bad, bad, "truncated or corrupt")


@pytest.mark.parametrize("archive", [False, True])
def test_empty_class_folder(capsys, out_dir, no_output_left, src, tmp_path, archive):
    (src / "hen").mkdir()
    source = zip_tree(src, tmp_path / "images.zip") if archive else src
    where = f"{source}/images/hen" if archive else src / "hen"
    _fails(capsys, out_dir, no_output_left, source, where, "empty class folder")


def test_class_with_one_image(capsys, out_dir, no_output_left, src):
    (src / "fox" / "fox_01.png").unlink()
    _fails(capsys, out_dir, no_output_left, src, src / "fox", "class has 1 image; every class needs at least 2")


def test_mixed_split_and_class_folders(capsys, out_dir, no_output_left, src):
    shutil.move(src / "cat", src / "train" / "cat")
    shutil.move(src / "dog", src / "test" / "dog")
    _fails(capsys, out_dir, no_output_left, src, src / "eel", "mixed layouts: class folder eel/ beside split folders "
                                                            "test/, train/")


def test_empty_folder_beside_split_folders(capsys, out_dir, no_output_left, tmp_path):
    src = make_folder(tmp_path / "s", {"train": {"a": 2, "b": 2}, "test": {"c": 2}})
    (src / "extra").mkdir()
    _fails(capsys, out_dir, no_output_left, src, src / "extra", "mixed layouts")


def test_file_outside_the_class_folders(capsys, out_dir, no_output_left, src):
    (src / "README.txt").write_text("my pets")
    _fails(capsys, out_dir, no_output_left, src, src / "README.txt", "a file outside any class folder")


def test_images_without_class_folders(capsys, out_dir, no_output_left, tmp_path):
    make_image(tmp_path / "flat" / "a.png", np.random.default_rng(0))
    make_image(tmp_path / "flat" / "b.png", np.random.default_rng(1))
    _fails(capsys, out_dir, no_output_left, tmp_path / "flat", tmp_path / "flat" / "a.png", "outside any class folder")


def test_image_directly_in_a_split_folder(capsys, out_dir, no_output_left, tmp_path):
    src = make_folder(tmp_path / "s", {"train": {"a": 2, "b": 2}, "test": {"c": 2}})
    shutil.move(src / "test" / "c" / "c_00.png", src / "test" / "loose.png")
    _fails(capsys, out_dir, no_output_left, src, src / "test" / "loose.png",
           "an image directly in a split folder (expected test/<class>/<image>)")


def test_sub_folder_inside_a_class(capsys, out_dir, no_output_left, src):
    make_image(src / "gnu" / "more" / "x.png", np.random.default_rng(0))
    _fails(capsys, out_dir, no_output_left, src, src / "gnu" / "more" / "x.png", "a sub-folder inside a class folder")


def test_split_folder_without_classes(capsys, out_dir, no_output_left, tmp_path):
    src = make_folder(tmp_path / "s", {"train": {"a": 2, "b": 2}, "test": {"c": 2}})
    (src / "val").mkdir()
    _fails(capsys, out_dir, no_output_left, src, src / "val", "split folder holds no classes")


def test_class_in_two_splits(capsys, out_dir, no_output_left, tmp_path):
    src = make_folder(tmp_path / "s", {"train": {"a": 2, "b": 2}, "test": {"a": 2}})
    _fails(capsys, out_dir, no_output_left, src, src / "test" / "a", "class a is also in train/")


def test_split_option_with_split_folders(capsys, out_dir, no_output_left, tmp_path):
    src = make_folder(tmp_path / "s", {"train": {"a": 2, "b": 2}, "test": {"c": 2}})
    _fails(capsys, out_dir, no_output_left, src, src, "the split folders divide the classes: --split applies only",
           extra=["--split", "0.5,0.5"])


def test_too_few_classes_for_the_split(capsys, out_dir, no_output_left, tmp_path):
    src = make_folder(tmp_path / "two", {"a": 2, "b": 2})
    _fails(capsys, out_dir, no_output_left, src, src, "2 classes cannot be divided train=0.8,test=0.2 with a class "
                                                      "in every split (test would get none)")
    src = make_folder(tmp_path / "one", {"a": 2})
    _fails(capsys, out_dir, no_output_left, src, src, "1 class folder: at least 2 classes are needed",
           extra=["--split", "1"])


def test_images_of_different_sizes_need_size(capsys, out_dir, no_output_left, src):
    make_image(src / "cat" / "cat_07.png", np.random.default_rng(0), size=(30, 20))
    line = _fails(capsys, out_dir, no_output_left, src, src,
                  "images differ in size (cat/cat_00.png is 10x12, cat/cat_07.png is 30x20, height x width): "
                  "give --size H[xW]")
    assert "--size" in line


def test_bilevel_with_three_channels(capsys, out_dir, no_output_left, src):
    _fails(capsys, out_dir, no_output_left, src, "options", "bilevel images have one channel",
           extra=["--bilevel", "--channels", "3"])


def test_existing_output_needs_force(capsys, out_dir, src):
    out = out_dir / "o.h5"
    out.write_bytes(b"keep me")
    assert pf.main(["--quiet", "--out", str(out), str(src)]) == 1
    assert capsys.readouterr().err.strip() == f"error: {out}: output file exists (use --force to overwrite)"
    assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in out_dir.iterdir()) == ["o.h5"]
    assert pf.main(["--quiet", "--force", "--out", str(out), str(src)]) == 0


@pytest.mark.parametrize("option, value, message", [
    ("--size", "28x", "cannot read size '28x'"), ("--split", "0.5,0.2", "must add up to 1"),
    ("--split", "train=1,dev=0", "split names"), ("--channels", "2", "invalid choice"),
])
def test_bad_option_values_are_usage_errors(capsys, out_dir, no_output_left, src, option, value, message):
    with pytest.raises(SystemExit) as info:
        main(["data", "folder", option, value, "--source", str(src), "--out", str(out_dir / "o.h5")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: " in err and message in err, err
    no_output_left(out_dir)


# -- pack_arrays ----------------------------------------------------------------------------------
def _arrays_fail(out_dir, no_output_left, classes, problem, **kwargs):
    with pytest.raises(DataError) as info:
        pack_arrays(classes, out_dir / "a.h5", **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith("pack_arrays: ") and problem in message, message
    no_output_left(out_dir)


def test_pack_arrays_refuses_bad_input(out_dir, no_output_left):
    ok = np.zeros((2, 4, 4), np.uint8)
    cases = [
        ({}, "non-empty mapping"),
        ([ok, ok], "non-empty mapping"),
        ({"a": ok}, "1 class: at least 2 classes are needed"),
        ({"a": ok, "b": ok[:1]}, "class 'b' has 1 example; every class needs at least 2"),
        ({"a": ok, "b": np.zeros((2, 5, 4), np.uint8)}, "classes differ in example shape"),
        ({"a": ok, "b": np.zeros((2, 4, 4, 2), np.uint8)}, "must be (n, H, W) or (n, H, W, 3)"),
        ({"a": ok, "b": np.zeros((2, 4), np.uint8)}, "must be (n, H, W) or (n, H, W, 3)"),
        ({"a": ok, "b": np.full((2, 4, 4), 2.0)}, "float values must be finite and in [0, 1]"),
        ({"a": ok, "b": np.full((2, 4, 4), np.nan)}, "float values must be finite and in [0, 1]"),
        ({"a": ok, "b": np.zeros((2, 4, 4), np.int32)}, "must be uint8, bool or float"),
        ({"train": {"a": ok}, "dev": {"b": ok}}, "unknown split 'dev'"),
        ({"train": {"a": ok}, "test": {"a": ok}}, "class 'a' is in both train and test"),
        ({"train": {"a": ok, "b": ok}, "test": {}}, "split 'test' holds no classes"),
        ({"train": {"a": ok}, "b": ok}, "not both"),
    ]
    for classes, problem in cases:
        _arrays_fail(out_dir, no_output_left, classes, problem)
    _arrays_fail(out_dir, no_output_left, {"a": ok, "b": ok}, "2 classes cannot be divided train=0.8,test=0.2")
    _arrays_fail(out_dir, no_output_left, {"train": {"a": ok, "b": ok}}, "spec gives examples of shape (5, 5)",
                 spec=ImageSpec(5, 5))
    _arrays_fail(out_dir, no_output_left, {"train": {"a": ok, "b": ok}}, "config asks for size (5, 5)",
                 config=FolderPackConfig(size=(5, 5)))
    _arrays_fail(out_dir, no_output_left, {"train": {"a": ok, "b": ok}}, "config.split applies only",
                 config=FolderPackConfig(split=(("train", 1.0),)))
