"""``fometa train --data FILE.h5`` on any packed images: the closest preset, the network following the
images, and the run's preprocessing (ImageSpec) recorded in its run folder and every checkpoint."""
import json

import numpy as np
import pytest
from cli_helpers import FAST, fometa_cli

from fometa import build, checkpoint
from fometa import config as C
from fometa.data import ImageSpec, pack_arrays


def test_the_tiny_run_follows_its_images_and_records_their_preprocessing(tiny_run, tiny_images):
    spec = ImageSpec.for_packed(tiny_images).as_dict()
    saved = json.loads((tiny_run / "config.json").read_text())
    assert saved["preset"] == "omniglot-5way-1shot"  # small grey images, 3 ways, 1 shot
    assert saved["data"]["kind"] == "folder" and saved["data"]["image_spec"] == spec
    assert saved["model"]["arch"] == "omniglot_cnn" and saved["model"]["ways"] == 3
    ckpt = checkpoint.load(tiny_run / "checkpoint.h5")
    assert ckpt.config["data"]["image_spec"] == spec and ckpt.iteration == 30
    cfg = C.from_dict(ckpt.config)
    model = build.build_model(cfg.model, build.input_shape(cfg))
    assert model.input_shape == (12, 12) and model.name == "omniglot_cnn(3, filters=8, input=12x12)"
    assert {k: v.shape for k, v in ckpt.params.items()} == model.param_shapes()


@pytest.fixture(scope="module")
def rgb_images(tmp_path_factory):
    rng = np.random.default_rng(1)
    classes = {f"c{i}": rng.integers(0, 256, size=(6, 20, 20, 3), dtype=np.uint8) for i in range(8)}
    return pack_arrays({"train": dict(list(classes.items())[:5]), "test": dict(list(classes.items())[5:])},
                       tmp_path_factory.mktemp("rgb") / "rgb.h5")


SMALL = ["--filters", "2", "--meta-iters", "2", "--inner-iters", "1", "--eval-iters", "1", "--interval-tasks", "2",
         "--eval-interval", "2", "--train-shots", "3", "--inner-batch", "4", "--ways", "2", "--shots", "2",
         "--eval-batch", "2", "--quiet"]


def test_colour_images_take_the_miniimagenet_network_and_preset(capsys, rgb_images, tmp_path):
    rc, out, err = fometa_cli(capsys, "train", "--data", rgb_images, "--out", tmp_path / "r", *SMALL)
    assert rc == 0, err
    saved = C.from_dict(json.loads((tmp_path / "r" / "config.json").read_text()))
    assert (saved.preset, saved.model.arch, saved.data.kind) == \
        ("miniimagenet-5way-1shot", "miniimagenet_cnn", "folder")
    assert build.build_learner(saved).model.input_shape == (20, 20, 3)
    rc, out, err = fometa_cli(capsys, "eval", tmp_path / "r", "--tasks", "3", "--quiet")
    assert rc == 0 and json.loads(out)["tasks"] == 3, err


def test_model_and_depth_flags_and_an_explicit_preset_decide(capsys, rgb_images, tmp_path):
    rc, _, err = fometa_cli(capsys, "train", "--preset", "omniglot-20way-5shot", "--data", rgb_images,
                            "--out", tmp_path / "r", *SMALL, "--model", "omniglot_cnn", "--depth", "2")
    assert rc == 0, err
    cfg = C.from_dict(json.loads((tmp_path / "r" / "config.json").read_text()))
    assert (cfg.preset, cfg.inner.lr, cfg.model.arch, cfg.model.depth) == \
        ("omniglot-20way-5shot", 5e-4, "omniglot_cnn", 2)
    model = build.build_learner(cfg).model
    assert [name for name, _ in model.layers if name.startswith("conv")] == ["conv0", "conv1"]


def test_a_paper_file_records_its_spec_and_old_runs_get_their_kinds(capsys, tiny_omniglot, tmp_path):
    rc, _, err = fometa_cli(capsys, "train", "--data", tiny_omniglot, "--out", tmp_path / "r", *FAST,
                            "--meta-iters", "1", "--quiet")  # no preset: Omniglot's 5-way 1-shot is the closest
    assert rc == 0, err
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["preset"] == "omniglot-5way-1shot" and saved["data"]["kind"] == "omniglot"
    assert saved["data"]["image_spec"] == ImageSpec.for_packed(tiny_omniglot).as_dict()
    del saved["data"]["image_spec"]  # a configuration written before runs recorded their preprocessing
    old = C.from_dict(saved)
    assert old.data.image_spec is None
    assert C.input_spec(old.data) == ImageSpec(28, 28, 1, resize="nearest", bilevel=True) \
        == ImageSpec.for_packed(tiny_omniglot)


def test_a_file_packed_otherwise_than_the_run_is_refused(capsys, tiny_run, tiny_classes, tmp_path):
    other = pack_arrays({s: {c: a[:, :10, :10] for c, a in cl.items()} for s, cl in tiny_classes.items()},
                        tmp_path / "other.h5")
    rc, _, err = fometa_cli(capsys, "eval", tiny_run, "--data", other, "--tasks", "2")
    assert rc == 2 and "other.h5: its images are made as" in err and "'height': 10" in err


def test_errors(capsys, tmp_path, rgb_images):
    rc, _, err = fometa_cli(capsys, "train", "--data", tmp_path / "none.h5", "--out", tmp_path / "r")
    assert rc == 2 and "none.h5: no such file" in err
    rc, _, err = fometa_cli(capsys, "train", "--data", rgb_images, "--out", tmp_path / "r", "--model", "sine_mlp")
    assert rc == 2 and "model.arch 'sine_mlp' does not fit data.kind 'folder'" in err
    rc, _, err = fometa_cli(capsys, "train", "--data", rgb_images, "--out", tmp_path / "r", *SMALL, "--ways", "4")
    assert rc == 2 and "a 4-way task needs 4 classes, but the test split has 3" in err


def test_without_out_a_folder_run_is_named_after_its_file(capsys, rgb_images, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = fometa_cli(capsys, "train", "--data", rgb_images, *SMALL)
    assert rc == 0, err
    assert json.loads(out.splitlines()[-1])["run"] == str(tmp_path.joinpath("runs", "rgb").relative_to(tmp_path))


def test_the_start_line_names_the_data_a_custom_run_trains_on(capsys, rgb_images, tiny_omniglot, tmp_path):
    rc, _, err = fometa_cli(capsys, "train", "--data", rgb_images, "--out", tmp_path / "r",
                            *[a for a in SMALL if a != "--quiet"])
    assert rc == 0, err
    assert err.splitlines()[0] == (f"fometa train: starting {rgb_images} (2-way, the settings of "
                                   f"miniimagenet-5way-1shot; reptile, 2 meta-iterations) in {tmp_path / 'r'}")
    rc, _, err = fometa_cli(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, "--out",
                            tmp_path / "o", *FAST, "--meta-iters", "1")
    assert rc == 0, err
    assert err.splitlines()[0] == (f"fometa train: starting omniglot-5way-1shot on {tiny_omniglot} (reptile, "
                                   f"1 meta-iterations) in {tmp_path / 'o'}")
