"""Problems: what a training task is, and how an initialization is scored while it trains.

A problem has ``sample(learner, rng)`` (the meta-batch of one iteration, drawn from the run's
generator), ``evaluate(...)`` (many tasks, for ``fometa eval``) and ``interval_metrics(...)``
(the few tasks logged every ``eval_interval`` iterations). The few logged tasks come from
generators of their own, seeded by ``(seed, split, iteration)`` (:func:`eval_rng`), so how often
and how much is evaluated never changes what is trained.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fometa import config as C
from fometa import evaluate as E
from fometa import optim, sine, tree

__all__ = ["eval_rng", "FewShotProblem", "SineProblem", "SineResult", "make_problem"]


def eval_rng(seed: int, split: str, iteration: int) -> np.random.Generator:
    """The generator of the few evaluation tasks logged at ``iteration`` (independent of training's)."""
    return np.random.default_rng([seed, {"train": 1, "val": 2, "test": 3}.get(split, 4), iteration])


class FewShotProblem:
    """N-way K-shot classification on class-indexed splits, scored by query accuracy."""

    metric = "accuracy"

    def __init__(self, cfg: C.RunConfig, splits: dict, comm=None):
        self.cfg, self.splits, self.comm = cfg, splits, comm

    def sample(self, learner, rng):
        return learner.sample(self.splits["train"], rng)

    def evaluate(self, learner, params, inner_state, split, rng, tasks, *, modes=None, chunk=None,
                 progress=None, eval_cfg: C.EvaluationConfig | None = None, resume=None, on_chunk=None) -> dict:
        """``{mode: EvalResult}`` over ``tasks`` tasks of ``split`` (``resume``, ``on_chunk``: see
        :func:`fometa.evaluate.evaluate`), split over the MPI ranks of ``comm`` if several."""
        cfg = eval_cfg or self.cfg.eval
        modes = tuple(modes or (cfg.mode,))
        return E.evaluate(learner.model, params, self.splits[split], rng, cfg, learner.inner_opt, inner_state,
                          tasks=tasks, chunk=chunk or cfg.chunk, backend=learner.backend, progress=progress,
                          modes=modes, comm=self.comm, resume=resume, on_chunk=on_chunk)

    def interval_metrics(self, learner, state, iteration) -> dict:
        out = {}
        for split in ("train", "test"):
            res = self.evaluate(learner, state.params, state.inner_state, split,
                                eval_rng(self.cfg.seed, split, iteration), self.cfg.interval_tasks,
                                chunk=min(self.cfg.eval.chunk, self.cfg.interval_tasks))
            out[f"{split}_accuracy"] = next(iter(res.values())).accuracy
        return out


class SineProblem:
    """The sine-wave regression of :mod:`fometa.sine`, scored by mean squared error on the grid.

    A training task is ``inner.iters`` steps of ``inner.batch`` points: whole epochs over the grid
    (checked by :class:`~fometa.config.RunConfig`); evaluation takes ``eval.inner_iters`` steps of
    the learner's inner optimizer (SGD at ``inner.lr`` in the preset) on ``eval.shots`` points.
    """

    metric = "mse"

    def __init__(self, cfg: C.RunConfig):
        self.cfg = cfg
        self.epochs = cfg.inner.iters // -(-len(sine.GRID) // cfg.inner.batch)

    def sample(self, learner, rng):
        return [sine.training_steps(rng, self.cfg.inner.batch, self.epochs) for _ in range(learner.outer.meta_batch)]

    def evaluate(self, learner, params, inner_state, split, rng, tasks, *, modes=None, chunk=None,
                 progress=None, eval_cfg=None, record_steps=(0, 1, 32)) -> dict:
        """``{"regression": SineResult}``: MSE after the evaluation's SGD steps, over ``tasks`` tasks."""
        start = time.perf_counter()
        ev = eval_cfg or self.cfg.eval
        state = None if inner_state is None else optim.state_to_host(inner_state)
        final, by_step, example = sine.evaluate(learner.model, learner.inner_opt, tree.to_host(params), rng,
                                                tasks=tasks, points=ev.shots, steps=ev.inner_iters,
                                                inner_state=state, record_steps=record_steps)
        mean, ci = E.mean_ci95(final)
        if progress is not None:
            progress(tasks, tasks)
        return {"regression": SineResult(mean, ci, tasks, "regression", time.perf_counter() - start, final, by_step,
                                         example)}

    def interval_metrics(self, learner, state, iteration) -> dict:
        res = self.evaluate(learner, state.params, state.inner_state, "test",
                            eval_rng(self.cfg.seed, "test", iteration), self.cfg.interval_tasks)
        return {"test_mse": res["regression"].mse}


@dataclass(frozen=True)
class SineResult:
    mse: float
    ci95: float
    tasks: int
    mode: str
    seconds: float
    per_task: np.ndarray | None = None  # the MSE of every task
    by_step: dict | None = None  # mean MSE after each recorded step
    example: dict | None = None  # the first task's curves, for the figure

    def as_dict(self) -> dict:
        return {"mse": self.mse, "ci95": self.ci95, "tasks": self.tasks, "mode": self.mode, "seconds": self.seconds}


def make_problem(cfg: C.RunConfig, splits, comm=None):
    """The problem of ``cfg``: sine regression, or few-shot classification on ``splits``."""
    return SineProblem(cfg) if cfg.data.kind == "sine" else FewShotProblem(cfg, splits, comm)
