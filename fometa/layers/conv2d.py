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
from typing import cast

import numpy as np

from fometa.backends import array_module, backend_of
from fometa.layers.init import glorot_uniform
from fometa.layers.padding import out_size_and_pads


@dataclass(frozen=True)
class Conv2D:
    """2-D convolution of ``in_channels`` to ``out_channels`` channels with a ``kernel_size`` kernel, ``stride``
    and TensorFlow's ``padding`` (``same`` or ``valid``), initialized by ``init_scheme`` (``glorot`` or
    ``torch``); see the module docstring for shapes and the formula."""
    in_channels: int
    out_channels: int
    kernel_size: int | tuple[int, int] = 3
    stride: int = 1
    padding: str = "same"
    init_scheme: str = "glorot"  # or "torch": U(+-1/sqrt(kh*kw*C_in)) kernel and bias (torch.nn.Conv2d)

    @property
    def kernel_hw(self) -> tuple[int, int]:
        """``(kh, kw)``: the kernel's height and width."""
        k = self.kernel_size
        return (k, k) if isinstance(k, int) else cast(tuple[int, int], tuple(k))

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"kernel": (kh, kw, C_in, C_out), "bias": (C_out,)}``, single-task."""
        kh, kw = self.kernel_hw
        return {"kernel": (kh, kw, self.in_channels, self.out_channels), "bias": (self.out_channels,)}

    def init(self, rng: np.random.Generator, dtype=np.float32) -> dict:
        """Glorot-uniform kernel (fan_in = kh*kw*C_in, fan_out = kh*kw*C_out) and zero bias (TensorFlow's
        ``tf.layers.conv2d``, the reference's), or PyTorch's ``nn.Conv2d`` default: kernel and bias
        uniform on ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` (its ``kaiming_uniform_(a=sqrt(5))``)."""
        kh, kw = self.kernel_hw
        shape = self.param_shapes()["kernel"]
        fan_in = kh * kw * self.in_channels
        if self.init_scheme == "glorot":
            kernel = glorot_uniform(rng, shape, fan_in, kh * kw * self.out_channels, dtype)
            return {"kernel": kernel, "bias": np.zeros(self.out_channels, dtype=dtype)}
        if self.init_scheme == "torch":
            bound = 1.0 / np.sqrt(fan_in)
            kernel = rng.uniform(-bound, bound, size=shape).astype(dtype)
            return {"kernel": kernel, "bias": rng.uniform(-bound, bound, size=self.out_channels).astype(dtype)}
        raise ValueError(f"unknown init scheme {self.init_scheme!r}; expected 'glorot' or 'torch'")

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(H_out, W_out, C_out)`` for the per-example input shape ``(H, W, C_in)`` (TensorFlow's padding
        rule)."""
        h, w, _ = in_shape
        kh, kw = self.kernel_hw
        oh = out_size_and_pads(h, kh, self.stride, self.padding)[0]
        ow = out_size_and_pads(w, kw, self.stride, self.padding)[0]
        return (oh, ow, self.out_channels)

    def _blocks(self, be, t: int, b: int, image_bytes: int):
        """Split ``(tasks, images)`` into blocks ``(t0, t1, b0, b1)`` whose im2col matrices stay
        near the backend's chunk size: several whole tasks, or part of one task's images, in
        blocks of equal size (10 images at most 9 a block go as 5 + 5, not 9 + 1)."""
        tstep = be.chunk_size(t, b * image_bytes)
        if tstep > 1 or be.chunk_size(b, image_bytes) >= b:
            tstep = -(-t // -(-t // tstep))
            return [(t0, min(t, t0 + tstep), 0, b) for t0 in range(0, t, tstep)]
        bstep = be.chunk_size(b, image_bytes)
        bstep = -(-b // -(-b // bstep))
        return [(t0, t0 + 1, b0, min(b, b0 + bstep)) for t0 in range(t) for b0 in range(0, b, bstep)]

    def forward(self, params, x):
        """``(y, cache)``: the convolution of task-batched ``x`` ``(T, B, H, W, C_in)``, ``(T, B, H_out, W_out,
        C_out)``, and the patch matrix and padded input :meth:`backward` needs."""
        xp = array_module(x)
        be = backend_of(x)
        t, b, h, w, c = x.shape
        kh, kw = self.kernel_hw
        co = self.out_channels
        oh, top, bottom = out_size_and_pads(h, kh, self.stride, self.padding)
        ow, left, right = out_size_and_pads(w, kw, self.stride, self.padding)
        if top or bottom or left or right:
            xpad = xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right), (0, 0)))
        else:
            xpad = x
        kmat = params["kernel"].reshape(t, kh * kw * c, co)
        pix, depth = oh * ow, kh * kw * c
        y = xp.empty((t, b * pix, co), dtype=xp.result_type(xpad.dtype, kmat.dtype))
        # Large batches go through in blocks of tasks (or of one task's images) so that each
        # im2col matrix is still in cache when the matrix product reads it; the backward pass
        # then rebuilds a block's matrix from xpad instead of keeping all of them (9x the
        # input) alive. A single block keeps its matrix in the cache.
        blocks = self._blocks(be, t, b, pix * depth * xpad.itemsize)
        for t0, t1, b0, b1 in blocks:
            cols = be.im2col(xpad[t0:t1, b0:b1], kh, kw, self.stride, oh, ow)
            xp.matmul(cols.reshape(t1 - t0, -1, depth), kmat[t0:t1], out=y[t0:t1, b0 * pix : b1 * pix])
        y += params["bias"][:, None, :]
        cache = (cols if len(blocks) == 1 else None, xpad, (top, left, h, w))
        return y.reshape(t, b, oh, ow, co), cache

    def backward(self, params, cache, dy, *, need_dx: bool = True):
        """``(dx, grads)``; ``need_dx=False`` skips the input gradient (returned as ``None``),
        which a network's first layer does not need: that skips the col2im scatter."""
        xp = array_module(dy)
        be = backend_of(dy)
        cols, xpad, (top, left, h, w) = cache
        t, b, oh, ow, co = dy.shape
        kh, kw = self.kernel_hw
        c = xpad.shape[-1]
        pix, depth = oh * ow, kh * kw * c
        dy2 = dy.reshape(t, b * pix, co)
        kmat = params["kernel"].reshape(t, depth, co)
        dtype = xp.result_type(xpad.dtype, dy2.dtype)
        dkernel = xp.empty((t, depth, co), dtype=dtype)
        dxpad = xp.empty(xpad.shape, dtype=xp.result_type(dtype, kmat.dtype)) if need_dx else None
        blocks = [(0, t, 0, b)] if cols is not None else self._blocks(be, t, b, pix * depth * xpad.itemsize)
        for t0, t1, b0, b1 in blocks:
            if cols is None:
                block = be.im2col(xpad[t0:t1, b0:b1], kh, kw, self.stride, oh, ow)
            else:
                block = cols
            block = block.reshape(t1 - t0, -1, depth)
            dyb = dy2[t0:t1, b0 * pix : b1 * pix]
            if b0 == 0:
                xp.matmul(block.transpose(0, 2, 1), dyb, out=dkernel[t0:t1])
            else:  # a later block of the same task's images
                dkernel[t0:t1] += xp.matmul(block.transpose(0, 2, 1), dyb)
            if not need_dx:
                continue
            assert dxpad is not None  # made when need_dx
            dcols = xp.matmul(dyb, kmat[t0:t1].transpose(0, 2, 1)).reshape(t1 - t0, b1 - b0, oh, ow, kh * kw, c)
            dxpad[t0:t1, b0:b1] = be.col2im(dcols, (t1 - t0, b1 - b0) + xpad.shape[2:], kh, kw, self.stride)
        grads = {"kernel": dkernel.reshape(params["kernel"].shape), "bias": xp.einsum("tmc->tc", dy2)}
        if not need_dx:
            return None, grads
        assert dxpad is not None  # made when need_dx
        return dxpad[:, :, top : top + h, left : left + w, :], grads
