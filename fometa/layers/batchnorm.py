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
    channels: int
    eps: float = 1e-3

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"scale": (self.channels,), "offset": (self.channels,)}

    def init(self, rng: np.random.Generator, dtype=np.float32) -> dict:
        return {"scale": np.ones(self.channels, dtype=dtype), "offset": np.zeros(self.channels, dtype=dtype)}

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def forward(self, params, x, stats_batch: int | None = None):
        xp = array_module(x)
        axes = tuple(range(1, x.ndim - 1))
        if stats_batch is None or stats_batch >= x.shape[1]:
            stats_batch = None
            ref = x
        elif stats_batch < 1:
            raise ValueError(f"stats_batch must be at least 1, got {stats_batch}")
        else:
            ref = x[:, :stats_batch]
        mu = ref.mean(axis=axes, keepdims=True)
        var = ((ref - mu) ** 2).mean(axis=axes, keepdims=True)
        inv = 1.0 / xp.sqrt(var + self.eps)
        bshape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
        centered = x - mu
        xhat = centered * inv
        y = xhat * params["scale"].reshape(bshape) + params["offset"].reshape(bshape)
        return y, (centered, inv, stats_batch, bshape)

    def backward(self, params, cache, dy):
        centered, inv, stats_batch, bshape = cache
        axes = tuple(range(1, dy.ndim - 1))
        xhat = centered * inv
        grads = {"scale": (dy * xhat).sum(axis=axes), "offset": dy.sum(axis=axes)}
        dxhat = dy * params["scale"].reshape(bshape)
        # y depends on x directly (through x - mu) and on the statistics, which depend on
        # the examples in S only: dx = dxhat * inv + [b in S] (dmu + 2 (x - mu) dvar) / N_S.
        d_inv = (dxhat * centered).sum(axis=axes, keepdims=True)
        d_var = -0.5 * inv**3 * d_inv
        d_mu = -(dxhat * inv).sum(axis=axes, keepdims=True)
        n_ref = dy.shape[1] if stats_batch is None else stats_batch
        count = n_ref * int(np.prod(dy.shape[2:-1], dtype=np.int64))
        dx = dxhat * inv
        if stats_batch is None:
            dx = dx + (d_mu + 2.0 * centered * d_var) / count
        else:
            dx[:, :n_ref] += (d_mu + 2.0 * centered[:, :n_ref] * d_var) / count
        return dx, grads
