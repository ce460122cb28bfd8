"""Generic hot kernels, written once against the array module of their inputs.

Layout: activations are ``(T, B, H, W, C)`` (task axis, batch, height, width, channels).
A *patch tensor* is ``(T, B, out_h, out_w, kh * kw, C)``: for each output position the
``kh x kw`` window of the (already padded) input, window offsets in row-major order.
Convolution reshapes it into an im2col matrix; pooling reduces over its window axis.
"""
from __future__ import annotations

from fometa.backends.arrays import array_module as _xp


def im2col(xpad, kh: int, kw: int, stride: int, out_h: int, out_w: int):
    """Gather sliding windows of a padded input into a patch tensor.

    ``xpad``: ``(T, B, Hp, Wp, C)``; returns ``(T, B, out_h, out_w, kh * kw, C)``, where
    entry ``[..., i, j, di * kw + dj, c] = xpad[..., i * stride + di, j * stride + dj, c]``.
    """
    xp = _xp(xpad)
    span_h = stride * (out_h - 1) + 1
    span_w = stride * (out_w - 1) + 1
    windows = [
        xpad[:, :, di : di + span_h : stride, dj : dj + span_w : stride, :]
        for di in range(kh)
        for dj in range(kw)
    ]
    return xp.stack(windows, axis=4)


def col2im(cols, padded_shape, kh: int, kw: int, stride: int):
    """Adjoint of :func:`im2col`: scatter-add a patch tensor back onto the padded input.

    ``cols``: ``(T, B, out_h, out_w, kh * kw, C)``; returns an array of ``padded_shape``.
    """
    xp = _xp(cols)
    out_h, out_w = cols.shape[2], cols.shape[3]
    span_h = stride * (out_h - 1) + 1
    span_w = stride * (out_w - 1) + 1
    dx = xp.zeros(padded_shape, dtype=cols.dtype)
    for di in range(kh):
        for dj in range(kw):
            dx[:, :, di : di + span_h : stride, dj : dj + span_w : stride, :] += cols[
                :, :, :, :, di * kw + dj, :
            ]
    return dx


def _valid(out: int, size: int, offset: int, stride: int, before: int) -> tuple[int, int, int]:
    """Output positions ``[o0, o1)`` whose input ``o * stride + offset - before`` lies in ``[0, size)``,
    and the input position ``i0`` of the first one."""
    o0 = max(0, -(-(before - offset) // stride))
    o1 = min(out, (size - 1 + before - offset) // stride + 1)
    return o0, max(o0, o1), o0 * stride + offset - before


def _zero_pad(x, top, bottom, left, right):
    """``x`` ``(T, B, H, W, C)`` with zero rows/columns around H and W (faster than ``pad``)."""
    xp = _xp(x)
    t, b, h, w, c = x.shape
    out = xp.empty((t, b, top + h + bottom, left + w + right, c), dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x
    for rows, cols in (((0, top), (0, left + w + right)), ((top + h, top + h + bottom), (0, left + w + right)),
                       ((top, top + h), (0, left)), ((top, top + h), (left + w, left + w + right))):
        if rows[1] > rows[0] and cols[1] > cols[0]:
            out[:, :, rows[0] : rows[1], cols[0] : cols[1]] = 0
    return out


def im2col_unpadded(x, kh: int, kw: int, stride: int, top: int, left: int, out_h: int, out_w: int):
    """:func:`im2col` of ``x`` zero-padded by ``top``/``left`` (and whatever the far side needs),
    from the unpadded ``x`` ``(T, B, H, W, C)``. Returns ``(T, B, out_h, out_w, kh * kw, C)``.

    With at least 8 values in a window row (``kw * C``), the input is padded once and all
    windows are copied in one call from an overlapping strided view (each window row is a
    contiguous run of the padded input). With fewer, copying one offset at a time straight from
    ``x`` and zero-filling the padding is faster (long runs of tiny rows cost per row).
    """
    xp = _xp(x)
    t, b, h, w, c = x.shape
    if kw * c >= 8:
        bottom = max(0, (out_h - 1) * stride + kh - h - top)
        right = max(0, (out_w - 1) * stride + kw - w - left)
        if top or bottom or left or right:
            x = _zero_pad(x, top, bottom, left, right)
        st = x.strides
        windows = xp.lib.stride_tricks.as_strided(
            x, (t, b, out_h, out_w, kh, kw, c), (st[0], st[1], stride * st[2], stride * st[3], st[2], st[3], st[4])
        )
        return xp.ascontiguousarray(windows).reshape(t, b, out_h, out_w, kh * kw, c)
    cols = xp.empty((t, b, out_h, out_w, kh * kw, c), dtype=x.dtype)
    for di in range(kh):
        i0, i1, r0 = _valid(out_h, h, di, stride, top)
        for dj in range(kw):
            j0, j1, c0 = _valid(out_w, w, dj, stride, left)
            k = di * kw + dj
            if i1 > i0 and j1 > j0:
                cols[:, :, i0:i1, j0:j1, k, :] = x[
                    :, :, r0 : r0 + (i1 - i0 - 1) * stride + 1 : stride, c0 : c0 + (j1 - j0 - 1) * stride + 1 : stride,
                    :
                ]
            for rows, cs in (((0, i0), (0, out_w)), ((i1, out_h), (0, out_w)), ((i0, i1), (0, j0)),
                             ((i0, i1), (j1, out_w))):
                if rows[1] > rows[0] and cs[1] > cs[0]:
                    cols[:, :, rows[0] : rows[1], cs[0] : cs[1], k, :] = 0
    return cols


def col2im_unpadded(cols, in_shape, kh: int, kw: int, stride: int, top: int, left: int, out=None):
    """Adjoint of :func:`im2col_unpadded`: scatter-add a patch tensor onto an unpadded input of
    ``in_shape`` ``(T, B, H, W, C)`` (contributions that fall on padding are dropped), written
    into ``out`` when given.

    The input positions fall into ``stride x stride`` classes by their offset modulo the stride;
    each class receives the taps of matching offset. A tap that covers its whole class (the
    centre tap of a stride-1 'same' convolution, the first tap of each class at stride 2) is
    written rather than added, so no zero-filled array is read back and most positions are
    written once or twice instead of zeroed and then updated for every tap.
    """
    xp = _xp(cols)
    h, w = in_shape[2], in_shape[3]
    out_h, out_w = cols.shape[2], cols.shape[3]
    dx = xp.empty(in_shape, dtype=cols.dtype) if out is None else out
    for r0 in range(min(stride, h)):
        for c0 in range(min(stride, w)):
            # input rows r = r0 + stride * q; tap di reaches output row i = q + (r0 + top - di) // stride
            nq, nw = -(-(h - r0) // stride), -(-(w - c0) // stride)
            if nq <= 0 or nw <= 0:
                continue
            target = dx[:, :, r0::stride, c0::stride, :]
            terms = []
            for di in range(kh):
                if (r0 + top - di) % stride:
                    continue
                si = (r0 + top - di) // stride  # output row of q = 0
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
                    tap = cols[:, :, q0 + si : q1 + si, w0 + sj : w1 + sj, di * kw + dj, :]
                    terms.append((not full, (q0, q1, w0, w1), tap))
            terms.sort(key=lambda term: term[0])  # a full-coverage tap first, if there is one
            if not terms or terms[0][0]:
                target[...] = 0
                start = 0
            else:
                target[...] = terms[0][2]
                start = 1
            for _, (q0, q1, w0, w1), src in terms[start:]:
                target[:, :, q0:q1, w0:w1, :] += src
    return dx


# --------------------------------------------------------------------------------------
# Winograd F(2x2, 3x3): a stride-1 3x3 convolution in 16 matrix products of 2.25x fewer flops
# --------------------------------------------------------------------------------------
# Lavin & Gray (2016), "Fast Algorithms for Convolutional Neural Networks". The output is cut
# into 2x2 tiles; tile (i, j) reads the 4x4 window of the zero-padded input whose corner is
# input row 2i - top, column 2j - left. With
#
#     B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
#     G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
#     A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
#
# a tile's output is Y = A^T [U (.) V] A, with V = B^T d B the transformed window d and
# U = G g G^T the transformed kernel g, summed over input channels. Each of the 16 entries
# xi of the 4x4 transform domain is one matrix product over channels:
# M[xi] (tiles x C_out) = V[xi] (tiles x C_in) @ U[xi] (C_in x C_out), 16 products of
# 4 * C_in * C_out multiply-adds per tile against 36 for the direct 2x2 outputs.
#
# Training needs the adjoints: the output gradient dY gives dM = A dY A^T; then the kernel's
# dU[xi] = V[xi]^T @ dM[xi] and dg = G^T dU G, and the input's dV[xi] = dM[xi] @ U[xi]^T and
# dd = B dV B^T, added back over the overlapping windows (each input position lies in up to
# four windows).
#
# Layout: transforms are (T, 16, N, C) with xi = 4 * row + column and N = B * th * tw tiles in
# (image, tile row, tile column) order; conv outputs are (T, B * oh * ow, C) rows in
# (image, row, column) order, as the fused engine keeps them. Each sum below is written out
# with its parentheses: the compiled twins in fometa/backends/numba_kernels.py add in the same
# order, so both compute the same numbers bit for bit.


def winograd_tiles(out_h: int, out_w: int) -> tuple[int, int]:
    """Tile rows and columns ``(th, tw)`` of 2x2 output tiles covering an ``out_h x out_w`` output."""
    return -(-out_h // 2), -(-out_w // 2)


def winograd_kernel(kernel):
    """``U = G g G^T`` of ``kernel`` ``(T, 3, 3, C_in, C_out)``: ``(T, 16, C_in, C_out)``."""
    xp = _xp(kernel)
    g0, g1, g2 = kernel[:, 0], kernel[:, 1], kernel[:, 2]
    rows = xp.stack([g0, ((g0 + g1) + g2) * 0.5, ((g0 - g1) + g2) * 0.5, g2], axis=1)  # (T, 4, 3, C, K)
    c0, c1, c2 = rows[:, :, 0], rows[:, :, 1], rows[:, :, 2]
    u = xp.stack([c0, ((c0 + c1) + c2) * 0.5, ((c0 - c1) + c2) * 0.5, c2], axis=2)  # (T, 4, 4, C, K)
    t = kernel.shape[0]
    return xp.ascontiguousarray(u.astype(kernel.dtype, copy=False)).reshape((t, 16) + kernel.shape[3:])


def winograd_kernel_grad(du):
    """The kernel's gradient ``G^T dU G`` ``(T, 3, 3, C_in, C_out)`` from ``dU`` ``(T, 16, C_in, C_out)``
    (the adjoint of :func:`winograd_kernel`)."""
    xp = _xp(du)
    d = du.reshape((du.shape[0], 4, 4) + du.shape[2:])
    r0, r1, r2, r3 = d[:, 0], d[:, 1], d[:, 2], d[:, 3]
    rows = xp.stack([r0 + (r1 + r2) * 0.5, (r1 - r2) * 0.5, (r1 + r2) * 0.5 + r3], axis=1)  # (T, 3, 4, C, K)
    c0, c1, c2, c3 = rows[:, :, 0], rows[:, :, 1], rows[:, :, 2], rows[:, :, 3]
    g = xp.stack([c0 + (c1 + c2) * 0.5, (c1 - c2) * 0.5, (c1 + c2) * 0.5 + c3], axis=2)
    return g.astype(du.dtype, copy=False)


def winograd_input(x, top: int, left: int, th: int, tw: int):
    """``V = B^T d B`` of every tile's 4x4 window of ``x`` ``(T, B, H, W, C)`` zero-padded by ``top``
    and ``left``: ``(T, 16, B * th * tw, C)``. Rows first: ``(d0 - d2, d1 + d2, d2 - d1, d1 - d3)``
    over the window's rows, then the same over its columns."""
    xp = _xp(x)
    t, b, h, w, c = x.shape
    hp, wp = 2 * th + 2, 2 * tw + 2
    xpad = xp.zeros((t, b, hp, wp, c), dtype=x.dtype)
    rh, rw = min(h, hp - top), min(w, wp - left)
    xpad[:, :, top : top + rh, left : left + rw] = x[:, :, :rh, :rw]
    r = [xpad[:, :, a : a + 2 * th - 1 : 2] for a in range(4)]  # (T, B, th, wp, C)
    stage = (r[0] - r[2], r[1] + r[2], r[2] - r[1], r[1] - r[3])
    v = xp.empty((t, 16, b, th, tw, c), dtype=x.dtype)
    for a, s in enumerate(stage):
        e = [s[:, :, :, k : k + 2 * tw - 1 : 2] for k in range(4)]  # (T, B, th, tw, C)
        xp.subtract(e[0], e[2], out=v[:, 4 * a])
        xp.add(e[1], e[2], out=v[:, 4 * a + 1])
        xp.subtract(e[2], e[1], out=v[:, 4 * a + 2])
        xp.subtract(e[1], e[3], out=v[:, 4 * a + 3])
    return v.reshape(t, 16, b * th * tw, c)


def winograd_output(m, batch: int, out_h: int, out_w: int, out=None):
    """``Y = A^T M A`` of every tile: the conv output ``(T, batch * out_h * out_w, C_out)`` (into
    ``out`` when given) from the products ``m`` ``(T, 16, N, C_out)``. Rows first:
    ``s = (m0 + m1) + m2`` and ``u = (m1 - m2) - m3`` over the transform's rows, then
    ``((s0 + s1) + s2, (s1 - s2) - s3)`` and the same of ``u`` over its columns."""
    xp = _xp(m)
    t, k = m.shape[0], m.shape[3]
    th, tw = winograd_tiles(out_h, out_w)
    mv = m.reshape(t, 4, 4, batch, th, tw, k)
    s = [(mv[:, 0, e] + mv[:, 1, e]) + mv[:, 2, e] for e in range(4)]
    u = [(mv[:, 1, e] - mv[:, 2, e]) - mv[:, 3, e] for e in range(4)]
    full = xp.empty((t, batch, 2 * th, 2 * tw, k), dtype=m.dtype)
    xp.add(s[0] + s[1], s[2], out=full[:, :, 0::2, 0::2])
    xp.subtract(s[1] - s[2], s[3], out=full[:, :, 0::2, 1::2])
    xp.add(u[0] + u[1], u[2], out=full[:, :, 1::2, 0::2])
    xp.subtract(u[1] - u[2], u[3], out=full[:, :, 1::2, 1::2])
    y = full[:, :, :out_h, :out_w]
    if out is None:
        return xp.ascontiguousarray(y).reshape(t, batch * out_h * out_w, k)
    out[...] = xp.ascontiguousarray(y).reshape(out.shape)
    return out


def winograd_output_grad(dz, batch: int, out_h: int, out_w: int):
    """``dM = A dY A^T`` ``(T, 16, N, C_out)``: the adjoint of :func:`winograd_output` for the
    gradient ``dz`` ``(T, batch * out_h * out_w, C_out)`` (zero past an odd edge). With a tile's
    gradient ``[[p, q], [r, s]]``: rows ``(p, p + r, p - r, -r)``, then the same over columns."""
    xp = _xp(dz)
    t, k = dz.shape[0], dz.shape[2]
    th, tw = winograd_tiles(out_h, out_w)
    full = xp.zeros((t, batch, 2 * th, 2 * tw, k), dtype=dz.dtype)
    full[:, :, :out_h, :out_w] = dz.reshape(t, batch, out_h, out_w, k)
    dm = xp.empty((t, 4, 4, batch, th, tw, k), dtype=dz.dtype)
    for v in range(2):  # each column of the tile's gradient, through the rows
        p, r = full[:, :, 0::2, v::2], full[:, :, 1::2, v::2]
        col = (p, p + r, p - r, -r)
        for a in range(4):
            if v == 0:
                dm[:, a, 0] = col[a]
            else:
                first = dm[:, a, 0]
                dm[:, a, 3] = -col[a]
                dm[:, a, 2] = first - col[a]
                dm[:, a, 1] = first + col[a]
    return dm.reshape(t, 16, batch * th * tw, k)


def winograd_input_grad(dv, in_shape, top: int, left: int, th: int, tw: int, out=None):
    """The input's gradient ``(T, B, H, W, C)`` of ``in_shape`` (into ``out`` when given): the adjoint
    of :func:`winograd_input` for ``dV`` ``(T, 16, B * th * tw, C)``. Each window's ``dd = B dV B^T``
    (columns first: ``(q0, (q1 - q2) + q3, (q1 - q0) + q2, -q3)``, then the same over rows) is
    added back where the window lay: first across the tile columns that share a position
    (``dd[., 0](j) + dd[., 2](j - 1)``), then across the tile rows; padding is dropped."""
    xp = _xp(dv)
    t, b, h, w, c = in_shape
    d = dv.reshape(t, 4, 4, b, th, tw, c)

    def combine(q0, q1, q2, q3):
        return q0, (q1 - q2) + q3, (q1 - q0) + q2, -q3

    cols = [combine(*(d[:, a, e] for e in range(4))) for a in range(4)]  # cols[a][s]: (T, B, th, tw, C)
    dd = [combine(*(cols[a][s] for a in range(4))) for s in range(4)]  # dd[s][r]
    wp, hp = 2 * tw + 2, 2 * th + 2
    strips = xp.empty((4, t, b, th, wp, c), dtype=dv.dtype)  # per window row r: summed across tile columns
    for r in range(4):
        for s in range(2):
            strips[r, :, :, :, s : 2 * tw : 2] = dd[s][r]
            strips[r, :, :, :, s + 2 : 2 * tw : 2] += dd[s + 2][r][:, :, :, :-1]
            strips[r, :, :, :, 2 * tw + s] = dd[s + 2][r][:, :, :, -1]
    full = xp.empty((t, b, hp, wp, c), dtype=dv.dtype)
    for r in range(2):
        full[:, :, r : 2 * th : 2] = strips[r]
        full[:, :, r + 2 : 2 * th : 2] += strips[r + 2][:, :, :-1]
        full[:, :, 2 * th + r] = strips[r + 2][:, :, -1]
    rh, rw = min(h, hp - top), min(w, wp - left)
    dx = xp.empty(in_shape, dtype=dv.dtype) if out is None else out
    dx[:, :, :rh, :rw] = full[:, :, top : top + rh, left : left + rw]
    if rh < h:
        dx[:, :, rh:] = 0
    if rw < w:
        dx[:, :, :, rw:] = 0
    return dx
