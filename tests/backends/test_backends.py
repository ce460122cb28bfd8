"""Backends: names, the FOMETA_BACKEND default, errors when CuPy or a GPU is missing, moving
arrays, and the im2col / col2im kernels (entry-wise definition and adjointness)."""
import sys
import types

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fometa
from fometa import backends
from fometa.backends import Backend, BackendError, array_module, backend_of, get_backend, kernels


@pytest.fixture
def fresh_cache(monkeypatch):
    """An empty backend cache, so that a CuPy backend built by another test is not reused."""
    monkeypatch.setattr(backends, "_CACHE", {"numpy": backends._NUMPY})


@pytest.fixture
def no_cupy(monkeypatch, fresh_cache):
    """Make ``import cupy`` fail, whether or not CuPy is installed."""
    monkeypatch.setitem(sys.modules, "cupy", None)


def _fake_cupy(monkeypatch, device_count):
    """A stand-in CuPy module whose runtime reports ``device_count`` GPUs (an int, or an exception)."""

    def count():
        if isinstance(device_count, Exception):
            raise device_count
        return device_count

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=count))
    monkeypatch.setitem(sys.modules, "cupy", fake)


@pytest.mark.parametrize("name", ["numpy", "NumPy", " numpy "])
def test_numpy_by_name(name):
    be = get_backend(name)
    assert be.name == "numpy" and be.xp is np, be
    assert be is get_backend("numpy"), "backends are cached: one object per name"


def test_exports():
    assert fometa.get_backend is get_backend and fometa.BackendError is BackendError and fometa.Backend is Backend
    assert issubclass(BackendError, RuntimeError)


def test_instance_passes_through():
    be = Backend()
    assert get_backend(be) is be


def test_default_is_numpy_without_the_environment_variable(monkeypatch):
    monkeypatch.delenv("FOMETA_BACKEND", raising=False)
    assert get_backend().name == "numpy"
    monkeypatch.setenv("FOMETA_BACKEND", "")
    assert get_backend().name == "numpy", "an empty FOMETA_BACKEND means the default"


def test_environment_variable_sets_the_default(monkeypatch, no_cupy):
    monkeypatch.setenv("FOMETA_BACKEND", "numpy")
    assert get_backend().name == "numpy"
    monkeypatch.setenv("FOMETA_BACKEND", "cupy:1")
    with pytest.raises(BackendError, match=r"cupy:1.*not installed"):
        get_backend()
    monkeypatch.setenv("FOMETA_BACKEND", "tpu")
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        get_backend()


@pytest.mark.parametrize("name", ["", "gpu", "cupy:", "cupy:-1", "cupy:x", "cupy1", "numpy:0", "cuda"])
def test_invalid_names_raise_value_error(name):
    with pytest.raises(ValueError, match=r"unknown backend .*expected 'numpy', 'cupy' or 'cupy:N'"):
        get_backend(name)


@pytest.mark.parametrize("name", ["cupy", "cupy:0", "CuPy:2"])
def test_missing_cupy_raises_backend_error(name, no_cupy):
    with pytest.raises(BackendError, match="not installed") as info:
        get_backend(name)
    assert "pip install" in str(info.value), f"the message should say how to install CuPy: {info.value}"


@pytest.mark.parametrize("count", [0, RuntimeError("cudaErrorNoDevice")])
def test_cupy_without_a_gpu_raises_backend_error(monkeypatch, fresh_cache, count):
    _fake_cupy(monkeypatch, count)
    with pytest.raises(BackendError, match="no GPU is visible"):
        get_backend("cupy")


def test_cupy_device_index_out_of_range(monkeypatch, fresh_cache):
    _fake_cupy(monkeypatch, 2)
    with pytest.raises(BackendError, match=r"no such GPU; 2 visible"):
        get_backend("cupy:2")


def test_numpy_moves_arrays():
    be = get_backend("numpy")
    a = be.asarray([1, 2, 3], dtype=np.float32)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32, a
    assert be.to_host(a) is a or np.array_equal(be.to_host(a), a)
    assert array_module(a) is np and backend_of(a) is be
    be.synchronize()  # a no-op on the CPU


@st.composite
def patch_geometries(draw):
    kh, kw, stride = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    hp, wp = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    assume(hp >= kh and wp >= kw)
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), hp, wp, draw(st.integers(1, 3)))
    return shape, kh, kw, stride, (hp - kh) // stride + 1, (wp - kw) // stride + 1


@given(geom=patch_geometries(), seed=st.integers(0, 2**32 - 1))
def test_im2col_entries(geom, seed):
    shape, kh, kw, s, oh, ow = geom
    x = np.random.default_rng(seed).standard_normal(shape)
    cols = kernels.im2col(x, kh, kw, s, oh, ow)
    assert cols.shape == shape[:2] + (oh, ow, kh * kw, shape[-1]), cols.shape
    for i in range(oh):
        for j in range(ow):
            for di in range(kh):
                for dj in range(kw):
                    np.testing.assert_array_equal(
                        cols[:, :, i, j, di * kw + dj, :], x[:, :, i * s + di, j * s + dj, :],
                        err_msg=f"im2col entry (i={i}, j={j}, di={di}, dj={dj})",
                    )
    np.testing.assert_array_equal(Backend().im2col(x, kh, kw, s, oh, ow), cols, err_msg="Backend.im2col")


@given(geom=patch_geometries(), seed=st.integers(0, 2**32 - 1))
def test_col2im_is_the_adjoint_of_im2col(geom, seed):
    """``<im2col(x), c> == <x, col2im(c)>`` for every x and c."""
    shape, kh, kw, s, oh, ow = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    c = rng.standard_normal(shape[:2] + (oh, ow, kh * kw, shape[-1]))
    back = kernels.col2im(c, shape, kh, kw, s)
    assert back.shape == shape, back.shape
    lhs = float((kernels.im2col(x, kh, kw, s, oh, ow) * c).sum())
    rhs = float((x * back).sum())
    assert abs(lhs - rhs) <= 1e-12 * (abs(lhs) + abs(rhs) + 1.0), f"<im2col x, c> = {lhs} != <x, col2im c> = {rhs}"
    np.testing.assert_array_equal(Backend().col2im(c, shape, kh, kw, s), back, err_msg="Backend.col2im")
