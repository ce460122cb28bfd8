"""``fometa experiment combinations|fomaml-tail``: the paper's Section 6 experiments on Omniglot.

``fometa experiment combinations --data path/to/omniglot --out runs/combinations``
writes ``runs/combinations/combinations.jsonl`` (one JSON object per line) and
``runs/combinations/combinations.png``; ``fomaml-tail`` likewise. ``--data`` is a packed
Omniglot file or the folder of the two zips (packed once into ``--out``). The budget of every
curve is settings under their usual flags (``--meta-iters``, ``--eval-interval``,
``--interval-tasks``, ``--seed``); the defaults are reduced budgets that finish in under 30
minutes on two CPU cores; ``--eval-seed`` draws the test tasks. The last line printed is a JSON
summary (final accuracy of every curve).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from fometa.commands.options import CLIError, add_moved_flag, add_setting_arguments, overrides_from_args, user_error
from fometa.config import ConfigError
from fometa.data import DataError
from fometa.experiments import combinations, common, fomaml_tail

EXPERIMENTS = ("combinations", "fomaml-tail")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


#: the settings that this command takes (the budget of every curve; the rest is the experiment's)
SETTINGS = ("data.path", "meta_iters", "eval_interval", "interval_tasks", "eval.chunk", "seed", "backend")


def add_arguments(p):
    p.add_argument("experiment", choices=EXPERIMENTS, help="combinations (Section 6.2) or fomaml-tail (Section 6.3)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default runs/<experiment>)")
    p.add_argument("--ks", type=_ints, default=None, metavar="K,K,...",
                   help="mini-batch counts (combinations, default 2,3,4) or inner iterations (fomaml-tail, default "
                        "2,4,8)")
    p.add_argument("--curves", default=None, metavar="NAME,NAME,...",
                   help="only these curves (combinations: e.g. g1,g1+g2; fomaml-tail: "
                        "reptile,fomaml-shared,fomaml-separate)")
    p.add_argument("--eval-seed", type=int, default=1, metavar="SEED", help="seed of the test tasks (default 1)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_setting_arguments(p.add_argument_group("settings (the budget of every curve)"), SETTINGS,
                          "the experiment's reduced budget",
                          notes={"data.path": "datasets/omniglot.h5; here also the folder of images_background.zip "
                                              "and images_evaluation.zip, packed once into --out",
                                 "seed": "0; the initialization and the training tasks of every curve",
                                 "eval.chunk": "50", "backend": "$FOMETA_BACKEND, else numpy"})
    add_moved_flag(p, "--eval-tasks", "is now --interval-tasks (the test tasks of each evaluation)")


def run(args) -> int:
    module = combinations if args.experiment == "combinations" else fomaml_tail
    try:
        cfg = common.config({**module.DEFAULT_BUDGET, **overrides_from_args(args, SETTINGS)})
    except ConfigError as exc:
        raise user_error(exc, args) from None
    out = Path(args.out) if args.out is not None else Path("runs") / args.experiment
    stem = args.experiment
    plot = not args.no_plot
    if plot:
        try:
            import matplotlib  # noqa: F401 - imported to see that it is installed
        except ImportError:
            print("fometa experiment: matplotlib is not installed; skipping the PNG (pip install 'fometa[plot]')",
                  file=sys.stderr)
            plot = False
    names = None if args.curves is None else [c.strip() for c in args.curves.split(",") if c.strip()]
    try:
        if module is combinations:
            curves = combinations.select(args.ks or combinations.KS, names)
        else:
            curves = fomaml_tail.select(args.ks or fomaml_tail.ITERS, names)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    try:
        splits = common.load_omniglot(cfg.data.path, cache_dir=out)
    except DataError as exc:
        raise CLIError(str(exc)) from None

    def progress(index, total, name, it, iters, accuracy):
        if not args.quiet:
            print(f"[{index + 1}/{total}] {name}: iteration {it}/{iters}, accuracy {accuracy:.3f}", file=sys.stderr,
                  flush=True)

    with common.JsonLog(out / f"{stem}.jsonl") as log:
        records = module.run(splits, log, cfg, curves, args.eval_seed, progress=progress)
    if plot:
        module.plot(records, out / f"{stem}.png")
    for row in module.summary(records):
        print(f"{row['curve']:>20s}: accuracy {row['accuracy']:.3f} +- {row['ci95']:.3f}, query loss "
              f"{row['query_loss']:.3f}"
              f" after {row['iteration']} meta-iterations")
    pairs = module.comparisons(records)
    for c in pairs:
        print(f"{c['a']:>20s} - {c['b']:<20s}: query loss {c['loss_diff']:+.4f} +- {c['loss_diff_ci95']:.4f},"
              f" accuracy {c['accuracy_diff']:+.3f} +- {c['accuracy_diff_ci95']:.3f} (paired, same tasks)")
    print(json.dumps({"experiment": args.experiment, "log": str(out / f"{stem}.jsonl"),
                      "plot": str(out / f"{stem}.png") if plot else None, "final": module.summary(records),
                      "comparisons": pairs}), flush=True)
    return 0
