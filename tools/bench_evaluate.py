"""Evaluation tasks per second through ``fometa.evaluate.evaluate`` alone, so that one script
times any fometa version (before/after comparisons; ``fometa bench eval`` is the everyday tool).

Usage: python tools/bench_evaluate.py [--tasks 200] [--shots 1] [--chunk 50] [--repeat 3]

Omniglot 5-way, the paper's evaluation (50 Adam steps on mini-batches of 5, one query per
class), both modes (transductive and per-query) from one adaptation, on random 28x28 images
(the cost does not depend on the pixels). Prints one JSON object: median wall seconds, tasks
per second, and the accuracies (identical across versions that compute the same numbers).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from fometa import evaluate, models, optim
from fometa.tasks import ArrayClasses


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    model = models.omniglot_cnn(5)
    ds = ArrayClasses([rng.random((20, 28, 28), dtype=np.float32) for _ in range(50)])
    params = model.init(rng)
    cfg = evaluate.EvaluationConfig(shots=args.shots, inner_batch=5, inner_iters=50)
    times, accs = [], None
    for _ in range(args.repeat):
        start = time.perf_counter()
        res = evaluate.evaluate(model, params, ds, np.random.default_rng(1), cfg, optim.Adam(1e-3), None,
                                tasks=args.tasks, chunk=args.chunk, modes=("transductive", "per-query"))
        times.append(time.perf_counter() - start)
        accs = {k: v.accuracy for k, v in res.items()}
    med = float(np.median(times))
    print(json.dumps({"tasks": args.tasks, "shots": args.shots, "chunk": args.chunk, "median_s": med,
                      "tasks_per_s": args.tasks / med, "accuracy": accs, "repeat": args.repeat}))


if __name__ == "__main__":
    main()
