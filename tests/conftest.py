"""Shared test configuration: hypothesis profiles and the GPU marker's skip logic.

``HYPOTHESIS_PROFILE=ci`` (the default; 50 examples a property, the same ones on every run) or
``dev`` (10 random ones, for quick local runs). Numerical properties have no deadline.

Tests marked ``gpu`` run only where CuPy is installed and a GPU is visible (see the end of this file).
"""
import os
import warnings

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
