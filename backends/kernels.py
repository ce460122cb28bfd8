"""Generic hot kernels, written once against the array module of their inputs.

Layout: activations are ``(T, B, H, W, C)`` (task axis, batch, height, width, channels).
A *patch tensor* is ``(T, B, out_h, out_w, kh * kw, C)``: for each output position the
``kh x kw`` window of the (already padded) input, window offsets in row-major order.
Convolution reshapes it into an im2col matrix; pooling reduces over its window axis.
"""
from __future__ import annotations


def _xp(a):
    from fometa.backends import array_module

    return array_module(a)


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
