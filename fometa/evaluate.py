"""Few-shot evaluation of an initialization on many sampled tasks, batched on the task axis.

Each evaluation task draws ``ways`` classes with ``shots + queries_per_class`` examples each;
the first ``queries_per_class`` of each class are the queries (as the reference's
``_split_train_test``), the rest the support set. The initialization is adapted on the
support set for ``inner_iters`` steps of ``inner_batch`` examples, starting from a *copy* of
the inner optimizer's state (the reference saves and restores the full state around every
evaluation task; functional state makes that automatic). Then the queries are predicted in
one of three batch-norm modes:

``transductive``  all queries in one batch: batch-norm statistics come from the queries
                  together (the paper's "Reptile + Transduction").
``per-query``     one forward pass per query on the support set plus that query: the
                  paper's non-transductive setting (the query still shapes its own statistics).
``support-stats`` support set plus all queries in one pass, batch-norm statistics from the
                  support set only: no query influences any prediction but its own output.

Tasks are drawn one after another from ``rng`` (task, then its mini-batch indices), so the
result does not depend on how many tasks run at once (``chunk``). The settings are a
:class:`~fometa.config.EvaluationConfig` (the same type a run's configuration holds); the number
of ways is the model's number of outputs.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fometa import atomic, optim, parallel, tree
from fometa.backends import array_module, get_backend
from fometa.checkpoint import make_rng, rng_state
from fometa.config import EVAL_MODES as MODES
from fometa.config import EvaluationConfig
from fometa.inner import IndexedSteps, adapt, tasks_per_block
from fometa.layers.softmax_cross_entropy import accuracy as _accuracy
from fometa.parallel import share
from fometa.tasks import mini_batches, sample_task, split_support_query

__all__ = ["MODES", "EvaluationConfig", "EvalProgress", "EvalResult", "mean_ci95", "draw_tasks", "support_steps",
           "adapt_on_support", "predict", "evaluate", "PartialError", "save_partial", "load_partial"]


@dataclass(frozen=True)
class EvalProgress:
    """A part-done evaluation: ``done`` tasks, their accuracies ``mode -> (done,)``, wall seconds, generator state."""

    done: int
    accuracies: dict
    seconds: float
    rng_state: dict


@dataclass(frozen=True)
class EvalResult:
    """One evaluation's result: mean query ``accuracy`` over ``tasks`` tasks with the half-width ``ci95`` of its
    normal 95% interval, the batch-norm ``mode``, the wall time in ``seconds``, and each task's accuracy
    ``per_task``."""
    accuracy: float
    ci95: float
    tasks: int
    mode: str
    seconds: float
    per_task: np.ndarray

    def as_dict(self) -> dict:
        """The JSON-plain summary: accuracy, ci95, tasks, mode and seconds (not the per-task values)."""
        return {"accuracy": self.accuracy, "ci95": self.ci95, "tasks": self.tasks, "mode": self.mode,
                "seconds": self.seconds}


def mean_ci95(values) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% confidence interval."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values to average")
    half = 1.96 * v.std(ddof=1) / math.sqrt(v.size) if v.size > 1 else float("nan")
    return float(v.mean()), float(half)


def draw_tasks(ds, rng: np.random.Generator, n: int, cfg: EvaluationConfig, ways: int):
    """``n`` ``ways``-way evaluation tasks: support ``(n, S, ...)``/``(n, S)``, queries ``(n, Q, ...)``/``(n, Q)``,
    batch indices ``(n, iters, batch)``."""
    sx, sy, qx, qy, idx = [], [], [], [], []
    for _ in range(n):
        task = sample_task(ds, rng, ways, cfg.shots + cfg.queries_per_class)
        support, query = split_support_query(task, cfg.queries_per_class)
        sx.append(support.x)
        sy.append(support.y)
        qx.append(query.x)
        qy.append(query.y)
        idx.append(mini_batches(rng, len(support.y), cfg.inner_batch, cfg.inner_iters, cfg.replacement))
    return np.stack(sx), np.stack(sy), np.stack(qx), np.stack(qy), np.stack(idx)


def support_steps(sx, sy, idx) -> IndexedSteps:
    """The inner loop's mini-batches, a sequence of ``(x (T, batch, ...), y (T, batch))``: step ``i`` takes the
    support examples ``idx[:, i]`` (``idx`` ``(T, iters, batch)``) of each task, gathered when it runs."""
    return IndexedSteps(sx, sy, idx)


def adapt_on_support(model, params_t, inner_opt, inner_state_t, sx, sy, idx):
    """Run the inner loop of ``T`` tasks at once; ``idx`` ``(T, iters, batch)`` picks each step's examples."""
    params_t, _, _ = adapt(model, params_t, support_steps(sx, sy, idx), inner_opt, inner_state_t)
    return params_t


def predict(model, params_t, sx, qx, mode: str):
    """Logits of the queries ``(T, Q, ways)`` under the batch-norm ``mode``."""
    if mode == "transductive":
        return model.forward(params_t, qx)
    xp = array_module(qx)
    if mode == "support-stats":
        both = xp.concatenate([sx, qx], axis=1)
        return model.forward(params_t, both, stats_batch=sx.shape[1])[:, sx.shape[1] :]
    if mode == "per-query":
        outs = []
        for q in range(qx.shape[1]):
            both = xp.concatenate([sx, qx[:, q : q + 1]], axis=1)
            outs.append(model.forward(params_t, both)[:, -1])
        return xp.stack(outs, axis=1)
    raise ValueError(f"unknown evaluation mode {mode!r}; expected one of {MODES}")


def evaluate(
    model,
    params,
    ds,
    rng: np.random.Generator,
    cfg: EvaluationConfig,
    inner_opt,
    inner_state=None,
    *,
    tasks: int = 10_000,
    chunk: int = 250,
    backend=None,
    progress=None,
    modes: tuple[str, ...] | None = None,
    comm=None,
    resume: EvalProgress | None = None,
    on_chunk=None,
):
    """Mean query accuracy over ``tasks`` tasks with its 95% confidence interval.

    Each task has as many classes as ``model`` has outputs. ``params`` and ``inner_state`` are single-task
    (the meta-learned initialization and the inner optimizer's state to start each task from; fresh when
    ``None``). ``progress(done, total)`` is called after every chunk. With ``modes`` (several batch-norm
    modes), each task is adapted once and predicted in every mode: the result is then a ``dict`` mode ->
    :class:`EvalResult` (the same tasks, so the modes are compared pairwise); otherwise one
    :class:`EvalResult` for ``cfg.mode``.

    ``comm`` (a :class:`fometa.distributed.MPIWorld`, or ``None`` for one process) splits every
    round of ``chunk * comm.size`` tasks over the ranks: each rank draws the whole round from
    ``rng`` (the one task stream), adapts its contiguous share, and the per-task accuracies are
    gathered in rank order, so every rank returns the single process's result, task by task.
    ``progress`` is then called on rank 0 only.

    ``on_chunk(EvalProgress)`` is called after every round of tasks with what is done so far;
    ``resume`` (such a progress record) continues that evaluation where it stopped: its
    generator state replaces ``rng`` and its tasks count towards ``tasks``, so the result equals
    the uninterrupted evaluation's, task for task.
    """
    ways = model.output_shape[-1]
    cfg.check_ways(ways)
    if tasks < 1:
        raise ValueError(f"tasks must be at least 1, got {tasks}")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    wanted = (cfg.mode,) if modes is None else tuple(modes)
    for mode in wanted:
        if mode not in MODES:
            raise ValueError(f"unknown evaluation mode {mode!r}; expected one of {MODES}")
    be = get_backend(backend)
    params = tree.to_backend(params, be)
    if inner_state is None:
        inner_state = inner_opt.init(params)
    size = 1 if comm is None else comm.size
    start = time.perf_counter()
    accs: dict[str, list[np.ndarray]] = {mode: [] for mode in wanted}
    done, seconds0 = 0, 0.0
    if resume is not None:
        if set(resume.accuracies) != set(wanted) or resume.done > tasks:
            raise ValueError(f"cannot resume an evaluation of {resume.done} tasks in modes {sorted(resume.accuracies)} "
                             f"as one of {tasks} tasks in modes {sorted(wanted)}")
        rng = make_rng(resume.rng_state)
        done, seconds0 = resume.done, resume.seconds
        accs = {mode: [np.asarray(resume.accuracies[mode], dtype=np.float64)] for mode in wanted}
    while done < tasks:
        m = min(chunk * size, tasks - done)
        lo, hi = (0, m) if comm is None else share(m, comm.rank, size)
        mine = _chunk_accuracies(model, params, inner_opt, inner_state, draw_tasks(ds, rng, m, cfg, ways), lo, hi, be,
                                 wanted)
        for part in [mine] if comm is None else comm.allgather(mine):
            for mode, acc in part.items():
                accs[mode].append(acc)
        done += m
        if on_chunk is not None:
            on_chunk(EvalProgress(done, {mode: np.concatenate(a) for mode, a in accs.items()},
                                  seconds0 + time.perf_counter() - start, rng_state(rng)))
        if progress is not None and (comm is None or comm.is_root):
            progress(done, tasks)
    seconds = seconds0 + time.perf_counter() - start
    results = {}
    for mode in wanted:
        per_task = np.concatenate(accs[mode])
        mean, ci = mean_ci95(per_task)
        results[mode] = EvalResult(mean, ci, tasks, mode, seconds, per_task)
    return results if modes is not None else results[cfg.mode]


def _chunk_accuracies(model, params, inner_opt, inner_state, drawn, lo: int, hi: int, be, modes) -> dict:
    """Per-task accuracies ``mode -> (hi - lo,)`` of the drawn tasks ``[lo, hi)`` (``{}`` when empty)."""
    n = hi - lo
    if n <= 0:
        return {}
    sx, sy, qx, qy, idx = (a[lo:hi] for a in drawn)
    sx, sy, qx, qy = be.asarray(sx), be.asarray(sy), be.asarray(qx), be.asarray(qy)
    params_t = tree.broadcast(params, n)
    state_t = optim.state_broadcast(inner_state, n)
    params_t = adapt_on_support(model, params_t, inner_opt, state_t, sx, sy, be.asarray(idx))
    out = {}
    for mode in modes:
        def block(s, mode=mode):
            return predict(model, tree.take_task(params_t, s), sx[s], qx[s], mode)

        host = be.chunk_bytes is not None  # on the CPU, blocks of tasks whose activations stay small
        largest = {"transductive": qx[0].nbytes, "per-query": sx[0].nbytes + qx[0, :1].nbytes}.get(
            mode, sx[0].nbytes + qx[0].nbytes)  # a task's inputs in one forward pass
        logits = parallel.map_blocks(block, n, max_block=tasks_per_block(largest) if host else None, host=host)
        logits = logits[0] if len(logits) == 1 else be.xp.concatenate(logits, axis=0)
        out[mode] = be.to_host(_accuracy(logits, qy))
    return out


# ------------------------------------------------------------------------------------------
# a long evaluation kept on disk (fometa eval --partial FILE)
# ------------------------------------------------------------------------------------------
class PartialError(ValueError):
    """A partial-evaluation file that cannot be continued (unreadable, or other settings); the message says why."""


def save_partial(path, settings: dict, progress: EvalProgress) -> None:
    """Write ``progress`` and the ``settings`` it belongs to as JSON, atomically (the old file or the new one)."""
    record = {"settings": settings, "done": progress.done, "seconds": progress.seconds,
              "rng_state": progress.rng_state,
              "accuracies": {m: [float(v) for v in a] for m, a in progress.accuracies.items()}}
    atomic.write_text(path, json.dumps(record) + "\n")


def load_partial(path, settings: dict) -> EvalProgress | None:
    """The progress kept in ``path`` (``None`` if there is no file); :class:`PartialError` if it was written for
    other ``settings`` or cannot be read."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        kept, done = record["settings"], int(record["done"])
        accs = {str(m): np.asarray(a, dtype=np.float64) for m, a in record["accuracies"].items()}
        progress = EvalProgress(done, accs, float(record["seconds"]), dict(record["rng_state"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PartialError(f"{path}: not a partial evaluation fometa can continue ({exc}); "
                           "delete it to start again") from None
    if kept != settings:
        names = sorted(k for k in set(kept) | set(settings) if kept.get(k) != settings.get(k))
        diffs = "; ".join(f"{k}: {kept.get(k)!r} there, {settings.get(k)!r} now" for k in names)
        raise PartialError(f"{path} holds an evaluation with other settings ({diffs}); "
                           "give the same settings, or another file to start a new one")
    if any(a.shape != (done,) for a in accs.values()):
        raise PartialError(f"{path}: {done} tasks done, but its accuracies do not have {done} entries")
    return progress
