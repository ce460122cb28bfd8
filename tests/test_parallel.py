"""fometa.parallel: task blocks on threads, BLAS threads, the thread-count setting."""
import subprocess
import sys

import numpy as np
import pytest

from fometa import parallel


def test_blocks_partition_the_tasks():
    for tasks in range(1, 12):
        for parts in range(1, 6):
            bl = parallel.blocks(tasks, parts)
            assert len(bl) == min(tasks, parts)
            assert [i for s in bl for i in range(s.start, s.stop)] == list(range(tasks))
            sizes = [s.stop - s.start for s in bl]
            assert max(sizes) - min(sizes) <= 1


def test_map_blocks_propagates_errors_and_orders_results():
    before = parallel.get_threads()
    try:
        parallel.set_threads(2)
        assert parallel.map_blocks(lambda s: (s.start, s.stop), 5, max_block=2) == [(0, 2), (2, 4), (4, 5)]

        def boom(s):
            raise RuntimeError(f"block {s.start}")

        with pytest.raises(RuntimeError, match="block"):
            parallel.map_blocks(boom, 4)
    finally:
        parallel.set_threads(before)
    with pytest.raises(ValueError, match="positive integer"):
        parallel.set_threads(0)


def test_blas_threads_can_be_set():
    assert parallel.set_blas_threads(1) in (True, False)  # False only where NumPy has no OpenBLAS
    np_config = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
    blas = str(np_config.get("Build Dependencies", {}).get("blas", {}).get("name", ""))
    if "openblas" in blas.lower():
        assert parallel.set_blas_threads(1), "NumPy's OpenBLAS was not found in the process"


def test_thread_count_comes_from_the_environment_or_the_cores(monkeypatch):
    before = parallel.get_threads()
    try:
        parallel.set_threads(None)
        monkeypatch.setenv("FOMETA_THREADS", "3")
        assert parallel.get_threads() == 3
        parallel.set_threads(None)
        monkeypatch.delenv("FOMETA_THREADS")
        assert parallel.get_threads() == parallel.available_cores() >= 1
        parallel.set_threads(None)
        monkeypatch.setenv("FOMETA_THREADS", "two")
        with pytest.raises(ValueError, match="FOMETA_THREADS must be a positive integer"):
            parallel.get_threads()
    finally:
        monkeypatch.delenv("FOMETA_THREADS", raising=False)
        parallel.set_threads(before)


def test_blas_threads_restored_after_parallel_blocks():
    before = parallel.get_threads()
    if parallel.get_blas_threads() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS here: no thread count to restore")
    blas_before = parallel.get_blas_threads()
    try:
        parallel.set_blas_threads(2)
        parallel.set_threads(2)
        seen = parallel.map_blocks(lambda s: parallel.get_blas_threads(), 4)
        assert seen == [1, 1], "blocks on threads must run one BLAS thread each"
        assert parallel.get_blas_threads() == 2
    finally:
        parallel.set_blas_threads(blas_before)
        parallel.set_threads(before)


@pytest.mark.parametrize("value", ["0", "-2"])
def test_cli_refuses_bad_thread_counts(value):
    out = subprocess.run([sys.executable, "-m", "fometa", "bench", "--threads", value, "--repeat", "1",
                          "--warmup", "0"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "--threads must be at least 1" in out.stderr and "Traceback" not in out.stderr


def test_blocks_on_threads_see_the_callers_errstate():
    before = parallel.get_threads()
    try:
        parallel.set_threads(2)
        big = np.full(4, 1e30, dtype=np.float32)
        with np.errstate(over="ignore"):
            out = parallel.map_blocks(lambda s: big[s] * big[s], 4)
        assert all(np.isinf(o).all() for o in out)
        with np.errstate(over="raise"):
            with pytest.raises(FloatingPointError):
                parallel.map_blocks(lambda s: big[s] * big[s], 4)
    finally:
        parallel.set_threads(before)
