"""2-D convolution (cross-correlation, as in TensorFlow), NHWC, with a task axis.

Shapes: ``x`` ``(T, B, H, W, C_in)``; params ``kernel`` ``(T, kh, kw, C_in, C_out)``
(TensorFlow's HWIO layout plus the task axis) and ``bias`` ``(T, C_out)``; output
``(T, B, H_out, W_out, C_out)`` with

    y[t, b, i, j, o] = bias[t, o] + sum_{di, dj, c} xpad[t, b, i*s + di, j*s + dj, c] * kernel[t, di, dj, c, o]

where ``xpad`` is ``x`` zero-padded by TensorFlow's rule (:mod:`fometa.layers.padding`).
The sum is one batched matrix product per task over the im2col patch matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fometa.backends import array_module, backend_of
from fometa.layers.init import glorot_uniform
from fometa.layers.padding import out_size_and_pads


@dataclass(frozen=True)
class Conv2D:
    in_channels: int
    out_channels: int
    kernel_size: int | tuple[int, int] = 3
    stride: int = 1
    padding: str = "same"

    @property
    def kernel_hw(self) -> tuple[int, int]:
        k = self.kernel_size
        return (k, k) if isinstance(k, int) else tuple(k)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        kh, kw = self.kernel_hw
        return {"kernel": (kh, kw, self.in_channels, self.out_channels), "bias": (self.out_channels,)}

    def init(self, rng: np.random.Generator, dtype=np.float32) -> dict:
        """Glorot-uniform kernel (fan_in = kh*kw*C_in, fan_out = kh*kw*C_out), zero bias."""
        kh, kw = self.kernel_hw
        shape = self.param_shapes()["kernel"]
        kernel = glorot_uniform(rng, shape, kh * kw * self.in_channels, kh * kw * self.out_channels, dtype)
        return {"kernel": kernel, "bias": np.zeros(self.out_channels, dtype=dtype)}

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        h, w, _ = in_shape
        kh, kw = self.kernel_hw
        oh = out_size_and_pads(h, kh, self.stride, self.padding)[0]
        ow = out_size_and_pads(w, kw, self.stride, self.padding)[0]
        return (oh, ow, self.out_channels)

    def forward(self, params, x):
        xp = array_module(x)
        t, b, h, w, c = x.shape
        kh, kw = self.kernel_hw
        oh, top, bottom = out_size_and_pads(h, kh, self.stride, self.padding)
        ow, left, right = out_size_and_pads(w, kw, self.stride, self.padding)
        if top or bottom or left or right:
            xpad = xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right), (0, 0)))
        else:
            xpad = x
        cols = backend_of(x).im2col(xpad, kh, kw, self.stride, oh, ow)
        cols = cols.reshape(t, b * oh * ow, kh * kw * c)
        kmat = params["kernel"].reshape(t, kh * kw * c, self.out_channels)
        y = xp.matmul(cols, kmat) + params["bias"][:, None, :]
        cache = (cols, xpad.shape, (top, left, h, w))
        return y.reshape(t, b, oh, ow, self.out_channels), cache

    def backward(self, params, cache, dy):
        xp = array_module(dy)
        cols, padded_shape, (top, left, h, w) = cache
        t, b, oh, ow, co = dy.shape
        kh, kw = self.kernel_hw
        c = padded_shape[-1]
        dy2 = dy.reshape(t, b * oh * ow, co)
        kmat = params["kernel"].reshape(t, kh * kw * c, co)
        grads = {
            "kernel": xp.matmul(cols.transpose(0, 2, 1), dy2).reshape(params["kernel"].shape),
            "bias": dy2.sum(axis=1),
        }
        dcols = xp.matmul(dy2, kmat.transpose(0, 2, 1)).reshape(t, b, oh, ow, kh * kw, c)
        dxpad = backend_of(dy).col2im(dcols, padded_shape, kh, kw, self.stride)
        dx = dxpad[:, :, top : top + h, left : left + w, :]
        return dx, grads
