"""A packed file with bytes overwritten inside it: ``fometa data info --verify`` reports what is damaged as a
finding, and ``fometa train`` and ``fometa eval`` stop with one line naming the file and how to mend it, without
a traceback and without leaving a half-made run folder behind."""
import json
import shutil

import h5py
import numpy as np
import pytest
from cli_helpers import FAST, fometa_cli

from fometa.data import pack_arrays


def damage(path, dataset: str, chunk: int = 0) -> None:
    """Overwrite 64 bytes in the middle of one stored (compressed) chunk of ``dataset``."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(chunk)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\xff" * 64)


@pytest.fixture
def damaged_omniglot(tiny_omniglot, tmp_path):
    path = tmp_path / "damaged.h5"
    shutil.copy(tiny_omniglot, path)
    damage(path, "images28")
    return path


@pytest.fixture(scope="module")
def grey_images(tmp_path_factory):
    """A small ``folder`` file: 6 train and 4 test classes of 6 grey 12x12 images (compressed)."""
    rng = np.random.default_rng(3)
    classes = {f"c{i}": rng.integers(0, 256, size=(6, 12, 12), dtype=np.uint8) for i in range(10)}
    items = list(classes.items())
    return pack_arrays({"train": dict(items[:6]), "test": dict(items[6:])}, tmp_path_factory.mktemp("grey") / "g.h5")


SMALL = ["--filters", "2", "--meta-iters", "4", "--inner-iters", "1", "--eval-iters", "1", "--interval-tasks", "2",
         "--eval-interval", "2", "--train-shots", "3", "--inner-batch", "4", "--ways", "2", "--shots", "2",
         "--eval-batch", "2", "--quiet"]


def _one_line(err: str) -> str:
    assert "Traceback" not in err and err.endswith("\n") and err.count("\n") == 1, err
    return err.strip()


def test_verify_reports_a_damaged_chunk_as_a_finding(capsys, damaged_omniglot, tiny_omniglot):
    with h5py.File(tiny_omniglot, "r") as f:
        stored = f["images28"].attrs["sha256"]
    rc, out, err = fometa_cli(capsys, "data", "info", "--verify", damaged_omniglot)
    assert rc == 1
    report = json.loads(out)
    assert report["verified"] is False and report["dataset"] == "omniglot"
    (finding,) = report["damaged"]
    assert finding["dataset"] == "images28" and finding["sha256"] == stored and finding["computed"] is None
    assert "cannot be read" in finding["problem"]
    line = _one_line(err)
    assert str(damaged_omniglot) in line and "'images28'" in line and "pack it again" in line


def test_verify_reports_changed_values_with_both_checksums(capsys, tiny_omniglot, tmp_path):
    path = tmp_path / "changed.h5"
    shutil.copy(tiny_omniglot, path)
    with h5py.File(path, "r+") as f:
        f["set"][0] = "evaluation" if f["set"][0] == b"background" else "background"
        stored = f["set"].attrs["sha256"]
    rc, out, err = fometa_cli(capsys, "data", "info", "--verify", path)
    assert rc == 1
    (finding,) = json.loads(out)["damaged"]
    assert finding["dataset"] == "set" and finding["sha256"] == stored
    assert len(finding["computed"]) == 64 and finding["computed"] != stored
    assert "fails its checksum" in _one_line(err)
    rc, out, err = fometa_cli(capsys, "data", "info", "--verify", tiny_omniglot)
    assert rc == 0 and json.loads(out)["verified"] is True and "damaged" not in json.loads(out), err


def test_train_on_a_damaged_file_makes_no_run_folder(capsys, damaged_omniglot, tmp_path):
    run = tmp_path / "run"
    rc, out, err = fometa_cli(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", damaged_omniglot, "--out",
                              run, *FAST, "--meta-iters", "2", "--quiet")
    assert rc == 2 and out == ""
    line = _one_line(err)
    assert line.startswith(f"fometa: error: {damaged_omniglot}: dataset 'images28' cannot be read") and \
        "pack it again" in line and "--verify" in line
    assert not run.exists()


def test_a_training_that_meets_a_damaged_chunk_removes_the_run_folder_it_made(capsys, grey_images, tmp_path):
    path = tmp_path / "g.h5"
    shutil.copy(grey_images, path)
    damage(path, "train/images")  # read when the first tasks are drawn, after the run folder is made
    run = tmp_path / "run"
    rc, out, err = fometa_cli(capsys, "train", "--data", path, "--out", run, *SMALL)
    assert rc == 1 and out == ""
    line = _one_line(err)
    assert line.startswith(f"fometa: error: {path}: dataset 'train/images' cannot be read") and "pack it again" in line
    assert f"removed the run folder {run}" in line
    assert not run.exists()
    kept = tmp_path / "kept"  # a folder given by the user is kept, emptied of what the training wrote
    kept.mkdir()
    rc, out, err = fometa_cli(capsys, "train", "--data", path, "--out", kept, *SMALL)
    assert rc == 1 and f"removed the files this training wrote in {kept}" in _one_line(err)
    assert kept.is_dir() and list(kept.iterdir()) == []


def test_eval_on_a_damaged_file(capsys, tiny_omniglot, damaged_omniglot, grey_images, tmp_path):
    for data, damaged in ((tiny_omniglot, damaged_omniglot), (grey_images, tmp_path / "g.h5")):
        run = tmp_path / f"run-{data.stem}"
        args = (*FAST, "--meta-iters", "2", "--quiet") if data == tiny_omniglot else SMALL
        preset = ("--preset", "omniglot-5way-1shot") if data == tiny_omniglot else ()
        rc, _, err = fometa_cli(capsys, "train", *preset, "--data", data, "--out", run, *args)
        assert rc == 0, err
        if data == grey_images:
            shutil.copy(grey_images, damaged)
            damage(damaged, "test/images")  # read lazily, while the tasks are evaluated
        rc, out, err = fometa_cli(capsys, "eval", run, "--data", damaged, "--tasks", "2", "--quiet")
        assert rc == 2 and out == ""
        line = _one_line(err)
        assert line.startswith(f"fometa: error: {damaged}: dataset '") and "cannot be read" in line, line
        assert "pack it again" in line
