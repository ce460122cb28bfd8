"""Helpers of the command tests: running ``fometa`` in-process or as a process, fast settings, the real data
sets' folder and the check of a shipped model against its committed evaluation."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: the real data sets, laid out as the official downloads (omniglot/*.zip, miniimagenet/miniimagenet.tar.gz);
#: the tests that need them skip, saying so, while FOMETA_DATA_DIR does not name them
DATA_DIR = Path(os.environ.get("FOMETA_DATA_DIR") or "FOMETA_DATA_DIR-is-not-set")

# a few iterations of a 4-filter Omniglot net on the tiny file (see conftest.py): quick runs
FAST = [
    "--filters", "4", "--train-characters", "10", "--inner-iters", "2", "--eval-iters", "3",
    "--interval-tasks", "4", "--eval-tasks", "20",
]


def fometa_cli(capsys, *args):
    """Run ``fometa ARGS`` in-process: ``(exit status, stdout, stderr)``."""
    from fometa.cli import main

    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def fometa_process(*args, **kwargs) -> subprocess.Popen:
    """Start ``python -m fometa ARGS`` as a separate process (single-threaded BLAS, text pipes)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "fometa", *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


#: the committed per-task 1-shot evaluation of a shipped model, in its results folder (the registry's ``results``):
#: the paper-budget evaluation kept with ``--partial``, else a shorter one kept for this check
KEPT_NAMES = ("eval-1shot.partial.json", "eval-1shot-first100.json")


def kept_evaluation(name: str) -> Path | None:
    """The committed per-task 1-shot evaluation of the package's shipped model ``name`` (``None`` if there is none)."""
    from fometa import pretrained

    folder = REPO / pretrained.get(name).entry["results"]
    return next((folder / f for f in KEPT_NAMES if (folder / f).is_file()), None)


def assert_first_tasks_as_kept(capsys, model, data, kept_file, tasks: int, tmp_path) -> dict:
    """Evaluate ``model`` on the first ``tasks`` tasks of ``data`` in both modes (``--partial``) and assert that
    the parameters and the per-task accuracies are those of the committed partial evaluation ``kept_file``
    (and the printed accuracies their means); returns the committed record."""
    kept = json.loads(Path(kept_file).read_text())
    partial = tmp_path / "first.json"
    rc, out, err = fometa_cli(capsys, "eval", model, "--data", data, "--tasks", tasks,
                              "--mode", "transductive,per-query", "--partial", partial, "--quiet")
    assert rc == 0, err
    again = json.loads(partial.read_text())
    assert again["settings"]["params_sha256"] == kept["settings"]["params_sha256"], "another checkpoint"
    assert again["settings"]["iteration"] == kept["settings"]["iteration"]
    assert again["done"] == tasks <= kept["done"]
    lines = {json.loads(line)["mode"]: json.loads(line) for line in out.strip().splitlines()}
    for mode in ("transductive", "per-query"):
        first = kept["accuracies"][mode][:tasks]
        assert again["accuracies"][mode] == first, f"{mode}: per-task accuracies differ"
        assert lines[mode]["accuracy"] == pytest.approx(sum(first) / tasks, abs=1e-12)
    return kept
