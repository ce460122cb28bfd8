"""The paper's Figure 1: Reptile (or FOMAML, MAML) on the sine-wave toy, against the untrained network.

:func:`run` meta-trains the ``sine`` preset (:mod:`fometa.config`) through the one training loop
(:func:`fometa.train.train`, in memory) and scores the trained and the untrained initialization
on the same test tasks (seeded by ``(seed, 1)``): grid MSE after 32 SGD steps on 10 points, through
the same learner (built once, :func:`fometa.build.build_learner`).
``fometa sine`` prints the result and can draw the figure (:func:`fometa.sine.plot`).
"""
from __future__ import annotations

import time

import numpy as np

from fometa import config as C
from fometa import sine, tree
from fometa.build import build_learner
from fometa.problems import SineProblem
from fometa.train import TrainOptions, train

__all__ = ["config", "run"]


def config(algorithm: str = "reptile", meta_iters: int = 30_000, seed: int = 0, eval_tasks: int = 500,
           backend=None) -> C.RunConfig:
    """The ``sine`` preset with these settings (nothing logged or checkpointed while training)."""
    return C.apply_overrides(C.preset("sine"), {"outer.algorithm": algorithm, "meta_iters": meta_iters, "seed": seed,
                                                "eval.tasks": eval_tasks, "backend": backend, "eval_interval": 0,
                                                "checkpoint_every": 0})


def run(cfg: C.RunConfig, plot_path=None, progress: bool = False) -> dict:
    """Train as ``cfg`` says, then score the trained and the untrained initialization (see the module docstring)."""
    start = time.perf_counter()
    learner = build_learner(cfg)  # the one learner: it trains, and both initializations adapt through it
    untrained = learner.model.init(np.random.default_rng(cfg.seed))  # the run's own first draw
    result = train(cfg, None, None, options=TrainOptions(progress=progress, handle_signals=False), learner=learner)
    assert result.state is not None  # the loop's final state
    trained = tree.to_host(result.state.params)
    train_seconds = time.perf_counter() - start
    problem = SineProblem(cfg)
    scores = {}
    for name, params in (("trained", trained), ("untrained", untrained)):
        res = problem.evaluate(learner, params, None, "test", np.random.default_rng([cfg.seed, 1]), cfg.eval.tasks)
        scores[name] = res["regression"]
    if plot_path is not None:
        sine.plot(scores["trained"].example, plot_path, f"{cfg.outer.algorithm}, {cfg.meta_iters} meta-iterations")
    t, u = scores["trained"], scores["untrained"]
    return {
        "algorithm": cfg.outer.algorithm,
        "meta_iters": cfg.meta_iters,
        "seed": cfg.seed,
        "eval_tasks": cfg.eval.tasks,
        "mse_trained": t.mse,
        "mse_trained_ci95": t.ci95,
        "mse_untrained": u.mse,
        "mse_trained_by_step": {str(k): v for k, v in t.by_step.items()},
        "mse_untrained_by_step": {str(k): v for k, v in u.by_step.items()},
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - start,
    }
