"""``model.init`` in the configuration: presets, round trips, old config files, ``--init`` and ``--set``."""
import json

import pytest
from cli_helpers import FAST, fometa_cli

from fometa import config as C
from fometa.build import build_model
from fometa.layers import Conv2D, Dense
from fometa.runfolder import RunFolder


def _schemes(model):
    return {layer.init_scheme for _, layer in model.layers if isinstance(layer, (Conv2D, Dense))}


def test_presets_init():
    assert {name: p.model.init for name, p in C.PRESETS.items()} == {
        **{name: "glorot" for name in C.PRESETS if name != "sine"}, "sine": "torch"}


@pytest.mark.parametrize("init", ["glorot", "torch"])
@pytest.mark.parametrize("name", ["omniglot-5way-1shot", "miniimagenet-5way-1shot", "sine"])
def test_round_trip_and_build(name, init):
    cfg = C.apply_overrides(C.preset(name), {"model.init": init})
    assert C.from_dict(json.loads(json.dumps(C.to_dict(cfg)))) == cfg
    assert _schemes(build_model(cfg.model)) == {init}


def test_invalid_init_is_refused_by_name():
    with pytest.raises(C.ConfigError, match="model.init must be one of glorot, torch, got 'he'"):
        C.apply_overrides(C.preset("omniglot-5way-1shot"), {"model.init": "he"})


@pytest.mark.parametrize("name, init", [("omniglot-5way-1shot", "glorot"), ("sine", "torch"), (None, "glorot")])
def test_a_config_json_without_init_loads_with_its_presets(tmp_path, name, init):
    """config.json files written before ``model.init`` existed (so ``--resume`` of old runs works)."""
    d = C.to_dict(C.preset(name) if name else C.RunConfig())
    del d["model"]["init"]
    (tmp_path / "config.json").write_text(json.dumps(d))
    cfg = RunFolder(tmp_path).read_config()
    assert cfg.model.init == init


@pytest.mark.parametrize("flag", [["--init", "torch"], ["--set", "model.init=torch"]])
def test_init_flag_reaches_config_json(capsys, tiny_omniglot, tmp_path, flag):
    run = tmp_path / "run"
    rc, _, err = fometa_cli(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, "--out", run,
                            *FAST, "--meta-iters", "1", "--quiet", *flag)
    assert rc == 0, err
    assert json.loads((run / "config.json").read_text())["model"]["init"] == "torch"


def test_bad_init_flag(capsys, tiny_omniglot, tmp_path):
    rc, _, err = fometa_cli(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot,
                            "--out", tmp_path / "run", *FAST, "--init", "he", "--quiet")
    assert rc == 2 and err.startswith("fometa: error: ") and "model.init must be one of glorot, torch" in err, err
    assert not (tmp_path / "run").exists()
