"""``fometa train``: runs, exact resume after SIGKILL, SIGINT/SIGTERM, and every user error."""
import json
import signal
import time

import numpy as np
import pytest
from cli_helpers import FAST, fometa_cli, fometa_process

from fometa import checkpoint
from fometa.runfolder import RunFolder


def _train(capsys, tiny_omniglot, out, *extra):
    return fometa_cli(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, "--out", out,
                      *FAST, "--quiet", *extra)


def _params_equal(a, b):
    return list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_train_writes_config_log_checkpoint_and_a_json_line(capsys, tiny_omniglot, tmp_path):
    run = tmp_path / "run"
    rc, out, err = _train(capsys, tiny_omniglot, run, "--meta-iters", "6", "--eval-interval", "3")
    assert rc == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["iteration"] == 6
    assert {"train_accuracy", "test_accuracy", "seconds"} <= set(summary)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["preset"] == "omniglot-5way-1shot" and cfg["meta_iters"] == 6 and cfg["model"]["filters"] == 4
    assert cfg["data"]["path"] == str(tiny_omniglot.resolve())
    assert [json.loads(line)["iteration"] for line in (run / "log.jsonl").read_text().splitlines()] == [0, 3, 6]
    assert checkpoint.load(run / "checkpoint.h5").iteration == 6


def test_toml_config_then_flags(capsys, tiny_omniglot, tmp_path):
    conf = tmp_path / "run.toml"
    conf.write_text('preset = "omniglot-5way-5shot"\nmeta_iters = 4\n[inner]\nlr = 0.002\n')
    rc, _, err = fometa_cli(capsys, "train", "--config", conf, "--data", tiny_omniglot, "--out", tmp_path / "r",
                            *FAST, "--meta-iters", "3", "--set", "inner.beta2=0.99", "--quiet")
    assert rc == 0, err
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (cfg["preset"], cfg["eval"]["shots"], cfg["meta_iters"]) == ("omniglot-5way-5shot", 5, 3)
    assert (cfg["inner"]["lr"], cfg["inner"]["beta2"]) == (0.002, 0.99)


def _wait_for_checkpoint(proc, path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before its first checkpoint: {proc.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)


RESUME_RUN = ["--meta-iters", "150", "--checkpoint-every", "5", "--eval-interval", "50"]


def test_sigkill_after_a_checkpoint_then_resume_equals_an_uninterrupted_run(tiny_omniglot, tmp_path):
    common = ["train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, *FAST, *RESUME_RUN, "--quiet"]
    killed = tmp_path / "killed"
    proc = fometa_process(*common, "--out", killed)
    _wait_for_checkpoint(proc, killed / "checkpoint.h5")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    stopped_at = checkpoint.load(killed / "checkpoint.h5").iteration  # a complete checkpoint, whenever killed
    assert 5 <= stopped_at < 150, "the run was not killed mid-way"

    resumed = fometa_process("train", "--resume", killed, "--quiet")
    full = fometa_process(*common, "--out", tmp_path / "full")
    for p in (resumed, full):
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    a = checkpoint.load(tmp_path / "full" / "checkpoint.h5")
    b = checkpoint.load(killed / "checkpoint.h5")
    assert a.iteration == b.iteration == 150
    assert _params_equal(a.params, b.params), "resumed parameters differ from the uninterrupted run's"
    assert _params_equal(a.inner_state.nu, b.inner_state.nu) and a.rng_state == b.rng_state

    def metrics(run):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (run / "log.jsonl").read_text().splitlines()]

    assert metrics(tmp_path / "full") == metrics(killed)


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_write_a_valid_checkpoint_and_exit_cleanly(tiny_omniglot, tmp_path, signum, status):
    run = tmp_path / "run"
    proc = fometa_process("train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, "--out", run, *FAST,
                          "--meta-iters", "100000", "--checkpoint-every", "3", "--eval-interval", "0", "--quiet")
    _wait_for_checkpoint(proc, run / "checkpoint.h5")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert f"stopped by {signal.Signals(signum).name}" in err and f"--resume {run}" in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "interrupted"
    assert checkpoint.load(run / "checkpoint.h5").iteration == summary["iteration"]


# ---------------------------------------------------------------------------------------------
# user errors: one line "fometa: error: ...", exit status 2, no traceback
# ---------------------------------------------------------------------------------------------
def _error(capsys, *args):
    rc, out, err = fometa_cli(capsys, *args)
    assert rc == 2, (rc, out, err)
    assert err.startswith("fometa: error: ") and "Traceback" not in err
    return err


def test_missing_data_file(capsys, tmp_path):
    err = _error(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", tmp_path / "none.h5", "--out",
                 tmp_path / "r")
    assert "none.h5: no such file" in err
    assert not (tmp_path / "r").exists(), "a failed start left a run folder"


def test_data_file_of_the_wrong_kind(capsys, tiny_omniglot, tmp_path):
    err = _error(capsys, "train", "--preset", "miniimagenet-5way-1shot", "--data", tiny_omniglot, "--out",
                 tmp_path / "r")
    assert "holds omniglot, expected miniimagenet" in err


def test_not_a_data_file(capsys, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("nope")
    err = _error(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", bad, "--out", tmp_path / "r")
    assert "bad.h5: not a readable HDF5 file" in err


def test_unknown_preset(capsys, tmp_path):
    err = _error(capsys, "train", "--preset", "omniglot-5way-3shot", "--out", tmp_path / "r")
    assert "unknown preset 'omniglot-5way-3shot'" in err and "omniglot-20way-5shot" in err


def test_no_preset(capsys, tmp_path):
    assert "no preset" in _error(capsys, "train", "--out", tmp_path / "r")


@pytest.mark.parametrize("flags, message", [
    (["--shots", "20"], "evaluation needs 20 shots + 1 query per class, but a class of the train split has only 20"),
    (["--train-shots", "21"],
     "training tasks need 21 train shots per class, but a class of the train split has only 20"),
    (["--ways", "7"], "a 7-way task needs 7 classes, but the test split has 6"),
    (["--eval-batch", "9"], r"eval.inner_batch \(9\) is larger than the support set \(5 ways x 1 shots"),
    (["--inner-batch", "60"], r"inner.batch \(60\) is larger than a training task"),
    (["--meta-iters", "lots"], "--meta-iters: setting 'meta_iters' needs an int, got 'lots'"),
    (["--algorithm", "maml3"], "outer.algorithm must be one of"),
    (["--set", "inner.nope=1"], "unknown setting 'inner.nope'"),
])
def test_contradictory_or_invalid_options(capsys, tiny_omniglot, tmp_path, flags, message):
    err = _error(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, "--out", tmp_path / "r",
                 *FAST, *flags)
    assert message in err or __import__("re").search(message, err), err


def test_out_folder_holding_a_run(capsys, tiny_omniglot, tmp_path):
    assert _train(capsys, tiny_omniglot, tmp_path / "r", "--meta-iters", "1")[0] == 0
    err = _error(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, "--out", tmp_path / "r")
    assert "already holds a run" in err and "--resume" in err


def test_resume_with_changed_settings_is_refused_unless_forced(capsys, tiny_omniglot, tmp_path):
    run = tmp_path / "r"
    assert _train(capsys, tiny_omniglot, run, "--meta-iters", "2")[0] == 0
    err = _error(capsys, "train", "--resume", run, "--learning-rate", "0.01", "--meta-iters", "4", "--quiet")
    assert "differs from the run's" in err and "inner.lr: 0.001 in the run, 0.01 now" in err
    assert "meta_iters: 2 in the run, 4 now" in err and "--force" in err
    # cadence settings may change freely; --force accepts the rest
    rc, out, err = fometa_cli(capsys, "train", "--resume", run, "--meta-iters", "4", "--eval-interval", "2",
                              "--force", "--quiet")
    assert rc == 0, err
    assert json.loads(out.splitlines()[-1])["iteration"] == 4
    assert json.loads((run / "config.json").read_text())["meta_iters"] == 4


def test_resume_errors(capsys, tiny_omniglot, tmp_path):
    assert "no run to resume" in _error(capsys, "train", "--resume", tmp_path / "empty")
    run = tmp_path / "r"
    assert _train(capsys, tiny_omniglot, run, "--meta-iters", "1")[0] == 0
    assert "takes neither --preset nor --out" in _error(capsys, "train", "--resume", run, "--preset", "sine")
    (run / "checkpoint.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert "checkpoint.h5: not a readable HDF5 file" in _error(capsys, "train", "--resume", run)


def test_resume_a_foreign_checkpoint(capsys, tiny_omniglot, tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "checkpoint.h5").write_bytes(tiny_omniglot.read_bytes())  # an HDF5 file, but not a checkpoint
    assert "not a fometa checkpoint" in _error(capsys, "train", "--resume", run)


def test_non_finite_loss_exits_with_a_message_and_keeps_the_checkpoint(capsys, tiny_omniglot, tmp_path):
    run = tmp_path / "r"
    assert _train(capsys, tiny_omniglot, run, "--meta-iters", "2")[0] == 0
    before = (run / "checkpoint.h5").read_bytes()
    rc, out, err = fometa_cli(capsys, "train", "--resume", run, "--force", "--meta-iters", "20",
                              "--inner-optimizer", "sgd", "--learning-rate", "1e30", "--quiet")
    assert rc == 1 and "Traceback" not in err
    assert "fometa: error: non-finite loss at meta-iteration 3" in err and "at iteration 2, is kept" in err
    assert (run / "checkpoint.h5").read_bytes() == before


def test_resume_before_the_first_checkpoint_starts_the_run_again(capsys, tiny_omniglot, tmp_path):
    full, early = tmp_path / "full", tmp_path / "early"
    assert _train(capsys, tiny_omniglot, full, "--meta-iters", "4", "--eval-interval", "2")[0] == 0
    assert _train(capsys, tiny_omniglot, early, "--meta-iters", "4", "--eval-interval", "2")[0] == 0
    (early / "checkpoint.h5").unlink()  # as if killed before its first checkpoint, after logging
    rc, _, err = fometa_cli(capsys, "train", "--resume", early, "--quiet")
    assert rc == 0, err
    assert [json.loads(line)["iteration"] for line in (early / "log.jsonl").read_text().splitlines()] == [0, 2, 4]
    a, b = (checkpoint.load(r / "checkpoint.h5") for r in (full, early))
    assert _params_equal(a.params, b.params)


def test_miniimagenet_preset_trains_and_evaluates(capsys, tiny_miniimagenet, tmp_path):
    run = tmp_path / "mini"
    rc, out, err = fometa_cli(capsys, "train", "--preset", "miniimagenet-5way-5shot", "--data", tiny_miniimagenet,
                              "--out", run, "--filters", "2", "--inner-iters", "1", "--eval-iters", "1",
                              "--interval-tasks", "2", "--meta-iters", "2", "--eval-interval", "2", "--meta-batch", "2",
                              "--quiet")
    assert rc == 0, err
    assert json.loads(out.splitlines()[-1])["iteration"] == 2
    rc, out, err = fometa_cli(capsys, "eval", run, "--tasks", "4", "--split", "val", "--mode", "per-query", "--quiet")
    assert rc == 0, err
    res = json.loads(out)
    assert (res["split"], res["shots"], res["inner_batch"], res["tasks"]) == ("val", 5, 15, 4)
    # evaluation reads only the split it evaluates: a file of the val split alone gives the same result
    from fometa.data.pack_miniimagenet import MiniImageNetPackConfig, pack_miniimagenet

    val_only = pack_miniimagenet(tiny_miniimagenet.parent / "mini", tmp_path / "val.h5",
                                 MiniImageNetPackConfig(images_per_class=20, splits=("val",)), progress=False)
    rc, out, err = fometa_cli(capsys, "eval", run, "--data", val_only, "--tasks", "4", "--split", "val",
                              "--mode", "per-query", "--quiet")
    assert rc == 0, err
    assert {k: v for k, v in json.loads(out).items() if k != "seconds"} == \
        {k: v for k, v in res.items() if k != "seconds"}
    err = _error(capsys, "eval", run, "--data", val_only, "--tasks", "4", "--split", "test")
    assert "the data file has no 'test' split (it has val)" in err


def test_omniglot_preset_refuses_a_miniimagenet_file(capsys, tiny_miniimagenet, tmp_path):
    err = _error(capsys, "train", "--preset", "omniglot-20way-5shot", "--data", tiny_miniimagenet, "--out",
                 tmp_path / "r")
    assert "holds miniimagenet, expected omniglot" in err


def test_unavailable_backend_is_refused_before_a_run_folder_is_made(capsys, tiny_omniglot, tmp_path):
    err = _error(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, "--out", tmp_path / "r",
                 "--backend", "tpu")
    assert "tpu" in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("damage", ["cut in half", "a flipped byte"])
def test_a_damaged_checkpoint_costs_only_the_iterations_since_the_previous_one(capsys, tiny_omniglot, tmp_path,
                                                                               damage):
    """The run folder keeps the previous checkpoint; a resume that finds the latest unreadable or failing its
    SHA-256 says so, continues from the previous one and ends where an undamaged run ends, bit for bit."""
    whole, damaged = tmp_path / "whole", tmp_path / "damaged"
    for run in (whole, damaged):
        rc, _, err = _train(capsys, tiny_omniglot, run, "--meta-iters", "6", "--checkpoint-every", "2",
                            "--eval-interval", "2")
        assert rc == 0, err
    assert checkpoint.load(damaged / "checkpoint.prev.h5").iteration == 4, "the previous checkpoint is not kept"
    latest = damaged / "checkpoint.h5"
    data = bytearray(latest.read_bytes())
    if damage == "cut in half":
        data = data[: len(data) // 2]
    else:
        stored = checkpoint.load(latest).params["conv0/kernel"]
        at = bytes(data).find(stored.tobytes()[:64])
        assert at > 0
        data[at + 3] ^= 0x40
    latest.write_bytes(bytes(data))
    rc, _, err = fometa_cli(capsys, "train", "--resume", damaged, "--quiet")
    assert rc == 0, err
    assert "checkpoint.h5" in err and "continuing from the previous checkpoint" in err, err
    assert "at meta-iteration 4" in err and "moved it aside to" in err, err
    assert (damaged / "checkpoint.damaged.h5").read_bytes() == bytes(data)
    a, b = checkpoint.load(whole / "checkpoint.h5"), checkpoint.load(damaged / "checkpoint.h5")
    assert a.iteration == b.iteration == 6
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), f"{k} differs after resuming from the previous checkpoint"
    untimed = [[{k: v for k, v in r.items() if k != "seconds"} for r in RunFolder(run).read_log()]
               for run in (whole, damaged)]
    assert untimed[0] == untimed[1]
    segments = RunFolder(damaged).read_segments()
    assert [(s["start"], s["stop"]) for s in segments] == [(0, 6), (4, 6)], segments
    assert all(s["fometa"] and len(s["source_sha256"]) == 64 for s in segments)


def test_a_run_folder_works_from_any_working_folder(capsys, tiny_omniglot, tmp_path, monkeypatch):
    """Trained from the project's folder with --data datasets/x.h5: resumed, evaluated, plotted and asked to predict
    from another folder without --data; its config.json keeps the path as given."""
    import shutil

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "datasets").mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copy(tiny_omniglot, project / "datasets" / "x.h5")
    monkeypatch.chdir(project)
    rc, _, err = fometa_cli(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", "datasets/x.h5", "--out",
                            "runs/x", *FAST, "--meta-iters", "4", "--checkpoint-every", "2", "--quiet")
    assert rc == 0, err
    finished = checkpoint.load(project / "runs" / "x" / "checkpoint.h5")
    (project / "runs" / "x" / "checkpoint.h5").unlink()  # the run is resumed from its checkpoint at 2
    monkeypatch.chdir(elsewhere)
    run = "../project/runs/x"
    rc, out, err = fometa_cli(capsys, "train", "--resume", run, "--quiet")
    assert rc == 0, err
    assert json.loads(out.splitlines()[-1])["iteration"] == 4
    assert _params_equal(checkpoint.load(project / "runs" / "x" / "checkpoint.h5").params, finished.params)
    assert json.loads((project / "runs" / "x" / "config.json").read_text())["data"]["path"] == "datasets/x.h5"
    rc, out, err = fometa_cli(capsys, "eval", run, "--tasks", "4", "--quiet")
    assert rc == 0, err
    assert json.loads(out)["tasks"] == 4
    rc, out, err = fometa_cli(capsys, "plot", run, "--out", "curves.png")
    assert rc == 0 and (elsewhere / "curves.png").is_file(), err
    from PIL import Image

    for c, (y, x) in enumerate(((4, 4), (14, 14))):  # two classes of one black square each, and a query
        img = np.full((28, 28), 255, np.uint8)
        img[y:y + 10, x:x + 10] = 0
        (elsewhere / "support" / f"c{c}").mkdir(parents=True)
        Image.fromarray(img).save(elsewhere / "support" / f"c{c}" / "1.png")
    rc, out, err = fometa_cli(capsys, "predict", run, "--support", "support", "--query", "support/c1/1.png")
    assert rc == 0 and json.loads(out)["class"] in ("c0", "c1"), err
    # moved away from its data file, the run names the file and the option that gives it, on one line
    shutil.move(str(project / "runs" / "x"), str(elsewhere / "x"))
    for args in (("eval", "x", "--tasks", "4"), ("train", "--resume", "x")):
        err = _error(capsys, *args)
        assert err.startswith("fometa: error: datasets/x.h5: ") and "--data" in err and "x" in err, err
    rc, out, err = fometa_cli(capsys, "eval", "x", "--tasks", "4", "--quiet", "--data", project / "datasets" / "x.h5")
    assert rc == 0, err
