"""The run folder: the checkpoint rotation's rule (the fallback is only ever a checkpoint that was written and
read back whole) and finding a run's data file from any working folder."""
import numpy as np
import pytest

from fometa import checkpoint, models, optim
from fometa import config as C
from fometa.data import DataError
from fometa.runfolder import RunFolder, find_data


def _checkpoint(iteration: int) -> checkpoint.Checkpoint:
    rng = np.random.default_rng(iteration)
    params = models.conv_net("tiny", 3, (8, 8), filters=2).init(rng)
    return checkpoint.Checkpoint(params, optim.SGDState(), optim.SGDState(), checkpoint.rng_state(rng), iteration,
                                 {"preset": "custom"}, {})


def _iteration(path) -> int:
    return checkpoint.load(path).iteration


def test_saving_keeps_the_latest_as_the_previous_one(tmp_path):
    run = RunFolder(tmp_path)
    for it in (1, 2, 3):
        assert run.save_checkpoint(_checkpoint(it)) == ""
    assert (_iteration(run.checkpoint_path), _iteration(run.previous_checkpoint_path)) == (3, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.h5", "checkpoint.prev.h5"]


def test_a_damaged_latest_is_set_aside_and_never_becomes_the_fallback(tmp_path):
    run = RunFolder(tmp_path)
    run.save_checkpoint(_checkpoint(1))
    run.save_checkpoint(_checkpoint(2))
    data = bytearray(run.checkpoint_path.read_bytes())
    run.checkpoint_path.write_bytes(bytes(data[: len(data) // 3]))
    note = run.save_checkpoint(_checkpoint(3))
    assert "checkpoint.h5" in note and "moved it aside to" in note and "checkpoint.prev.h5 is kept" in note
    assert (_iteration(run.checkpoint_path), _iteration(run.previous_checkpoint_path)) == (3, 1)
    assert run.damaged_checkpoint_path.read_bytes() == bytes(data[: len(data) // 3])
    assert run.save_checkpoint(_checkpoint(4)) == ""  # sound again: the rotation goes on as usual
    assert (_iteration(run.checkpoint_path), _iteration(run.previous_checkpoint_path)) == (4, 3)


def test_one_damaged_checkpoint_is_kept(tmp_path):
    run = RunFolder(tmp_path)
    for it, junk in ((1, b"first"), (2, b"second")):
        run.save_checkpoint(_checkpoint(it))
        run.checkpoint_path.write_bytes(junk)
        run.save_checkpoint(_checkpoint(it + 10))
    assert run.damaged_checkpoint_path.read_bytes() == b"second"
    assert not list(tmp_path.glob("*.tmp*"))


def test_a_checkpoint_that_does_not_read_back_whole_moves_nothing(tmp_path, monkeypatch):
    run = RunFolder(tmp_path)
    run.save_checkpoint(_checkpoint(1))
    run.save_checkpoint(_checkpoint(2))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_load = checkpoint.load

    def load(path):
        if ".tmp" in str(path):  # the new file, read back: as if the disk had lost part of it
            raise checkpoint.CheckpointError(path, "corrupt checkpoint: its contents do not match their checksum")
        return real_load(path)

    monkeypatch.setattr(checkpoint, "load", load)
    with pytest.raises(checkpoint.CheckpointError, match="does not read back whole.*nothing moved"):
        run.save_checkpoint(_checkpoint(3))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_loading_falls_back_and_sets_the_damaged_latest_aside_only_when_asked(tmp_path):
    run = RunFolder(tmp_path)
    run.save_checkpoint(_checkpoint(1))
    run.save_checkpoint(_checkpoint(2))
    run.checkpoint_path.write_bytes(b"not a checkpoint")
    ck, note = run.load_checkpoint()  # a reader (fometa eval) leaves the folder as it is
    assert ck.iteration == 1 and "continuing from the previous checkpoint" in note and "moved" not in note
    assert run.checkpoint_path.exists() and not run.damaged_checkpoint_path.exists()
    ck, note = run.load_checkpoint(set_aside=True)  # a resume, holding the folder
    assert ck.iteration == 1 and f"moved it aside to {run.damaged_checkpoint_path}" in note
    assert not run.checkpoint_path.exists() and run.damaged_checkpoint_path.read_bytes() == b"not a checkpoint"


# ------------------------------------------------------------------------------------------
# the data file, from any working folder
# ------------------------------------------------------------------------------------------
def _data(path) -> C.DataConfig:
    return C.DataConfig(kind="omniglot", path=path)


def test_the_data_file_is_found_from_the_run_folder_and_the_folders_above_it(tmp_path, monkeypatch):
    (tmp_path / "project" / "datasets").mkdir(parents=True)
    (tmp_path / "project" / "datasets" / "x.h5").write_bytes(b"")
    run = tmp_path / "project" / "runs" / "x"
    run.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "project")
    assert find_data(_data("datasets/x.h5"), run).path == "datasets/x.h5"  # as recorded, from here
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    found = find_data(_data("datasets/x.h5"), "../project/runs/x")
    assert found.path == str(tmp_path.resolve() / "project" / "datasets" / "x.h5")
    assert found == C.DataConfig(kind="omniglot", path=found.path)  # nothing else changes
    assert RunFolder("../project/runs/x").find_data(C.RunConfig(data=_data("datasets/x.h5"))).path == found.path


def test_a_data_file_found_nowhere_is_one_line_naming_the_option_that_gives_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "x").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        find_data(_data("datasets/x.h5"), "runs/x")
    assert str(err.value).startswith("datasets/x.h5: ") and "runs/x" in str(err.value)
    assert "--data" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataError, match="not found here; give it with --data"):
        find_data(_data("datasets/x.h5"))
    assert find_data(C.DataConfig(kind="sine")) == C.DataConfig(kind="sine")
