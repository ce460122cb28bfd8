"""Few-shot tasks drawn from a class-indexed data set, as openai/supervised-reptile draws them.

A *class-indexed data set* is anything with ``len(ds)`` classes, ``ds.num_examples(c)`` and
``ds.get(c, indices) -> (len(indices), *example_shape)`` float32 array (the splits returned by
:mod:`fometa.data`), or a plain mapping/sequence ``class -> array of examples``
(wrapped by :func:`as_class_dataset`). Every draw comes from one explicit
``numpy.random.Generator``.

* :func:`sample_task`: N classes without replacement, labels ``0..N-1`` in random order
  (the classes are shuffled), ``K`` examples per class without replacement.
* :func:`mini_batches`: index batches into a task, without replacement (reshuffle each epoch
  and cut batches until the count is reached; a batch may straddle two epochs, as in the
  reference) or with replacement (each batch an independent draw without repeats).
* :func:`split_support_query`: the first ``q`` examples of each label become queries.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


class ArrayClasses:
    """A class-indexed data set over in-memory arrays: ``classes[c]`` is ``(n_c, *example_shape)``."""

    def __init__(self, classes):
        if isinstance(classes, Mapping):
            classes = [classes[k] for k in sorted(classes)]
        self._classes = [np.asarray(c) for c in classes]
        if not self._classes:
            raise ValueError("a data set needs at least one class")
        shapes = {c.shape[1:] for c in self._classes}
        if len(shapes) != 1:
            raise ValueError(f"all classes must hold examples of one shape, got {sorted(shapes)}")
        self.example_shape = next(iter(shapes))

    def __len__(self):
        return len(self._classes)

    def num_examples(self, c: int) -> int:
        """The number of examples of class ``c``."""
        return len(self._classes[c])

    def get(self, c: int, indices) -> np.ndarray:
        """float32 ``(len(indices), *example_shape)``: the examples ``indices`` of class ``c``."""
        return self._classes[c][np.asarray(indices)].astype(np.float32, copy=False)


def as_class_dataset(ds):
    """Accept a class-indexed data set, or wrap a mapping/sequence of arrays in :class:`ArrayClasses`."""
    if hasattr(ds, "get") and hasattr(ds, "num_examples") and not isinstance(ds, Mapping):
        return ds
    if isinstance(ds, (Mapping, Sequence)):
        return ArrayClasses(ds)
    raise TypeError(f"expected a class-indexed data set or a mapping of arrays, got {type(ds).__name__}")


@dataclass(frozen=True)
class Task:
    """One N-way task: ``x`` ``(N * K, *example_shape)``, ``y`` ``(N * K,)`` in ``0..N-1``.

    Examples are grouped by label in label order ``0, 0, ..., 1, 1, ...``; ``classes[l]`` is the
    data set's class index behind label ``l``.
    """

    x: np.ndarray
    y: np.ndarray
    classes: tuple[int, ...]


def sample_task(ds, rng: np.random.Generator, ways: int, shots: int) -> Task:
    """Draw an N-way task with ``shots`` examples of each class (all distinct)."""
    ds = as_class_dataset(ds)
    if ways < 1 or shots < 1:
        raise ValueError(f"ways and shots must be positive, got ways={ways}, shots={shots}")
    if ways > len(ds):
        raise ValueError(f"cannot draw a {ways}-way task from a data set of {len(ds)} classes")
    classes = rng.permutation(len(ds))[:ways]
    xs, ys = [], []
    for label, c in enumerate(classes):
        n = ds.num_examples(int(c))
        if shots > n:
            raise ValueError(f"cannot draw {shots} examples from class {int(c)}, which holds {n}")
        idx = rng.choice(n, size=shots, replace=False)
        xs.append(ds.get(int(c), idx))
        ys.append(np.full(shots, label, dtype=np.int64))
    return Task(np.concatenate(xs), np.concatenate(ys), tuple(int(c) for c in classes))


def mini_batches(rng: np.random.Generator, size: int, batch: int, count: int, replacement: bool = False) -> np.ndarray:
    """``count`` index batches of ``batch`` examples into a task of ``size``: ``(count, batch)``."""
    if batch < 1 or count < 0:
        raise ValueError(f"batch must be positive and count non-negative, got batch={batch}, count={count}")
    if batch > size:
        raise ValueError(f"mini-batch of {batch} is larger than the task's {size} examples")
    if replacement:
        if not count:
            return np.zeros((0, batch), np.int64)
        return np.stack([rng.choice(size, size=batch, replace=False) for _ in range(count)])
    needed = batch * count
    epochs = -(-needed // size) if needed else 0
    order = np.concatenate([rng.permutation(size) for _ in range(epochs)]) if epochs else np.zeros(0, np.int64)
    return order[:needed].reshape(count, batch)


def split_support_query(task: Task, queries_per_class: int = 1) -> tuple[Task, Task]:
    """Move the first ``queries_per_class`` examples of every label into the query set."""
    support: list[int] = []
    query: list[int] = []
    for label in range(len(task.classes)):
        where = np.flatnonzero(task.y == label)
        if queries_per_class >= len(where):
            raise ValueError(
                f"cannot hold out {queries_per_class} queries from a class of {len(where)} examples: "
                "none left for support"
            )
        query.extend(where[:queries_per_class])
        support.extend(where[queries_per_class:])
    s, q = np.array(support), np.array(query)
    return Task(task.x[s], task.y[s], task.classes), Task(task.x[q], task.y[q], task.classes)


def training_batches(
    ds,
    rng: np.random.Generator,
    *,
    ways: int,
    shots: int,
    batch: int,
    iters: int,
    replacement: bool = False,
    tail_shots: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``iters`` inner mini-batches of one freshly drawn training task, as ``[(x, y), ...]``.

    With ``tail_shots`` (FOMAML's separate final mini-batch, the reference's ``--foml-tail``),
    the task holds ``shots + tail_shots`` examples per class; ``tail_shots`` of each class are
    held out and form the last batch (``ways * tail_shots`` examples), and the first ``iters - 1``
    batches come from the rest, so the final batch never overlaps the others.
    """
    if iters < 1:
        raise ValueError(f"inner iterations must be at least 1, got {iters}")
    if tail_shots is None:
        task = sample_task(ds, rng, ways, shots)
        idx = mini_batches(rng, len(task.y), batch, iters, replacement)
        return [(task.x[i], task.y[i]) for i in idx]
    task = sample_task(ds, rng, ways, shots + tail_shots)
    train, tail = split_support_query(task, tail_shots)
    idx = mini_batches(rng, len(train.y), batch, iters - 1, replacement)
    return [(train.x[i], train.y[i]) for i in idx] + [(tail.x, tail.y)]


def stack_tasks(per_task: list[list[tuple[np.ndarray, np.ndarray]]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Turn ``T`` tasks' step lists into one list of task-batched steps ``(x (T, B, ...), y (T, B))``."""
    steps = {len(s) for s in per_task}
    if len(steps) != 1:
        raise ValueError(f"tasks disagree on their number of inner steps: {sorted(steps)}")
    return [
        (np.stack([s[i][0] for s in per_task]), np.stack([s[i][1] for s in per_task]))
        for i in range(len(per_task[0]))
    ]
