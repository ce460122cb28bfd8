"""The shipped Omniglot models are their committed runs: the first evaluation tasks of each give, task for task,
the per-task accuracies committed in the model's results folder (the registry's ``results``:
``eval-1shot.partial.json`` of its 10,000-task evaluation, or ``eval-1shot-first100.json``, kept by
``fometa eval NAME --tasks 100 --mode transductive,per-query --partial ...``).

Needs the real Omniglot zips (``FOMETA_DATA_DIR``) and the shipped checkpoints; skips, saying which is missing.
"""
import pytest
from cli_helpers import DATA_DIR, assert_first_tasks_as_kept, kept_evaluation

from fometa import pretrained

ZIPS = [DATA_DIR / "omniglot" / "images_background.zip", DATA_DIR / "omniglot" / "images_evaluation.zip"]
#: how many of the first tasks each model replays (a 20-way task adapts on 4 times the images)
TASKS = {"omniglot-5way": 100, "omniglot-20way": 50}


@pytest.fixture(scope="module")
def omniglot_h5(tmp_path_factory):
    if not all(z.is_file() for z in ZIPS):
        pytest.skip(f"real Omniglot zips not found in {DATA_DIR / 'omniglot'}: set FOMETA_DATA_DIR to the folder "
                    "holding omniglot/images_background.zip and omniglot/images_evaluation.zip")
    from fometa.data.pack_omniglot import pack_omniglot

    return pack_omniglot(ZIPS, tmp_path_factory.mktemp("omniglot") / "omniglot.h5", progress=False)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_first_tasks_equal_the_committed_per_task_results(name, omniglot_h5, capsys, tmp_path):
    model = pretrained.get(name)
    if not model.available:
        pytest.skip(f"the shipped {name} model is not there yet ({model.status()})")
    kept_file = kept_evaluation(name)
    if kept_file is None:
        pytest.skip(f"{name}: no per-task evaluation committed in {model.entry['results']} yet")
    kept = assert_first_tasks_as_kept(capsys, name, omniglot_h5, kept_file, TASKS[name], tmp_path)
    assert kept["settings"]["iteration"] == model.entry["meta_iterations"]
