"""Compiled (numba) kernels for the NumPy backend's fused fast path.

The fused engine (:mod:`fometa.models.fused`) spends about half of an Omniglot meta-iteration
outside its matrix products, in passes over memory that NumPy cannot fuse: batch norm, ReLU and
the 2x2 max-pool (about a dozen array calls a block, each a pass over the conv output), patch
gathering and scattering, Adam over the flat ``(T, P)`` buffers. Here each of them is one loop,
compiled once and cached on disk (``cache=True``), and runs without the GIL (``nogil=True``)
so that the task-block threads of :mod:`fometa.parallel` run it side by side.

Every kernel computes what its generic counterpart computes (:mod:`fometa.backends.kernels`,
the fused engine's NumPy code, :class:`fometa.optim.Adam`), per task, in the same precision and
with its sums in the same order, so the compiled path is bit for bit the NumPy one (for layers
of more than one channel: with one, NumPy's einsum sums in another order and the two agree to
round-off; ``tests/backends/test_numba_kernels.py``), and a task's numbers do not depend on
the tasks beside it:

* **batch norm + (2x2 max-pool) + ReLU, forward** (:func:`bn_act_forward`): the mean and the
  variance (two reads of the conv output ``z``, as ``fometa.layers.batchnorm`` computes them),
  then one pass that writes the block output (and, with the pool, which offset won each
  window: a byte). ``xhat`` and the ReLU mask are not stored: the backward pass recomputes
  them from ``z`` with the same arithmetic, so they are bit for bit the forward pass's.
* **batch norm + (max-pool) + ReLU, backward** (:func:`bn_act_backward`): one pass that sums
  ``dgamma`` and ``dbeta`` and one that writes ``dz`` (and sums the conv bias's gradient).
* **patches** (:func:`im2col_unpadded`, :func:`col2im_unpadded`): the gather writes each patch
  row once, zeros where the window leaves the input; the scatter is written as a gather (each
  input position sums the taps that reach it), so every output is written once and nothing is
  zero-filled first.
* **Adam** (:func:`adam_flat`): the moment and parameter update over the flat buffers in one
  pass, in place, with TensorFlow's arithmetic in the parameters' precision (bit for bit the
  generic update).

This module imports numba at its top: :func:`fometa.backends.compiled_kernels` imports it only
when the ``fast`` extra is installed and ``FOMETA_NUMBA`` is not ``0``.
"""
from __future__ import annotations

import functools

import numba
import numpy as np

__all__ = ["bn_act_forward", "bn_act_backward", "im2col_unpadded", "col2im_unpadded", "winograd_kernel",
           "winograd_kernel_grad", "winograd_input", "winograd_output", "winograd_output_grad", "winograd_input_grad",
           "adam_flat", "warm_up"]

# error_model="numpy": a division by zero gives inf or nan as in NumPy instead of raising, which
# also lets LLVM vectorize the loops that divide
_jit = numba.njit(nogil=True, cache=True, error_model="numpy")


# --------------------------------------------------------------------------------------
# batch norm on batch statistics, (2x2 max-pool), ReLU
# --------------------------------------------------------------------------------------
# The NumPy fast path sums over rows with einsum, which (for more than one channel) adds the
# rows one after another in the array's precision; the sums here do the same, in the same
# order, so that means, variances, xhat and every decision of the pool and the ReLU are bit
# for bit the NumPy path's (and training runs the same with and without these kernels).


@_jit
def _bn_stats(z, bias, rows, eps, mu, inv):
    """Per task and channel, the mean of ``v = z + bias`` over the first ``rows`` rows of ``z``
    ``(T, M, C)`` and ``1 / sqrt(var + eps)`` with ``var`` the mean of ``(v - mu)^2``, into
    ``mu`` and ``inv`` ``(T, C)``: two passes, as ``fometa.layers.batchnorm`` computes them.
    ``rows`` and ``eps`` come in ``z``'s precision. Four rows go through the channel loop at
    a time, added in order."""
    t_count, _, c_count = z.shape
    one = z.dtype.type(1)
    acc = np.empty(c_count, z.dtype)
    n = int(rows)
    n4 = n - n % 4
    for t in range(t_count):
        bt, mt = bias[t], mu[t]
        acc[:] = 0
        for m in range(0, n4, 4):
            z0, z1, z2, z3 = z[t, m], z[t, m + 1], z[t, m + 2], z[t, m + 3]
            for c in range(c_count):
                b = bt[c]
                acc[c] = (((acc[c] + (z0[c] + b)) + (z1[c] + b)) + (z2[c] + b)) + (z3[c] + b)
        for m in range(n4, n):
            zr = z[t, m]
            for c in range(c_count):
                acc[c] += zr[c] + bt[c]
        for c in range(c_count):
            mt[c] = acc[c] / rows
        acc[:] = 0
        for m in range(0, n4, 4):
            z0, z1, z2, z3 = z[t, m], z[t, m + 1], z[t, m + 2], z[t, m + 3]
            for c in range(c_count):
                b, u = bt[c], mt[c]
                d0 = (z0[c] + b) - u
                d1 = (z1[c] + b) - u
                d2 = (z2[c] + b) - u
                d3 = (z3[c] + b) - u
                acc[c] = (((acc[c] + d0 * d0) + d1 * d1) + d2 * d2) + d3 * d3
        for m in range(n4, n):
            zr = z[t, m]
            for c in range(c_count):
                d = (zr[c] + bt[c]) - mt[c]
                acc[c] += d * d
        for c in range(c_count):
            inv[t, c] = one / np.sqrt(acc[c] / rows + eps)


@_jit
def _bn_relu_forward(z, bias, mu, inv, scale, offset, y):
    """``y = relu(((z + bias) - mu) * inv * scale + offset)``, ``z`` and ``y`` ``(T, M, C)``."""
    t_count, m_count, c_count = z.shape
    zero = z.dtype.type(0)
    for t in range(t_count):
        bt, mt, it, st, ot = bias[t], mu[t], inv[t], scale[t], offset[t]
        for m in range(m_count):
            zr, yr = z[t, m], y[t, m]
            for c in range(c_count):
                v = ((zr[c] + bt[c]) - mt[c]) * it[c] * st[c] + ot[c]
                yr[c] = v if (v > zero or v != v) else zero  # NaN stays NaN, as np.maximum


@_jit
def _bn_pool_relu_forward(z, bias, mu, inv, scale, offset, batch, h, w, y, winner):
    """The same with a 2x2 max-pool (stride 2, 'same') between batch norm and ReLU: ``z`` is
    ``(T, batch * h * w, C)`` in row-major ``(batch, h, w)`` order, ``y`` ``(T, batch, ph, pw, C)``.
    ``winner`` (same shape, uint8): which offset (row-major in the window) holds the window's
    first maximum; positions past an odd edge never win (TensorFlow's -inf padding)."""
    t_count, _, c_count = z.shape
    ph, pw = y.shape[2], y.shape[3]
    zero = z.dtype.type(0)
    for t in range(t_count):
        for b in range(batch):
            for i in range(ph):
                r0 = 2 * i
                r1 = min(r0 + 1, h - 1)  # an odd height's last window has one row: r1 == r0 never wins
                for j in range(pw):
                    c0 = 2 * j
                    c1 = min(c0 + 1, w - 1)
                    m00 = (b * h + r0) * w + c0
                    m01 = (b * h + r0) * w + c1
                    m10 = (b * h + r1) * w + c0
                    m11 = (b * h + r1) * w + c1
                    for c in range(c_count):
                        bc, mc, ic, sc, oc = bias[t, c], mu[t, c], inv[t, c], scale[t, c], offset[t, c]
                        best = ((z[t, m00, c] + bc) - mc) * ic * sc + oc
                        k = 0
                        v = ((z[t, m01, c] + bc) - mc) * ic * sc + oc
                        if v > best or v != v:  # a NaN wins, as np.maximum propagates it
                            best, k = v, 1
                        v = ((z[t, m10, c] + bc) - mc) * ic * sc + oc
                        if v > best or v != v:
                            best, k = v, 2
                        v = ((z[t, m11, c] + bc) - mc) * ic * sc + oc
                        if v > best or v != v:
                            best, k = v, 3
                        y[t, b, i, j, c] = best if (best > zero or best != best) else zero
                        winner[t, b, i, j, c] = k


@_jit
def _dz(d, xh, a, k0, k1, inside, full):
    """Batch norm's input gradient at one entry, with fometa.layers.batchnorm's arithmetic:
    ``(d - (xh k1 + k0)) a`` when every row supplied the statistics, else ``d a - (xh k1 + k0) a``
    for a row that did and ``d a`` for one that did not."""
    if full:
        return (d - (xh * k1 + k0)) * a
    if inside:
        return d * a - (xh * k1 + k0) * a
    return d * a


# The backward kernels sum into small arrays of their own and read one row of each array at a
# time: with fewer arrays that might overlap, LLVM vectorizes the channel loops.


@_jit
def _bn_relu_backward(z, bias, mu, inv, scale, offset, dy, rows, dz, dbias, dscale, doffset):
    """Gradients of :func:`_bn_relu_forward`: ``dz`` ``(T, M, C)`` and the per-channel sums."""
    t_count, m_count, c_count = z.shape
    zero = z.dtype.type(0)
    full = int(rows) == m_count
    sg = np.empty(c_count, z.dtype)
    sb = np.empty(c_count, z.dtype)
    sz = np.empty(c_count, z.dtype)
    for t in range(t_count):
        bt, mt, it, st, ot = bias[t], mu[t], inv[t], scale[t], offset[t]
        sg[:] = 0
        sb[:] = 0
        sz[:] = 0
        for m in range(m_count):
            zr, dyr = z[t, m], dy[t, m]
            for c in range(c_count):
                xh = ((zr[c] + bt[c]) - mt[c]) * it[c]
                d = dyr[c] if xh * st[c] + ot[c] > zero else zero
                sg[c] += d * xh
                sb[c] += d
        a = st * it
        k1 = sg / rows
        k0 = sb / rows
        for m in range(m_count):
            zr, dyr, dzr = z[t, m], dy[t, m], dz[t, m]
            inside = m < rows
            for c in range(c_count):
                xh = ((zr[c] + bt[c]) - mt[c]) * it[c]
                d = dyr[c] if xh * st[c] + ot[c] > zero else zero
                g = _dz(d, xh, a[c], k0[c], k1[c], inside, full)
                dzr[c] = g
                sz[c] += g
        dscale[t] = sg
        doffset[t] = sb
        dbias[t] = sz


@_jit
def _bn_pool_relu_backward(z, bias, mu, inv, scale, offset, winner, dy, rows, batch, h, w, dz, dbias, dscale, doffset):
    """Gradients of :func:`_bn_pool_relu_forward` (``dy`` and ``winner`` ``(T, batch, ph, pw, C)``):
    each window's gradient goes to its winner when the window's maximum is positive (ReLU).
    The rows of ``z`` are visited in order, as the NumPy path's sums visit them."""
    t_count, m_count, c_count = z.shape
    zero = z.dtype.type(0)
    full = int(rows) == m_count
    sg = np.empty(c_count, z.dtype)
    sb = np.empty(c_count, z.dtype)
    sz = np.empty(c_count, z.dtype)
    for t in range(t_count):
        bt, mt, it, st, ot = bias[t], mu[t], inv[t], scale[t], offset[t]
        sg[:] = 0
        sb[:] = 0
        sz[:] = 0
        for b in range(batch):
            for r in range(h):
                i, kr = r // 2, 2 * (r % 2)
                for q in range(w):
                    k = kr + q % 2
                    zr, wr, dyr = z[t, (b * h + r) * w + q], winner[t, b, i, q // 2], dy[t, b, i, q // 2]
                    for c in range(c_count):
                        xh = ((zr[c] + bt[c]) - mt[c]) * it[c]
                        d = dyr[c] if (wr[c] == k) & (xh * st[c] + ot[c] > zero) else zero
                        sg[c] += d * xh
                        sb[c] += d
        a = st * it
        k1 = sg / rows
        k0 = sb / rows
        for b in range(batch):
            for r in range(h):
                i, kr = r // 2, 2 * (r % 2)
                for q in range(w):
                    k = kr + q % 2
                    m = (b * h + r) * w + q
                    zr, wr, dyr, dzr = z[t, m], winner[t, b, i, q // 2], dy[t, b, i, q // 2], dz[t, m]
                    inside = m < rows
                    for c in range(c_count):
                        xh = ((zr[c] + bt[c]) - mt[c]) * it[c]
                        d = dyr[c] if (wr[c] == k) & (xh * st[c] + ot[c] > zero) else zero
                        g = _dz(d, xh, a[c], k0[c], k1[c], inside, full)
                        dzr[c] = g
                        sz[c] += g
        dscale[t] = sg
        doffset[t] = sb
        dbias[t] = sz


def _params(dt, *arrays):
    return tuple(np.ascontiguousarray(a, dtype=dt) for a in arrays)


def bn_act_forward(z, bias, scale, offset, eps, rows, spatial, pool, train=True):
    """Batch norm (statistics of the first ``rows`` rows), optional 2x2 max-pool, ReLU.

    ``z`` ``(T, M, C)``: the conv output without its bias, ``M = B * h * w`` rows in
    ``(B, h, w)`` order, ``spatial = (B, h, w)``. Returns ``(y, saved)``: ``y`` ``(T, B, h', w', C)``
    and what :func:`bn_act_backward` needs (``None`` unless ``train``)."""
    t, m, c = z.shape
    b, h, w = spatial
    dt = z.dtype
    mu = np.empty((t, c), dt)
    inv = np.empty((t, c), dt)
    bias, scale, offset = _params(dt, bias, scale, offset)
    _bn_stats(z, bias, dt.type(rows), dt.type(eps), mu, inv)
    winner = None
    if pool:
        y = np.empty((t, b, -(-h // 2), -(-w // 2), c), dt)
        winner = np.empty(y.shape, np.uint8)
        _bn_pool_relu_forward(z, bias, mu, inv, scale, offset, b, h, w, y, winner)
    else:
        y = np.empty((t, m, c), dt)
        _bn_relu_forward(z, bias, mu, inv, scale, offset, y)
        y = y.reshape(t, b, h, w, c)
    return y, ((z, mu, inv, rows, spatial, winner) if train else None)


def bn_act_backward(saved, bias, scale, offset, dy):
    """Gradients of :func:`bn_act_forward` for the block output's gradient ``dy``:
    ``(dz (T, M, C), dbias, dscale, doffset)`` with the three ``(T, C)``."""
    z, mu, inv, rows, (b, h, w), winner = saved
    t, m, c = z.shape
    dt = z.dtype
    bias, scale, offset, dy = _params(dt, bias, scale, offset, dy)
    dz = np.empty_like(z)
    dbias, dscale, doffset = np.empty((t, c), dt), np.empty((t, c), dt), np.empty((t, c), dt)
    if winner is not None:
        _bn_pool_relu_backward(z, bias, mu, inv, scale, offset, winner, dy, dt.type(rows), b, h, w, dz, dbias, dscale,
                               doffset)
    else:
        _bn_relu_backward(z, bias, mu, inv, scale, offset, dy.reshape(t, m, c), dt.type(rows), dz, dbias, dscale,
                          doffset)
    return dz, dbias, dscale, doffset


# --------------------------------------------------------------------------------------
# patches
# --------------------------------------------------------------------------------------
@_jit
def _im2col(x, shape, kh, kw, stride, top, left, oh, ow, out):
    """``out`` (flat ``(T, B, oh, ow, kh * kw * C)``) from ``x`` (flat ``(T, B, h, w, C)``, ``shape``
    its ``(T * B, h, w, C)``): for each output position and window row, the ``kw * C`` values are
    one contiguous run of ``x`` (zeros where the window leaves the input)."""
    n_images, h, w, c_count = shape
    run = kw * c_count
    zero = x.dtype.type(0)
    o = 0
    for n in range(n_images):
        image = n * h * w * c_count
        for i in range(oh):
            for j in range(ow):
                q0 = j * stride - left
                lo = max(0, -q0) * c_count  # the part of a window row that lies inside the input
                hi = max(lo, min(kw, w - q0) * c_count)
                for di in range(kh):
                    r = i * stride + di - top
                    # unsigned indices: no negative-index wraparound test, so the copies vectorize
                    if r < 0 or r >= h:
                        for e in range(run):
                            out[np.uint64(o + e)] = zero
                    elif run < 8:  # a short run: one loop with a select beats three short ones
                        src = image + (r * w + q0) * c_count
                        for e in range(run):
                            inside = lo <= e < hi
                            out[np.uint64(o + e)] = x[np.uint64(src + e if inside else 0)] if inside else zero
                    else:
                        src = image + (r * w + q0) * c_count
                        for e in range(lo):
                            out[np.uint64(o + e)] = zero
                        for e in range(lo, hi):
                            out[np.uint64(o + e)] = x[np.uint64(src + e)]
                        for e in range(hi, run):
                            out[np.uint64(o + e)] = zero
                    o += run


def im2col_unpadded(x, kh, kw, stride, top, left, out_h, out_w):
    """:func:`fometa.backends.kernels.im2col_unpadded`, compiled."""
    t, b, h, w, c = x.shape
    out = np.empty((t, b, out_h, out_w, kh * kw, c), x.dtype)
    _im2col(np.ascontiguousarray(x).reshape(-1), (t * b, h, w, c), kh, kw, stride, top, left, out_h, out_w,
            out.reshape(-1))
    return out


@_jit
def _col2im(cols, kh, kw, stride, top, left, taps, counts, dx):
    t_count, b_count, h, w, c_count = dx.shape
    oh, ow = cols.shape[2], cols.shape[3]
    acc = np.empty(c_count, dx.dtype)
    for t in range(t_count):
        for b in range(b_count):
            for r in range(h):
                for q in range(w):
                    acc[:] = 0
                    rc, qc = r % stride, q % stride
                    for n in range(counts[rc, qc]):
                        di, dj = taps[rc, qc, n, 0], taps[rc, qc, n, 1]
                        i = (r + top - di) // stride  # the output position that reaches (r, q) through tap (di, dj)
                        j = (q + left - dj) // stride
                        if 0 <= i < oh and 0 <= j < ow:
                            k = di * kw + dj
                            for c in range(c_count):
                                acc[c] += cols[t, b, i, j, k, c]
                    for c in range(c_count):
                        dx[t, b, r, q, c] = acc[c]


@functools.lru_cache(maxsize=256)
def _col2im_taps(h, w, kh, kw, stride, top, left, out_h, out_w):
    """For each class ``(r % stride, q % stride)`` of input positions, the taps ``(di, dj)`` that
    reach it, in the order in which :func:`fometa.backends.kernels.col2im_unpadded` adds them
    (a tap covering its whole class first, then the others row-major), so that every sum is
    the generic kernel's bit for bit."""
    taps = np.zeros((stride, stride, kh * kw, 2), np.int64)
    counts = np.zeros((stride, stride), np.int64)
    for r0 in range(min(stride, h)):
        for c0 in range(min(stride, w)):
            nq, nw = -(-(h - r0) // stride), -(-(w - c0) // stride)
            found = []
            for di in range(kh):
                if (r0 + top - di) % stride:
                    continue
                si = (r0 + top - di) // stride
                q0, q1 = max(0, -si), min(nq, out_h - si)
                if q1 <= q0:
                    continue
                for dj in range(kw):
                    if (c0 + left - dj) % stride:
                        continue
                    sj = (c0 + left - dj) // stride
                    w0, w1 = max(0, -sj), min(nw, out_w - sj)
                    if w1 <= w0:
                        continue
                    full = q0 == 0 and q1 == nq and w0 == 0 and w1 == nw
                    found.append((not full, di, dj))
            found.sort(key=lambda tap: tap[0])
            counts[r0, c0] = len(found)
            for n, (_, di, dj) in enumerate(found):
                taps[r0, c0, n] = di, dj
    return taps, counts


def col2im_unpadded(cols, in_shape, kh, kw, stride, top, left, out=None):
    """:func:`fometa.backends.kernels.col2im_unpadded`, compiled (as a gather: each input
    position sums the taps that reach it, so nothing is zero-filled and added to)."""
    if out is not None and out.flags.c_contiguous:
        dx = out
    else:
        dx = np.empty(in_shape, cols.dtype)
    taps, counts = _col2im_taps(in_shape[2], in_shape[3], kh, kw, stride, top, left, cols.shape[2], cols.shape[3])
    _col2im(np.ascontiguousarray(cols), kh, kw, stride, top, left, taps, counts, dx)
    if out is not None and dx is not out:
        out[...] = dx
        return out
    return dx


# --------------------------------------------------------------------------------------
# Winograd F(2x2, 3x3) transforms
# --------------------------------------------------------------------------------------
# The generic transforms (fometa.backends.kernels.winograd_*) are whole-array expressions; here
# each is one loop over the tiles, the channels innermost, with every sum in the same order.
# The input transform builds the row stage of one tile row at a time in a small buffer whose
# padding columns stay zero, so the column stage runs without bounds tests.


@_jit
def _wino_kernel(g, u):
    t_count, _, _, c_count, k_count = g.shape
    half = g.dtype.type(0.5)
    rows = np.empty((4, 3, k_count), g.dtype)
    for t in range(t_count):
        for c in range(c_count):
            for e in range(3):
                for k in range(k_count):
                    g0, g1, g2 = g[t, 0, e, c, k], g[t, 1, e, c, k], g[t, 2, e, c, k]
                    rows[0, e, k] = g0
                    rows[1, e, k] = ((g0 + g1) + g2) * half
                    rows[2, e, k] = ((g0 - g1) + g2) * half
                    rows[3, e, k] = g2
            for a in range(4):
                for k in range(k_count):
                    c0, c1, c2 = rows[a, 0, k], rows[a, 1, k], rows[a, 2, k]
                    u[t, 4 * a, c, k] = c0
                    u[t, 4 * a + 1, c, k] = ((c0 + c1) + c2) * half
                    u[t, 4 * a + 2, c, k] = ((c0 - c1) + c2) * half
                    u[t, 4 * a + 3, c, k] = c2


def winograd_kernel(kernel):
    """:func:`fometa.backends.kernels.winograd_kernel`, compiled."""
    t, _, _, c, k = kernel.shape
    u = np.empty((t, 16, c, k), kernel.dtype)
    _wino_kernel(kernel, u)
    return u


@_jit
def _wino_kernel_grad(du, g):
    t_count, _, c_count, k_count = du.shape
    half = du.dtype.type(0.5)
    rows = np.empty((3, 4, k_count), du.dtype)
    for t in range(t_count):
        for c in range(c_count):
            for e in range(4):
                for k in range(k_count):
                    r0, r1, r2, r3 = du[t, e, c, k], du[t, 4 + e, c, k], du[t, 8 + e, c, k], du[t, 12 + e, c, k]
                    rows[0, e, k] = r0 + (r1 + r2) * half
                    rows[1, e, k] = (r1 - r2) * half
                    rows[2, e, k] = (r1 + r2) * half + r3
            for i in range(3):
                for k in range(k_count):
                    c0, c1, c2, c3 = rows[i, 0, k], rows[i, 1, k], rows[i, 2, k], rows[i, 3, k]
                    g[t, i, 0, c, k] = c0 + (c1 + c2) * half
                    g[t, i, 1, c, k] = (c1 - c2) * half
                    g[t, i, 2, c, k] = (c1 + c2) * half + c3


def winograd_kernel_grad(du):
    """:func:`fometa.backends.kernels.winograd_kernel_grad`, compiled."""
    t, _, c, k = du.shape
    g = np.empty((t, 3, 3, c, k), du.dtype)
    _wino_kernel_grad(np.ascontiguousarray(du), g)
    return g


@_jit
def _wino_input(x, top, left, th, tw, v):
    t_count, b_count, h, w, c_count = x.shape
    wp = 2 * tw + 2
    zero = x.dtype.type(0)
    stage = np.zeros((4, wp, c_count), x.dtype)
    q_end = min(w, wp - left)
    for t in range(t_count):
        n = 0
        for b in range(b_count):
            for i in range(th):
                r0 = 2 * i - top
                ok0, ok1, ok2, ok3 = 0 <= r0 < h, 0 <= r0 + 1 < h, 0 <= r0 + 2 < h, 0 <= r0 + 3 < h
                if ok0 and ok3:  # the whole window inside: no zeros to substitute
                    for q in range(q_end):
                        qq = q + left
                        for c in range(c_count):
                            d0 = x[t, b, r0, q, c]
                            d1 = x[t, b, r0 + 1, q, c]
                            d2 = x[t, b, r0 + 2, q, c]
                            d3 = x[t, b, r0 + 3, q, c]
                            stage[0, qq, c] = d0 - d2
                            stage[1, qq, c] = d1 + d2
                            stage[2, qq, c] = d2 - d1
                            stage[3, qq, c] = d1 - d3
                else:
                    for q in range(q_end):
                        qq = q + left
                        for c in range(c_count):
                            d0 = x[t, b, r0, q, c] if ok0 else zero
                            d1 = x[t, b, r0 + 1, q, c] if ok1 else zero
                            d2 = x[t, b, r0 + 2, q, c] if ok2 else zero
                            d3 = x[t, b, r0 + 3, q, c] if ok3 else zero
                            stage[0, qq, c] = d0 - d2
                            stage[1, qq, c] = d1 + d2
                            stage[2, qq, c] = d2 - d1
                            stage[3, qq, c] = d1 - d3
                for j in range(tw):
                    q0 = 2 * j
                    for a in range(4):
                        for c in range(c_count):
                            e0, e1 = stage[a, q0, c], stage[a, q0 + 1, c]
                            e2, e3 = stage[a, q0 + 2, c], stage[a, q0 + 3, c]
                            v[t, 4 * a, n, c] = e0 - e2
                            v[t, 4 * a + 1, n, c] = e1 + e2
                            v[t, 4 * a + 2, n, c] = e2 - e1
                            v[t, 4 * a + 3, n, c] = e1 - e3
                    n += 1


def winograd_input(x, top, left, th, tw):
    """:func:`fometa.backends.kernels.winograd_input`, compiled."""
    t, b = x.shape[:2]
    v = np.empty((t, 16, b * th * tw, x.shape[4]), x.dtype)
    _wino_input(x, top, left, th, tw, v)
    return v


@_jit
def _wino_output(m, batch, out_h, out_w, th, tw, z):
    t_count, _, _, k_count = m.shape
    for t in range(t_count):
        n = 0
        for b in range(batch):
            for i in range(th):
                r = 2 * i
                for j in range(tw):
                    q = 2 * j
                    row0 = (b * out_h + r) * out_w + q
                    right, down = q + 1 < out_w, r + 1 < out_h
                    # where a neighbour falls past the edge its row is the corner's, written last
                    row01 = row0 + 1 if right else row0
                    row10 = row0 + out_w if down else row0
                    row11 = row0 + out_w + 1 if right and down else row0
                    for k in range(k_count):
                        s0 = (m[t, 0, n, k] + m[t, 4, n, k]) + m[t, 8, n, k]
                        s1 = (m[t, 1, n, k] + m[t, 5, n, k]) + m[t, 9, n, k]
                        s2 = (m[t, 2, n, k] + m[t, 6, n, k]) + m[t, 10, n, k]
                        s3 = (m[t, 3, n, k] + m[t, 7, n, k]) + m[t, 11, n, k]
                        u0 = (m[t, 4, n, k] - m[t, 8, n, k]) - m[t, 12, n, k]
                        u1 = (m[t, 5, n, k] - m[t, 9, n, k]) - m[t, 13, n, k]
                        u2 = (m[t, 6, n, k] - m[t, 10, n, k]) - m[t, 14, n, k]
                        u3 = (m[t, 7, n, k] - m[t, 11, n, k]) - m[t, 15, n, k]
                        z[t, row11, k] = (u1 - u2) - u3
                        z[t, row10, k] = (u0 + u1) + u2
                        z[t, row01, k] = (s1 - s2) - s3
                        z[t, row0, k] = (s0 + s1) + s2
                    n += 1


def winograd_output(m, batch, out_h, out_w, out=None):
    """:func:`fometa.backends.kernels.winograd_output`, compiled."""
    t, k = m.shape[0], m.shape[3]
    th, tw = -(-out_h // 2), -(-out_w // 2)
    z = out if out is not None else np.empty((t, batch * out_h * out_w, k), m.dtype)
    _wino_output(np.ascontiguousarray(m), batch, out_h, out_w, th, tw, z)
    return z


@_jit
def _wino_output_grad(dz, batch, out_h, out_w, th, tw, dm):
    t_count, _, k_count = dz.shape
    zero = dz.dtype.type(0)
    for t in range(t_count):
        n = 0
        for b in range(batch):
            for i in range(th):
                r = 2 * i
                for j in range(tw):
                    q = 2 * j
                    row0 = (b * out_h + r) * out_w + q
                    right, down = q + 1 < out_w, r + 1 < out_h
                    full = right and down
                    row01 = row0 + 1 if right else row0
                    row10 = row0 + out_w if down else row0
                    row11 = row0 + out_w + 1 if full else row0
                    for half in range(2):  # 8 of the 16 planes a pass: fewer streams to write at once
                        for k in range(k_count):
                            p0 = dz[t, row0, k]
                            if full:  # (the same for every k: LLVM takes the test out of the loop)
                                p1, r0, r1 = dz[t, row01, k], dz[t, row10, k], dz[t, row11, k]
                            else:
                                p1 = dz[t, row01, k] if right else zero
                                r0 = dz[t, row10, k] if down else zero
                                r1 = zero
                            if half == 0:
                                b0, b1 = p0 + r0, p1 + r1
                                dm[t, 0, n, k] = p0
                                dm[t, 1, n, k] = p0 + p1
                                dm[t, 2, n, k] = p0 - p1
                                dm[t, 3, n, k] = -p1
                                dm[t, 4, n, k] = b0
                                dm[t, 5, n, k] = b0 + b1
                                dm[t, 6, n, k] = b0 - b1
                                dm[t, 7, n, k] = -b1
                            else:
                                c0, c1 = p0 - r0, p1 - r1
                                d0, d1 = -r0, -r1
                                dm[t, 8, n, k] = c0
                                dm[t, 9, n, k] = c0 + c1
                                dm[t, 10, n, k] = c0 - c1
                                dm[t, 11, n, k] = -c1
                                dm[t, 12, n, k] = d0
                                dm[t, 13, n, k] = d0 + d1
                                dm[t, 14, n, k] = d0 - d1
                                dm[t, 15, n, k] = -d1
                    n += 1


def winograd_output_grad(dz, batch, out_h, out_w):
    """:func:`fometa.backends.kernels.winograd_output_grad`, compiled."""
    t, _, k = dz.shape
    th, tw = -(-out_h // 2), -(-out_w // 2)
    dm = np.empty((t, 16, batch * th * tw, k), dz.dtype)
    _wino_output_grad(dz, batch, out_h, out_w, th, tw, dm)
    return dm


@_jit
def _wino_input_grad(dv, top, left, th, tw, dx):
    """Tile row by tile row: the window rows' strips (summed across tile columns) of the current
    tile row and the previous one, then each input row as the sum of the two that reach it."""
    t_count, b_count, h, w, c_count = dx.shape
    wp = 2 * tw + 2
    strips = np.empty((2, 4, wp, c_count), dv.dtype)  # [tile row parity, window row, column, channel]
    q = np.empty((4, 4, c_count), dv.dtype)  # column stage of one tile: q[a, s]
    zero = dv.dtype.type(0)
    col_end = min(wp, left + w)
    for t in range(t_count):
        n0 = 0
        for b in range(b_count):
            for i in range(th + 1):
                cur, prev = i % 2, (i + 1) % 2
                if i < th:
                    for j in range(tw):
                        n = n0 + i * tw + j
                        for a in range(4):
                            for c in range(c_count):
                                d0, d1 = dv[t, 4 * a, n, c], dv[t, 4 * a + 1, n, c]
                                d2, d3 = dv[t, 4 * a + 2, n, c], dv[t, 4 * a + 3, n, c]
                                q[a, 0, c] = d0
                                q[a, 1, c] = (d1 - d2) + d3
                                q[a, 2, c] = (d1 - d0) + d2
                                q[a, 3, c] = -d3
                        for s in range(4):
                            col = 2 * j + s
                            if s < 2 and j > 0:  # the previous tile column's last two columns are these: add
                                for c in range(c_count):
                                    q0, q1, q2, q3 = q[0, s, c], q[1, s, c], q[2, s, c], q[3, s, c]
                                    strips[cur, 0, col, c] = q0 + strips[cur, 0, col, c]
                                    strips[cur, 1, col, c] = ((q1 - q2) + q3) + strips[cur, 1, col, c]
                                    strips[cur, 2, col, c] = ((q1 - q0) + q2) + strips[cur, 2, col, c]
                                    strips[cur, 3, col, c] = -q3 + strips[cur, 3, col, c]
                            else:
                                for c in range(c_count):
                                    q0, q1, q2, q3 = q[0, s, c], q[1, s, c], q[2, s, c], q[3, s, c]
                                    strips[cur, 0, col, c] = q0
                                    strips[cur, 1, col, c] = (q1 - q2) + q3
                                    strips[cur, 2, col, c] = (q1 - q0) + q2
                                    strips[cur, 3, col, c] = -q3
                # padded rows 2i and 2i + 1: this tile row's window rows 0, 1 and the previous one's 2, 3
                for r in range(2):
                    row = 2 * i + r - top
                    if row < 0 or row >= h:
                        continue
                    for col in range(left, col_end):
                        if i == 0:
                            for c in range(c_count):
                                dx[t, b, row, col - left, c] = strips[cur, r, col, c]
                        elif i == th:
                            for c in range(c_count):
                                dx[t, b, row, col - left, c] = strips[prev, r + 2, col, c]
                        else:
                            for c in range(c_count):
                                dx[t, b, row, col - left, c] = strips[cur, r, col, c] + strips[prev, r + 2, col, c]
                    for col in range(col_end, left + w):
                        for c in range(c_count):
                            dx[t, b, row, col - left, c] = zero
            for row in range(max(0, 2 * th + 2 - top), h):  # input rows past the tiles' reach
                for col in range(w):
                    for c in range(c_count):
                        dx[t, b, row, col, c] = zero
            n0 += th * tw


def winograd_input_grad(dv, in_shape, top, left, th, tw, out=None):
    """:func:`fometa.backends.kernels.winograd_input_grad`, compiled."""
    dx = out if out is not None else np.empty(in_shape, dv.dtype)
    _wino_input_grad(np.ascontiguousarray(dv), top, left, th, tw, dx)
    return dx


# --------------------------------------------------------------------------------------
# Adam on the flat buffers
# --------------------------------------------------------------------------------------
@_jit
def _adam(flat, grad, nu, mu, neg_lr, b1, one_minus_b1, b2, one_minus_b2, eps, first):
    t_count, p_count = flat.shape
    for t in range(t_count):
        s = neg_lr[t]
        for p in range(p_count):
            g = grad[t, p]
            v = g * g * one_minus_b2 + nu[t, p] * b2
            nu[t, p] = v
            if first:
                m = mu[t, p] * b1 + g * one_minus_b1
                mu[t, p] = m
            else:
                m = g
            flat[t, p] += m / (np.sqrt(v) + eps) * s


def adam_flat(flat, grad, nu, mu, neg_lr, beta1, beta2, eps):
    """One Adam step in place on ``(T, P)`` buffers, as :meth:`fometa.optim.Adam.update`
    followed by adding the update: ``nu <- b2 nu + (1 - b2) g^2``, ``mu <- b1 mu + (1 - b1) g``
    (when ``beta1 != 0``; else ``mu`` is unused), ``flat += neg_lr * m / (sqrt(nu) + eps)``,
    with ``neg_lr`` ``(T,)`` the step's ``-lr_t`` per task, all in ``flat``'s precision."""
    dt = flat.dtype.type
    first = beta1 != 0.0
    _adam(flat, grad, nu, mu if first else nu, neg_lr.astype(flat.dtype), dt(beta1), dt(1 - beta1), dt(beta2),
          dt(1 - beta2), dt(eps), first)


def warm_up(dtypes=(np.float32, np.float64)):
    """Compile (or load from the on-disk cache) every kernel for ``dtypes``; returns nothing.
    The first call in a fresh environment compiles; later processes load the cache."""
    for dt in dtypes:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 2, 4, 4, 2)).astype(dt)
        cols = im2col_unpadded(x, 3, 3, 1, 1, 1, 4, 4)
        col2im_unpadded(cols, x.shape, 3, 3, 1, 1, 1)
        z = cols.reshape(1, 32, 18)[:, :, :2].copy()
        p = np.ones((1, 2), dt)
        for pool in (False, True):
            y, saved = bn_act_forward(z, p, p, p, 1e-3, 32, (2, 4, 4), pool)
            bn_act_backward(saved, p, p, p, np.ones_like(y))
        # Winograd, on whole arrays and on the blocks (views into larger arrays) the engine passes
        winograd_kernel_grad(winograd_kernel(np.ones((1, 3, 3, 2, 2), dt)))
        wide = np.zeros((2, 3, 4, 4, 2), dt)
        for block, rows, grad in ((x, np.empty((1, 32, 2), dt), np.empty(x.shape, dt)),
                                  (wide[:1, 1:], np.empty((2, 40, 2), dt)[:1, 4:36], wide[:1, 1:])):
            v = winograd_input(block, 1, 1, 2, 2)
            winograd_output(v, 2, 4, 4, out=rows)
            winograd_input_grad(winograd_output_grad(rows, 2, 4, 4), x.shape, 1, 1, 2, 2, out=grad)
        flat = np.zeros((1, 3), dt)
        for b1 in (0.0, 0.9):
            adam_flat(flat, flat.copy(), flat.copy(), flat.copy(), np.ones(1), b1, 0.999, 1e-8)
