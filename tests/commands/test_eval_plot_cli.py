"""``fometa eval`` (JSON per mode, errors) and ``fometa plot`` (a PNG of the learning curves)."""
import json

import pytest
from cli_helpers import FAST, fometa_cli


@pytest.fixture(scope="module")
def trained_run(tiny_omniglot, tmp_path_factory):
    from fometa.cli import main

    run = tmp_path_factory.mktemp("runs") / "run"
    rc = main(["train", "--preset", "omniglot-5way-1shot", "--data", str(tiny_omniglot), "--out", str(run), *FAST,
               "--meta-iters", "6", "--eval-interval", "2", "--quiet"])
    assert rc == 0
    return run


KEYS = {"accuracy", "ci95", "tasks", "mode", "seconds"}


def test_eval_prints_one_json_object(capsys, trained_run):
    rc, out, err = fometa_cli(capsys, "eval", trained_run, "--tasks", "30", "--chunk", "7")
    assert rc == 0, err
    (line,) = out.strip().splitlines()
    res = json.loads(line)
    assert KEYS <= set(res)
    assert (res["tasks"], res["mode"], res["split"], res["shots"], res["inner_iters"]) == \
        (30, "transductive", "test", 1, 3)
    assert 0.0 <= res["accuracy"] <= 1.0 and res["ci95"] > 0 and res["seconds"] > 0
    assert "30/30" in err  # the progress bar, on stderr


def test_eval_several_modes_adapts_once_and_prints_a_line_each(capsys, trained_run):
    ckpt = trained_run / "checkpoint.h5"
    rc, out, err = fometa_cli(capsys, "eval", ckpt, "--tasks", "12", "--mode", "transductive,per-query,support-stats",
                              "--split", "train", "--shots", "2", "--eval-iters", "1", "--quiet")
    assert rc == 0, err
    results = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["mode"] for r in results] == ["transductive", "per-query", "support-stats"]
    assert all(KEYS <= set(r) and r["tasks"] == 12 and r["split"] == "train" and r["shots"] == 2 for r in results)
    assert len({r["seconds"] for r in results}) == 1  # one evaluation, predicted in every mode
    assert err == ""


def test_eval_same_seed_same_result(capsys, trained_run):
    a = fometa_cli(capsys, "eval", trained_run, "--tasks", "10", "--eval-seed", "3", "--quiet")[1]
    b = fometa_cli(capsys, "eval", trained_run, "--tasks", "10", "--eval-seed", "3", "--chunk", "4", "--quiet")[1]
    assert json.loads(a)["accuracy"] == json.loads(b)["accuracy"]


@pytest.mark.parametrize("args, message", [
    (["--mode", "inductive"], "--mode: unknown mode 'inductive'"),
    (["--shots", "20"], "evaluation needs 20 shots + 1 query per class, but a class of the test split has only 20"),
    (["--split", "val"], "only Mini-ImageNet has a 'val' split"),
    (["--tasks", "0"], "eval.tasks must be at least 1"),
])
def test_eval_option_errors(capsys, trained_run, args, message):
    rc, _, err = fometa_cli(capsys, "eval", trained_run, *args)
    assert rc == 2 and err.startswith("fometa: error: ") and message in err, err


def test_eval_missing_data_file(capsys, trained_run, tmp_path):
    rc, _, err = fometa_cli(capsys, "eval", trained_run, "--data", tmp_path / "gone.h5")
    assert rc == 2 and "gone.h5: no such file" in err


def test_eval_corrupt_and_foreign_checkpoints(capsys, tiny_omniglot, tmp_path):
    rc, _, err = fometa_cli(capsys, "eval", tmp_path)
    assert rc == 2 and "no such checkpoint file" in err
    bad = tmp_path / "checkpoint.h5"
    bad.write_bytes(b"garbage" * 50)
    rc, _, err = fometa_cli(capsys, "eval", tmp_path)
    assert rc == 2 and "not a readable HDF5 file" in err
    rc, _, err = fometa_cli(capsys, "eval", tiny_omniglot)
    assert rc == 2 and "not a fometa checkpoint" in err


def test_sine_run_evaluates_to_mse(capsys, tmp_path):
    run = tmp_path / "sine"
    rc, _, err = fometa_cli(capsys, "train", "--preset", "sine", "--out", run, "--meta-iters", "10",
                            "--eval-interval", "5", "--interval-tasks", "4", "--quiet")
    assert rc == 0, err
    rc, out, err = fometa_cli(capsys, "eval", run, "--tasks", "20", "--quiet")
    assert rc == 0, err
    res = json.loads(out)
    assert res["mode"] == "regression" and res["tasks"] == 20 and res["mse"] > 0 and "accuracy" not in res


def test_plot_writes_a_png(capsys, trained_run, tmp_path):
    pytest.importorskip("matplotlib")
    rc, out, err = fometa_cli(capsys, "plot", trained_run)
    assert rc == 0, err
    png = trained_run / "curves.png"
    assert out.strip() == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc, out, _ = fometa_cli(capsys, "plot", trained_run, "--out", tmp_path / "c.png")
    assert rc == 0 and (tmp_path / "c.png").stat().st_size > 1000


def test_plot_errors(capsys, tmp_path):
    rc, _, err = fometa_cli(capsys, "plot", tmp_path / "none")
    assert rc == 2 and "no such run folder" in err
    rc, _, err = fometa_cli(capsys, "plot", tmp_path)
    assert rc == 2 and "no log records" in err


# ------------------------------------------------------------------------------------------
# --partial FILE: a long evaluation kept after every chunk, stopped and continued
# ------------------------------------------------------------------------------------------
def _results(out):
    return {r["mode"]: r for r in map(json.loads, out.strip().splitlines())}


def test_partial_extends_to_the_uninterrupted_result(capsys, trained_run, tmp_path):
    keep = tmp_path / "part.json"
    modes = ["--mode", "transductive,per-query", "--quiet", "--chunk", "4"]
    rc, _, err = fometa_cli(capsys, "eval", trained_run, "--tasks", "10", "--partial", keep, *modes)
    assert rc == 0, err
    assert json.loads(keep.read_text())["done"] == 10
    rc, out, err = fometa_cli(capsys, "eval", trained_run, "--tasks", "23", "--partial", keep, *modes)
    assert rc == 0, err
    straight = _results(fometa_cli(capsys, "eval", trained_run, "--tasks", "23", *modes)[1])
    kept = _results(out)
    for mode in ("transductive", "per-query"):
        assert (kept[mode]["accuracy"], kept[mode]["ci95"], kept[mode]["tasks"]) == \
            (straight[mode]["accuracy"], straight[mode]["ci95"], 23)
    assert json.loads(keep.read_text())["done"] == 23
    again = _results(fometa_cli(capsys, "eval", trained_run, "--tasks", "23", "--partial", keep, *modes)[1])
    assert again["per-query"]["accuracy"] == straight["per-query"]["accuracy"]  # all kept: nothing to redo


@pytest.mark.parametrize("args, message", [
    (["--eval-seed", "5"], "seed: 0 there, 5 now"),
    (["--shots", "2"], "other settings"),
    (["--mode", "per-query"], "modes: ['transductive'] there, ['per-query'] now"),
    (["--tasks", "3"], "already holds 6 tasks, more than the 3 asked for"),
])
def test_partial_refuses_other_settings(capsys, trained_run, tmp_path, args, message):
    keep = tmp_path / "part.json"
    assert fometa_cli(capsys, "eval", trained_run, "--tasks", "6", "--partial", keep, "--quiet")[0] == 0
    before = keep.read_text()
    rc, out, err = fometa_cli(capsys, "eval", trained_run, "--tasks", "6", "--partial", keep, "--quiet", *args)
    assert rc == 2 and out == "" and err.startswith("fometa: error: --partial: ") and message in err, err
    assert keep.read_text() == before


def test_partial_unreadable_file_is_an_error(capsys, trained_run, tmp_path):
    keep = tmp_path / "part.json"
    keep.write_text('{"settings": {}, "done": "x"')
    rc, _, err = fometa_cli(capsys, "eval", trained_run, "--tasks", "6", "--partial", keep, "--quiet")
    assert rc == 2 and "not a partial evaluation fometa can continue" in err, err


def test_partial_sigterm_stops_after_a_chunk_and_resumes(trained_run, tmp_path, capsys):
    import signal
    import time

    from cli_helpers import fometa_process

    keep = tmp_path / "part.json"
    proc = fometa_process("eval", trained_run, "--tasks", "100000", "--chunk", "5", "--partial", keep, "--quiet",
                          "--threads", "1")
    deadline = time.monotonic() + 120
    while not keep.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert out == "" and "stopped by SIGTERM after" in err and "Continue with the same command" in err
    done = json.loads(keep.read_text())["done"]
    assert 0 < done < 100000 and done % 5 == 0
    total = str(done + 7)
    rc, out, err = fometa_cli(capsys, "eval", trained_run, "--tasks", total, "--partial", keep, "--quiet")
    assert rc == 0, err
    straight = fometa_cli(capsys, "eval", trained_run, "--tasks", total, "--quiet")[1]
    assert json.loads(out)["accuracy"] == json.loads(straight)["accuracy"]
    assert list(tmp_path.iterdir()) == [keep]  # no temporary file left behind
