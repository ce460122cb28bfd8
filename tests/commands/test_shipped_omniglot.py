"""The shipped ``omniglot-5way`` model is the committed ``o5w1s-100k`` run: its first 100 evaluation tasks give,
task for task, the per-task accuracies committed beside the run (``eval-1shot-first100.json``, kept by
``fometa eval omniglot-5way --tasks 100 --mode transductive,per-query --partial ...``).

Needs the real Omniglot zips (``FOMETA_DATA_DIR``) and the shipped checkpoint; skips, saying which is missing.
"""
import json
from pathlib import Path

import pytest
from cli_helpers import DATA_DIR, assert_first_tasks_as_kept

from fometa import pretrained

KEPT = Path(__file__).resolve().parents[2] / "docs" / "results" / "o5w1s-100k" / "eval-1shot-first100.json"
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
    assert json.loads(KEPT.read_text())["done"] == 100
    assert_first_tasks_as_kept(capsys, "omniglot-5way", omniglot_h5, KEPT, 100, tmp_path)
