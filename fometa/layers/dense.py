"""Fully connected layer: ``y[t] = x[t] @ kernel[t] + bias[t]``.

Shapes: ``x`` ``(T, B, F)``; ``kernel`` ``(T, F, O)`` (TensorFlow's layout plus the task
axis); ``bias`` ``(T, O)``; output ``(T, B, O)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fometa.backends import array_module
from fometa.layers.init import glorot_uniform


@dataclass(frozen=True)
class Dense:
    """Fully connected layer from ``in_features`` to ``out_features``, initialized by ``init_scheme`` (``glorot``
    or ``torch``)."""
    in_features: int
    out_features: int
    init_scheme: str = "glorot"  # or "torch": U(+-1/sqrt(in)) weights and biases (torch.nn.Linear)

    def param_shapes(self):
        """``{"kernel": (F, O), "bias": (O,)}``, single-task."""
        return {"kernel": (self.in_features, self.out_features), "bias": (self.out_features,)}

    def init(self, rng: np.random.Generator, dtype=np.float32) -> dict:
        """Glorot-uniform kernel and zero bias (TensorFlow), or PyTorch's ``nn.Linear`` default."""
        shape = (self.in_features, self.out_features)
        if self.init_scheme == "glorot":
            kernel = glorot_uniform(rng, shape, self.in_features, self.out_features, dtype)
            return {"kernel": kernel, "bias": np.zeros(self.out_features, dtype=dtype)}
        if self.init_scheme == "torch":
            bound = 1.0 / np.sqrt(self.in_features)
            kernel = rng.uniform(-bound, bound, size=shape).astype(dtype)
            return {"kernel": kernel, "bias": rng.uniform(-bound, bound, size=self.out_features).astype(dtype)}
        raise ValueError(f"unknown init scheme {self.init_scheme!r}; expected 'glorot' or 'torch'")

    def output_shape(self, in_shape):
        """``(O,)`` for the per-example input shape ``(F,)``."""
        if tuple(in_shape) != (self.in_features,):
            raise ValueError(f"Dense expects examples of shape ({self.in_features},), got {tuple(in_shape)}")
        return (self.out_features,)

    def forward(self, params, x):
        """``(y, x)``: ``x[t] @ kernel[t] + bias[t]`` for task-batched ``x`` ``(T, B, F)``; the input is the
        cache."""
        y = array_module(x).matmul(x, params["kernel"]) + params["bias"][:, None, :]
        return y, x

    def backward(self, params, x, dy, *, need_dx: bool = True):
        """``(dx, grads)``; ``need_dx=False`` skips the input gradient (returned as ``None``)."""
        xp = array_module(dy)
        grads = {"kernel": xp.matmul(x.transpose(0, 2, 1), dy), "bias": dy.sum(axis=1)}
        if not need_dx:
            return None, grads
        return xp.matmul(dy, params["kernel"].transpose(0, 2, 1)), grads
