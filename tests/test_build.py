"""One way to build: build.py makes every network, optimizer and learner; its objects are the ones settings ask for."""
import ast
from pathlib import Path

import numpy as np
import pytest

from fometa import build, meta, models, optim
from fometa import config as C

PACKAGE = Path(build.__file__).parent

#: what only build.py makes from settings: the networks, the optimizers, the meta-learner
CONSTRUCTORS = {"omniglot_cnn", "miniimagenet_cnn", "sine_mlp", "conv_net", "SGD", "Adam", "Interpolate", "OuterAdam",
                "MetaLearner"}
#: the modules that define them (and compose them from their own fields, as OuterAdam runs optim.Adam)
DEFINING = {"models/__init__.py", "optim.py", "meta.py"}


def _constructions(path: Path) -> list[str]:
    """``line: name`` of every call of a constructor in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name in CONSTRUCTORS:
                found.append(f"{node.lineno}: {name}")
    return found


def test_only_build_constructs_learners_networks_and_optimizers():
    modules = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    outside = {str(p.relative_to(PACKAGE)): _constructions(p) for p in modules
               if p.relative_to(PACKAGE).as_posix() not in DEFINING | {"build.py"}}
    assert {k: v for k, v in outside.items() if v} == {}, "construct these through fometa.build"
    assert len(_constructions(PACKAGE / "build.py")) >= 6, "build.py should be where they are made"


@pytest.mark.parametrize("name", sorted(C.PRESETS))
def test_a_preset_builds_the_objects_its_settings_name(name):
    cfg = C.preset(name)
    learner = build.build_learner(cfg)
    assert (learner.inner, learner.outer) == (cfg.inner, cfg.outer), "the learner takes the config's own sections"
    assert learner.model.output_shape[-1] == cfg.model.ways or cfg.data.kind == "sine"
    assert isinstance(learner.inner_opt, optim.SGD if cfg.inner.optimizer == "sgd" else optim.Adam)
    assert learner.inner_opt.step_size(learner.inner_opt.init(learner.model.init(np.random.default_rng(0)))) == \
        pytest.approx(cfg.inner.lr)
    assert isinstance(learner.outer_opt, meta.Interpolate)
    assert learner.outer_opt.step_size(0) == cfg.outer.meta_step
    assert learner.outer_opt.step_size(cfg.meta_iters) == pytest.approx(cfg.outer.meta_step_final)
    assert learner.algorithm.name == cfg.outer.algorithm


def test_weights_build_a_combination_and_adam_reports_no_meta_step():
    cfg = C.apply_overrides(C.preset("omniglot-5way-1shot"), {"outer.optimizer": "adam", "outer.adam_lr": 0.01})
    learner = build.build_learner(cfg, weights=(0.5, 0.5))
    assert isinstance(learner.algorithm, meta.Combination) and learner.algorithm.weights == (0.5, 0.5)
    assert isinstance(learner.outer_opt, meta.OuterAdam) and learner.outer_opt.lr == 0.01
    assert learner.outer_opt.step_size(3) is None


def test_the_paper_networks_are_the_models_own():
    net = build.build_model(C.ModelConfig(arch="omniglot_cnn", ways=5))
    assert net.name == models.omniglot_cnn(5).name and net.input_shape == (28, 28)
    small = build.build_model(C.ModelConfig(arch="miniimagenet_cnn", ways=3, filters=4, depth=2), (16, 16, 3))
    assert small.output_shape[-1] == 3 and small.input_shape == (16, 16, 3) and "filters=4" in small.name
