"""Section 6.3: FOMAML with a shared or a separate final mini-batch, and Reptile, across inner iteration counts.

5-shot 5-way Omniglot, plain SGD inner loop (learning rate 0.003), mini-batches of 25 (the whole
5 x 5 task), meta-batch 1, meta-step 0.25 for every curve, ``k`` inner iterations each:

* ``reptile``: ``G = g_1 + ... + g_k`` on ``k`` mini-batches of the task (each all 25 examples);
* ``fomaml-shared``: ``G = g_k`` where the final mini-batch is drawn from the same 25 examples
  as the first ``k - 1`` (here it *is* them: the model has already taken ``k - 1`` steps on it);
* ``fomaml-separate``: ``G = g_k`` on a final mini-batch of 25 held-out examples (5 more shots per
  class, :class:`fometa.meta.FOMAML` ``tail_shots=5``; the reference's ``--foml-tail``).

The expansion of Section 5 explains the difference: FOMAML's ``AvgGradInner`` term
``Hbar_k gbar_j`` pairs the final batch with the earlier ones; when they are the same examples it
is ``(1/2) d/dphi |gbar|^2`` of one batch -- it rewards fitting that batch quickly, not
generalizing from one batch to another.
"""
from __future__ import annotations

from typing import Any

from fometa import config as C
from fometa.experiments.common import Curve, JsonLog, compare, config, curves_of, pyplot, run_curves

INNER_LR = 0.003
SHOTS = 5
INNER_BATCH = 25
TAIL_SHOTS = 5
META_STEP = 0.25
ITERS = (2, 4, 8)
#: the curves' algorithms: outer.algorithm and outer.tail_shots of each
KINDS: dict[str, dict[str, Any]] = {"reptile": {"outer.algorithm": "reptile"},
                                     "fomaml-shared": {"outer.algorithm": "fomaml"},
                                     "fomaml-separate": {"outer.algorithm": "fomaml", "outer.tail_shots": TAIL_SHOTS}}

# reduced from the paper's run so that all nine curves take under 30 minutes on 2 CPU cores
DEFAULT_BUDGET = {"meta_iters": 1000, "eval_interval": 500, "interval_tasks": 40}


def make_curves(iters=ITERS, kinds=tuple(KINDS), meta_step: float = META_STEP) -> list[Curve]:
    """For each ``k`` in ``iters``: a curve of each of ``kinds`` (see :data:`KINDS`)."""
    curves = []
    for k in iters:
        if k < 2:
            raise ValueError(f"FOMAML's final mini-batch needs at least 2 inner iterations, got {k}")
        for name in kinds:
            settings = {"inner.lr": INNER_LR, "inner.batch": INNER_BATCH, "inner.shots": SHOTS, "inner.iters": k,
                        "outer.meta_step": meta_step, "outer.meta_step_final": meta_step, **KINDS[name]}
            curves.append(Curve(f"{name} k={k}", settings, fields={"k": k, "algorithm": name}))
    return curves


def select(iters=ITERS, names=None) -> list[Curve]:
    """The curves for inner iteration counts ``iters`` and the algorithms in ``names`` (default: all three)."""
    names = tuple(KINDS) if names is None else tuple(names)
    unknown = set(names) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown algorithms {sorted(unknown)}; choose from {list(KINDS)}")
    return make_curves(iters, names)


def run(splits, log: JsonLog, cfg: C.RunConfig | None = None, curves=None, eval_seed: int = 1,
        progress=None) -> list[dict]:
    """Meta-train and evaluate ``curves`` (default: all nine of :func:`make_curves`) on the shared settings
    ``cfg`` (default: :func:`~fometa.experiments.common.config` of :data:`DEFAULT_BUDGET`); returns the
    evaluation records."""
    curves = make_curves() if curves is None else list(curves)
    cfg = config(DEFAULT_BUDGET) if cfg is None else cfg
    settings = {"tail_shots": TAIL_SHOTS}
    return run_curves("fomaml-tail", curves, splits, cfg, log, eval_seed, settings, progress)


COLOURS = {"reptile": "tab:green", "fomaml-shared": "tab:red", "fomaml-separate": "tab:blue"}


def plot(records, path, title: str | None = None) -> None:
    """Final accuracy and query loss against inner iterations per algorithm (the paper's figure), and learning
    curves."""
    plt = pyplot()
    curves = curves_of(records)
    fig, (acc_ax, loss_ax, curve_ax) = plt.subplots(1, 3, figsize=(14, 4.2))
    by_alg: dict[str, list] = {}
    for rs in curves.values():
        by_alg.setdefault(rs[0]["algorithm"], []).append(rs[-1])
    iters = sorted({r["k"] for rs in curves.values() for r in rs})
    for alg, finals in by_alg.items():
        finals.sort(key=lambda r: r["k"])
        ks = [r["k"] for r in finals]
        acc_ax.errorbar(ks, [r["accuracy"] for r in finals], yerr=[r["ci95"] for r in finals],
                        marker="o", capsize=3, color=COLOURS.get(alg, "grey"), label=alg)
        loss_ax.errorbar(ks, [r["query_loss"] for r in finals], yerr=[r["query_loss_ci95"] for r in finals],
                         marker="o", capsize=3, color=COLOURS.get(alg, "grey"), label=alg)
    final_it = max(r["iteration"] for rs in curves.values() for r in rs)
    for ax, label in ((acc_ax, "test accuracy (5-shot 5-way, transductive)"),
                      (loss_ax, "test query loss after adaptation")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(iters)
        ax.set_xticklabels([str(k) for k in iters])
        ax.set_xlabel("inner iterations k")
        ax.set_ylabel(label)
        ax.set_title(f"after {final_it} meta-iterations")
        ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=8)
    styles = {k: ("-", "--", ":", "-.")[i % 4] for i, k in enumerate(iters)}  # as many as there are curves
    for name, rs in curves.items():
        curve_ax.plot([r["iteration"] for r in rs], [r["accuracy"] for r in rs], styles[rs[0]["k"]],
                      color=COLOURS.get(rs[0]["algorithm"], "grey"), label=name)
    curve_ax.set_xlabel("meta-iteration")
    curve_ax.set_ylabel("test accuracy")
    curve_ax.set_title("learning curves")
    curve_ax.grid(alpha=0.3)
    curve_ax.legend(fontsize=7, ncol=1)
    fig.suptitle(title or "FOMAML shared vs separate tail, and Reptile (Omniglot 5-shot 5-way, SGD inner loop, lr "
                          "0.003)")
    fig.tight_layout()
    fig.savefig(path, dpi=64)
    plt.close(fig)


def summary(records) -> list[dict]:
    last = [rs[-1] for rs in curves_of(records).values()]
    return [{"curve": r["curve"], "k": r["k"], "algorithm": r["algorithm"], "iteration": r["iteration"],
             "accuracy": r["accuracy"], "ci95": r["ci95"], "query_loss": r["query_loss"]} for r in last]


def comparisons(records) -> list[dict]:
    """Paired differences at the last evaluation, for each ``k``: separate tail, and Reptile, against shared tail."""
    ks = sorted({r["k"] for rs in curves_of(records).values() for r in rs})
    pairs = []
    for k in ks:
        pairs += [(f"fomaml-separate k={k}", f"fomaml-shared k={k}"), (f"reptile k={k}", f"fomaml-shared k={k}"),
                  (f"reptile k={k}", f"fomaml-separate k={k}")]
    return compare(records, pairs)

