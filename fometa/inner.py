"""The inner loop: ``k`` optimizer steps on a task's mini-batches, for many tasks at once.

Notation as :mod:`fometa.meta`: starting at ``phi_1 = phi``, step ``i`` moves
``phi_{i+1} = phi_i - lr * u_i`` on the mini-batch loss ``L_i``. :func:`adapt` is the
specification, written on parameter trees; :func:`adapt_flat` runs the same steps for networks
on the fused engine (:mod:`fometa.models.fused`) on one ``(T, P)`` buffer for the parameters and
one per optimizer moment, so that every step's update is a handful of array calls, with the
task axis cut into blocks that run on several threads (:func:`fometa.parallel.map_blocks`).
``tests/models/test_fused.py`` holds the two to each other.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from fometa import optim, parallel, tree
from fometa.backends import array_module, backend_of
from fometa.models.fused import net_for
from fometa.models.sequential import Sequential

__all__ = ["Trajectory", "IndexedSteps", "StepList", "adapt", "adapt_flat", "supports_flat", "flat_state", "tree_state",
           "tasks_per_block"]


class Trajectory(NamedTuple):
    """What an inner loop passed through (notation as :mod:`fometa.meta`): ``params`` ``phi_1 .. phi_{k+1}``,
    ``directions`` ``u_1 .. u_k`` and ``states`` (kept only with ``keep=True``), and ``losses``
    ``L_i(phi_i)``, each ``(T,)``."""
    params: list  # phi_1 .. phi_{k+1} (only kept when asked)
    directions: list  # u_1 .. u_k in gradient units (only kept when asked)
    states: list  # optimizer state after each step (only kept when asked)
    losses: list  # L_i(phi_i), each (T,)


class IndexedSteps(Sequence):
    """Mini-batches drawn by index from each task's examples, gathered only when a step runs: step ``i`` is
    ``(x[t, idx[t, i]], y[t, idx[t, i]])`` for every task ``t`` (``x`` ``(T, N, ...)``, ``y`` ``(T, N)``,
    ``idx`` ``(T, steps, batch)``). The same numbers as the list of gathered steps, without holding every
    step's images at once (50 evaluation steps of 15 Mini-ImageNet images are 64 MB a task);
    :func:`adapt_flat` gathers each block's steps from :meth:`take`'s tasks."""

    def __init__(self, x, y, idx):
        self.x, self.y, self.idx = x, y, idx

    def __len__(self) -> int:
        return int(self.idx.shape[1])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return IndexedSteps(self.x, self.y, self.idx[:, i])
        rows = array_module(self.idx).arange(self.idx.shape[0])[:, None]
        return self.x[rows, self.idx[:, i]], self.y[rows, self.idx[:, i]]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def take(self, s) -> IndexedSteps:
        """The steps of the tasks ``s`` (a slice of the task axis)."""
        return IndexedSteps(self.x[s], self.y[s], self.idx[s])

    def task_batch_bytes(self) -> int:
        """Bytes of one task's mini-batch of inputs."""
        return int(self.x[0, :1].nbytes) * int(self.idx.shape[2])

    def examples(self):
        """``(x, idx)``: the examples the steps draw from and which ones each step picks."""
        return self.x, self.idx


class StepList(Sequence):
    """Mini-batches given as they are, a sequence of ``(x (T, batch, ...), y (T, batch))`` pairs, with the methods
    of :class:`IndexedSteps` that :func:`adapt_flat` uses."""

    def __init__(self, steps):
        self.steps = list(steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i):
        return StepList(self.steps[i]) if isinstance(i, slice) else self.steps[i]

    def take(self, s) -> StepList:
        """The steps of the tasks ``s`` (a slice of the task axis)."""
        return StepList([(x[s], y[s]) for x, y in self.steps])

    def task_batch_bytes(self) -> int:
        """Bytes of one task's mini-batch of inputs."""
        return int(self.steps[0][0][0].nbytes)

    def examples(self):
        """``None``: the steps' examples are not drawn from a common set."""
        return None


def _as_steps(steps) -> IndexedSteps | StepList:
    return steps if isinstance(steps, (IndexedSteps, StepList)) else StepList(steps)


def adapt(model, params, steps, opt, state, keep: bool = False):
    """Run the inner loop: one optimizer step per ``(x, y)`` in ``steps`` (task-batched arrays).

    Returns ``(phi_tilde, state, trajectory)``; with ``keep`` the trajectory records every
    ``phi_i``, direction ``u_i`` and post-step state. Networks on the fused path run the loop
    on flat buffers (:func:`adapt_flat`); this loop is its specification.
    """
    if supports_flat(model, opt):
        return adapt_flat(model, params, steps, opt, state, keep)
    traj = Trajectory([params] if keep else [], [], [], [])
    for x, y in steps:
        loss, grads = model.loss_and_grad(params, x, y)
        updates, state = opt.update(grads, state)
        params = tree.add(params, updates)
        traj.losses.append(loss)
        if keep:
            traj.params.append(params)
            traj.directions.append(tree.scale(updates, -1.0 / opt.step_size(state)))
            traj.states.append(state)
    return params, state, traj


# --------------------------------------------------------------------------------------
# the same loop on flat buffers
# --------------------------------------------------------------------------------------
def flat_state(state, layout: tree.FlatLayout):
    """An optimizer state with its per-parameter trees packed into one ``(T, P)`` leaf each."""
    if isinstance(state, optim.AdamState):
        return optim.AdamState(state.count, {"flat": layout.flatten(state.mu)}, {"flat": layout.flatten(state.nu)})
    return state


def tree_state(state, layout: tree.FlatLayout):
    """Inverse of :func:`flat_state`: per-parameter views into the flat leaves."""
    if isinstance(state, optim.AdamState):
        return optim.AdamState(state.count, layout.views(state.mu["flat"]), layout.views(state.nu["flat"]))
    return state


def supports_flat(model, opt) -> bool:
    """Whether :func:`adapt_flat` runs ``model`` with ``opt`` (a fused Sequential with SGD or Adam)."""
    return isinstance(model, Sequential) and model.fused and isinstance(opt, (optim.SGD, optim.Adam))


def _state_take(state, s):
    if isinstance(state, optim.AdamState):
        return optim.AdamState(state.count[s], {"flat": state.mu["flat"][s]}, {"flat": state.nu["flat"][s]})
    return state


def _state_concat(states):
    first = states[0]
    if isinstance(first, optim.AdamState):
        xp = array_module(first.nu["flat"])

        def cat(xs):
            return xp.concatenate(xs, axis=0)

        return optim.AdamState(
            cat([st.count for st in states]), {"flat": cat([st.mu["flat"] for st in states])},
            {"flat": cat([st.nu["flat"] for st in states])}
        )
    return first


def _step_in_place(fast, opt, flat, g, state):
    """One Adam step on the flat buffers in place with the compiled kernels (``fast``): the
    numbers of ``opt.update`` followed by adding the update, without their temporaries.
    Returns the new state, or ``None`` where the compiled kernels do not run ``opt``."""
    if fast is None or not isinstance(opt, optim.Adam):
        return None
    count = state.count + 1
    fast.adam_flat(flat, g, state.nu["flat"], state.mu["flat"], -opt.lr_t(count, array_module(flat)),
                   opt.beta1, opt.beta2, opt.eps)
    return optim.AdamState(count, state.mu, state.nu)


def _adapt_block(net, opt, flat, steps, fstate, keep):
    """The inner loop of one block of tasks on flat buffers (``flat`` and the state's flat
    leaves are updated in place unless ``keep``). Returns
    ``(flat, state, losses, params_i, directions_i, states_i)``."""
    layout = net.layout
    fast = None if keep else backend_of(flat).compiled()
    patches = _reused_patches(net, steps)
    losses, params_i, directions, states = [], [], [], []
    for i, (x, y) in enumerate(steps):
        loss, g = net.loss_and_grad(layout.views(flat), x, y, first_patches=None if patches is None else patches(i))
        stepped = _step_in_place(fast, opt, flat, g, fstate)
        if stepped is not None:
            fstate = stepped
            losses.append(loss)
            continue
        updates, fstate = opt.update({"flat": g}, fstate)
        if keep:
            flat = flat + updates["flat"]
            params_i.append(flat)
            directions.append(updates["flat"] * (-1.0 / opt.step_size(fstate)))
            states.append(fstate)
        else:
            flat += updates["flat"]
        losses.append(loss)
    return flat, fstate, losses, params_i, directions, states


#: The first layer's patches of a block's examples are built once for all its steps up to this many bytes.
REUSED_PATCH_BYTES = 64 << 20


def _reused_patches(net, steps):
    """Where the steps draw their mini-batches from the same examples again and again (:class:`IndexedSteps`
    picking more than there are examples, on the CPU): ``i -> step i's first-layer patches`` (a function of a
    run ``(t0, t1, b0, b1)`` of tasks and images, gathered from those of every example, built once, when the
    run's product needs them); else ``None``. The patches are copies of the examples' values, so
    the numbers are those of patches built at every step."""
    drawn = steps.examples()
    if drawn is None or backend_of(drawn[0]).chunk_bytes is None:
        return None
    x, idx = drawn
    if len(steps) * idx.shape[2] <= x.shape[1]:
        return None
    every = net.first_patches(x, max_bytes=REUSED_PATCH_BYTES)
    if every is None:
        return None
    rows = array_module(idx).arange(idx.shape[0])[:, None]
    depth = every.shape[-1]

    def step(i):
        picked = idx[:, i]
        return lambda t0, t1, b0, b1: every[t0:t1][rows[: t1 - t0], picked[t0:t1, b0:b1]].reshape(t1 - t0, -1, depth)

    return step


def adapt_flat(model, params, steps, opt, state, keep: bool = False):
    """:func:`adapt` on flat buffers: one ``(T, P)`` array for the parameters and
    for each optimizer moment, so that every inner step's update is a few array calls.

    The tasks run in blocks (:func:`fometa.parallel.map_blocks`: on several threads when
    :func:`fometa.parallel.set_threads` asks for them); every task computes the same numbers
    in any block. Returns the same ``(phi_tilde, state, trajectory)`` as
    :func:`adapt`, with trees of views into the flat buffers.
    """
    net = net_for(model)
    layout = net.layout
    flat = layout.flatten(params)
    fstate = flat_state(state, layout)
    steps = _as_steps(steps)

    def block(s):
        return _adapt_block(net, opt, flat[s], steps.take(s), _state_take(fstate, s), keep)

    host = backend_of(flat).chunk_bytes is not None  # a GPU takes the whole task axis at once
    parts = parallel.map_blocks(block, flat.shape[0], max_block=_max_block(net, steps) if host else None, host=host)
    xp = array_module(flat)
    if len(parts) == 1:
        flat, fstate, losses, params_i, directions, states = parts[0]
    else:
        def cat(xs):
            return xp.concatenate(xs, axis=0)

        if keep:
            flat = cat([p[0] for p in parts])
        fstate = _state_concat([p[1] for p in parts])
        losses = [cat(ls) for ls in zip(*(p[2] for p in parts), strict=True)]
        params_i = [cat(ls) for ls in zip(*(p[3] for p in parts), strict=True)]
        directions = [cat(ls) for ls in zip(*(p[4] for p in parts), strict=True)]
        states = [_state_concat(ls) for ls in zip(*(p[5] for p in parts), strict=True)]
    traj = Trajectory(
        [params] + [layout.views(f) for f in params_i] if keep else [],
        [layout.views(d) for d in directions],
        [tree_state(st, layout) for st in states],
        losses,
    )
    return layout.views(flat), tree_state(fstate, layout), traj


#: Tasks of one block go through the network together; blocks run one after another on each
#: thread. Small blocks keep a block's activations in the CPU's caches.
BLOCK_BYTES = 48 << 20
#: Bytes of activations and patch matrices per byte of a task's input, roughly (for block sizes).
ACTIVATION_FACTOR = 200


def _max_block(net, steps) -> int | None:
    return tasks_per_block(steps.task_batch_bytes()) if len(steps) else None


def tasks_per_block(input_bytes: int) -> int:
    """How many tasks go through the network together on the CPU (:data:`BLOCK_BYTES`), for ``input_bytes``
    of inputs a task."""
    return max(1, int(BLOCK_BYTES // max(1, input_bytes * ACTIVATION_FACTOR)))
