"""The command line's own behaviour: one-line errors, no tracebacks."""
import subprocess
import sys

import pytest


def _run(*args):
    return subprocess.run([sys.executable, "-m", "fometa", *args], capture_output=True, text=True)


def test_unavailable_backend_is_a_one_line_error():
    try:
        import cupy  # noqa: F401 - imported to see that it is installed

        pytest.skip("CuPy is installed here: the missing-backend error cannot be provoked")
    except ImportError:
        pass
    out = _run("bench", "--backend", "cupy", "--repeat", "1", "--warmup", "0")
    assert out.returncode == 2
    assert out.stderr.startswith("fometa: error: backend 'cupy:0' needs CuPy") and "Traceback" not in out.stderr


def test_unknown_backend_name():
    out = _run("bench", "--backend", "tpu", "--repeat", "1", "--warmup", "0")
    assert out.returncode == 2 and "unknown backend 'tpu'" in out.stderr and "Traceback" not in out.stderr


def test_help_lists_every_command():
    out = _run("--help")
    assert out.returncode == 0
    for command in ("bench", "data", "sine", "train", "eval", "plot", "experiment"):
        assert command in out.stdout


def test_closed_pipe_ends_quietly_with_status_141():
    # `fometa ... | head`: the reader has gone before anything is printed; no traceback, shell's status
    proc = subprocess.Popen([sys.executable, "-m", "fometa", "bench", "--repeat", "1", "--warmup", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_version_prints_the_version():
    from importlib.metadata import version

    import fometa

    out = _run("--version")
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout == f"fometa {fometa.__version__}\n" and fometa.__version__ == version("fometa")
