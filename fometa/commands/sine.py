"""``fometa sine``: meta-train the sine-wave MLP and report the MSE after 32 adaptation steps.

The last line of output is one JSON object with ``mse_trained``, ``mse_untrained`` and ``seconds``.
"""
from __future__ import annotations

import json
import sys


def add_arguments(p):
    p.add_argument("--algorithm", default="reptile", choices=["reptile", "fomaml", "maml"])
    p.add_argument("--meta-iters", type=int, default=30_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-tasks", type=int, default=500, help="test tasks (default 500)")
    p.add_argument("--plot", metavar="FILE.png", default=None, help="write the paper's Figure 1 (needs matplotlib)")
    p.add_argument("--backend", default=None)


def run(args) -> int:
    from fometa.cli import CLIError
    from fometa.sine import SineConfig, run as run_sine

    if args.meta_iters < 1:
        raise CLIError(f"--meta-iters must be at least 1, got {args.meta_iters}")
    if args.eval_tasks < 2:
        raise CLIError(f"--eval-tasks must be at least 2, got {args.eval_tasks}")
    plot = args.plot
    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("fometa sine: matplotlib is not installed; skipping --plot (pip install 'fometa[plot]')", file=sys.stderr)
            plot = None
    cfg = SineConfig(algorithm=args.algorithm, meta_iters=args.meta_iters, seed=args.seed, eval_tasks=args.eval_tasks)

    def progress(done, total):
        print(f"meta-iteration {done}/{total}", file=sys.stderr, flush=True)

    result = run_sine(cfg, args.backend, progress, plot)
    print(f"MSE after 32 steps: trained {result['mse_trained']:.4f}, untrained {result['mse_untrained']:.4f}")
    print(json.dumps(result), flush=True)
    return 0
