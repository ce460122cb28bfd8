"""The shipped ``omniglot-5way`` model is the committed ``o5w1s-100k`` run: its first 100 evaluation tasks give,
task for task, the per-task accuracies committed beside the run (``eval-1shot-first100.json``, kept by
``fometa eval omniglot-5way --tasks 100 --mode transductive,per-query --partial ...``).

Needs the real Omniglot zips (``FOMETA_DATA_DIR``) and the shipped checkpoint; skips, saying which is missing.
"""
import json
import os
from pathlib import Path

import pytest
from cli_helpers import fometa_cli

from fometa import pretrained

REPO = Path(__file__).resolve().parents[2]
KEPT = REPO / "docs" / "results" / "o5w1s-100k" / "eval-1shot-first100.json"
DATA_DIR = Path(os.environ.get("FOMETA_DATA_DIR") or "FOMETA_DATA_DIR-is-not-set")
ZIPS = [DATA_DIR / "omniglot" / "images_background.zip", DATA_DIR / "omniglot" / "images_evaluation.zip"]


@pytest.fixture(scope="module")
def omniglot_h5(tmp_path_factory):
    if not all(z.is_file() for z in ZIPS):
        pytest.skip(f"real Omniglot zips not found in {DATA_DIR / 'omniglot'}: set FOMETA_DATA_DIR to the folder "
                    "holding omniglot/images_background.zip and omniglot/images_evaluation.zip")
    model = pretrained.get("omniglot-5way")
    if not model.available:
        pytest.skip(f"the shipped omniglot-5way model is not there yet ({model.status()})")
    if not KEPT.is_file():
        pytest.skip(f"{KEPT.name} is not committed yet")
    from fometa.data.pack_omniglot import pack_omniglot

    return pack_omniglot(ZIPS, tmp_path_factory.mktemp("omniglot") / "omniglot.h5", progress=False)


def test_first_100_tasks_equal_the_committed_per_task_results(omniglot_h5, capsys, tmp_path):
    kept = json.loads(KEPT.read_text())
    partial = tmp_path / "first100.json"
    rc, out, err = fometa_cli(capsys, "eval", "omniglot-5way", "--data", omniglot_h5, "--tasks", "100",
                              "--mode", "transductive,per-query", "--partial", partial, "--quiet")
    assert rc == 0, err
    again = json.loads(partial.read_text())
    assert again["settings"]["params_sha256"] == kept["settings"]["params_sha256"], "another checkpoint"
    assert again["done"] == kept["done"] == 100
    for mode in ("transductive", "per-query"):
        assert again["accuracies"][mode] == kept["accuracies"][mode], f"{mode}: per-task accuracies differ"
    lines = {json.loads(line)["mode"]: json.loads(line) for line in out.strip().splitlines()}
    for mode in ("transductive", "per-query"):
        assert lines[mode]["accuracy"] == pytest.approx(sum(kept["accuracies"][mode]) / 100, abs=1e-12)
