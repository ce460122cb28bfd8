"""Median wall time of one meta-iteration for one seed alone and for R seeds on one task axis.

Usage: python tools/bench_seeds.py [--data omniglot.h5] [--seeds 4] [--repeat 30] [--preset P] [--backend B]

The learner is the preset's (default omniglot-5way-1shot: the paper's 64-filter net, 5-way,
10 train shots, 5 inner Adam steps of 10, meta-batch 5). Tasks come from the packed file's
train split (``--data``) or, without it, random images (the cost does not depend on the pixels);
they are drawn before the clock starts, so only the meta-iteration (``MetaLearner.step`` for one
seed, :func:`fometa.seeds.step` for R) is timed. The two are interleaved round by round so that a
noisy machine slows them alike. Prints one JSON line per setting and one with the ratio.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from fometa import config, seeds
from fometa.build import build_learner, load_splits
from fometa.tasks import ArrayClasses


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="omniglot-5way-1shot")
    ap.add_argument("--data", default=None, help="packed Omniglot file (default: random images)")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--backend", default=None)
    args = ap.parse_args(argv)
    cfg = config.apply_overrides(config.preset(args.preset), {"backend": args.backend, "data.path": args.data})
    if args.data:
        ds = load_splits(cfg.data)["train"]
    else:
        rng = np.random.default_rng(0)
        ds = ArrayClasses([rng.random((20, 28, 28), dtype=np.float32) for _ in range(50)])
    learner = build_learner(cfg)
    be = learner.backend
    rngs = [np.random.default_rng(s) for s in range(args.seeds)]
    states = [learner.init(learner.model.init(r)) for r in rngs]
    single = states[0]
    times = {"one": [], "group": []}
    for r in range(args.repeat + 2):  # two warm-up rounds
        tasks = [learner.sample(ds, g) for g in rngs]
        be.synchronize()
        start = time.perf_counter()
        single, _ = learner.step(single, tasks[0])
        be.synchronize()
        t_one = time.perf_counter() - start
        start = time.perf_counter()
        states, _ = seeds.step(learner, states, tasks)
        be.synchronize()
        t_group = time.perf_counter() - start
        if r >= 2:
            times["one"].append(t_one)
            times["group"].append(t_group)
    one, group = (float(np.median(times[k])) for k in ("one", "group"))
    common = {"preset": args.preset, "backend": be.name, "repeat": args.repeat}
    print(json.dumps({**common, "seeds": 1, "median_ms": round(1e3 * one, 1)}))
    print(json.dumps({**common, "seeds": args.seeds, "median_ms": round(1e3 * group, 1),
                      "median_ms_per_seed": round(1e3 * group / args.seeds, 1)}))
    print(json.dumps({**common, "group_vs_one": round(group / one, 3),
                      "speedup_per_seed": round(args.seeds * one / group, 3)}))


if __name__ == "__main__":
    main()
