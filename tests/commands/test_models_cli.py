"""Shipped models: ``fometa models``, loading by name (SHA-256 checked) in eval, predict and the classifier,
and ``tools/ship_model.py`` adding a finished run (the tiny run of tests/conftest.py, in a registry of the test's)."""
import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import REPO, fometa_cli, kept_evaluation
from load_by_path import load_module

from fometa import checkpoint, pretrained
from fometa.cli import main
from fometa.fewshot import FewShotClassifier


def _tool():
    return load_module("tools/ship_model.py", "ship_model")


@pytest.fixture(scope="module")
def results(tiny_run, tiny_images, tmp_path_factory):
    """The tiny run's results folder: its config, log and a 1-shot evaluation by ``fometa eval``."""
    folder = tmp_path_factory.mktemp("results") / "tiny-results"
    folder.mkdir()
    for name in ("config.json", "log.jsonl"):
        if (tiny_run / name).exists():
            shutil.copy(tiny_run / name, folder / name)
    out = folder / "eval-1shot.jsonl"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["eval", str(tiny_run), "--tasks", "6", "--mode", "transductive,per-query", "--quiet"]) == 0
    out.write_text(buf.getvalue())
    return folder


@pytest.fixture
def registry(tmp_path, monkeypatch, tiny_run, results):
    """A registry folder (searched first, as $FOMETA_MODELS says) holding the tiny run as ``tiny-3way``."""
    folder = tmp_path / "registry"
    _tool().ship(tiny_run, "tiny-3way", results, folder, description="the tests' tiny model")
    monkeypatch.setenv(pretrained.ENV, str(folder))
    return folder


def test_ship_writes_the_file_and_its_entry(registry, tiny_run, results):
    index = json.loads((registry / "index.json").read_text())
    e = index["models"]["tiny-3way"]
    assert e["file"] == "tiny-3way.h5" and \
        (registry / "tiny-3way.h5").read_bytes() == (tiny_run / "checkpoint.h5").read_bytes()
    assert e["sha256"] == pretrained.file_sha256(registry / "tiny-3way.h5") and \
        e["bytes"] == (registry / "tiny-3way.h5").stat().st_size
    assert (e["meta_iterations"], e["ways"], e["data"], e["preset"]) == (30, 3, "folder", "omniglot-5way-1shot")
    evals = [json.loads(line) for line in (results / "eval-1shot.jsonl").read_text().splitlines()]
    assert [(a["mode"], a["accuracy"], a["tasks"]) for a in e["accuracies"]] == [
        (r["mode"], r["accuracy"], r["tasks"]) for r in evals]
    assert e["image_spec"]["height"] == 12 and e["results"] == results.as_posix()
    assert not (results / "log.jsonl").exists()  # a run that logged nothing: the time its checkpoint kept
    assert e["seconds"] == round(checkpoint.load(tiny_run / "checkpoint.h5").extra["seconds"], 1)
    (results / "log.jsonl").write_text('{"iteration": 30, "seconds": 1234.56}\n')  # one that did: the log's
    try:
        assert _tool().ship(tiny_run, "again", results, registry)["seconds"] == 1234.6
    finally:
        (results / "log.jsonl").unlink()


def test_models_lists_budget_accuracies_size_and_sha256(capsys, registry):
    rc, out, err = fometa_cli(capsys, "models")
    assert rc == 0, err
    block = out.split("\n\n")[0]
    sha = pretrained.get("tiny-3way").sha256
    assert block.startswith("tiny-3way\n") and "the tests' tiny model" in block
    assert "trained: 30 meta-iterations from preset omniglot-5way-1shot" in block
    assert "% transductive" in block and "% per-query (6 test tasks)" in block and sha in block and "MiB" in block
    rc, out, err = fometa_cli(capsys, "models", "--json")
    records = {r["name"]: r for r in map(json.loads, out.splitlines())}
    assert records["tiny-3way"]["status"] == "available" and records["tiny-3way"]["sha256"] == sha
    assert {"omniglot-5way", "omniglot-20way", "miniimagenet-5way"} <= set(records)  # the package's, after ours


@pytest.mark.parametrize("name", ["omniglot-5way", "omniglot-20way", "miniimagenet-5way"])
def test_the_package_models_are_listed_and_load_only_when_shipped(capsys, name, tmp_path):
    model = pretrained.get(name)
    assert model.entry["accuracies"] and model.entry["meta_iterations"] and model.entry["results"].startswith("docs/")
    rc, out, _ = fometa_cli(capsys, "models", "--json")
    record = {r["name"]: r for r in map(json.loads, out.splitlines())}[name]
    if not model.shipped:
        assert record["status"] == "not shipped yet"
        with pytest.raises(pretrained.RegistryError, match="has no checkpoint yet"):
            FewShotClassifier.from_pretrained(name)
        rc, _, err = fometa_cli(capsys, "predict", name, "--support", tmp_path, "--query", tmp_path)
        assert rc == 2 and "has no checkpoint yet" in err
    else:  # a shipped file must be installed and intact
        assert record["status"] == "available" and pretrained.file_sha256(model.path) == model.sha256
    # one training time per run: the run's own record (its log), which the README's Results table quotes too
    log = REPO / model.entry["results"] / "log.jsonl"
    if log.is_file():
        seconds = json.loads(log.read_text().splitlines()[-1])["seconds"]
        assert model.entry["seconds"] == round(seconds, 1), \
            f"{name}: {model.entry['seconds']} s, its run's log {seconds}"
        rc, out, _ = fometa_cli(capsys, "models")
        assert f"{seconds:,.0f} s of training" in out.split(f"\n{name}")[-1].split("\n\n")[0]


@pytest.mark.parametrize("name", ["omniglot-5way", "omniglot-20way", "miniimagenet-5way"])
def test_a_shipped_model_has_its_per_task_evaluation_committed(name):
    """What tests/commands/test_shipped_*.py replay on the real data: a 1-shot evaluation kept task by task
    (``--partial``) from this very checkpoint, in both modes, in the model's results folder."""
    model = pretrained.get(name)
    if not model.available:
        pytest.skip(f"{name} is not shipped here ({model.status()})")
    kept = kept_evaluation(name)
    assert kept is not None, f"{name}: no per-task 1-shot evaluation in {model.entry['results']}"
    record = json.loads(kept.read_text())
    shipped = pretrained.load(name)
    assert record["settings"]["params_sha256"] == checkpoint.tree_digest(shipped.params), \
        f"{kept} was kept from another checkpoint than the shipped {name}"
    assert record["settings"]["iteration"] == shipped.iteration == model.entry["meta_iterations"]
    assert record["settings"]["eval"]["shots"] == 1 and record["settings"]["ways"] == model.entry["ways"]
    assert set(record["accuracies"]) == {"transductive", "per-query"}
    assert all(len(a) == record["done"] >= 20 for a in record["accuracies"].values())


def test_eval_predict_and_the_classifier_take_the_name(capsys, registry, tiny_run, tiny_images, tiny_classes):
    by_run = fometa_cli(capsys, "eval", tiny_run, "--tasks", "5", "--quiet")
    by_name = fometa_cli(capsys, "eval", "tiny-3way", "--tasks", "5", "--quiet", "--data", tiny_images)
    assert by_name[0] == 0, by_name[2]
    assert json.loads(by_name[1])["accuracy"] == json.loads(by_run[1])["accuracy"]
    assert json.loads(by_name[1])["checkpoint"] == "tiny-3way"  # named, not this installation's file path
    assert json.loads(by_run[1])["checkpoint"] == str(Path(tiny_run) / "checkpoint.h5")
    x = np.concatenate([tiny_classes["test"][c][:2] for c in ("s00", "s01", "s02")])
    y = np.repeat(["a", "b", "c"], 2)
    a = FewShotClassifier.from_pretrained("tiny-3way").fit(x, y).predict_proba(x)
    b = FewShotClassifier.from_run(tiny_run).fit(x, y).predict_proba(x)
    np.testing.assert_array_equal(a, b)


def test_a_damaged_or_missing_file_is_refused(capsys, registry, tmp_path):
    path = registry / "tiny-3way.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(pretrained.RegistryError, match="fails its SHA-256 check"):
        FewShotClassifier.from_pretrained("tiny-3way")
    for cmd in (["eval", "tiny-3way"], ["predict", "tiny-3way", "--support", tmp_path, "--query", tmp_path]):
        rc, _, err = fometa_cli(capsys, *cmd)
        assert rc == 2 and "tiny-3way.h5: fails its SHA-256 check" in err, err
    path.unlink()
    with pytest.raises(pretrained.RegistryError, match="checkpoint file .* is missing"):
        pretrained.load("tiny-3way")
    rc, out, _ = fometa_cli(capsys, "models", "--json")
    assert json.loads(out.splitlines()[0])["status"] == "file missing"


def test_unknown_names_and_broken_indexes(capsys, registry):
    with pytest.raises(pretrained.RegistryError, match="no shipped model named 'nope'.*tiny-3way"):
        pretrained.get("nope")
    (registry / "index.json").write_text("{not json")
    rc, _, err = fometa_cli(capsys, "models")
    assert rc == 2 and "index.json: not a readable model index" in err


def test_ship_refusals(tiny_run, results, tmp_path):
    tool = _tool()
    reg = tmp_path / "reg"
    tool.ship(tiny_run, "m", results, reg)
    with pytest.raises(tool.ShipError, match="already shipped"):
        tool.ship(tiny_run, "m", results, reg)
    assert tool.ship(tiny_run, "m", results, reg, force=True)["sha256"]

    ckpt = checkpoint.load(tiny_run / "checkpoint.h5")
    ckpt.iteration = 10
    early = checkpoint.save(tmp_path / "early.h5", ckpt)
    with pytest.raises(tool.ShipError, match="at meta-iteration 10 of 30: the run is not finished"):
        tool.ship(early, "e", results, reg)

    other = tmp_path / "other"
    shutil.copytree(results, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["inner"]["lr"] = 0.5
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(tool.ShipError, match="inner.lr: 0.5 there, 0.001 in the checkpoint"):
        tool.ship(tiny_run, "o", other, reg)

    stale = tmp_path / "stale"
    shutil.copytree(results, stale)
    rec = json.loads((stale / "eval-1shot.jsonl").read_text().splitlines()[0])
    (stale / "eval-1shot.jsonl").write_text(json.dumps({**rec, "iteration": 20}) + "\n")
    with pytest.raises(tool.ShipError, match="evaluates iteration 20"):
        tool.ship(tiny_run, "s", stale, reg)
    assert tool.main([str(tiny_run), "../x", "--registry", str(reg)]) == 1


def test_a_pending_entry_is_listed_until_its_run_is_shipped(capsys, tiny_run, results, tmp_path, monkeypatch):
    tool = _tool()
    reg = tmp_path / "reg"
    assert tool.main([str(results), "later", "--pending", "--registry", str(reg)]) == 0
    monkeypatch.setenv(pretrained.ENV, str(reg))
    assert pretrained.get("later").status() == "not shipped yet" and not (reg / "later.h5").exists()
    with pytest.raises(pretrained.RegistryError, match="has no checkpoint yet"):
        pretrained.load("later")
    assert tool.main([str(tiny_run), "later", "--results", str(results), "--registry", str(reg)]) == 0
    assert pretrained.get("later").available and pretrained.load("later").iteration == 30
