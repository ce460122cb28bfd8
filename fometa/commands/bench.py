"""``fometa bench``: forward+backward throughput of the paper's networks.

Reports, for each task count T, the median wall time of one ``loss_and_grad`` call on
``T`` tasks of ``batch`` images and the resulting images per second. Medians over
``--repeat`` timed calls after ``--warmup`` untimed ones; one JSON object per line.
"""
from __future__ import annotations

import json
import time


def add_arguments(p):
    p.add_argument("--model", default="omniglot", choices=["omniglot", "miniimagenet", "sine"])
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--batch", type=int, default=10, help="images per task (default 10)")
    p.add_argument("--tasks", type=int, nargs="+", default=[1, 5], help="task counts T (default 1 5)")
    p.add_argument("--backend", default=None, help="numpy, cupy or cupy:N (default: $FOMETA_BACKEND or numpy)")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)


def measure(model, backend, tasks: int, batch: int, repeat: int, warmup: int, seed: int) -> dict:
    import numpy as np

    from fometa import tree

    rng = np.random.default_rng(seed)
    params = tree.to_backend(tree.broadcast(model.init(rng), tasks), backend)
    x = rng.random((tasks, batch) + tuple(model.input_shape), dtype=np.float32)
    if model.loss == "mse":
        y = rng.standard_normal((tasks, batch, 1)).astype(np.float32)
    else:
        y = rng.integers(0, model.output_shape[0], size=(tasks, batch))
    x, y = backend.asarray(x), backend.asarray(y)
    times = []
    for i in range(warmup + repeat):
        backend.synchronize()
        start = time.perf_counter()
        model.loss_and_grad(params, x, y)
        backend.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {
        "model": model.name, "backend": backend.name, "tasks": tasks, "batch": batch,
        "median_s": median, "min_s": float(np.min(times)), "max_s": float(np.max(times)),
        "images_per_s": tasks * batch / median, "repeat": repeat,
    }


def run(args) -> int:
    from fometa import get_backend, models

    backend = get_backend(args.backend)
    model = {
        "omniglot": lambda: models.omniglot_cnn(args.ways),
        "miniimagenet": lambda: models.miniimagenet_cnn(args.ways),
        "sine": models.sine_mlp,
    }[args.model]()
    for t in args.tasks:
        print(json.dumps(measure(model, backend, t, args.batch, args.repeat, args.warmup, args.seed)), flush=True)
    return 0
