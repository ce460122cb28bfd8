"""Peak memory of one meta-iteration, or of one evaluation chunk: the most bytes its arrays held at once.

Usage: python tools/bench_memory.py [--preset P[,P...]] [--threads N]   (default: miniimagenet-5way-1shot, 1)
       python tools/bench_memory.py --eval [--chunk N] [--preset ...] [--threads N]

For each preset, builds its learner as ``fometa bench meta`` does (random data of the right shape),
runs one untimed meta-iteration, then traces the next with :mod:`tracemalloc` (NumPy reports its
array buffers to it) and prints one JSON object: ``peak_mb``, the largest total of the traced
allocations made during that meta-iteration, on top of what was already held (the learner, the
drawn meta-batch). ``--eval``: the same of evaluating ``--chunk`` tasks at once with the preset's
evaluation settings (``miniimagenet-5way-5shot``: 5 support images a class, batches of 15), in both
batch-norm modes, after one untraced chunk. Works with any installed fometa, so an
older installation can be measured with the same command.
"""
from __future__ import annotations

import argparse
import json
import tracemalloc

import numpy as np


def peak_bytes(preset: str, seed: int = 0) -> int:
    from fometa import config
    from fometa.build import build_learner
    from fometa.commands.bench import _problem

    cfg = config.preset(preset)
    learner = build_learner(cfg)
    problem = _problem(cfg, seed)
    rng = np.random.default_rng(seed)
    state = learner.init(learner.model.init(rng))
    tasks = problem.sample(learner, rng)
    state, _ = learner.step(state, tasks)  # compiles and warms up, untraced
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        learner.step(state, tasks)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def eval_peak_bytes(preset: str, chunk: int, seed: int = 0) -> int:
    from fometa import config
    from fometa.build import build_learner
    from fometa.commands.bench import _problem

    cfg = config.preset(preset)
    learner = build_learner(cfg)
    problem = _problem(cfg, seed)
    params = learner.model.init(np.random.default_rng(seed))
    inner_state = learner.inner_opt.init(params)

    def chunk_once():
        problem.evaluate(learner, params, inner_state, "test", np.random.default_rng(seed), chunk,
                         modes=("transductive", "per-query"), chunk=chunk, eval_cfg=cfg.eval)

    chunk_once()  # compiles and warms up, untraced
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        chunk_once()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="miniimagenet-5way-1shot")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval", action="store_true", help="an evaluation chunk instead of a meta-iteration")
    ap.add_argument("--chunk", type=int, default=50, help="--eval: tasks at once (default 50, fometa eval's)")
    args = ap.parse_args(argv)
    import fometa
    from fometa import parallel

    parallel.set_threads(args.threads)
    for preset in (p.strip() for p in args.preset.split(",") if p.strip()):
        if args.eval:
            peak = eval_peak_bytes(preset, args.chunk)
            what = {"suite": "eval", "chunk": args.chunk}
        else:
            peak = peak_bytes(preset)
            what = {"suite": "meta"}
        print(json.dumps({"preset": preset, **what, "threads": args.threads, "peak_mb": peak / 1e6,
                          "fometa": getattr(fometa, "__version__", None)}), flush=True)


if __name__ == "__main__":
    main()
