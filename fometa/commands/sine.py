"""``fometa sine``: meta-train the sine-wave MLP and report the MSE after 32 adaptation steps (the paper's Figure 1).

The last line of output is one JSON object with ``mse_trained``, ``mse_untrained`` and ``seconds``.
"""
from __future__ import annotations

import json
import sys

from fometa.commands.options import CLIError
from fometa.experiments import sine_wave


def add_arguments(p):
    p.add_argument("--algorithm", default="reptile", choices=["reptile", "fomaml", "maml"],
                   help="the meta-algorithm (default reptile)")
    p.add_argument("--meta-iters", type=int, default=30_000, help="meta-iterations (default 30,000, the paper's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialization and the tasks (default 0)")
    p.add_argument("--eval-tasks", type=int, default=500, help="test tasks (default 500)")
    p.add_argument("--plot", metavar="FILE.png", default=None, help="write the paper's Figure 1 (needs matplotlib)")
    p.add_argument("--backend", default=None, help="numpy, cupy or cupy:N (default: $FOMETA_BACKEND, else numpy)")


def run(args) -> int:
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
    cfg = sine_wave.config(args.algorithm, args.meta_iters, args.seed, args.eval_tasks, args.backend)
    result = sine_wave.run(cfg, plot, progress=True)
    print(f"MSE after 32 steps: trained {result['mse_trained']:.4f}, untrained {result['mse_untrained']:.4f}")
    print(json.dumps(result), flush=True)
    return 0
