"""Parity of the NumPy backend's cache-sized chunking with one unchunked pass.

Conv2D splits large batches into blocks of tasks, or of one task's images, whose im2col
matrices stay near ``Backend.chunk_bytes``; the backward pass then rebuilds each block's
matrix. Every result must equal the unchunked computation to round-off.
"""
import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from fometa.backends import get_backend
from fometa.layers import Conv2D


def _run(layer, params, x, dy, chunk_bytes):
    backend = get_backend("numpy")
    saved = backend.chunk_bytes
    backend.chunk_bytes = chunk_bytes
    try:
        y, cache = layer.forward(params, x)
        dx, grads = layer.backward(params, cache, dy)
        _, grads_only = layer.backward(params, cache, dy, need_dx=False)
    finally:
        backend.chunk_bytes = saved
    return y, dx, grads, grads_only


@given(
    tasks=st.integers(1, 4), batch=st.integers(1, 5), h=st.integers(1, 7), w=st.integers(1, 7),
    c_in=st.integers(1, 3), c_out=st.integers(1, 3), k=st.integers(1, 3), stride=st.integers(1, 3),
    padding=st.sampled_from(["same", "valid"]), chunk_bytes=st.sampled_from([1, 200, 2000, 20000]),
    seed=st.integers(0, 2**32 - 1),
)
def test_conv2d_chunked_equals_unchunked(tasks, batch, h, w, c_in, c_out, k, stride, padding, chunk_bytes, seed):
    assume(padding == "same" or (h >= k and w >= k))
    rng = np.random.default_rng(seed)
    layer = Conv2D(c_in, c_out, k, stride, padding)
    params = {
        "kernel": rng.standard_normal((tasks, k, k, c_in, c_out)),
        "bias": rng.standard_normal((tasks, c_out)),
    }
    x = rng.standard_normal((tasks, batch, h, w, c_in))
    oh, ow, _ = layer.output_shape((h, w, c_in))
    dy = rng.standard_normal((tasks, batch, oh, ow, c_out))
    ref = _run(layer, params, x, dy, None)
    got = _run(layer, params, x, dy, chunk_bytes)
    for name, a, b in [("y", got[0], ref[0]), ("dx", got[1], ref[1])]:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"{name}, chunk_bytes={chunk_bytes}")
    for key in ref[2]:
        np.testing.assert_allclose(got[2][key], ref[2][key], rtol=1e-12, atol=1e-12, err_msg=f"d{key}, chunked")
        np.testing.assert_allclose(got[3][key], ref[2][key], rtol=1e-12, atol=1e-12, err_msg=f"d{key}, need_dx=False")
    assert got[3] is not None and _run(layer, params, x, dy, chunk_bytes)[1].dtype == np.float64
