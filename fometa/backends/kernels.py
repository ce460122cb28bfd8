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
                    :, :, r0 : r0 + (i1 - i0 - 1) * stride + 1 : stride, c0 : c0 + (j1 - j0 - 1) * stride + 1 : stride, :
                ]
            for rows, cs in (((0, i0), (0, out_w)), ((i1, out_h), (0, out_w)), ((i0, i1), (0, j0)), ((i0, i1), (j1, out_w))):
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
                    terms.append((not full, (q0, q1, w0, w1), cols[:, :, q0 + si : q1 + si, w0 + sj : w1 + sj, di * kw + dj, :]))
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
