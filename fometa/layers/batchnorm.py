"""Batch normalization with the batch's own statistics (always "training mode", as in the paper).

Shapes: ``x`` ``(T, B, ..., C)`` (any number of spatial axes); params ``scale`` ``(T, C)``
(gamma, initialized to 1) and ``offset`` ``(T, C)`` (beta, initialized to 0). Per task and
channel, with ``S`` the examples that supply the statistics (the whole batch by default),

    mu = mean_{b in S, spatial} x,   var = mean_{b in S, spatial} (x - mu)^2   (biased, as tf.nn.moments)
    y  = scale * (x - mu) / sqrt(var + eps) + offset,   eps = 1e-3 (tf.layers default).

``stats_batch=n`` takes the statistics from the first ``n`` examples only and applies them
to the whole batch: the leak-free ``support-stats`` evaluation mode, where the support set
comes first and the queries never influence each other. The backward pass is exact in both cases.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fometa.backends import array_module


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalization over ``channels`` channels with the batch's own statistics and ``eps`` (1e-3,
    TensorFlow's default); see the module docstring."""
    channels: int
    eps: float = 1e-3

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """The single-task shape of each parameter, ``{name: shape}``."""
        return {"scale": (self.channels,), "offset": (self.channels,)}

    def init(self, rng: np.random.Generator, dtype=np.float32) -> dict:
        """``{"scale": ones (C,), "offset": zeros (C,)}`` of ``dtype`` (``rng`` is unused)."""
        return {"scale": np.ones(self.channels, dtype=dtype), "offset": np.zeros(self.channels, dtype=dtype)}

    def output_shape(self, in_shape):
        """The per-example output shape: ``in_shape`` itself (the layer works per channel)."""
        return tuple(in_shape)

    def forward(self, params, x, stats_batch: int | None = None):
        """``(y, cache)`` for task-batched ``x`` ``(T, B, ..., C)`` with single- or task-batched ``params``; the
        statistics come from the first ``stats_batch`` examples of each task (all of them when
        ``None``)."""
        xp = array_module(x)
        t, b, c = x.shape[0], x.shape[1], x.shape[-1]
        if stats_batch is None or stats_batch >= b:
            stats_batch = None
        elif stats_batch < 1:
            raise ValueError(f"stats_batch must be at least 1, got {stats_batch}")
        # (T, B * spatial, C): the first ``stats_batch * spatial`` rows are the examples in S.
        x3 = x.reshape(t, -1, c)
        rows = x3.shape[1] if stats_batch is None else stats_batch * (x3.shape[1] // b)
        # einsum reduces over the middle axis about twice as fast as ndarray.sum and needs no
        # temporary for the sum of squares; every full-size temporary is reused in place.
        mu = xp.einsum("tmc->tc", x3[:, :rows]) / rows
        xhat = x3 - mu[:, None, :]
        ref = xhat[:, :rows]
        var = xp.einsum("tmc,tmc->tc", ref, ref) / rows
        inv = 1.0 / xp.sqrt(var + self.eps)
        xhat *= inv[:, None, :]
        y = xhat * params["scale"][:, None, :]
        y += params["offset"][:, None, :]
        return y.reshape(x.shape), (xhat, inv, rows)

    def backward(self, params, cache, dy):
        """``(dx, grads)``: the gradient with respect to ``x`` and ``{"scale": (T, C), "offset": (T, C)}``, given
        ``dy`` with respect to the output and the forward pass's ``cache``."""
        xhat, inv, rows = cache
        xp = array_module(dy)
        dy3 = dy.reshape(xhat.shape)
        dgamma = xp.einsum("tmc,tmc->tc", dy3, xhat)
        dbeta = xp.einsum("tmc->tc", dy3)
        grads = {"scale": dgamma, "offset": dbeta}
        # With a = scale * inv and N the number of entries in S per channel, the chain rule
        # through xhat = (x - mu) * inv, where mu and inv depend on the examples in S only, gives
        #   dx = a * dy - [row in S] * a * (dbeta + xhat * dgamma) / N
        # (dbeta and dgamma sum over the whole batch: every output depends on the statistics).
        a = (params["scale"] * inv)[:, None, :]
        k1 = (dgamma / rows)[:, None, :]
        k0 = (dbeta / rows)[:, None, :]
        if rows == xhat.shape[1]:
            dx = xhat * k1
            dx += k0
            xp.subtract(dy3, dx, out=dx)
            dx *= a
        else:
            dx = dy3 * a
            part = xhat[:, :rows] * k1
            part += k0
            part *= a
            dx[:, :rows] -= part
        return dx.reshape(dy.shape), grads
