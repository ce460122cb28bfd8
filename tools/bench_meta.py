"""Median wall time of one meta-iteration per algorithm (Reptile, FOMAML, MAML), and ratios to Reptile.

Usage: python tools/bench_meta.py [--repeat N] [--model sine|omniglot]

Sine: the paper's setup (meta-batch 1, 5 inner SGD steps of 10 points). Omniglot: 5-way,
10 train shots, 5 inner Adam steps of 10, meta-batch 5 task-batched, on random images (the
cost does not depend on the pixels). Algorithms are interleaved round by round so that a
noisy machine slows them alike; prints one JSON line per algorithm.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from fometa import config
from fometa.build import build_learner
from fometa.problems import make_problem
from fometa.tasks import ArrayClasses


def learners(model_name):
    if model_name == "sine":
        out = {alg: build_learner(config.apply_overrides(config.preset("sine"), {"outer.algorithm": alg}))
               for alg in ("reptile", "fomaml", "maml")}
        problem = make_problem(config.preset("sine"), None)
        rng = np.random.default_rng(0)
        return out, (lambda: problem.sample(out["reptile"], rng)), out["reptile"].model.init(rng)
    rng = np.random.default_rng(0)
    ds = ArrayClasses([rng.random((20, 28, 28), dtype=np.float32) for _ in range(50)])
    base = config.apply_overrides(config.preset("omniglot-5way-1shot"), {"meta_iters": 1000})
    out = {alg: build_learner(config.apply_overrides(base, {"outer.algorithm": alg}))
           for alg in ("reptile", "fomaml", "maml")}
    return out, (lambda: out["reptile"].sample(ds, rng)), out["reptile"].model.init(rng)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sine", choices=["sine", "omniglot"])
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args(argv)
    algs, draw, init = learners(args.model)
    states = {a: learner.init(init) for a, learner in algs.items()}
    times = {a: [] for a in algs}
    for r in range(args.repeat + 3):
        tasks = draw()
        for a, learner in algs.items():
            start = time.perf_counter()
            states[a], _ = learner.step(states[a], tasks)
            if r >= 3:
                times[a].append(time.perf_counter() - start)
    base = float(np.median(times["reptile"]))
    for a, ts in times.items():
        med = float(np.median(ts))
        print(json.dumps({"model": args.model, "algorithm": a, "median_ms": 1e3 * med, "ratio_to_reptile": med / base,
                          "repeat": args.repeat}))


if __name__ == "__main__":
    main()
