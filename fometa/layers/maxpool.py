"""Max pooling over ``pool x pool`` windows (default 2x2, stride 2, 'same' padding as TensorFlow).

Shapes: ``x`` ``(T, B, H, W, C)`` -> ``(T, B, H_out, W_out, C)``. Padded positions never win
(they are ``-inf``), matching ``tf.layers.max_pooling2d(..., padding='same')``. The gradient
goes to the first maximum of each window in row-major order, as TensorFlow's does.
"""
from __future__ import annotations

from dataclasses import dataclass

from fometa.backends import array_module, backend_of
from fometa.layers.padding import out_size_and_pads


@dataclass(frozen=True)
class MaxPool2D:
    """Max pooling over ``pool x pool`` windows with ``stride`` and TensorFlow's ``padding``."""
    pool: int = 2
    stride: int = 2
    padding: str = "same"

    def param_shapes(self):
        """No parameters: ``{}``."""
        return {}

    def init(self, rng, dtype=None):
        """No parameters: ``{}`` (``rng`` and ``dtype`` are unused)."""
        return {}

    def output_shape(self, in_shape):
        """``(H_out, W_out, C)`` for the per-example input shape ``(H, W, C)`` ('same' padding)."""
        h, w, c = in_shape
        return (
            out_size_and_pads(h, self.pool, self.stride, self.padding)[0],
            out_size_and_pads(w, self.pool, self.stride, self.padding)[0],
            c,
        )

    def forward(self, params, x):
        """``(y, cache)``: the window maxima of task-batched ``x`` ``(T, B, H, W, C)``, and which offset of each
        window held the first maximum."""
        xp = array_module(x)
        h, w = x.shape[2], x.shape[3]
        oh, top, bottom = out_size_and_pads(h, self.pool, self.stride, self.padding)
        ow, left, right = out_size_and_pads(w, self.pool, self.stride, self.padding)
        if top or bottom or left or right:
            pads = ((0, 0), (0, 0), (top, bottom), (left, right), (0, 0))
            xpad = xp.pad(x, pads, constant_values=-xp.inf)
        else:
            xpad = x
        windows = backend_of(x).im2col(xpad, self.pool, self.pool, self.stride, oh, ow)
        y = windows.max(axis=4)
        # The first maximum of each window in row-major order: scanning the window backwards
        # with one comparison per offset is several times faster than argmax over axis 4,
        # which is not the innermost one.
        k = self.pool * self.pool
        idx = xp.full(y.shape, k - 1, dtype=xp.uint8 if k < 256 else xp.int64)
        for j in range(k - 2, -1, -1):
            idx = xp.where(windows[:, :, :, :, j, :] == y, idx.dtype.type(j), idx)
        return y, (idx, xpad.shape, (top, left, h, w))

    def backward(self, params, cache, dy):
        """``(dx, {})``: ``dy`` routed to the first maximum of each window."""
        xp = array_module(dy)
        idx, padded_shape, (top, left, h, w) = cache
        window = xp.arange(self.pool * self.pool).reshape(1, 1, 1, 1, -1, 1)
        dcols = (idx[:, :, :, :, None, :] == window) * dy[:, :, :, :, None, :]
        dxpad = backend_of(dy).col2im(dcols.astype(dy.dtype, copy=False), padded_shape, self.pool, self.pool,
                                      self.stride)
        return dxpad[:, :, top : top + h, left : left + w, :], {}
