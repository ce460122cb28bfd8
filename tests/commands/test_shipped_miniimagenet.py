"""The shipped ``miniimagenet-5way`` model is the committed ``mi5w-3k`` run: the same parameters (the SHA-256
recorded in that run's 1-shot evaluation) and, task for task, the same accuracies on the first evaluation
tasks of ``docs/results/mi5w-3k/eval-1shot.partial.json`` (the 2,500-task evaluation of the original run).

Needs the real Mini-ImageNet archive (``FOMETA_DATA_DIR``) and the shipped checkpoint; skips, saying which is
missing. Packs the test split only: evaluation reads nothing else.
"""
import json
import os
from pathlib import Path

import pytest
from cli_helpers import fometa_cli

from fometa import pretrained

REPO = Path(__file__).resolve().parents[2]
KEPT = REPO / "docs" / "results" / "mi5w-3k" / "eval-1shot.partial.json"
DATA_DIR = Path(os.environ.get("FOMETA_DATA_DIR") or "FOMETA_DATA_DIR-is-not-set")
ARCHIVE = DATA_DIR / "miniimagenet" / "miniimagenet.tar.gz"
TASKS = 20


@pytest.fixture(scope="module")
def test_split_h5(tmp_path_factory):
    if not ARCHIVE.is_file():
        pytest.skip(f"real Mini-ImageNet archive not found at {ARCHIVE}: set FOMETA_DATA_DIR to the folder "
                    "holding miniimagenet/miniimagenet.tar.gz")
    model = pretrained.get("miniimagenet-5way")
    if not model.available:
        pytest.skip(f"the shipped miniimagenet-5way model is not there yet ({model.status()})")
    from fometa.data.pack_miniimagenet import MiniImageNetPackConfig, pack_miniimagenet

    out = tmp_path_factory.mktemp("miniimagenet") / "test.h5"
    return pack_miniimagenet(ARCHIVE, out, MiniImageNetPackConfig(splits=("test",)), progress=False)


def test_first_tasks_equal_the_committed_per_task_results(test_split_h5, capsys, tmp_path):
    kept = json.loads(KEPT.read_text())
    partial = tmp_path / "first.json"
    rc, out, err = fometa_cli(capsys, "eval", "miniimagenet-5way", "--data", test_split_h5, "--tasks", str(TASKS),
                              "--mode", "transductive,per-query", "--partial", partial, "--quiet")
    assert rc == 0, err
    again = json.loads(partial.read_text())
    assert again["settings"]["params_sha256"] == kept["settings"]["params_sha256"], "another checkpoint"
    assert again["settings"]["iteration"] == kept["settings"]["iteration"] == 3000
    assert again["done"] == TASKS
    for mode in ("transductive", "per-query"):
        assert again["accuracies"][mode] == kept["accuracies"][mode][:TASKS], f"{mode}: per-task accuracies differ"
    lines = {json.loads(line)["mode"]: json.loads(line) for line in out.strip().splitlines()}
    for mode in ("transductive", "per-query"):
        assert lines[mode]["accuracy"] == pytest.approx(sum(kept["accuracies"][mode][:TASKS]) / TASKS, abs=1e-12)
