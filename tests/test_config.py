"""Run configuration: the paper's presets, overrides from flags and files, dict round trips, diffs."""
import dataclasses
import json

import pytest

from fometa import config as C
from fometa.commands.options import FLAGS

# (ways, eval shots, inner batch, inner iters, train shots, Adam lr, meta-iters, eval inner batch):
# Appendix A of the paper / the reference's README commands
PAPER = {
    "omniglot-5way-1shot": (5, 1, 10, 5, 10, 1e-3, 100_000, 5),
    "omniglot-5way-5shot": (5, 5, 10, 5, 10, 1e-3, 100_000, 5),
    "omniglot-20way-1shot": (20, 1, 20, 10, 10, 5e-4, 200_000, 10),
    "omniglot-20way-5shot": (20, 5, 20, 10, 10, 5e-4, 200_000, 10),
    "miniimagenet-5way-1shot": (5, 1, 10, 8, 15, 1e-3, 100_000, 5),
    "miniimagenet-5way-5shot": (5, 5, 10, 8, 15, 1e-3, 100_000, 15),
}


def test_the_issue_names_every_preset():
    assert set(C.PRESETS) == set(PAPER) | {"sine"}
    for name, cfg in C.PRESETS.items():
        assert cfg.preset == name


@pytest.mark.parametrize("name", sorted(PAPER))
def test_presets_hold_the_papers_hyperparameters(name):
    cfg = C.preset(name)
    ways, shots, batch, iters, train_shots, lr, meta_iters, eval_batch = PAPER[name]
    got = (cfg.model.ways, cfg.eval.shots, cfg.inner.batch, cfg.inner.iters, cfg.inner.shots, cfg.inner.lr,
           cfg.meta_iters, cfg.eval.inner_batch)
    assert got == PAPER[name], f"{name}: {got} != paper {PAPER[name]}"
    assert (cfg.inner.optimizer, cfg.inner.beta1, cfg.inner.state_policy) == ("adam", 0.0, "carry")
    assert (cfg.outer.meta_step, cfg.outer.meta_step_final, cfg.outer.meta_batch) == (1.0, 0.0, 5)
    assert (cfg.eval.inner_iters, cfg.eval.queries_per_class, cfg.eval.tasks) == (50, 1, 10_000)
    assert cfg.eval.mode == "transductive" and cfg.outer.algorithm == "reptile"


def test_sine_preset_matches_fometa_sine():
    """The paper's sine toy: inner SGD lr 0.02 on batches of 10 (one epoch over the 50-point grid), outer step
    0.1 annealed to 0 over 30,000 iterations, evaluation by 32 steps on 10 points."""
    from types import SimpleNamespace

    cfg = C.preset("sine")
    ref = SimpleNamespace(inner_lr=0.02, inner_batch=10, inner_epochs=1, meta_step=0.1, meta_step_final=0.0,
                          meta_iters=30_000, eval_points=10, eval_steps=32)
    assert (cfg.inner.optimizer, cfg.inner.lr, cfg.inner.batch) == ("sgd", ref.inner_lr, ref.inner_batch)
    assert cfg.inner.iters == ref.inner_epochs * 50 // ref.inner_batch
    assert (cfg.outer.meta_step, cfg.outer.meta_step_final, cfg.outer.meta_batch) == \
        (ref.meta_step, ref.meta_step_final, 1)
    assert (cfg.meta_iters, cfg.eval.shots, cfg.eval.inner_iters) == (ref.meta_iters, ref.eval_points, ref.eval_steps)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(C.ConfigError, match="unknown preset 'omniglot-5way-2shot'.*omniglot-5way-1shot"):
        C.preset("omniglot-5way-2shot")


@pytest.mark.parametrize("name", sorted(C.PRESETS))
def test_dict_and_json_round_trip(name):
    cfg = C.preset(name)
    d = json.loads(json.dumps(C.to_dict(cfg)))
    assert C.from_dict(d) == cfg
    assert C.from_dict({"preset": name}) == cfg  # a partial dict fills in from its preset


def test_overrides_parse_strings_to_the_settings_types():
    cfg = C.apply_overrides(C.preset("omniglot-5way-1shot"), {
        "meta_iters": "3_000", "inner.lr": "5e-4", "outer.batched": "false", "model.filters": "8",
        "outer.algorithm": "fomaml", "outer.tail_shots": "none", "eval.inner_iters": 1e2,
    })
    assert (cfg.meta_iters, cfg.inner.lr, cfg.outer.batched, cfg.model.filters) == (3000, 5e-4, False, 8)
    assert (cfg.outer.algorithm, cfg.outer.tail_shots, cfg.eval.inner_iters) == ("fomaml", None, 100)


@pytest.mark.parametrize("overrides, message", [
    ({"inner.lrr": 1}, "unknown setting 'inner.lrr'"),
    ({"meta_iters": "many"}, "'meta_iters' needs an int"),
    ({"meta_iters": 2.5}, "'meta_iters' needs an int"),
    ({"inner.lr": "none"}, "'inner.lr' cannot be none"),
    ({"outer.batched": "maybe"}, "'outer.batched' needs a bool"),
    ({"meta_iters": 0}, "meta_iters must be at least 1"),
    ({"outer.algorithm": "maml2"}, "outer.algorithm must be one of"),
    ({"eval.mode": "inductive"}, "eval.mode must be one of"),
    ({"eval.inner_batch": 6}, r"eval.inner_batch \(6\) is larger than the support set \(5 ways x 1 shots"),
    ({"inner.batch": 60}, r"inner.batch \(60\) is larger than a training task \(5 ways x 10 train shots"),
    ({"outer.tail_shots": 2}, "tail_shots applies to fomaml and maml, not reptile"),
    ({"data.kind": "miniimagenet"}, "model.arch 'omniglot_cnn' does not fit data.kind 'miniimagenet'"),
    ({"eval.split": "val"}, "only Mini-ImageNet has a 'val' split"),
])
def test_invalid_or_contradictory_settings_are_refused_by_name(overrides, message):
    with pytest.raises(C.ConfigError, match=message):
        C.apply_overrides(C.preset("omniglot-5way-1shot"), overrides)


def test_every_setting_has_a_flag():
    fixed = {"preset", "data.kind", "data.image_spec"}  # chosen by the preset, read from the data file
    settings = set(C.settings())
    assert set(FLAGS.values()) <= settings, set(FLAGS.values()) - settings
    assert settings - fixed == set(FLAGS.values()), settings - fixed - set(FLAGS.values())
    assert len(set(FLAGS.values())) == len(FLAGS), "two flags for one setting"


def test_diff_names_each_differing_setting():
    a = C.preset("omniglot-5way-1shot")
    b = C.apply_overrides(a, {"inner.lr": 2e-3, "meta_iters": 10, "eval_interval": 7})
    assert C.diff(a, b) == [("inner.lr", 1e-3, 2e-3), ("meta_iters", 100_000, 10), ("eval_interval", 1000, 7)]
    assert C.diff(a, b, ignore=C.RESUME_FREE) == [("inner.lr", 1e-3, 2e-3), ("meta_iters", 100_000, 10)]
    assert C.diff(a, a) == []


def test_toml_file_with_sections(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('preset = "omniglot-20way-1shot"\nmeta_iters = 5000\n[inner]\nlr = 0.002\n[outer]\nbatched = false\n')
    flat = C.load_file(f)
    assert flat == {"preset": "omniglot-20way-1shot", "meta_iters": 5000, "inner.lr": 0.002, "outer.batched": False}
    cfg = C.apply_overrides(C.preset(flat.pop("preset")), flat)
    assert (cfg.model.ways, cfg.meta_iters, cfg.inner.lr, cfg.outer.batched) == (20, 5000, 0.002, False)


def test_json_file_is_read_too(tmp_path):
    f = tmp_path / "run.json"
    f.write_text(json.dumps(C.to_dict(C.preset("sine"))))
    assert C.from_dict(json.loads(f.read_text())) == C.preset("sine")
    assert C.load_file(f)["inner.lr"] == 0.02


@pytest.mark.parametrize("text, message", [
    ("meta_iters = \n", "not a valid TOML file"),
    ("[inner]\nlearning_rate = 0.1\n", "unknown setting 'inner.learning_rate'"),
])
def test_bad_config_files(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(C.ConfigError, match=message):
        C.load_file(f)


def test_missing_config_file(tmp_path):
    with pytest.raises(C.ConfigError, match="cannot read the config file"):
        C.load_file(tmp_path / "absent.toml")


def test_configs_are_frozen():
    cfg = C.preset("omniglot-5way-1shot")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.inner.lr = 1.0


@pytest.mark.parametrize("one, five", [("omniglot-5way-1shot", "omniglot-5way-5shot"),
                                       ("omniglot-20way-1shot", "omniglot-20way-5shot")])
def test_one_and_five_shot_presets_train_alike(one, five):
    """As in the reference, both train on 10-shot tasks and differ only in evaluation (so one run serves both)."""
    assert C.diff(C.preset(one), C.preset(five)) == [("preset", one, five), ("eval.shots", 1, 5)]


def test_every_setting_is_described_once():
    """The settings' descriptions (the command line's help and the documentation's table) cover every setting."""
    assert set(C.DESCRIPTIONS) == set(C.settings()), set(C.DESCRIPTIONS) ^ set(C.settings())
    assert all(len(text) > 15 for text in C.DESCRIPTIONS.values())


# ---------------------------------------------------------------------------------------------
# any packed images
@pytest.mark.parametrize("shape, ways, shots, name", [
    ((28, 28, 1), None, None, "omniglot-5way-1shot"),
    ((28, 28, 1), 20, 5, "omniglot-20way-5shot"),
    ((12, 40, 1), 11, 1, "omniglot-20way-1shot"),
    ((48, 48, 1), 5, 2, "omniglot-5way-1shot"),
    ((49, 49, 1), 20, 3, "miniimagenet-5way-5shot"),
    ((28, 28, 3), 20, 1, "miniimagenet-5way-1shot"),
    ((84, 84, 3), 5, 5, "miniimagenet-5way-5shot"),
])
def test_closest_preset(shape, ways, shots, name):
    from fometa.data import ImageSpec

    assert C.closest_preset(ImageSpec(*shape), ways, shots) == name


def test_for_images_fits_a_configuration_to_a_folder_file():
    from fometa.data import ImageSpec

    spec = ImageSpec(32, 32, 3)
    cfg = C.for_images(C.preset("omniglot-5way-1shot"), "folder", spec)
    assert (cfg.data.kind, cfg.data.image_spec, cfg.model.arch) == ("folder", spec, "miniimagenet_cnn")
    assert C.for_images(C.preset("omniglot-5way-1shot"), "miniimagenet", spec) == C.preset("omniglot-5way-1shot")
    assert C.from_dict(json.loads(json.dumps(C.to_dict(cfg)))) == cfg  # the spec survives config.json
    assert C.input_spec(cfg.data) == spec and C.input_spec(C.preset("sine").data) is None
    assert C.input_spec(C.preset("miniimagenet-5way-1shot").data) == C.KIND_IMAGES["miniimagenet"]


def test_image_spec_settings_are_checked():
    with pytest.raises(C.ConfigError, match="data.kind 'folder' needs data.image_spec"):
        C.apply_overrides(C.preset("omniglot-5way-1shot"), {"data.kind": "folder"})
    with pytest.raises(C.ConfigError, match="'data.image_spec' needs an image spec"):
        C.apply_overrides(C.preset("omniglot-5way-1shot"), {"data.image_spec": {"height": 28}})
    cfg = C.apply_overrides(C.preset("omniglot-5way-1shot"),
                            {"data.image_spec": '{"height": 28, "width": 28, "bilevel": true, "resize": "box"}'})
    assert cfg.data.image_spec.resize == "box"
    with pytest.raises(C.ConfigError, match="model.depth applies to the conv networks"):
        C.apply_overrides(C.preset("sine"), {"model.depth": 2})
