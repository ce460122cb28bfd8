"""What the Section 6 experiments share: data, the meta-training loop of one curve, evaluation, logs.

A *curve* is one configuration (an algorithm, its sampling and its meta-step): the settings every
curve shares (:func:`config`) with its own, from which :mod:`fometa.build` makes its learner. Every curve of an
experiment starts from the same initialization (``seed``), draws its training tasks from its own
generator seeded alike (curves that sample alike -- the sum, average and last gradient of the
same ``k`` -- see the same tasks in the same order), and is evaluated at iterations
``0, eval_interval, 2 eval_interval, ..., meta_iters`` on the same test tasks (``eval_seed``), so the
curves are compared on common random numbers. The evaluation at iteration 0 is the same for all
curves and is computed once.

Log records (one JSON object per line): ``{"event": "start", "settings", "eval_seed", "curves", ...}``,
then per evaluation ``{"event": "eval", "curve", "iteration", "accuracy", "ci95", "query_loss",
"query_loss_ci95", "loss_first", "loss_last", "train_seconds", "eval_seconds", ...the curve's fields}``,
and ``{"event": "done", "seconds"}``.
``loss_first``/``loss_last`` are the mean inner losses on the first and last mini-batch of the
training tasks since the previous evaluation; ``per_task_accuracy``/``per_task_loss`` hold every
test task's value (the same tasks for every curve: :func:`paired_difference` compares two curves).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fometa import build, data, evaluate, meta, tree
from fometa import config as C
from fometa.layers import softmax_cross_entropy
from fometa.train import RunProgress, RunWriter, Schedule, TrainOptions, run_loop

WAYS = 5

#: What every curve shares: 5-way Omniglot on the paper's network, a plain SGD inner loop, one task per
#: meta-iteration, no checkpoints; evaluation as in the paper's Section 6: 5-shot 5-way tasks, 5 inner
#: SGD steps at batch 25, transductive.
SETTINGS: dict[str, Any] = {
    "model.ways": WAYS, "inner.optimizer": "sgd", "outer.meta_batch": 1, "eval.shots": 5,
    "eval.inner_batch": 25, "eval.inner_iters": 5, "eval.queries_per_class": 1, "eval.mode": "transductive",
    "checkpoint_every": 0,
}


def config(budget: dict[str, Any] | None = None) -> C.RunConfig:
    """The settings every curve of an experiment shares (:data:`SETTINGS` on the Omniglot preset), with
    ``budget``'s: how long each curve trains (``meta_iters``), how often (``eval_interval``) and on how
    many test tasks (``interval_tasks``, ``eval.chunk`` at a time) it is evaluated, its ``seed``, the
    data (``data.path``) and the ``backend``."""
    return C.apply_overrides(C.preset("omniglot-5way-5shot"), {**SETTINGS, **(budget or {})})


@dataclass(frozen=True)
class Curve:
    """One configuration: ``name``, its own settings over the experiment's (:func:`config`: the inner loop's
    learning rate, shots and steps, the algorithm, the meta-step), the ``weights`` of an inner-gradient
    combination (:class:`fometa.meta.Combination`; ``None``: ``outer.algorithm``), and the ``fields`` its log
    records carry."""

    name: str
    settings: dict[str, Any]
    weights: tuple[float, ...] | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # logged with every record (k, kind, ...)

    @property
    def meta_step(self) -> float:
        """The curve's constant meta-step ``eps``."""
        return self.settings["outer.meta_step"]

    def run_config(self, base: C.RunConfig) -> C.RunConfig:
        """The curve's configuration: ``base`` (the experiment's, :func:`config`) with its own settings."""
        return C.apply_overrides(base, self.settings)


def make_learner(curve: Curve, base: C.RunConfig) -> meta.MetaLearner:
    """The curve's learner (:func:`fometa.build.build_learner` of its configuration and weights)."""
    return build.build_learner(curve.run_config(base), weights=curve.weights)


def load_omniglot(path, cache_dir=None) -> dict:
    """Omniglot splits (the paper's protocol) from a packed ``.h5`` file, or from the raw archives.

    ``path`` may be a packed file, or the folder holding ``images_background.zip`` and
    ``images_evaluation.zip`` (or one of them): those are packed once into
    ``cache_dir/omniglot.h5`` and read from there.
    """
    path = Path(path)
    if path.is_file() and path.suffix in (".h5", ".hdf5"):
        return data.load_omniglot(path)
    if not path.exists():
        raise data.DataError(str(path), "no such file or folder (give a packed omniglot .h5 or the folder of the zips)")
    cache = Path(cache_dir if cache_dir is not None else ".") / "omniglot.h5"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        data.pack_omniglot.pack_omniglot([str(path)], str(cache), progress=False)
    return data.load_omniglot(cache)


class JsonLog:
    """Append one JSON object per line, flushed at once (a run can be followed with ``tail -f``)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, sort_keys=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_log(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Evaluation(NamedTuple):
    accuracy: float
    ci95: float
    loss: float  # mean query cross-entropy after adaptation: a less noisy signal than the accuracy
    loss_ci95: float
    seconds: float
    per_task_accuracy: np.ndarray  # (eval_tasks,): the same tasks for every curve, so curves compare pairwise
    per_task_loss: np.ndarray


def evaluate_params(learner: meta.MetaLearner, params, split, cfg: C.RunConfig, eval_seed: int) -> Evaluation:
    """Few-shot accuracy and query loss of ``params`` on ``cfg.interval_tasks`` test tasks of ``cfg.eval``.

    The tasks come from ``eval_seed`` (the same tasks at every call) and are drawn, adapted with the
    learner's inner optimizer and predicted with :mod:`fometa.evaluate`'s own steps,
    ``cfg.eval.chunk`` at a time as :func:`fometa.evaluate.evaluate` does, so the accuracy is the one
    it reports; the query loss is computed from the same logits.
    """
    be, model, opt, ev = learner.backend, learner.model, learner.inner_opt, cfg.eval
    rng = np.random.default_rng(eval_seed)
    params = tree.to_backend(params, be)
    start = time.perf_counter()
    accs, losses, done = [], [], 0
    while done < cfg.interval_tasks:
        n = min(ev.chunk, cfg.interval_tasks - done)
        sx, sy, qx, qy, idx = evaluate.draw_tasks(split, rng, n, ev, WAYS)
        sx, sy, qx, qy = be.asarray(sx), be.asarray(sy), be.asarray(qx), be.asarray(qy)
        params_t = tree.broadcast(params, n)
        params_t = evaluate.adapt_on_support(model, params_t, opt, opt.init(params_t), sx, sy, be.asarray(idx))
        logits = evaluate.predict(model, params_t, sx, qx, ev.mode)
        accs.append(be.to_host(softmax_cross_entropy.accuracy(logits, qy)))
        losses.append(be.to_host(softmax_cross_entropy.forward(logits, qy)[0]))
        done += n
    per_task_accuracy, per_task_loss = np.concatenate(accs), np.concatenate(losses)
    acc, acc_ci = evaluate.mean_ci95(per_task_accuracy)
    loss, loss_ci = evaluate.mean_ci95(per_task_loss)
    return Evaluation(acc, acc_ci, loss, loss_ci, time.perf_counter() - start, per_task_accuracy, per_task_loss)


class _Curve:
    """A curve as the training loop's problem: its tasks, and the evaluation its log records carry."""

    def __init__(self, train_split, test_split, cfg: C.RunConfig, eval_seed: int, shared: dict):
        self.train, self.test, self.cfg, self.eval_seed, self.shared = train_split, test_split, cfg, eval_seed, shared
        self.eval_seconds = 0.0

    def sample(self, learner, rng):
        return learner.sample(self.train, rng)

    def interval_metrics(self, learner, state, iteration) -> dict:
        if iteration == 0 and "initial" in self.shared:  # every curve starts from the same initialization
            result = self.shared["initial"]
        else:
            result = evaluate_params(learner, state.params, self.test, self.cfg, self.eval_seed)
            if iteration == 0:
                self.shared["initial"] = result
        train_seconds = -self.eval_seconds  # the log record's seconds include the earlier evaluations
        self.eval_seconds += result.seconds
        return {"accuracy": result.accuracy, "ci95": result.ci95, "query_loss": result.loss,
                "query_loss_ci95": result.loss_ci95, "train_seconds": train_seconds, "eval_seconds": result.seconds,
                "per_task_accuracy": [round(float(v), 4) for v in result.per_task_accuracy],
                "per_task_loss": [round(float(v), 5) for v in result.per_task_loss]}


def run_curves(experiment: str, curves, splits, cfg: C.RunConfig, log: JsonLog, eval_seed: int = 1,
               settings: dict | None = None, progress=None) -> list[dict]:
    """Meta-train and evaluate every curve; returns the evaluation records (also written to ``log``).

    ``cfg`` is what the curves share (:func:`config`), ``eval_seed`` seeds the test tasks. Each
    curve is one run of the training loop (:func:`fometa.train.run_loop`) in memory, its log
    records made into this experiment's.
    """
    start = time.perf_counter()
    log.write({"event": "start", "experiment": experiment, "settings": C.flatten(C.to_dict(cfg)),
               "eval_seed": eval_seed, "curves": [c.name for c in curves], **(settings or {})})
    records: list[dict] = []
    shared: dict[str, Evaluation] = {}  # the evaluation of the initialization, which every curve shares
    init = None
    for index, curve in enumerate(curves):
        curve_cfg = curve.run_config(cfg)
        learner = build.build_learner(curve_cfg, weights=curve.weights)
        if init is None:  # every curve starts from the same initialization
            init = learner.model.init(np.random.default_rng(cfg.seed))
        problem = _Curve(splits["train"], splits["test"], curve_cfg, eval_seed, shared)

        def on_log(rec, curve=curve, index=index, meta_iters=curve_cfg.meta_iters):
            metrics = {k: v for k, v in rec.items() if k not in ("iteration", "loss_first", "loss_last", "meta_step",
                                                                  "seconds", "train_seconds")}
            record = {"event": "eval", "experiment": experiment, "curve": curve.name, **curve.fields,
                      "meta_step": curve.meta_step, "iteration": rec["iteration"], "accuracy": metrics.pop("accuracy"),
                      "ci95": metrics.pop("ci95"), "query_loss": metrics.pop("query_loss"),
                      "query_loss_ci95": metrics.pop("query_loss_ci95"), "loss_first": rec.get("loss_first"),
                      "loss_last": rec.get("loss_last"), "train_seconds": rec["seconds"] + rec["train_seconds"],
                      **metrics}
            log.write(record)
            records.append(record)
            if progress is not None:
                progress(index, len(curves), curve.name, rec["iteration"], meta_iters, record["accuracy"])

        member = RunProgress(curve_cfg, problem, learner, RunWriter(None, on_log=on_log),
                             start=(learner.init(init), np.random.default_rng(cfg.seed)))
        run_loop(learner, [member], Schedule.of(curve_cfg), options=TrainOptions(progress=False, handle_signals=False))
    log.write({"event": "done", "experiment": experiment, "seconds": time.perf_counter() - start})
    return records


def paired_difference(a: dict, b: dict, key: str = "loss") -> tuple[float, float]:
    """Mean and 95% half-width of ``a - b`` over the evaluation tasks two records share (``key``: loss or accuracy)."""
    field_name = f"per_task_{key}"
    diff = np.asarray(a[field_name], dtype=np.float64) - np.asarray(b[field_name], dtype=np.float64)
    return evaluate.mean_ci95(diff)


def compare(records, pairs) -> list[dict]:
    """Paired differences ``a - b`` of the final evaluations of curves ``(a, b)`` (query loss and accuracy)."""
    last = {name: rs[-1] for name, rs in curves_of(records).items()}
    out = []
    for a, b in pairs:
        if a in last and b in last and "per_task_loss" in last[a] and "per_task_loss" in last[b]:
            dl, cl = paired_difference(last[a], last[b], "loss")
            da, ca = paired_difference(last[a], last[b], "accuracy")
            out.append({"a": a, "b": b, "iteration": last[a]["iteration"], "loss_diff": dl, "loss_diff_ci95": cl,
                        "accuracy_diff": da, "accuracy_diff_ci95": ca})
    return out


def curves_of(records) -> dict[str, list[dict]]:
    """Evaluation records grouped by curve, in the order the curves first appear."""
    out: dict[str, list[dict]] = {}
    for r in records:
        if r.get("event", "eval") == "eval":
            out.setdefault(r["curve"], []).append(r)
    return out


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported here, when a figure is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
