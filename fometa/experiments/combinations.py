"""Section 6.2: inner-loop gradient combinations on 5-shot 5-way Omniglot.

Each meta-iteration draws one training task with ``5 k`` shots per class and runs ``k`` plain SGD
steps (learning rate 0.003) on ``k`` mini-batches of 25 that do not overlap, collecting the
gradients ``g_1 .. g_k`` along the way; the pseudo-gradient is a combination of them
(:class:`fometa.meta.Combination`), applied with ``phi <- phi - eps * 0.003 * G``:

=====================  ==============  ======================================================
curve                  weights         meta-step ``eps``
=====================  ==============  ======================================================
``g1``                 (1)             0.25   (``k = 1``: joint training; FOMAML = Reptile here)
``g1+...+gk``          (1, .., 1)      0.25   (Reptile)
``(g1+...+gk)/k``      (1/k, .., 1/k)  0.25/k (the average)
``gk``                 (0, .., 0, 1)   0.25   (FOMAML)
=====================  ==============  ======================================================

for ``k = 2, 3, 4``: ten curves. The meta-steps are the issue's reading of the paper's (0.25 for the
sums and last-only, 0.25/k for the averages), so an average moves ``k^2`` times less per
meta-iteration than the sum of the same gradients, and ``k`` times less than the last one. The paper's
expansion (Section 5) predicts the expected update ``(sum_i w_i) AvgGrad - alpha (sum_i (i - 1) w_i)
AvgGradInner``: ``g1`` has no AvgGradInner term at all, and the sum carries ``k (k - 1) / 2`` of it against
the last gradient's ``k - 1``.
Evaluation: 5 inner SGD steps at batch 25 on 5-shot 5-way test tasks, transductive.
"""
from __future__ import annotations

import numpy as np

from fometa import config as C
from fometa.experiments.common import Curve, JsonLog, compare, config, curves_of, pyplot, run_curves

INNER_LR = 0.003
INNER_BATCH = 25
META_STEP = 0.25
KS = (2, 3, 4)

# reduced from the paper's run so that all ten curves take under 30 minutes on 2 CPU cores
DEFAULT_BUDGET = {"meta_iters": 2500, "eval_interval": 500, "interval_tasks": 40}


def _curve(name: str, k: int, weights: tuple[float, ...], meta_step: float, kind: str) -> Curve:
    # 5 k shots per class: k mini-batches of 25 that never overlap (and nothing is left over)
    settings = {"inner.lr": INNER_LR, "inner.batch": INNER_BATCH, "inner.shots": 5 * k, "inner.iters": k,
                "outer.meta_step": meta_step, "outer.meta_step_final": meta_step}
    return Curve(name, settings, weights, {"k": k, "kind": kind})


def make_curves(ks=KS, meta_step: float = META_STEP) -> list[Curve]:
    """``g1``, then for each ``k``: the sum, the average and the last gradient of ``k`` mini-batches."""
    curves = [_curve("g1", 1, (1.0,), meta_step, "first")]
    for k in ks:
        terms = "+".join(f"g{i}" for i in range(1, k + 1))
        curves += [
            _curve(terms, k, (1.0,) * k, meta_step, "sum"),
            _curve(f"({terms})/{k}", k, (1.0 / k,) * k, meta_step / k, "average"),
            _curve(f"g{k}", k, (0.0,) * (k - 1) + (1.0,), meta_step, "last"),
        ]
    return curves


def select(ks=KS, names=None) -> list[Curve]:
    """The curves for mini-batch counts ``ks``: all of them, or those named in ``names``."""
    if any(k < 1 for k in ks):
        raise ValueError(f"mini-batch counts must be at least 1, got {list(ks)}")
    chosen = make_curves(ks)
    if names is None:
        return chosen
    unknown = set(names) - {c.name for c in chosen}
    if unknown:
        raise ValueError(f"unknown curves {sorted(unknown)}; choose from {[c.name for c in chosen]}")
    return [c for c in chosen if c.name in set(names)]


def run(splits, log: JsonLog, cfg: C.RunConfig | None = None, curves=None, eval_seed: int = 1,
        progress=None) -> list[dict]:
    """Meta-train and evaluate ``curves`` (default: all ten of :func:`make_curves`) on the shared settings
    ``cfg`` (default: :func:`~fometa.experiments.common.config` of :data:`DEFAULT_BUDGET`); returns the
    evaluation records."""
    curves = make_curves() if curves is None else list(curves)
    cfg = config(DEFAULT_BUDGET) if cfg is None else cfg
    return run_curves("combinations", curves, splits, cfg, log, eval_seed, progress=progress)


STYLE = {"first": ":", "sum": "-", "average": "--", "last": "-."}
COLOURS = {1: "black", 2: "tab:blue", 3: "tab:orange", 4: "tab:green"}


def plot(records, path, title: str | None = None) -> None:
    """Learning curves of every combination, as the paper's figure: accuracy (left) and query loss
    after adaptation (right) against meta-iterations.

    Colour: the number of mini-batches ``k``; line style: sum (solid), average (dashed), last
    gradient only (dash-dot), ``g1`` (dotted). The panel titles give the median 95% half-width of a
    point; curves are evaluated on the same tasks, so their differences are known better than that.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for name, rs in curves_of(records).items():
        x = [r["iteration"] for r in rs]
        colour, style = COLOURS.get(rs[0]["k"], "grey"), STYLE.get(rs[0]["kind"], "-")
        for ax, key in zip(axes, ("accuracy", "query_loss"), strict=True):
            y = [r[key] for r in rs]
            ax.plot(x, y, style, color=colour, lw=1.6, label=name)
    evals = [r for rs in curves_of(records).values() for r in rs]
    axes[0].set_title(f"accuracy (points +-{np.median([r['ci95'] for r in evals]):.3f}, 95%)", fontsize=9)
    axes[1].set_title(f"query loss (points +-{np.median([r['query_loss_ci95'] for r in evals]):.3f}, 95%)", fontsize=9)
    axes[0].set_ylabel("test accuracy (5-shot 5-way, transductive)")
    axes[1].set_ylabel("test query loss after 5 inner steps")
    for ax in axes:
        ax.set_xlabel("meta-iteration")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2, loc="upper left")
    fig.suptitle(title or "Inner-loop gradient combinations, Omniglot 5-shot 5-way (SGD inner loop, lr 0.003)")
    fig.tight_layout()
    fig.savefig(path, dpi=64)
    plt.close(fig)


def summary(records) -> list[dict]:
    """The last evaluation of every curve, best first."""
    last = [rs[-1] for rs in curves_of(records).values()]
    return sorted(
        ({"curve": r["curve"], "k": r["k"], "kind": r["kind"], "iteration": r["iteration"], "accuracy": r["accuracy"],
          "ci95": r["ci95"], "query_loss": r["query_loss"]} for r in last),
        key=lambda r: -r["accuracy"],
    )


def comparisons(records) -> list[dict]:
    """Paired differences at the last evaluation: for each ``k`` the sum, the average and ``g1`` against
    the last gradient ``gk``, and the sum of ``k`` against the sum of ``k - 1`` (``g1`` for ``k = 2``)."""
    sums = {r["k"]: r["curve"] for rs in curves_of(records).values() for r in rs[:1] if r["kind"] == "sum"}
    pairs = []
    for k, total in sorted(sums.items()):
        pairs += [(total, f"g{k}"), (f"({total})/{k}", f"g{k}"), ("g1", f"g{k}"), (total, sums.get(k - 1, "g1"))]
    return compare(records, pairs)
