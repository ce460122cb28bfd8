"""The sine-wave task family (paper, Section 6 / Figure 1; the reference's Reptile sine demo).

Tasks: ``y = A sin(x + b)``, ``A ~ U(0.1, 5)``, ``b ~ U(0, 2 pi)``; inputs on a grid of 50
points in ``[-5, 5]``. A training task is one epoch over the 50 points in shuffled mini-batches
(:func:`training_steps`); evaluation (:func:`evaluate`) draws points from the grid (with
replacement, as the reference), takes full-batch steps of the inner optimizer on them (SGD in the
preset; the one inner loop, :func:`fometa.inner.adapt`) and scores the mean squared error over
the whole grid. The settings (the ``sine`` preset of :mod:`fometa.config`: batches
of 10, lr 0.02, outer step 0.1 annealed to 0 over 30,000 iterations, 32 steps on 10 points) reach
these functions through :class:`fometa.problems.SineProblem`; ``fometa sine`` is the Figure 1
experiment (:mod:`fometa.experiments.sine_wave`).
"""
from __future__ import annotations

import numpy as np

from fometa import optim, tree
from fometa.inner import adapt

__all__ = ["GRID", "draw_sine", "sine_values", "training_steps", "evaluate", "plot"]

GRID = np.linspace(-5, 5, 50, dtype=np.float32)[:, None]


def draw_sine(rng: np.random.Generator, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Amplitudes and phases of ``n`` tasks."""
    amp = rng.uniform(0.1, 5.0, size=n)
    phase = rng.uniform(0.0, 2 * np.pi, size=n)
    return amp, phase


def sine_values(amp, phase, x):
    """``A sin(x + b)`` for tasks ``(n,)`` at points ``x`` ``(n, B, 1)`` or ``(B, 1)``."""
    amp = np.asarray(amp, dtype=np.float64).reshape(-1, 1, 1)
    phase = np.asarray(phase, dtype=np.float64).reshape(-1, 1, 1)
    return (amp * np.sin(x + phase)).astype(np.float32)


def training_steps(rng: np.random.Generator, batch: int = 10, epochs: int = 1):
    """One training task's inner mini-batches: ``epochs`` shuffled passes over the grid,
    ``[(x (B, 1), y (B, 1)), ...]``."""
    amp, phase = draw_sine(rng)
    y_all = sine_values(amp, phase, GRID)[0]
    steps = []
    for _ in range(epochs):
        order = rng.permutation(len(GRID))
        for start in range(0, len(GRID), batch):
            sel = order[start : start + batch]
            steps.append((GRID[sel], y_all[sel]))
    return steps


def evaluate(model, inner_opt, params, rng: np.random.Generator, *, tasks: int = 500, points: int = 10,
             steps: int = 32, inner_state=None, record_steps=(0, 1, 32)):
    """Grid MSE after ``steps`` full-batch steps of the inner optimizer ``inner_opt`` (from
    ``inner_state``, fresh when ``None``) on ``points`` points, over ``tasks`` tasks at once.

    The steps are the one inner loop of every task (:func:`fometa.inner.adapt`). Returns the
    per-task MSE after the last step ``(tasks,)``, the mean MSE at each step in ``record_steps``,
    and the predictions on the grid at those steps for the first task (for the figure), along
    with that task's amplitude, phase and points.
    """
    n = tasks
    amp, phase = draw_sine(rng, n)
    pick = np.stack([rng.choice(len(GRID), size=points) for _ in range(n)])
    xs = GRID[pick]  # (n, P, 1)
    ys = sine_values(amp, phase, xs)
    grid = np.broadcast_to(GRID, (n,) + GRID.shape).copy()
    truth = sine_values(amp, phase, grid)
    p = tree.broadcast(tree.astype(params, np.float32), n)
    state = inner_opt.init(p) if inner_state is None else optim.state_broadcast(inner_state, n)
    by_step, curves, done = {}, {}, 0
    for step in sorted({s for s in record_steps if s <= steps} | {steps}):
        if step > done:
            p, state, _ = adapt(model, p, [(xs, ys)] * (step - done), inner_opt, state)
            done = step
        if step in record_steps:
            pred = model.forward(p, grid)
            by_step[step] = float(((pred - truth) ** 2).mean())
            curves[step] = pred[0, :, 0]
    final = ((model.forward(p, grid) - truth) ** 2).mean(axis=(1, 2))
    example = {"amp": float(amp[0]), "phase": float(phase[0]), "x": xs[0, :, 0], "y": ys[0, :, 0],
               "truth": truth[0, :, 0], "curves": curves}
    return final, by_step, example


def plot(example, path, title: str = ""):
    """Figure 1 of the paper: the true curve, the points, predictions after 0, 1 and 32 steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(GRID[:, 0], example["truth"], color="black", lw=2, label="true")
    ax.scatter(example["x"], example["y"], color="black", zorder=3, label="training points")
    for step, pred in sorted(example["curves"].items()):
        ax.plot(GRID[:, 0], pred, label=f"after {step} steps")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
