"""How close the conv layers' matrix products come to this CPU's sgemm peak.

Usage: python tools/bench_sgemm.py [--repeat N] [--blocks] [--alternatives]   (OPENBLAS_NUM_THREADS=1: one core)

Prints one JSON object for a large square float32 product (the peak: n = 2048) and one per
matrix product that an inner step of the paper's networks runs (forward ``cols @ K``, kernel
gradient ``cols^T @ dz``, input gradient), for one task of 10 images, with GFLOP/s and the
fraction of the peak; the last line sums them into the rate of one whole inner step's conv
products. ``--blocks`` times each product as the fused engine runs it instead: cut into the
runs of images whose patch matrix fits :data:`fometa.models.fused.PATCH_BLOCK_BYTES` (one image
at a time for Mini-ImageNet's second layer), ``m`` then being one block's rows. Medians of
``--repeat`` calls.
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


def block_images(rows_per_image: int, depth: int, images: int = 10) -> int:
    """Images per block of the fused engine's patch matrices (``fometa.models.fused.ConvBlock._conv_blocks``)."""
    from fometa.models.fused import PATCH_BLOCK_BYTES

    per_image = rows_per_image * depth * 4
    if images * per_image <= PATCH_BLOCK_BYTES:
        return images
    step = max(1, PATCH_BLOCK_BYTES // per_image)
    return -(-images // -(-images // step))


def conv_products(net: str):
    """(layer, kind, m, k, n) of every conv product of one inner step of 10 images. The input
    gradient of a stride-2 layer is ``dz @ K^T`` (then scattered); of a stride-1 'same' layer,
    the convolution of ``dz`` with the flipped kernel (patches of ``dz`` times ``kh kw C_out x C_in``)."""
    if net == "omniglot":  # 28 -> 14 -> 7 -> 4 -> 2, stride 2, 64 filters
        sizes, chans, filters = [(28, 14), (14, 7), (7, 4), (4, 2)], [1, 64, 64, 64], 64
    else:  # 84 -> 42 -> 21 -> 11 -> 6 after pooling; convs at 84, 42, 21, 11, 32 filters
        sizes, chans, filters = [(84, 84), (42, 42), (21, 21), (11, 11)], [3, 32, 32, 32], 32
    out = []
    for i, ((_, o), c) in enumerate(zip(sizes, chans, strict=True)):
        rows, depth = 10 * o * o, 9 * c
        out.append((i, "forward", rows, depth, filters, False))
        out.append((i, "kernel-grad", depth, rows, filters, True))
        if i > 0 and net == "omniglot":
            out.append((i, "input-grad", rows, filters, depth, False))
        elif i > 0:
            out.append((i, "input-grad", rows, 9 * filters, c, False))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--blocks", action="store_true", help="each product in the fused engine's blocks of images")
    ap.add_argument("--alternatives", action="store_true",
                    help="also Mini-ImageNet's second conv in other layouts (transposed, Winograd's products)")
    args = ap.parse_args(argv)
    _, peak = rate(2048, 2048, 2048, max(3, args.repeat // 4))
    print(json.dumps({"what": "peak", "m": 2048, "k": 2048, "n": 2048, "gflops": peak}))
    for net in ("omniglot", "miniimagenet"):
        total_s = total_flop = 0.0
        for layer, kind, m, k, n, ta in conv_products(net):
            depth = max(k, n) if kind == "input-grad" else (m if kind == "kernel-grad" else k)  # patch columns
            rows = m // 10 if kind != "kernel-grad" else k // 10
            parts = 10 // block_images(rows, depth) if args.blocks else 1
            if kind == "kernel-grad":
                sec, gf = rate(m, k // parts, n, args.repeat, ta)
                mb, kb = m, k // parts
            else:
                sec, gf = rate(m // parts, k, n, args.repeat, ta)
                mb, kb = m // parts, k
            total_s += sec * parts
            total_flop += 2.0 * m * k * n
            print(json.dumps({"what": f"{net} conv{layer} {kind}" + (f" ({parts} blocks)" if parts > 1 else ""),
                              "m": mb, "k": kb, "n": n, "gflops": gf, "fraction_of_peak": gf / peak}))
        print(json.dumps({"what": f"{net} inner step, all conv products" + (" (blocks)" if args.blocks else ""),
                          "seconds": total_s,
                          "gflops": total_flop / total_s / 1e9, "fraction_of_peak": total_flop / total_s / 1e9 / peak}))
    if args.alternatives:
        for what, m, k, n, gf in alternatives(args.repeat):
            print(json.dumps({"what": f"miniimagenet conv1 forward, {what}", "m": m, "k": k, "n": n,
                              "gflops_direct_equivalent": gf, "fraction_of_peak": gf / peak}))


def alternatives(repeat: int):
    """The forward product of Mini-ImageNet's second conv (42x42x32 -> 32, one image of a task) in
    the layouts the narrow products could take: as the patch product runs it, transposed
    (``K^T cols^T``), and the 16 products of Winograd F(2x2, 3x3) (441 tiles, or all 10 images' 4410
    at once), without its transforms; then the whole convolution, patches and product against
    Winograd's transforms and products, as the fused engine runs each. Rates count the direct
    convolution's flops, so they compare as times do."""
    import numpy as np

    direct = 2.0 * 1764 * 288 * 32
    sec, _ = rate(1764, 288, 32, repeat)
    yield "as run: cols @ K, one image", 1764, 288, 32, direct / sec / 1e9
    sec, _ = rate(32, 288, 1764, repeat)
    yield "transposed: K^T @ cols^T, one image", 32, 288, 1764, direct / sec / 1e9
    for tiles, images in ((441, 1), (4410, 10)):
        rng = np.random.default_rng(0)
        u = rng.random((16, tiles, 32), dtype=np.float32)
        v = rng.random((16, 32, 32), dtype=np.float32)
        out = np.empty((16, tiles, 32), dtype=np.float32)
        times = []
        for _ in range(repeat + 2):
            start = time.perf_counter()
            np.matmul(u, v, out=out)
            times.append(time.perf_counter() - start)
        sec = float(np.median(times[2:])) / images
        yield (f"Winograd F(2x2,3x3): 16 x ({tiles} tiles x 32) @ (32 x 32), per image", tiles, 32, 32,
               direct / sec / 1e9)
    # the whole convolution of one image as the fused engine runs it, both ways: patches and product, or
    # Winograd's input transform, products and output transform (the backend's compiled kernels if any)
    from fometa.backends import get_backend, kernels

    be = get_backend("numpy")
    ops = be.kernels()
    rng = np.random.default_rng(1)
    x = rng.random((1, 1, 42, 42, 32), dtype=np.float32)
    g = rng.random((1, 3, 3, 32, 32), dtype=np.float32)

    def patches():
        cols = be.im2col_unpadded(x, 3, 3, 1, 1, 1, 42, 42).reshape(1, 1764, 288)
        return np.matmul(cols, g.reshape(1, 288, 32))

    def winograd():
        th, tw = kernels.winograd_tiles(42, 42)
        m = np.matmul(ops.winograd_input(x, 1, 1, th, tw), ops.winograd_kernel(g))
        return ops.winograd_output(m, 1, 42, 42)

    for what, fn in (("patches and product, as the engine runs them, one image", patches),
                     ("Winograd: transforms and products, as the engine runs them, one image", winograd)):
        times = []
        for _ in range(repeat + 2):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        yield what, 1764, 288, 32, direct / float(np.median(times[2:])) / 1e9


if __name__ == "__main__":
    main()
