"""A computation's floating-point work, counted from the network's shapes, and the limit it sets.

The limit of a meta-iteration or an evaluation is the time its arithmetic would take at the
rate of one large single-precision matrix product on the same cores (:func:`sgemm_rate`): the
time a perfect implementation would need if every multiply-add ran at BLAS's best speed.
Anything spent beyond it (memory passes, Python, small products) is distance to the limit,
which ``fometa bench`` reports beside every time it measures.

What is counted: the multiply-adds of the conv and dense layers, two flops each (batch norm,
pooling, ReLU, the loss and the optimizers are memory passes, not counted). One image through
a conv layer is ``out_h * out_w * kh * kw * C_in * C_out`` multiply-adds, through a dense layer
``F * O``. A training step (:meth:`~fometa.models.Sequential.loss_and_grad`) runs the forward
pass, the weight gradients (as many again) and the input gradients (as many again, except for
the network's first layer with parameters, whose input gradient nothing needs). These are the
direct convolution's counts: an algorithm with fewer multiplications (Winograd's, which the
fused engine runs for stride-1 3x3 convolutions) can run below the limit.

A first-order meta-iteration (Reptile, FOMAML) is ``meta_batch * inner_iters`` training steps
of ``inner_batch`` images; an evaluation task is ``inner_iters`` steps of the evaluation's
inner batch, then the forward passes that predict its queries in each batch-norm mode.
"""
from __future__ import annotations

import time

import numpy as np

from fometa.layers import Conv2D, Dense

__all__ = ["layer_macs", "forward_flops", "step_flops", "meta_iteration_flops", "eval_task_flops", "sgemm_rate"]


def layer_macs(model) -> list[tuple[str, int]]:
    """``[(layer name, multiply-adds of one image's forward pass)]`` for every conv and dense layer of
    a :class:`~fometa.models.Sequential`, in order."""
    shape = tuple(model.input_shape)
    out = []
    for name, layer in model.layers:
        after = layer.output_shape(shape)
        if isinstance(layer, Conv2D):
            kh, kw = layer.kernel_hw
            out.append((name, int(after[0] * after[1] * kh * kw * layer.in_channels * layer.out_channels)))
        elif isinstance(layer, Dense):
            out.append((name, int(layer.in_features * layer.out_features)))
        shape = after
    return out


def forward_flops(model, images: int) -> float:
    """Flops of a forward pass of ``images`` images."""
    return 2.0 * images * sum(macs for _, macs in layer_macs(model))


def step_flops(model, images: int) -> float:
    """Flops of one training step (forward, weight and input gradients) on ``images`` images."""
    macs = [m for _, m in layer_macs(model)]
    if not macs:
        return 0.0
    return 2.0 * images * (3 * sum(macs) - macs[0])


def meta_iteration_flops(model, meta_batch: int, inner_iters: int, inner_batch: int) -> float:
    """Flops of one first-order meta-iteration: ``meta_batch * inner_iters`` training steps."""
    return meta_batch * inner_iters * step_flops(model, inner_batch)


def eval_task_flops(model, inner_iters: int, inner_batch: int, support: int, queries: int, modes) -> float:
    """Flops of evaluating one task: the inner loop on its ``support`` images, then each batch-norm
    mode's forward passes (``transductive``: the queries together; ``per-query``: the support set
    with each query; ``support-stats``: support set and queries together)."""
    total = inner_iters * step_flops(model, inner_batch)
    for mode in modes:
        images = {"transductive": queries, "per-query": queries * (support + 1),
                  "support-stats": support + queries}.get(mode)
        if images is None:
            raise ValueError(f"unknown evaluation mode {mode!r}")
        total += forward_flops(model, images)
    return total


def sgemm_rate(threads: int = 1, n: int = 2048, repeat: int = 7) -> float:
    """GFLOP/s of an ``n x n`` float32 matrix product through NumPy with ``threads`` BLAS threads:
    the median of ``repeat`` products after one untimed."""
    from fometa import parallel

    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    before = parallel.get_blas_threads()
    parallel.set_blas_threads(threads)
    try:
        times = []
        for i in range(repeat + 1):
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            if i:
                times.append(time.perf_counter() - start)
    finally:
        if before is not None:
            parallel.set_blas_threads(before)
    return 2.0 * n**3 / float(np.median(times)) / 1e9
