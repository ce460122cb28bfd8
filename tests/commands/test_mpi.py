"""``mpiexec -n 2 fometa train/eval``: the same numbers as one process, resume across N, faults end the job.

Skipped, with the reason, where mpi4py or mpiexec is missing (``pip install -e '.[mpi]'`` brings
both: the mpich wheel's mpiexec lands beside the interpreter). Every launch has a timeout, so a
hang fails the test instead of blocking it.
"""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import FAST, REPO, fometa_cli

from fometa import checkpoint

TIMEOUT = 180  # seconds for one launch; these runs take a few


def _find_mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"  # the mpich wheel's, in this environment
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _env(**extra):
    return dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                # Open MPI (if that is the mpiexec found) refuses root and oversubscription without these
                OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1",
                **extra)


@pytest.fixture(scope="session")
def mpiexec():
    """The ``mpiexec`` to launch with, after checking that mpi4py on it sees two ranks."""
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install -e '.[mpi]')")
    exe = _find_mpiexec()
    if exe is None:
        pytest.skip("no mpiexec on PATH or beside the interpreter (pip install -e '.[mpi]')")
    code = "from mpi4py import MPI; c = MPI.COMM_WORLD; r = c.allgather(c.Get_rank()); c.Get_rank() or print(r)"
    done = subprocess.run([exe, "-n", "2", sys.executable, "-c", code], env=_env(), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0 and done.stdout == "[0, 1]\n", (
        f"{exe} does not start mpi4py programs as one world of 2 ranks (mpi4py built for another MPI?): "
        f"{done.stdout!r} {done.stderr!r}")
    return exe


def _launch(mpiexec, n, *args, env=None, **kwargs):
    cmd = [mpiexec, "-n", str(n), sys.executable, "-m", "fometa", *map(str, args)]
    return subprocess.Popen(cmd, cwd=REPO, env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def _run(mpiexec, n, *args, env=None):
    proc = _launch(mpiexec, n, *args, env=env)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"mpiexec -n {n} fometa {' '.join(map(str, args))} hung: {err[-2000:]}")
    return proc.returncode, out, err


def _train_args(tiny_omniglot, out, *extra):
    return ["train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, "--out", out, *FAST, "--quiet",
            *extra]


def _ckpt(run):
    return checkpoint.load(Path(run) / "checkpoint.h5")


def _assert_bitwise(a, b, what):
    assert list(a) == list(b)
    differ = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not differ, f"{what}: {differ} differ (largest {max(np.abs(a[k] - b[k]).max() for k in differ):.3g})"


@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_train_as_one_process_bit_for_bit(mpiexec, capsys, tiny_omniglot, tmp_path, ranks):
    """Meta-batch 5 (and 2) on 2 and 3 processes, uneven shares included: parameters, optimizer states and
    log records equal one process's bit for bit (the per-task results are joined in task order and the one
    outer step reduces them as a single process does)."""
    base = ["--meta-iters", "4", "--eval-interval", "2"]
    for batch, inner in ((ranks, "adam"), (5, "sgd"), (5, "adam")):
        one, many = tmp_path / f"one{batch}{inner}", tmp_path / f"many{batch}{inner}"
        args = [*base, "--meta-batch", batch, "--inner-optimizer", inner]
        rc, _, err = fometa_cli(capsys, *_train_args(tiny_omniglot, one, *args))
        assert rc == 0, err
        rc, out, err = _run(mpiexec, ranks, *_train_args(tiny_omniglot, many, *args))
        assert rc == 0, err
        assert len(out.strip().splitlines()) == 1, f"more than rank 0 printed: {out!r}"
        assert json.loads(out)["status"] == "finished"
        a, b = _ckpt(one), _ckpt(many)
        assert (a.iteration, a.rng_state) == (b.iteration, b.rng_state), "not the single process's task stream"
        _assert_bitwise(a.params, b.params, f"parameters ({batch} tasks, {inner})")
        if inner == "adam":
            _assert_bitwise(a.inner_state.mu, b.inner_state.mu, "Adam's carried mu")
            _assert_bitwise(a.inner_state.nu, b.inner_state.nu, "Adam's carried nu")
            assert int(a.inner_state.count) == int(b.inner_state.count)
        untimed = [[{k: v for k, v in json.loads(line).items() if k != "seconds"}
                    for line in (run / "log.jsonl").read_text().splitlines()] for run in (one, many)]
        assert untimed[0] == untimed[1], "the logs differ"


def test_two_ranks_evaluate_as_one_process(mpiexec, capsys, tiny_omniglot, tmp_path):
    run = tmp_path / "run"
    rc, _, err = fometa_cli(capsys, *_train_args(tiny_omniglot, run, "--meta-iters", "2", "--eval-interval", "0"))
    assert rc == 0, err
    args = ["eval", run, "--tasks", 23, "--chunk", 4, "--mode", "transductive,per-query", "--quiet"]
    rc, one, err = fometa_cli(capsys, *args)
    assert rc == 0, err
    rc, two, err = _run(mpiexec, 2, *args)
    assert rc == 0, err
    drop = {"seconds"}
    one = [{k: v for k, v in json.loads(line).items() if k not in drop} for line in one.splitlines()]
    two = [{k: v for k, v in json.loads(line).items() if k not in drop} for line in two.splitlines()]
    assert one == two and len(two) == 2
    # --partial under two ranks (rank 0 writes), continued by one process: still the same tasks and numbers
    keep = tmp_path / "part.json"
    rc, _, err = _run(mpiexec, 2, *args[:3], 10, *args[4:], "--partial", keep)
    assert rc == 0, err
    assert json.loads(keep.read_text())["done"] == 10
    rc, out, err = fometa_cli(capsys, *args, "--partial", keep)
    assert rc == 0, err
    assert [{k: v for k, v in json.loads(line).items() if k not in drop} for line in out.splitlines()] == one


def _pid_of_rank(marker: str, rank: int, timeout=60.0) -> int:
    """The process id of MPI rank ``rank`` of the job whose environment holds ``FOMETA_TEST_JOB=marker``."""
    want = {f"FOMETA_TEST_JOB={marker}".encode()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                env = set((proc / "environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if want <= env and ({f"PMI_RANK={rank}".encode(), f"OMPI_COMM_WORLD_RANK={rank}".encode()} & env):
                return int(proc.name)
        time.sleep(0.05)
    raise AssertionError(f"no process of rank {rank} found")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process through /proc")
def test_killed_rank_ends_the_job_and_the_checkpoint_resumes_on_one_process(mpiexec, capsys, tiny_omniglot,
                                                                              tmp_path):
    """SIGKILL rank 1 mid-run: the job ends (non-zero, no hang), the last checkpoint is valid, and
    resuming it as one process (N = 2 -> 1) ends bit for bit where an uninterrupted single run ends."""
    common = ["--meta-iters", "60", "--checkpoint-every", "3", "--eval-interval", "30", "--meta-batch", "2"]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    marker = str(tmp_path)
    proc = _launch(mpiexec, 2, *_train_args(tiny_omniglot, killed, *common), env=_env(FOMETA_TEST_JOB=marker))
    try:
        pid = _pid_of_rank(marker, 1)
        deadline = time.monotonic() + TIMEOUT
        while not (killed / "checkpoint.h5").exists():
            assert proc.poll() is None, f"the job ended before its first checkpoint: {proc.communicate()}"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
            pytest.fail("the job did not end after one rank was killed")
    assert proc.returncode != 0, f"a killed rank left exit status 0: {err[-2000:]}"
    stopped = _ckpt(killed)  # valid: the checksum is checked on load
    assert 3 <= stopped.iteration < 60, stopped.iteration
    rc, _, err = fometa_cli(capsys, "train", "--resume", killed, "--quiet")
    assert rc == 0, err
    rc, _, err = fometa_cli(capsys, *_train_args(tiny_omniglot, whole, *common))
    assert rc == 0, err
    a, b = _ckpt(killed), _ckpt(whole)
    assert a.iteration == b.iteration == 60 and a.rng_state == b.rng_state
    _assert_bitwise(a.params, b.params, "parameters after resuming on one process")


FAULT = """
import os, sys
from fometa import meta
from fometa.cli import main
if os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK")) == "1":
    calls, plain = [], meta.MetaLearner.task_results
    def faulty(self, state, tasks):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("injected fault")
        return plain(self, state, tasks)
    meta.MetaLearner.task_results = faulty
sys.exit(main(sys.argv[1:]))
"""


def test_an_error_on_one_rank_aborts_the_job_with_its_message(mpiexec, tiny_omniglot, tmp_path):
    run = tmp_path / "run"
    cmd = [mpiexec, "-n", "2", sys.executable, "-c", FAULT,
           *map(str, _train_args(tiny_omniglot, run, "--meta-iters", "50", "--checkpoint-every", "2",
                                 "--eval-interval", "0", "--meta-batch", "2"))]
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode != 0
    assert "fometa: error: rank 1: RuntimeError: injected fault" in done.stderr, done.stderr[-3000:]
    assert time.monotonic() - start < TIMEOUT
    # rank 0 may be killed while it writes iteration 4's checkpoint: then iteration 2's is the valid one
    assert _ckpt(run).iteration in (2, 4)


def test_more_ranks_than_tasks_is_refused_in_one_line(mpiexec, tiny_omniglot, tmp_path):
    rc, _, err = _run(mpiexec, 3, *_train_args(tiny_omniglot, tmp_path / "run", "--meta-batch", "2"))
    assert rc == 2, err
    assert "3 processes for a meta-batch of 2 tasks" in err and "fometa: error: rank " in err
    assert not (tmp_path / "run").exists(), "a refused run left a folder"


def test_sigterm_to_mpiexec_stops_every_rank_at_one_iteration_and_resumes(mpiexec, capsys, tiny_omniglot, tmp_path):
    """Hydra passes SIGTERM to the ranks; they agree on the iteration to stop at, rank 0 writes the
    checkpoint, and the run resumes on two ranks to the single process's parameters, bit for bit."""
    common = ["--meta-iters", "40", "--checkpoint-every", "3", "--eval-interval", "20", "--meta-batch", "2"]
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    proc = _launch(mpiexec, 2, *_train_args(tiny_omniglot, stopped, *common))
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (stopped / "checkpoint.h5").exists():
            assert proc.poll() is None, f"the job ended before its first checkpoint: {proc.communicate()}"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
            pytest.fail("the job did not stop on SIGTERM")
    if proc.returncode == 0:
        pytest.skip("the run finished before SIGTERM arrived (a very fast machine)")
    assert proc.returncode == 143, err[-2000:]
    summary = json.loads(out)
    assert summary["status"] == "interrupted" and summary["iteration"] == _ckpt(stopped).iteration
    rc, out, err = _run(mpiexec, 2, "train", "--resume", stopped, "--quiet")
    assert rc == 0, err
    rc, _, err = fometa_cli(capsys, *_train_args(tiny_omniglot, whole, *common))
    assert rc == 0, err
    _assert_bitwise(_ckpt(stopped).params, _ckpt(whole).params, "parameters after SIGTERM and resume")


def test_a_single_process_run_never_imports_mpi4py(tiny_omniglot, tmp_path):
    """Also where mpi4py is installed, and with the variables ``mpiexec -n 1`` sets."""
    code = ("import sys; from fometa.cli import main; rc = main(sys.argv[1:]); "
            "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'; sys.exit(rc)")
    args = _train_args(tiny_omniglot, tmp_path / "run", "--meta-iters", "2", "--eval-interval", "1")
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, env=_env(PMI_SIZE="1", PMI_RANK="0"),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "finished"
