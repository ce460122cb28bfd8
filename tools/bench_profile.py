"""Where a meta-iteration's time goes: the matrix products, each compiled or NumPy kernel, the rest.

Usage: python tools/bench_profile.py [--model omniglot|omniglot-20way|miniimagenet] [--repeat N]
                                     [--kernels numba,numpy] [--clock wall|cpu]

Runs tools/bench_torch.py's fometa loop (Reptile, meta-batch 5, task-batched, one thread; the
20-way loop takes 10 Adam steps of 20 images) and times, inside it, every ``numpy.matmul`` call
(the conv and dense products: BLAS), every call of the patch kernels, the batch-norm kernels and
Adam, and the inner loop as a whole. Each kernel set (``--kernels``) runs ``--repeat``
meta-iterations after one untimed; the sets alternate meta-iteration by meta-iteration. Prints
one JSON object per kernel set: milliseconds per meta-iteration, per part, and their shares;
``other`` is what is left (Python, small array calls, the outer step).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def loop(model: str, seed: int = 0):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_torch import fometa_loop

    if model != "omniglot-20way":
        return fometa_loop(model, seed)
    from fometa import build, config
    from fometa.tasks import ArrayClasses

    rng = np.random.default_rng(seed)
    ds = ArrayClasses([rng.random((10, 28, 28), dtype=np.float32) for _ in range(25)])
    learner = build.build_learner(config.apply_overrides(config.preset("omniglot-20way-1shot"), {"meta_iters": 10**6}))
    state = learner.init(learner.model.init(rng))
    tasks = learner.sample(ds, rng)

    def meta_iteration():
        nonlocal state
        state, _ = learner.step(state, tasks)

    return meta_iteration


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="omniglot", choices=["omniglot", "omniglot-20way", "miniimagenet"])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--kernels", default="numba,numpy")
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="wall time, or this process's CPU time (steadier on a machine shared with other jobs)")
    args = ap.parse_args(argv)

    from fometa import backends, inner, optim, parallel
    from fometa.backends import kernels

    parallel.set_threads(1)
    spent, calls = collections.Counter(), collections.Counter()

    def timed(owner, name, label):
        fn = getattr(owner, name)

        def wrapper(*a, **k):
            start = clock()
            try:
                return fn(*a, **k)
            finally:
                spent[label] += clock() - start
                calls[label] += 1

        setattr(owner, name, wrapper)

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    timed(np, "matmul", "matrix products (BLAS)")
    for name in ("winograd_input", "winograd_output", "winograd_output_grad", "winograd_input_grad"):
        timed(kernels, name, "Winograd transforms")
    timed(kernels, "im2col_unpadded", "patches (im2col)")
    timed(kernels, "col2im_unpadded", "patch gradients (col2im)")
    timed(optim.Adam, "update", "Adam")
    timed(inner, "adapt", "inner loop")
    compiled = backends.compiled_kernels()
    if compiled is not None:
        timed(compiled, "im2col_unpadded", "patches (im2col)")
        timed(compiled, "col2im_unpadded", "patch gradients (col2im)")
        timed(compiled, "bn_act_forward", "batch norm, pool, ReLU: forward")
        timed(compiled, "bn_act_backward", "batch norm, pool, ReLU: backward")
        timed(compiled, "adam_flat", "Adam")
        for name in ("winograd_input", "winograd_output", "winograd_output_grad", "winograd_input_grad"):
            timed(compiled, name, "Winograd transforms")
    import fometa.meta

    fometa.meta.adapt = inner.adapt  # the outer step calls the timed inner loop
    fn = loop(args.model)
    sets = [k.strip() for k in args.kernels.split(",")]
    totals = {k: [] for k in sets}
    parts = {k: collections.Counter() for k in sets}
    for r in range(args.repeat + 1):
        for k in sets:
            os.environ["FOMETA_NUMBA"] = {"numba": "1", "numpy": "0"}[k]
            spent.clear()
            start = clock()
            fn()
            total = clock() - start
            if r:
                totals[k].append(total)
                parts[k].update(spent)
    for k in sets:
        n = len(totals[k])
        per = {label: 1e3 * s / n for label, s in parts[k].items()}
        total = 1e3 * sum(totals[k]) / n
        inner_ms = per.pop("inner loop", total)
        per["other (Python, small calls; outer step and inner-loop bookkeeping)"] = total - sum(per.values())
        print(json.dumps({"model": args.model, "kernels": k, "threads": 1, "mean_ms": total, "inner_loop_ms": inner_ms,
                          "parts_ms": per, "shares": {label: v / total for label, v in per.items()},
                          "repeat": n}), flush=True)


if __name__ == "__main__":
    main()
