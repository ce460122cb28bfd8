"""Hyperbolic tangent, ``y = tanh(x)``, ``dy/dx = 1 - y^2``."""
from __future__ import annotations

from dataclasses import dataclass

from fometa.backends import array_module


@dataclass(frozen=True)
class Tanh:
    """``y = tanh(x)``, element by element."""
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
        """``(tanh(x), y)``: the output is the cache."""
        y = array_module(x).tanh(x)
        return y, y

    def backward(self, params, y, dy):
        """``(dy * (1 - y^2), {})``."""
        return dy * (1 - y * y), {}
