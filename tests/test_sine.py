"""The sine-wave experiment: the issue's bar on the default run, and the command's output."""
import json
import subprocess
import sys

import numpy as np
import pytest

from fometa import sine
from fometa.experiments import sine_wave


@pytest.mark.slow
def test_default_reptile_run_beats_untrained_by_five_times():
    """The full default budget (30,000 meta-iterations): MSE <= untrained / 5 and < 0.5."""
    result = sine_wave.run(sine_wave.config(eval_tasks=200))
    assert result["mse_trained"] < 0.5, result
    assert result["mse_trained"] <= result["mse_untrained"] / 5, result


@pytest.mark.parametrize("algorithm", ["reptile", "fomaml", "maml"])
def test_short_runs_of_every_algorithm_improve_on_untrained(algorithm):
    result = sine_wave.run(sine_wave.config(algorithm, meta_iters=1500, eval_tasks=100))
    assert np.isfinite(result["mse_trained"])
    assert result["mse_trained"] < result["mse_untrained"], result


def test_training_steps_follow_the_reference_schedule():
    steps = sine.training_steps(np.random.default_rng(0))
    assert len(steps) == 5 and all(x.shape == (10, 1) for x, _ in steps)
    xs = np.sort(np.concatenate([x[:, 0] for x, _ in steps]))
    np.testing.assert_array_equal(xs, sine.GRID[:, 0], err_msg="one epoch must cover the 50-point grid once")


def test_command_prints_json_last_and_writes_the_figure(tmp_path):
    png = tmp_path / "sine.png"
    out = subprocess.run(
        [sys.executable, "-m", "fometa", "sine", "--meta-iters", "300", "--eval-tasks", "20", "--plot", str(png)],
        capture_output=True, text=True, check=True,
    )
    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"mse_trained", "mse_untrained", "seconds"} <= set(last)
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_rejects_bad_options():
    out = subprocess.run([sys.executable, "-m", "fometa", "sine", "--meta-iters", "0"], capture_output=True, text=True)
    assert out.returncode == 2 and "--meta-iters must be at least 1" in out.stderr and "Traceback" not in out.stderr
