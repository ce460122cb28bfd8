"""Helpers of the command tests: running ``fometa`` in-process or as a process, fast settings."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

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
