"""Mean squared error per task: ``loss[t] = mean_{b, o} (pred[t, b, o] - target[t, b, o])^2``.

``pred`` and ``target`` ``(T, B, O)``; the loss is ``(T,)``; ``d loss / d pred = 2 (pred - target) / (B O)``.
"""
from __future__ import annotations


def forward(pred, target):
    if pred.shape != target.shape:
        raise ValueError(f"targets of shape {target.shape} do not match predictions of shape {pred.shape}")
    diff = pred - target
    return (diff * diff).reshape(diff.shape[0], -1).mean(axis=1), diff


def backward(diff, dloss):
    count = diff[0].size
    return diff * (2.0 * dloss.reshape((-1,) + (1,) * (diff.ndim - 1)) / count)
