"""How close the conv layers' matrix products come to this CPU's sgemm peak.

Usage: python tools/bench_sgemm.py [--repeat N]   (set OPENBLAS_NUM_THREADS=1 for one core)

Prints one JSON object for a large square float32 product (the peak: n = 2048) and one per
matrix product that an inner step of the paper's networks runs (forward ``cols @ K``, kernel
gradient ``cols^T @ dz``, input gradient), for one task of 10 images, with GFLOP/s and the
fraction of the peak; the last line sums them into the rate of one whole inner step's conv
products. Medians of ``--repeat`` calls.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def rate(m: int, k: int, n: int, repeat: int, transpose_a: bool = False) -> tuple[float, float]:
    """(median seconds, GFLOP/s) of a float32 (m x k) @ (k x n) product."""
    rng = np.random.default_rng(0)
    a = rng.random((k, m), dtype=np.float32).T if transpose_a else rng.random((m, k), dtype=np.float32)
    b = rng.random((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    times = []
    for _ in range(repeat + 2):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - start)
    med = float(np.median(times[2:]))
    return med, 2.0 * m * k * n / med / 1e9


def conv_products(net: str):
    """(layer, kind, m, k, n) of every conv product of one inner step of 10 images."""
    if net == "omniglot":  # 28 -> 14 -> 7 -> 4 -> 2, stride 2, 64 filters
        sizes, chans, filters = [(28, 14), (14, 7), (7, 4), (4, 2)], [1, 64, 64, 64], 64
    else:  # 84 -> 42 -> 21 -> 11 -> 6 after pooling; convs at 84, 42, 21, 11, 32 filters
        sizes, chans, filters = [(84, 84), (42, 42), (21, 21), (11, 11)], [3, 32, 32, 32], 32
    out = []
    for i, ((_, o), c) in enumerate(zip(sizes, chans)):
        rows, depth = 10 * o * o, 9 * c
        out.append((i, "forward", rows, depth, filters, False))
        out.append((i, "kernel-grad", depth, rows, filters, True))
        if i > 0:
            out.append((i, "input-grad", rows, filters, depth, False))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    _, peak = rate(2048, 2048, 2048, max(3, args.repeat // 4))
    print(json.dumps({"what": "peak", "m": 2048, "k": 2048, "n": 2048, "gflops": peak}))
    for net in ("omniglot", "miniimagenet"):
        total_s = total_flop = 0.0
        for layer, kind, m, k, n, ta in conv_products(net):
            sec, gf = rate(m, k, n, args.repeat, ta)
            total_s += sec
            total_flop += 2.0 * m * k * n
            print(json.dumps({"what": f"{net} conv{layer} {kind}", "m": m, "k": k, "n": n, "gflops": gf,
                              "fraction_of_peak": gf / peak}))
        print(json.dumps({"what": f"{net} inner step, all conv products", "seconds": total_s,
                          "gflops": total_flop / total_s / 1e9, "fraction_of_peak": total_flop / total_s / 1e9 / peak}))


if __name__ == "__main__":
    main()
