"""The shipped ``miniimagenet-5way`` model is its committed run: the same parameters (the SHA-256 recorded in
the run's 1-shot evaluation) and, task for task, the same accuracies on the first evaluation tasks of the
``eval-1shot.partial.json`` kept in the model's results folder (the registry's ``results``).

Needs the real Mini-ImageNet archive (``FOMETA_DATA_DIR``) and the shipped checkpoint; skips, saying which is
missing. Packs the test split only: evaluation reads nothing else.
"""
import pytest
from cli_helpers import DATA_DIR, assert_first_tasks_as_kept, kept_evaluation

from fometa import pretrained

ARCHIVE = DATA_DIR / "miniimagenet" / "miniimagenet.tar.gz"
TASKS = 20


@pytest.fixture(scope="module")
def mini_test_split(tmp_path_factory):
    if not ARCHIVE.is_file():
        pytest.skip(f"real Mini-ImageNet archive not found at {ARCHIVE}: set FOMETA_DATA_DIR to the folder "
                    "holding miniimagenet/miniimagenet.tar.gz")
    model = pretrained.get("miniimagenet-5way")
    if not model.available:
        pytest.skip(f"the shipped miniimagenet-5way model is not there yet ({model.status()})")
    from fometa.data.pack_miniimagenet import MiniImageNetPackConfig, pack_miniimagenet

    out = tmp_path_factory.mktemp("miniimagenet") / "test.h5"
    return pack_miniimagenet(ARCHIVE, out, MiniImageNetPackConfig(splits=("test",)), progress=False)


def test_first_tasks_equal_the_committed_per_task_results(mini_test_split, capsys, tmp_path):
    model = pretrained.get("miniimagenet-5way")
    kept_file = kept_evaluation("miniimagenet-5way")
    if kept_file is None:
        pytest.skip(f"no per-task evaluation committed in {model.entry['results']} yet")
    kept = assert_first_tasks_as_kept(capsys, "miniimagenet-5way", mini_test_split, kept_file, TASKS, tmp_path)
    assert kept["settings"]["iteration"] == model.entry["meta_iterations"]
