"""Flatten the per-example axes in row-major (NHWC) order: ``(T, B, H, W, C) -> (T, B, H*W*C)``.

Row-major order over (H, W, C) is what ``tf.reshape(out, (-1, H*W*C))`` gives in the reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Flatten:
    """Flatten each example's ``(H, W, C)`` to ``H * W * C`` values in row-major order."""
    def param_shapes(self):
        """No parameters: ``{}``."""
        return {}

    def init(self, rng, dtype=None):
        """No parameters: ``{}`` (``rng`` and ``dtype`` are unused)."""
        return {}

    def output_shape(self, in_shape):
        """``(H * W * C,)`` for the per-example input shape ``(H, W, C)``."""
        return (int(np.prod(in_shape)),)

    def forward(self, params, x):
        """``(y, in_shape)``: ``x`` ``(T, B, H, W, C)`` reshaped to ``(T, B, H * W * C)``; the input's shape is
        the cache."""
        return x.reshape(x.shape[0], x.shape[1], -1), x.shape

    def backward(self, params, in_shape, dy):
        """``(dx, {})``: ``dy`` reshaped back to the input's shape."""
        return dy.reshape(in_shape), {}


@dataclass(frozen=True)
class Reshape:
    """Reshape each example to ``shape`` (e.g. ``(28, 28) -> (28, 28, 1)``)."""

    shape: tuple[int, ...]

    def param_shapes(self):
        """No parameters: ``{}``."""
        return {}

    def init(self, rng, dtype=None):
        """No parameters: ``{}`` (``rng`` and ``dtype`` are unused)."""
        return {}

    def output_shape(self, in_shape):
        """The layer's ``shape``, after checking that it holds as many values as ``in_shape``."""
        if int(np.prod(in_shape)) != int(np.prod(self.shape)):
            raise ValueError(f"cannot reshape examples of shape {tuple(in_shape)} to {self.shape}")
        return tuple(self.shape)

    def forward(self, params, x):
        """``(y, in_shape)``: ``x`` ``(T, B, *in_shape)`` reshaped to ``(T, B, *shape)``; the input's shape is
        the cache."""
        return x.reshape(x.shape[:2] + tuple(self.shape)), x.shape

    def backward(self, params, in_shape, dy):
        """``(dx, {})``: ``dy`` reshaped back to the input's shape."""
        return dy.reshape(in_shape), {}
