"""Softmax cross-entropy with integer labels, averaged over the batch of each task.

``logits`` ``(T, B, N)``, ``labels`` ``(T, B)`` integers in ``[0, N)``; the loss is ``(T,)``:

    loss[t] = (1/B) sum_b [ logsumexp(logits[t, b]) - logits[t, b, labels[t, b]] ]

and ``d loss[t] / d logits[t, b] = (softmax(logits[t, b]) - onehot(labels[t, b])) / B``.
"""
from __future__ import annotations

from fometa.backends import array_module


def forward(logits, labels):
    xp = array_module(logits)
    t, b, n = logits.shape
    if labels.shape != (t, b):
        raise ValueError(f"labels of shape {labels.shape} do not match logits of shape {logits.shape}")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = xp.exp(shifted)
    total = exp.sum(axis=-1, keepdims=True)
    logp = shifted - xp.log(total)
    labels = labels.astype(xp.int64, copy=False)
    picked = xp.take_along_axis(logp, labels[:, :, None], axis=-1)[:, :, 0]
    loss = -picked.mean(axis=1)
    return loss, (exp / total, labels)


def backward(cache, dloss):
    """``dloss``: ``(T,)`` cotangent of the per-task losses; returns ``dlogits``."""
    xp = array_module(cache[0])
    probs, labels = cache
    t, b, n = probs.shape
    onehot = labels[:, :, None] == xp.arange(n)[None, None, :]
    return (probs - onehot) * (dloss[:, None, None] / b)


def accuracy(logits, labels):
    """Fraction of correct argmax predictions per task, ``(T,)``."""
    return (logits.argmax(axis=-1) == labels).mean(axis=1)
