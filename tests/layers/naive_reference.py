"""Independent naive references for every layer and loss, written as plain loops.

Nothing here calls fometa: no im2col, no padding helper, no batched matmul over a task axis.
Each reference works on one task (no task axis); :func:`per_task` maps it over the leading
task axis. Everything runs in float64 on host NumPy arrays.

TensorFlow's 'same' rule, restated here from its documentation rather than imported:
``out = ceil(n / s)``, ``pad_total = max((out - 1) * s + k - n, 0)``, ``pad_before = pad_total // 2``
(the odd extra cell goes after). 'valid': ``out = (n - k) // s + 1``, no padding.
"""
from __future__ import annotations

import math

import numpy as np


def tf_out_and_before(n: int, k: int, s: int, padding: str) -> tuple[int, int]:
    """Output length and leading padding along one axis (TensorFlow's rule)."""
    if padding == "same":
        out = (n + s - 1) // s
        total = max((out - 1) * s + k - n, 0)
        return out, total // 2
    if padding == "valid":
        return (n - k) // s + 1, 0
    raise ValueError(padding)


def conv2d(x, kernel, bias, stride: int, padding: str):
    """Cross-correlation: ``x`` (B, H, W, C), ``kernel`` (kh, kw, C, O), ``bias`` (O,).

    A loop over output positions and kernel taps; taps that land in the padding are skipped,
    which is exactly zero padding.
    """
    b, h, w, _ = x.shape
    kh, kw, _, o = kernel.shape
    oh, top = tf_out_and_before(h, kh, stride, padding)
    ow, left = tf_out_and_before(w, kw, stride, padding)
    y = np.zeros((b, oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            acc = np.array(bias, dtype=np.float64)[None, :].repeat(b, axis=0)
            for di in range(kh):
                r = i * stride + di - top
                if not 0 <= r < h:
                    continue
                for dj in range(kw):
                    c = j * stride + dj - left
                    if not 0 <= c < w:
                        continue
                    acc = acc + x[:, r, c, :] @ kernel[di, dj]
            y[:, i, j, :] = acc
    return y


def maxpool2d(x, pool: int, stride: int, padding: str):
    """Max over each window's cells that lie inside the input (padding never takes part)."""
    b, h, w, ch = x.shape
    oh, top = tf_out_and_before(h, pool, stride, padding)
    ow, left = tf_out_and_before(w, pool, stride, padding)
    y = np.empty((b, oh, ow, ch))
    for i in range(oh):
        for j in range(ow):
            rows = [r for r in range(i * stride - top, i * stride - top + pool) if 0 <= r < h]
            cols = [c for c in range(j * stride - left, j * stride - left + pool) if 0 <= c < w]
            assert rows and cols, "a pooling window lies wholly in the padding"
            best = np.full((b, ch), -np.inf)
            for r in rows:
                for c in cols:
                    best = np.maximum(best, x[:, r, c, :])
            y[:, i, j, :] = best
    return y


def batchnorm(x, scale, offset, eps: float = 1e-3, stats_batch: int | None = None):
    """Per channel: statistics over the first ``stats_batch`` examples (all by default) and
    every spatial position, biased variance; applied to the whole batch."""
    n = x.shape[0] if stats_batch is None else min(stats_batch, x.shape[0])
    y = np.empty(x.shape)
    for c in range(x.shape[-1]):
        vals = [float(v) for v in x[:n, ..., c].ravel()]
        mu = math.fsum(vals) / len(vals)
        var = math.fsum((v - mu) ** 2 for v in vals) / len(vals)
        y[..., c] = scale[c] * (x[..., c] - mu) / math.sqrt(var + eps) + offset[c]
    return y


def dense(x, kernel, bias):
    """``x`` (B, F) -> (B, O), a loop over examples and outputs."""
    b, f = x.shape
    o = kernel.shape[1]
    y = np.empty((b, o))
    for i in range(b):
        for k in range(o):
            y[i, k] = math.fsum(float(x[i, m]) * float(kernel[m, k]) for m in range(f)) + bias[k]
    return y


def relu(x):
    return np.where(x > 0, x, 0.0)


def tanh(x):
    return np.vectorize(math.tanh)(x) if np.size(x) else np.tanh(x)


def flatten(x):
    """(B, ...) -> (B, prod(...)) in row-major order."""
    return np.stack([np.array(list(np.nditer(ex, order="C"))) for ex in x]) if x.shape[0] else x.reshape(0, -1)


def softmax_cross_entropy(logits, labels) -> float:
    """Mean over examples of ``logsumexp(logits[b]) - logits[b, labels[b]]``."""
    total = []
    for row, lab in zip(logits, labels, strict=True):
        m = max(float(v) for v in row)
        lse = m + math.log(math.fsum(math.exp(float(v) - m) for v in row))
        total.append(lse - float(row[int(lab)]))
    return math.fsum(total) / len(total)


def mse(pred, target) -> float:
    diffs = [(float(p) - float(t)) ** 2 for p, t in zip(np.ravel(pred), np.ravel(target), strict=True)]
    return math.fsum(diffs) / len(diffs)


def per_task(fn, *args, **kwargs):
    """Apply a single-task reference to each task of task-batched arguments and stack."""
    tasks = len(args[0])
    return np.stack([np.asarray(fn(*(a[t] for a in args), **kwargs)) for t in range(tasks)])


# -- the reference architectures (openai/supervised-reptile, models.py, TensorFlow 1) ------------

def omniglot_logits(params, x):
    """OmniglotModel: reshape to (-1, 28, 28, 1); 4 x [conv2d(64, 3, strides=2, 'same'),
    batch_normalization(training=True), relu]; flatten; dense. ``params`` use fometa's names."""
    out = np.asarray(x, dtype=np.float64).reshape(-1, 28, 28, 1)
    for i in range(4):
        out = conv2d(out, params[f"conv{i}/kernel"], params[f"conv{i}/bias"], 2, "same")
        out = batchnorm(out, params[f"bn{i}/scale"], params[f"bn{i}/offset"], 1e-3)
        out = relu(out)
    out = flatten(out)
    return dense(out, params["dense/kernel"], params["dense/bias"])


def miniimagenet_logits(params, x):
    """MiniImageNetModel: 4 x [conv2d(32, 3, 'same'), batch_normalization(training=True),
    max_pooling2d(2, 2, 'same'), relu]; flatten; dense."""
    out = np.asarray(x, dtype=np.float64)
    for i in range(4):
        out = conv2d(out, params[f"conv{i}/kernel"], params[f"conv{i}/bias"], 1, "same")
        out = batchnorm(out, params[f"bn{i}/scale"], params[f"bn{i}/offset"], 1e-3)
        out = maxpool2d(out, 2, 2, "same")
        out = relu(out)
    out = flatten(out)
    return dense(out, params["dense/kernel"], params["dense/bias"])
