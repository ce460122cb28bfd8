"""Rectified linear unit, ``y = max(x, 0)``; the gradient at 0 is taken as 0 (as TensorFlow)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReLU:
    def param_shapes(self):
        return {}

    def init(self, rng, dtype=None):
        return {}

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def forward(self, params, x):
        mask = x > 0
        return x * mask, mask

    def backward(self, params, mask, dy):
        return dy * mask, {}
