"""The sine-wave toy problem (paper, Section 6 / Figure 1; the reference's Reptile sine demo).

Tasks: ``y = A sin(x + b)``, ``A ~ U(0.1, 5)``, ``b ~ U(0, 2 pi)``; inputs on a grid of 50
points in ``[-5, 5]``. Meta-training, per iteration: one task, one epoch over the 50 points
in shuffled mini-batches of 10 (5 inner SGD steps, lr 0.02), outer step 0.1 annealed linearly
to 0 over the run. Weights start as PyTorch's ``nn.Linear`` draws them, as in the reference
demo (TensorFlow's Glorot init with zero biases starts every tanh unit centred at x = 0 and
learns the phase far more slowly; ``SineConfig(init="glorot")`` selects it). Evaluation, per test task: 10 points drawn from the grid (with replacement,
as the reference), 32 full-batch SGD steps on them, mean squared error over the whole grid.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fometa import meta, models, optim, tree

GRID = np.linspace(-5, 5, 50, dtype=np.float32)[:, None]


@dataclass(frozen=True)
class SineConfig:
    algorithm: str = "reptile"
    meta_iters: int = 30_000
    inner_lr: float = 0.02
    inner_batch: int = 10
    inner_epochs: int = 1
    meta_step: float = 0.1
    meta_step_final: float = 0.0
    eval_tasks: int = 500
    eval_points: int = 10
    eval_steps: int = 32
    seed: int = 0
    init: str = "torch"  # the reference demo is PyTorch: nn.Linear's default initialization


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


def training_steps(rng: np.random.Generator, cfg: SineConfig):
    """One training task's inner mini-batches: ``[(x (B, 1), y (B, 1)), ...]``."""
    amp, phase = draw_sine(rng)
    y_all = sine_values(amp, phase, GRID)[0]
    steps = []
    for _ in range(cfg.inner_epochs):
        order = rng.permutation(len(GRID))
        for start in range(0, len(GRID), cfg.inner_batch):
            sel = order[start : start + cfg.inner_batch]
            steps.append((GRID[sel], y_all[sel]))
    return steps


def make_learner(cfg: SineConfig, backend=None) -> meta.MetaLearner:
    steps = cfg.inner_epochs * -(-len(GRID) // cfg.inner_batch)
    return meta.MetaLearner(
        model=models.sine_mlp(init=cfg.init),
        algorithm=meta.make_algorithm(cfg.algorithm),
        inner_opt=optim.SGD(cfg.inner_lr),
        outer_opt=meta.Interpolate(cfg.meta_step, cfg.meta_step_final, cfg.meta_iters),
        config=meta.MetaConfig(ways=1, shots=1, inner_batch=cfg.inner_batch, inner_iters=steps, meta_batch=1, batched=False),
        backend=backend,
    )


def train(cfg: SineConfig, backend=None, progress=None):
    """Meta-train the sine MLP; returns the learned (host) parameters and the untrained ones."""
    rng = np.random.default_rng(cfg.seed)
    learner = make_learner(cfg, backend)
    init = learner.model.init(rng)
    state = learner.init(init)
    for i in range(cfg.meta_iters):
        state, _ = learner.step(state, [training_steps(rng, cfg)])
        if progress is not None and (i + 1) % 1000 == 0:
            progress(i + 1, cfg.meta_iters)
    return tree.to_host(state.params), init


def evaluate(params, cfg: SineConfig, rng: np.random.Generator, record_steps=(0, 1, 32)):
    """Grid MSE after ``eval_steps`` full-batch SGD steps on ``eval_points`` points, over ``eval_tasks`` tasks at once.

    Returns the per-task MSE after the last step ``(n,)``, the mean MSE at each step in
    ``record_steps``, and the predictions on the grid at those steps for the first task
    (for the figure), along with that task's amplitude, phase and points.
    """
    model = models.sine_mlp(init=cfg.init)
    n = cfg.eval_tasks
    amp, phase = draw_sine(rng, n)
    pick = np.stack([rng.choice(len(GRID), size=cfg.eval_points) for _ in range(n)])
    xs = GRID[pick]  # (n, P, 1)
    ys = sine_values(amp, phase, xs)
    grid = np.broadcast_to(GRID, (n,) + GRID.shape).copy()
    truth = sine_values(amp, phase, grid)
    p = tree.broadcast(tree.astype(params, np.float32), n)
    opt = optim.SGD(cfg.inner_lr)
    state = opt.init(p)
    by_step, curves = {}, {}
    for step in range(cfg.eval_steps + 1):
        if step in record_steps:
            pred = model.forward(p, grid)
            by_step[step] = float(((pred - truth) ** 2).mean())
            curves[step] = pred[0, :, 0]
        if step == cfg.eval_steps:
            break
        _, g = model.loss_and_grad(p, xs, ys)
        upd, state = opt.update(g, state)
        p = tree.add(p, upd)
    final = ((model.forward(p, grid) - truth) ** 2).mean(axis=(1, 2))
    example = {"amp": float(amp[0]), "phase": float(phase[0]), "x": xs[0, :, 0], "y": ys[0, :, 0], "truth": truth[0, :, 0], "curves": curves}
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


def run(cfg: SineConfig, backend=None, progress=None, plot_path=None) -> dict:
    start = time.perf_counter()
    trained, untrained = train(cfg, backend, progress)
    train_seconds = time.perf_counter() - start
    eval_rng = np.random.default_rng([cfg.seed, 1])
    final_t, steps_t, example_t = evaluate(trained, cfg, eval_rng)
    eval_rng = np.random.default_rng([cfg.seed, 1])  # the same test tasks for both
    final_u, steps_u, _ = evaluate(untrained, cfg, eval_rng)
    if plot_path is not None:
        plot(example_t, plot_path, f"{cfg.algorithm}, {cfg.meta_iters} meta-iterations")
    return {
        "algorithm": cfg.algorithm,
        "meta_iters": cfg.meta_iters,
        "seed": cfg.seed,
        "eval_tasks": cfg.eval_tasks,
        "mse_trained": float(final_t.mean()),
        "mse_trained_ci95": float(1.96 * final_t.std(ddof=1) / np.sqrt(len(final_t))),
        "mse_untrained": float(final_u.mean()),
        "mse_trained_by_step": {str(k): v for k, v in steps_t.items()},
        "mse_untrained_by_step": {str(k): v for k, v in steps_u.items()},
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - start,
    }
