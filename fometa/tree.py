"""Arithmetic on parameter trees: ordered ``dict[str, array]`` with identical keys.

Everything the meta-learner needs lives here: the outer step ``phi - eps * lr * G``
(:class:`fometa.meta.Interpolate`) is ``add(phi, scale(G, -eps * lr))`` on the mean pseudo-gradient
``G = mean_tasks(G_i)``; :func:`lerp` interpolates two trees. A *task-batched* tree carries a leading
task axis ``T`` on every array. Functions never modify their arguments.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from fometa.backends import array_module, backend_of, get_backend

Tree = dict  # dict[str, array], insertion-ordered


def _check_keys(a: Mapping, b: Mapping) -> None:
    if list(a.keys()) != list(b.keys()):
        raise ValueError(
            f"parameter trees differ in their keys: {list(a.keys())} vs {list(b.keys())}"
        )


def map(fn: Callable, tree: Mapping, *rest: Mapping) -> Tree:  # noqa: A001 - tree.map reads well
    """Apply ``fn`` leaf-wise: ``{k: fn(tree[k], rest0[k], ...)}``."""
    for other in rest:
        _check_keys(tree, other)
    return {k: fn(v, *(o[k] for o in rest)) for k, v in tree.items()}


def add(a: Mapping, b: Mapping) -> Tree:
    """``a + b``."""
    return map(lambda x, y: x + y, a, b)


def sub(a: Mapping, b: Mapping) -> Tree:
    """``a - b``."""
    return map(lambda x, y: x - y, a, b)


def scale(a: Mapping, s) -> Tree:
    """``s * a`` for a scalar ``s``."""
    return map(lambda x: x * s, a)


def axpy(alpha, x: Mapping, y: Mapping) -> Tree:
    """``y + alpha * x``."""
    return map(lambda u, v: v + alpha * u, x, y)


def lerp(a: Mapping, b: Mapping, t) -> Tree:
    """``a + t * (b - a)``: ``t = 0`` gives ``a``, ``t = 1`` gives ``b``."""
    return map(lambda x, y: x + t * (y - x), a, b)


def zeros_like(a: Mapping) -> Tree:
    """A tree of zeros shaped and typed like ``a``."""
    return map(lambda x: array_module(x).zeros_like(x), a)


def copy(a: Mapping) -> Tree:
    """A tree of copies of ``a``'s arrays."""
    return map(lambda x: x.copy(), a)


def astype(a: Mapping, dtype) -> Tree:
    """``a`` with every array cast to ``dtype``."""
    return map(lambda x: x.astype(dtype), a)


def mean_tasks(a: Mapping) -> Tree:
    """Mean over the leading task axis: ``(T, ...) -> (...)``."""
    return map(lambda x: x.mean(axis=0), a)


def broadcast(a: Mapping, tasks: int) -> Tree:
    """Copy a single-task tree onto ``tasks`` tasks: ``(...) -> (T, ...)`` (writable copies)."""
    if tasks < 1:
        raise ValueError(f"tasks must be at least 1, got {tasks}")
    return map(lambda x: array_module(x).repeat(x[None], tasks, axis=0), a)


def stack(trees: Iterable[Mapping]) -> Tree:
    """Stack single-task trees along a new leading task axis."""
    trees = list(trees)
    if not trees:
        raise ValueError("cannot stack an empty sequence of parameter trees")
    first = trees[0]
    for t in trees[1:]:
        _check_keys(first, t)
    return {k: array_module(v).stack([t[k] for t in trees]) for k, v in first.items()}


def unstack(a: Mapping) -> list[Tree]:
    """Split a task-batched tree into a list of single-task trees (views)."""
    tasks = {v.shape[0] for v in a.values()}
    if len(tasks) != 1:
        raise ValueError(f"leaves disagree on the task axis length: {sorted(tasks)}")
    (n,) = tasks
    return [{k: v[i] for k, v in a.items()} for i in range(n)]


def concat_tasks(trees: Iterable[Tree]) -> Tree:
    """Join task-batched trees along their task axis, in order: ``[(T1, ...), (T2, ...)] -> (T1 + T2, ...)``."""
    parts = list(trees)
    if not parts:
        raise ValueError("cannot join an empty sequence of parameter trees")
    if len(parts) == 1:
        return parts[0]
    return map(lambda *xs: array_module(xs[0]).concatenate(xs, axis=0), *parts)


def take_task(a: Mapping, index) -> Tree:
    """Select task(s) ``index`` (an int or a slice) from a task-batched tree."""
    return map(lambda x: x[index], a)


def dot(a: Mapping, b: Mapping, per_task: bool = False):
    """Inner product ``sum_k <a_k, b_k>`` as a 0-d array; with ``per_task``, one per task."""
    _check_keys(a, b)
    total = None
    for k in a:
        x, y = a[k], b[k]
        if per_task:
            term = (x * y).reshape(x.shape[0], -1).sum(axis=1)
        else:
            term = (x * y).sum()
        total = term if total is None else total + term
    return total


def norm(a: Mapping, per_task: bool = False):
    """Euclidean norm of the whole tree (per task with ``per_task``)."""
    return array_module(next(iter(a.values()))).sqrt(dot(a, a, per_task=per_task))


def size(a: Mapping) -> int:
    """Number of scalars in the tree."""
    return int(sum(int(np.prod(v.shape)) for v in a.values()))


def to_backend(a, backend):
    """Move every leaf to ``backend`` (a name or a Backend): of a tree, or of an optimizer state (a named
    tuple of arrays and trees, :mod:`fometa.optim`), which comes back as the same type."""
    be = get_backend(backend)
    if isinstance(a, tuple):
        return type(a)(*(to_backend(v, be) if isinstance(v, Mapping) else be.asarray(v) for v in a))
    return {k: be.asarray(v) for k, v in a.items()}


def to_host(a: Mapping) -> Tree:
    """Move every leaf to host NumPy arrays."""
    return map(lambda x: backend_of(x).to_host(x), a)


def allclose(a: Mapping, b: Mapping, rtol=1e-7, atol=0.0) -> bool:
    """Leaf-wise ``numpy.allclose`` on host copies (for tests)."""
    _check_keys(a, b)
    ha, hb = to_host(a), to_host(b)
    return all(np.allclose(ha[k], hb[k], rtol=rtol, atol=atol) for k in ha)


class FlatLayout:
    """Where each leaf of a tree lives in one flat buffer: ``(T, P)`` for ``T`` tasks, ``P`` scalars each.

    ``layout.flatten(tree)`` packs a task-batched tree ``{name: (T, *shape)}`` into one
    contiguous ``(T, P)`` array (leaves in order, each row-major); ``layout.views(flat)`` gives
    the tree back as views into that buffer, so that an optimizer step or a meta-update on the
    whole tree is a handful of calls on one array while every layer still sees named arrays.
    """

    def __init__(self, shapes: Mapping[str, tuple]):
        self.shapes = {k: tuple(int(d) for d in s) for k, s in shapes.items()}
        self.slices = {}
        offset = 0
        for k, s in self.shapes.items():
            n = int(np.prod(s, dtype=np.int64))
            self.slices[k] = slice(offset, offset + n)
            offset += n
        self.size = offset

    def flatten(self, a: Mapping, out=None):
        """``(T, P)`` buffer holding the task-batched tree ``a`` (into ``out`` when given)."""
        if list(a.keys()) != list(self.shapes):
            raise ValueError(f"parameter trees differ in their keys: {list(a.keys())} vs {list(self.shapes)}")
        first = next(iter(a.values()))
        xp = array_module(first)
        t = first.shape[0]
        if out is None:
            out = xp.empty((t, self.size), dtype=xp.result_type(*a.values()))
        for k, v in a.items():
            if tuple(v.shape[1:]) != self.shapes[k] or v.shape[0] != t:
                raise ValueError(f"leaf {k!r} has shape {tuple(v.shape)}, expected {(t,) + self.shapes[k]}")
            out[:, self.slices[k]] = v.reshape(t, -1)
        return out

    def views(self, flat) -> Tree:
        """The tree as views into ``flat`` ``(T, P)``: ``{name: (T, *shape)}``."""
        t = flat.shape[0]
        return {k: flat[:, self.slices[k]].reshape((t,) + s) for k, s in self.shapes.items()}
