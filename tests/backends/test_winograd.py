"""Winograd F(2x2, 3x3) (fometa/backends/kernels.py, winograd_*): a stride-1 3x3 convolution and its
gradients as 16 matrix products between transforms.

The transforms are exact algebra, so in float64 the convolution, its kernel gradient and its input
gradient equal the patch-matrix ones (fometa/layers/conv2d.py's im2col formulation) to round-off,
for every geometry and both paddings; the compiled transforms (fometa/backends/numba_kernels.py)
equal the generic ones bit for bit, and in float32 the Winograd convolution is as close to the
float64 result as the direct one.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fometa.backends import kernels
from fometa.layers.padding import out_size_and_pads


def geometry(h, w, padding):
    oh, top, _ = out_size_and_pads(h, 3, 1, padding)
    ow, left, _ = out_size_and_pads(w, 3, 1, padding)
    return oh, ow, top, left


def patches(x, oh, ow, top, left):
    t, b, _, _, c = x.shape
    return kernels.im2col_unpadded(x, 3, 3, 1, top, left, oh, ow).reshape(t, b * oh * ow, 9 * c)


def winograd_conv(x, g, oh, ow, top, left, impl=kernels):
    """The forward pass as the fused engine runs it: ``(conv output, input tiles, U)``."""
    th, tw = kernels.winograd_tiles(oh, ow)
    v = impl.winograd_input(x, top, left, th, tw)
    u = impl.winograd_kernel(g)
    return impl.winograd_output(np.matmul(v, u), x.shape[1], oh, ow), v, u


def winograd_grads(x, dz, v, u, oh, ow, top, left, impl=kernels):
    """``(kernel gradient, input gradient)`` as the fused engine's backward pass computes them."""
    th, tw = kernels.winograd_tiles(oh, ow)
    dm = impl.winograd_output_grad(dz, x.shape[1], oh, ow)
    dg = impl.winograd_kernel_grad(np.matmul(v.transpose(0, 1, 3, 2), dm))
    dx = impl.winograd_input_grad(np.matmul(dm, u.transpose(0, 1, 3, 2)), x.shape, top, left, th, tw)
    return dg, dx


GEOMETRY = dict(tasks=st.integers(1, 2), batch=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
                c=st.integers(1, 4), k=st.integers(1, 4), padding=st.sampled_from(["same", "valid"]))


@given(**GEOMETRY)
def test_convolution_and_gradients_equal_the_patch_products(tasks, batch, h, w, c, k, padding):
    assume(padding == "same" or (h >= 3 and w >= 3))
    oh, ow, top, left = geometry(h, w, padding)
    rng = np.random.default_rng(h * 1000 + w * 100 + c * 10 + k)
    x = rng.standard_normal((tasks, batch, h, w, c))
    g = rng.standard_normal((tasks, 3, 3, c, k))
    cols = patches(x, oh, ow, top, left)
    z, v, u = winograd_conv(x, g, oh, ow, top, left)
    want = np.matmul(cols, g.reshape(tasks, 9 * c, k))
    np.testing.assert_allclose(z, want, rtol=0, atol=1e-12 * max(1.0, np.abs(want).max()))
    dz = rng.standard_normal(z.shape)
    dg, dx = winograd_grads(x, dz, v, u, oh, ow, top, left)
    dg_want = np.matmul(cols.transpose(0, 2, 1), dz).reshape(g.shape)
    dcols = np.matmul(dz, g.reshape(tasks, 9 * c, k).transpose(0, 2, 1)).reshape(tasks, batch, oh, ow, 9, c)
    dx_want = kernels.col2im_unpadded(dcols, x.shape, 3, 3, 1, top, left)
    np.testing.assert_allclose(dg, dg_want, rtol=0, atol=1e-12 * max(1.0, np.abs(dg_want).max()))
    np.testing.assert_allclose(dx, dx_want, rtol=0, atol=1e-12 * max(1.0, np.abs(dx_want).max()))


def test_kernel_transform_and_its_gradient_are_adjoint():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((2, 3, 3, 4, 5))
    du = rng.standard_normal((2, 16, 4, 5))
    lhs = np.sum(kernels.winograd_kernel(g) * du)
    rhs = np.sum(g * kernels.winograd_kernel_grad(du))
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    assert kernels.winograd_kernel(g.astype(np.float32)).dtype == np.float32


def test_float32_winograd_is_as_close_to_float64_as_the_direct_convolution():
    """Mini-ImageNet's second convolution (42 x 42 x 32 to 32) on inputs of its scale."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 42, 42, 32))
    g = rng.standard_normal((1, 3, 3, 32, 32)) * np.sqrt(2 / (9 * 64))
    oh, ow, top, left = geometry(42, 42, "same")
    exact = np.matmul(patches(x, oh, ow, top, left), g.reshape(1, 288, 32))
    x32, g32 = x.astype(np.float32), g.astype(np.float32)
    direct = np.matmul(patches(x32, oh, ow, top, left), g32.reshape(1, 288, 32))
    wino = winograd_conv(x32, g32, oh, ow, top, left)[0]
    scale = np.abs(exact).max()
    err_direct = np.abs(direct - exact).max() / scale
    err_wino = np.abs(wino - exact).max() / scale
    assert err_wino <= max(2 * err_direct, 1e-6), (err_wino, err_direct)


def compiled():
    return pytest.importorskip("fometa.backends.numba_kernels", reason="the fast extra (numba) is not installed")


@given(**GEOMETRY, dtype=st.sampled_from([np.float32, np.float64]), sliced=st.booleans())
def test_compiled_transforms_equal_the_generic_ones(tasks, batch, h, w, c, k, padding, dtype, sliced):
    """Bit for bit, also on the non-contiguous blocks (runs of a task's images) the engine passes."""
    numba_kernels = compiled()
    assume(padding == "same" or (h >= 3 and w >= 3))
    oh, ow, top, left = geometry(h, w, padding)
    rng = np.random.default_rng(h * 1000 + w * 100 + c * 10 + k)
    x = rng.standard_normal((tasks, batch + 2, h, w, c)).astype(dtype)
    x = x[:, 1:-1] if sliced else np.ascontiguousarray(x[:, 1:-1])
    g = rng.standard_normal((tasks, 3, 3, c, k)).astype(dtype)
    z_gen, v_gen, u = winograd_conv(x, g, oh, ow, top, left, kernels)
    z_fast, v_fast, u_fast = winograd_conv(x, g, oh, ow, top, left, numba_kernels)
    assert np.array_equal(v_fast, v_gen) and np.array_equal(u_fast, u) and np.array_equal(z_fast, z_gen)
    du = rng.standard_normal(u.shape).astype(dtype)
    assert np.array_equal(numba_kernels.winograd_kernel_grad(du), kernels.winograd_kernel_grad(du))
    dz = rng.standard_normal(z_gen.shape).astype(dtype)
    for gen, fast, what in zip(winograd_grads(x, dz, v_gen, u, oh, ow, top, left, kernels),
                               winograd_grads(x, dz, v_gen, u, oh, ow, top, left, numba_kernels),
                               ("kernel gradient", "input gradient"), strict=True):
        assert np.array_equal(fast, gen), f"{what}: compiled and generic differ by {np.abs(fast - gen).max():.3g}"


def test_compiled_output_transforms_write_into_blocks_of_a_larger_array():
    """The engine writes each block's output and input gradient into part of the whole call's arrays."""
    numba_kernels = compiled()
    rng = np.random.default_rng(2)
    oh = ow = 5
    th, tw = kernels.winograd_tiles(oh, ow)
    m = rng.standard_normal((1, 16, 2 * th * tw, 3)).astype(np.float32)
    for impl in (kernels, numba_kernels):
        z = np.full((2, 4 * oh * ow, 3), 7.0, np.float32)
        impl.winograd_output(m, 2, oh, ow, out=z[1:, oh * ow : 3 * oh * ow])
        assert np.array_equal(z[1:, oh * ow : 3 * oh * ow], kernels.winograd_output(m, 2, oh, ow))
        assert (z[0] == 7).all() and (z[1, : oh * ow] == 7).all() and (z[1, 3 * oh * ow :] == 7).all()
        dv = rng.standard_normal((1, 16, 2 * th * tw, 3)).astype(np.float32)
        dx = np.full((2, 4, 5, 5, 3), 7.0, np.float32)
        impl.winograd_input_grad(dv, (1, 2, 5, 5, 3), 1, 1, th, tw, out=dx[1:, 1:3])
        assert np.array_equal(dx[1:, 1:3], kernels.winograd_input_grad(dv, (1, 2, 5, 5, 3), 1, 1, th, tw))
        assert (dx[0] == 7).all() and (dx[1, 0] == 7).all() and (dx[1, 3] == 7).all()
