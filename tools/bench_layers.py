"""Per-layer forward and backward timings of a model, medians over repeated calls.

    python tools/bench_layers.py --model omniglot --tasks 5 --batch 10
    python tools/bench_layers.py --model miniimagenet --tasks 5 --batch 10 --dtype float64

For each layer, prints the median milliseconds of its ``forward`` and ``backward`` on the
activations the model actually produces (after ``--warmup`` untimed calls), and each
layer's share of the total. Uses only NumPy and the standard library.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from fometa import models, tree


def _median_ms(fn, repeat, warmup):
    times = []
    for i in range(warmup + repeat):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="omniglot", choices=["omniglot", "miniimagenet"])
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--tasks", type=int, default=5)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)

    model = (models.omniglot_cnn if args.model == "omniglot" else models.miniimagenet_cnn)(args.ways)
    rng = np.random.default_rng(0)
    dtype = np.dtype(args.dtype)
    params = tree.broadcast(tree.astype(model.init(rng), dtype), args.tasks)
    x = rng.random((args.tasks, args.batch) + tuple(model.input_shape)).astype(dtype)

    rows = []
    for lname, layer in model.layers:
        local = {k.split("/", 1)[1]: v for k, v in params.items() if k.startswith(lname + "/")}
        y, cache = layer.forward(local, x)
        dy = rng.standard_normal(y.shape).astype(dtype)
        f_ms = _median_ms(lambda layer=layer, local=local, x=x: layer.forward(local, x), args.repeat, args.warmup)
        b_ms = _median_ms(lambda layer=layer, local=local, cache=cache, dy=dy: layer.backward(local, cache, dy),
                          args.repeat, args.warmup)
        kind = type(layer).__name__
        rows.append((lname, kind, tuple(x.shape), f_ms, b_ms))
        x = y
    total = sum(r[3] + r[4] for r in rows)
    print(f"{model.name} T={args.tasks} B={args.batch} {dtype.name}: total {total:.2f} ms "
          f"({args.tasks * args.batch / total * 1e3:.0f} images/s, layers only)")
    print(f"{'layer':8s} {'kind':10s} {'input':24s} {'fwd ms':>8s} {'bwd ms':>8s} {'share':>6s}")
    for lname, kind, shape, f_ms, b_ms in rows:
        print(f"{lname:8s} {kind:10s} {str(shape):24s} {f_ms:8.3f} {b_ms:8.3f} {(f_ms + b_ms) / total:6.1%}")


if __name__ == "__main__":
    main()
