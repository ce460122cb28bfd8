"""One writer per run folder (:mod:`fometa.lock`): a second ``fometa train`` in a folder in use is refused
with the holder's process id; a lock left by a killed process does not block."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from cli_helpers import FAST, fometa_cli, fometa_process

from fometa import checkpoint
from fometa.lock import LOCK_FILE, LockedError, hold


def _wait_for(path, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the process ended early: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def _stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=60)


def test_hold_excludes_a_second_holder_and_release_frees(tmp_path):
    run = tmp_path / "new" / "run"  # made by hold
    lock = hold(run)
    assert (run / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    with pytest.raises(LockedError) as info:
        hold(run)  # flock is per open file: a second open in this process is another holder
    assert info.value.pid == os.getpid()
    assert str(info.value) == f"run folder {run} is in use by process {os.getpid()}"
    lock.release()
    assert not lock.held
    with hold(run) as again:
        assert again.held
    hold(run).release()


def test_a_lock_held_by_another_process_refuses_train_naming_it(capsys, tiny_omniglot, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from fometa.lock import hold; l = hold(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(120)", str(run)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, out, err = fometa_cli(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot,
                                  "--out", run, *FAST, "--meta-iters", "2", "--quiet")
        assert (rc, err) == (2, f"fometa: error: run folder {run} is in use by process {holder.pid}\n"), (rc, out, err)
        assert not (run / "config.json").exists(), "the refused run wrote into the folder"
    finally:
        _stop(holder)


def test_a_second_train_in_a_running_folder_is_refused_with_the_holders_pid(tiny_omniglot, tmp_path):
    run = tmp_path / "run"
    first = fometa_process("train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, "--out", run, *FAST,
                           "--meta-iters", "100000", "--checkpoint-every", "2", "--eval-interval", "0", "--quiet")
    try:
        _wait_for(run / "checkpoint.h5", first)
        message = f"fometa: error: run folder {run} is in use by process {first.pid}\n"
        for args in (["--resume", run], ["--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, "--out", run]):
            second = fometa_process("train", *args, "--quiet")
            try:
                out, err = second.communicate(timeout=120)
            finally:
                _stop(second)  # a second writer that was not refused must not outlive the test
            assert (second.returncode, err) == (2, message), (args, second.returncode, out, err)
            assert first.poll() is None, "the first run stopped"
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=120)
        assert first.returncode == 143, err
        stopped_at = json.loads(out.strip().splitlines()[-1])["iteration"]
        assert checkpoint.load(run / "checkpoint.h5").iteration == stopped_at, "the refused runs touched the checkpoint"
    finally:
        _stop(first)


def test_a_lock_left_by_a_killed_run_does_not_block_resume(tiny_omniglot, tmp_path):
    run = tmp_path / "run"
    first = fometa_process("train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, "--out", run, *FAST,
                           "--meta-iters", "30", "--checkpoint-every", "2", "--eval-interval", "0", "--quiet")
    try:
        _wait_for(run / "checkpoint.h5", first)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
        assert first.returncode == -signal.SIGKILL
    finally:
        _stop(first)
    assert (run / LOCK_FILE).read_text() == f"{first.pid}\n", "the killed run's lock file should be left behind"
    assert checkpoint.load(run / "checkpoint.h5").iteration < 30, "the run finished before it was killed"
    resumed = fometa_process("train", "--resume", run, "--quiet")
    try:
        out, err = resumed.communicate(timeout=300)
    finally:
        _stop(resumed)
    assert resumed.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["iteration"] == 30
    assert (run / LOCK_FILE).read_text() == f"{resumed.pid}\n"
