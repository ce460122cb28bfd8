"""Rectified linear unit, ``y = max(x, 0)``; the gradient at 0 is taken as 0 (as TensorFlow)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReLU:
    """``y = max(x, 0)``, element by element."""
    def param_shapes(self):
        """No parameters: ``{}``."""
        return {}

    def init(self, rng, dtype=None):
        """No parameters: ``{}`` (``rng`` and ``dtype`` are unused)."""
        return {}

    def output_shape(self, in_shape):
        """The per-example output shape: ``in_shape`` itself (the layer works element by element)."""
        return tuple(in_shape)

    def forward(self, params, x):
        """``(max(x, 0), mask)``: the mask of positive inputs is the cache."""
        mask = x > 0
        return x * mask, mask

    def backward(self, params, mask, dy):
        """``(dy * mask, {})``: the gradient is 0 where the input was not positive."""
        return dy * mask, {}
