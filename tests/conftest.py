"""Shared test configuration: hypothesis profiles, the GPU marker's skip logic and a tiny trained
image classifier (its data, its run folder).

``HYPOTHESIS_PROFILE=ci`` (the default; 50 examples a property, the same ones on every run) or
``dev`` (10 random ones, for quick local runs). Numerical properties have no deadline.

Tests marked ``gpu`` run only where CuPy is installed and a GPU is visible (see below).
"""
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    # derandomize: CI draws the same examples on every run, so a red CI is a change's doing, not the draw's
    "ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True,
    derandomize=True,
)
settings.register_profile("dev", max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- GPU tests ----------------------------------------------------------------------------------
# A test marked ``@pytest.mark.gpu`` runs only where CuPy is installed and a GPU is visible;
# elsewhere it is skipped with the reason (fometa's own BackendError message). Tests take the
# CuPy backend from the ``gpu_backend`` fixture.
_GPU_STATE = {}


def _cupy_backend_or_reason():
    """(backend, None) where the CuPy backend works, else (None, why not); asked once."""
    if not _GPU_STATE:
        from fometa.backends import BackendError, get_backend

        try:
            with warnings.catch_warnings():  # a CUDA install's import-time notices are not test failures
                warnings.simplefilter("ignore")
                backend = get_backend("cupy")
            _GPU_STATE.update(backend=backend, reason=None)
        except BackendError as exc:
            _GPU_STATE.update(backend=None, reason=f"GPU test skipped: {exc}")
    return _GPU_STATE["backend"], _GPU_STATE["reason"]


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") is not None:
        backend, reason = _cupy_backend_or_reason()
        if backend is None:
            pytest.skip(reason)


@pytest.fixture(scope="session")
def gpu_backend():
    """The CuPy backend (``cupy:0``); skips the test where CuPy or a GPU is missing."""
    backend, reason = _cupy_backend_or_reason()
    if backend is None:
        pytest.skip(reason)
    return backend


# -- a tiny trained image classifier ------------------------------------------------------------
# Well-separated generated classes (each a random blob pattern, its examples with 5% of the pixels
# flipped), packed with fometa.data.pack_arrays, and a run meta-trained on them for
# a few iterations by `fometa train`: the model the few-shot, predict and registry tests use.
TINY_WAYS = 3


def _tiny_class(rng, n: int = 10):
    base = np.kron(rng.random((6, 6)) < 0.4, np.ones((2, 2), dtype=bool))
    out = np.empty((n, 12, 12), dtype=np.uint8)
    for i in range(n):
        out[i] = np.where(base ^ (rng.random((12, 12)) < 0.05), 0, 255)  # dark ink on white, as Omniglot
    return out


@pytest.fixture(scope="session")
def tiny_classes():
    """``{split: {class name: uint8 (10, 12, 12)}}``: 10 training and 6 test classes."""
    rng = np.random.default_rng(7)
    return {"train": {f"t{c:02d}": _tiny_class(rng) for c in range(10)},
            "test": {f"s{c:02d}": _tiny_class(rng) for c in range(6)}}


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory, tiny_classes):
    """The tiny classes packed into a 'folder' file."""
    pytest.importorskip("PIL")
    from fometa.data import pack_arrays

    return pack_arrays(tiny_classes, tmp_path_factory.mktemp("tiny_images") / "tiny.h5")


#: `fometa train` flags of the tiny run: a 3-way, 8-filter Omniglot-style net, 30 meta-iterations
TINY_TRAIN = ["--ways", str(TINY_WAYS), "--filters", "8", "--meta-iters", "30", "--train-shots", "5",
              "--inner-iters", "3", "--eval-batch", "3", "--eval-iters", "50", "--interval-tasks", "4",
              "--eval-interval", "0", "--checkpoint-every", "0", "--quiet"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_images):
    """A run folder meta-trained by ``fometa train --data tiny.h5`` (no --preset: the closest is taken)."""
    from fometa.cli import main

    run = tmp_path_factory.mktemp("tiny_run") / "run"
    assert main(["train", "--data", str(tiny_images), "--out", str(run), *TINY_TRAIN]) == 0
    return run


@pytest.fixture
def tiny_run_on_previous(tmp_path, tiny_run):
    """``(run folder, iteration)``: a copy of the tiny run whose latest checkpoint is unreadable, beside a
    previous one (``checkpoint.prev.h5``, at ``iteration``, one before the latest)."""
    import dataclasses
    import shutil

    from fometa import checkpoint

    run = shutil.copytree(tiny_run, tmp_path / "run_on_previous")
    ckpt = checkpoint.load(run / "checkpoint.h5")
    checkpoint.save(run / "checkpoint.prev.h5", dataclasses.replace(ckpt, iteration=ckpt.iteration - 1))
    (run / "checkpoint.h5").write_bytes(b"not a checkpoint")
    return run, ckpt.iteration - 1
