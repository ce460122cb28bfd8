"""``fometa bench``: what users wait for, timed.

``fometa bench`` (or ``fometa bench layers``): one ``loss_and_grad`` call of a network on ``T``
tasks of ``batch`` images, for each ``--tasks`` T, and the resulting images per second.

``fometa bench meta``: meta-iterations per second of each ``--preset``'s training loop (its
network, inner optimizer, shots, inner batch and steps, meta-batch), for each ``--algorithm``
(reptile, fomaml, maml) and ``--mode`` (batched: the meta-batch on the task axis; serial: one
task after another, as the reference), through the public API (``MetaLearner.step`` on a
drawn meta-batch).

``fometa bench eval``: evaluation tasks per second with the preset's evaluation settings
(``--shots``, 50 inner steps, the preset's evaluation batch), ``--chunk`` tasks at a time, every
task predicted in the ``--eval-modes`` (default transductive and per-query, as ``fometa eval``).

All timings are medians of ``--repeat`` runs after ``--warmup`` untimed ones, on random data
of the right shape (the cost does not depend on the pixels). ``--threads N`` runs N task
blocks at once with one BLAS thread each (:mod:`fometa.parallel`); without it, BLAS threads as
configured (``OPENBLAS_NUM_THREADS``). ``--json`` prints one JSON object per figure; otherwise
a line of text each.

Every figure names the CPU kernels it ran on (``kernels``: ``numba``, the compiled kernels of the
``fast`` extra, or ``numpy``) and how its stride-1 3x3 convolutions ran (``conv``: ``winograd``, the
fused engine's default, or ``im2col``). ``--kernels numba,numpy`` and ``--conv winograd,im2col``
time each combination in one run, alternating run by run so that a busy machine slows them alike
(as ``FOMETA_NUMBA`` and ``FOMETA_WINOGRAD`` would).

**Distance to the limit.** ``meta`` and ``eval`` figures (and ``layers`` ones) give the work
counted from the network's shapes (``gflop``: :mod:`fometa.flops`), the rate of a 2048 x 2048
float32 matrix product through NumPy on as many threads as the figures use, measured in the same
run just before them (``sgemm_gflops``), the time that work would take at that rate
(``limit_s``) and the measured median as a multiple of it (``times_limit``). The limit of
second-order MAML and of the GPU backend is not given (``null``).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import replace

import numpy as np

from fometa import config as C
from fometa import flops, get_backend, parallel, tree
from fometa.build import build_learner, build_model
from fometa.commands.options import CLIError, add_setting_arguments, overrides_from_args
from fometa.evaluate import MODES
from fometa.problems import make_problem
from fometa.tasks import ArrayClasses

SUITES = ("layers", "meta", "eval")
#: the settings this command takes; ``--preset`` and ``--algorithm`` take lists of values to time each
SETTINGS = ("model.ways", "eval.shots", "seed", "backend")
#: ``--model``: the network of each data set (layers)
NETWORKS = {"omniglot": "omniglot_cnn", "miniimagenet": "miniimagenet_cnn", "sine": "sine_mlp"}


def add_arguments(p):
    p.add_argument("suite", nargs="?", default="layers", choices=SUITES,
                   help="layers (forward+backward, default), meta (training meta-iterations) "
                        "or eval (evaluation tasks)")
    p.add_argument("--model", default="omniglot", choices=list(NETWORKS), help="layers: the network")
    p.add_argument("--batch", type=int, default=10, help="layers: images per task (default 10)")
    p.add_argument("--tasks", type=int, nargs="+", default=[1, 5], help="layers: task counts T (default 1 5)")
    p.add_argument("--preset", default="omniglot-5way-1shot",
                   help="meta/eval: comma-separated presets (default omniglot-5way-1shot; see fometa train --help)")
    p.add_argument("--algorithm", default="reptile,fomaml,maml", help="meta: comma-separated algorithms")
    p.add_argument("--mode", default="batched,serial", help="meta: batched and/or serial meta-batches")
    p.add_argument("--chunk", type=int, default=50, help="eval: tasks per pass (default 50)")
    p.add_argument("--eval-modes", default="transductive,per-query", help="eval: batch-norm modes")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for task blocks, one BLAS thread each (default: $FOMETA_THREADS or the cores)")
    p.add_argument("--repeat", type=int, default=None, help="timed runs (default: 20 layers, 10 meta, 3 eval)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default: 3 layers, 2 meta, 1 eval)")
    p.add_argument("--kernels", default=None,
                   help="CPU kernels: numba, numpy or numba,numpy (both, alternating; default: as FOMETA_NUMBA says)")
    p.add_argument("--conv", default=None,
                   help="stride-1 3x3 convolutions: winograd, im2col or winograd,im2col (both, alternating; "
                        "default: as FOMETA_WINOGRAD says)")
    p.add_argument("--json", action="store_true", help="one JSON object per figure")
    add_setting_arguments(p.add_argument_group("settings"), SETTINGS, "",
                          notes={"model.ways": "5; layers: the network's outputs", "eval.shots": "the preset's; eval",
                                 "backend": "$FOMETA_BACKEND, else numpy", "seed": "0; the random data and parameters"})



KERNELS = {"numba": "1", "numpy": "0"}  # the FOMETA_NUMBA value of each
CONVS = {"winograd": "1", "im2col": "0"}  # the FOMETA_WINOGRAD value of each


class Variant(tuple):
    """``(kernels, conv)``: what a timed run sets (``None``: as the environment says)."""

    def __new__(cls, kernels=None, conv=None):
        return super().__new__(cls, (kernels, conv))


@contextlib.contextmanager
def _environment(values: dict):
    """Run with the environment variables ``values`` (those that are ``None`` left as they are)."""
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is not None:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _variant(variant):
    kernels, conv = variant
    return _environment({"FOMETA_NUMBA": KERNELS.get(kernels), "FOMETA_WINOGRAD": CONVS.get(conv)})


def _labels(backend, variant) -> dict:
    """``{"kernels": numba or numpy, "conv": winograd or im2col}``: what ``variant`` ran on."""
    from fometa.models.fused import winograd_enabled

    with _variant(variant):
        return {"kernels": "numba" if backend.compiled() is not None else "numpy",
                "conv": "winograd" if winograd_enabled() else "im2col"}


def _limit(figure: dict, flop: float | None, rate: float | None) -> dict:
    """``figure`` with its work, the sgemm rate and its distance to the limit."""
    limit = flop / (rate * 1e9) if flop and rate else None
    figure.update({"gflop": flop / 1e9 if flop else None, "sgemm_gflops": rate, "limit_s": limit,
                   "times_limit": figure["median_s"] / limit if limit else None})
    return figure


def measure(model, backend, tasks: int, batch: int, repeat: int, warmup: int, seed: int, variants=(Variant(),),
            rate=None) -> list:
    """Median wall time of one ``loss_and_grad`` call on ``tasks`` tasks of ``batch`` images, one figure per variant."""
    rng = np.random.default_rng(seed)
    params = tree.to_backend(tree.broadcast(model.init(rng), tasks), backend)
    x = rng.random((tasks, batch) + tuple(model.input_shape), dtype=np.float32)
    y: np.ndarray
    if model.loss == "mse":
        y = rng.standard_normal((tasks, batch, 1)).astype(np.float32)
    else:
        y = rng.integers(0, model.output_shape[0], size=(tasks, batch))
    x, y = backend.asarray(x), backend.asarray(y)
    figures = []
    for variant, times in _time(lambda: model.loss_and_grad(params, x, y), backend, repeat, warmup, variants).items():
        median = float(np.median(times))
        figures.append(_limit({
            "model": model.name, "backend": backend.name, **_labels(backend, variant), "tasks": tasks,
            "batch": batch, "median_s": median, "min_s": float(np.min(times)), "max_s": float(np.max(times)),
            "images_per_s": tasks * batch / median, "repeat": repeat,
        }, tasks * flops.step_flops(model, batch), rate))
    return figures


def _time(fn, backend, repeat: int, warmup: int, variants=(Variant(),)) -> dict:
    """``{variant: [seconds of each timed run]}``, the variants taking turns run by run."""
    times: dict[Variant, list[float]] = {v: [] for v in variants}
    for i in range(warmup + repeat):
        for v in variants:
            with _variant(v):
                backend.synchronize()
                start = time.perf_counter()
                fn()
                backend.synchronize()
            if i >= warmup:
                times[v].append(time.perf_counter() - start)
    return times


def _problem(cfg, seed: int):
    """The preset's training problem on random data of the right shape."""
    if cfg.data.kind == "sine":
        return make_problem(cfg, None)
    rng = np.random.default_rng(seed)
    shape = (28, 28) if cfg.data.kind == "omniglot" else (84, 84, 3)
    per_class = max(cfg.inner.shots + (cfg.outer.tail_shots or 0), cfg.eval.shots + cfg.eval.queries_per_class, 20)
    classes = max(cfg.model.ways, 25)
    ds = ArrayClasses([rng.random((per_class,) + shape, dtype=np.float32) for _ in range(classes)])
    return make_problem(cfg, {"train": ds, "test": ds, "val": ds})


def _summary(times, count: int) -> dict:

    median = float(np.median(times))
    return {"median_s": median, "min_s": float(np.min(times)), "max_s": float(np.max(times)), "per_s": count / median}


def bench_meta(preset: str, algorithm: str, batched: bool, backend, repeat: int, warmup: int, seed: int,
               variants=(Variant(),), rate=None) -> list:
    """Median wall time of one meta-iteration of ``preset`` with ``algorithm``, one figure per variant."""
    cfg = C.preset(preset)
    cfg = replace(cfg, outer=replace(cfg.outer, algorithm=algorithm, batched=batched, tail_shots=None))
    learner = build_learner(cfg, backend=backend)
    problem = _problem(cfg, seed)
    rng = np.random.default_rng(seed)
    state = learner.init(learner.model.init(rng))
    draws = [problem.sample(learner, rng) for _ in range(min(4, warmup + repeat))]
    counter = iter(range(10**9))

    def step():
        nonlocal state
        state, _ = learner.step(state, draws[next(counter) % len(draws)])

    work = None
    if algorithm != "maml":
        work = flops.meta_iteration_flops(learner.model, cfg.outer.meta_batch, cfg.inner.iters, cfg.inner.batch)
    figures = []
    for variant, times in _time(step, learner.backend, repeat, warmup, variants).items():
        out = _summary(times, 1)
        figures.append(_limit({
            "suite": "meta", "preset": preset, "model": learner.model.name, "algorithm": algorithm,
            "mode": "batched" if batched else "serial", "meta_batch": cfg.outer.meta_batch,
            "inner_iters": cfg.inner.iters, "inner_batch": cfg.inner.batch, "backend": learner.backend.name,
            **_labels(learner.backend, variant), "median_s": out["median_s"], "min_s": out["min_s"],
            "max_s": out["max_s"], "iterations_per_s": out["per_s"], "repeat": repeat,
        }, work, rate))
    return figures


def bench_eval(preset: str, shots, chunk: int, modes: tuple | None, backend, repeat: int, warmup: int, seed: int,
               variants=(Variant(),), rate=None) -> list:
    """Median wall time of evaluating ``chunk`` tasks of ``preset`` in ``modes``, one figure per variant."""
    cfg = C.preset(preset)
    learner = build_learner(cfg, backend=backend)
    problem = _problem(cfg, seed)
    rng = np.random.default_rng(seed)
    params = learner.model.init(rng)
    inner_state = learner.inner_opt.init(params)
    kwargs = {} if cfg.data.kind == "sine" else {"eval_cfg": replace(cfg.eval, shots=shots or cfg.eval.shots)}
    modes = modes if cfg.data.kind != "sine" else None

    def run():
        problem.evaluate(learner, params, inner_state, "test", np.random.default_rng(seed), chunk,
                         modes=modes, chunk=chunk, **kwargs)

    ev = kwargs.get("eval_cfg")
    work = None
    if ev is not None:
        ways = learner.model.output_shape[0]
        work = chunk * flops.eval_task_flops(learner.model, ev.inner_iters, ev.inner_batch, ways * ev.shots,
                                             ways * ev.queries_per_class, modes)
    figures = []
    for variant, times in _time(run, learner.backend, repeat, warmup, variants).items():
        out = _summary(times, chunk)
        figures.append(_limit({
            "suite": "eval", "preset": preset, "model": learner.model.name,
            "shots": ev.shots if ev else cfg.eval.shots,
            "inner_iters": ev.inner_iters if ev else cfg.eval.inner_iters,
            "inner_batch": ev.inner_batch if ev else cfg.eval.inner_batch, "modes": list(modes or ("mse",)),
            "chunk": chunk, "backend": learner.backend.name, **_labels(learner.backend, variant),
            "median_s": out["median_s"], "min_s": out["min_s"], "max_s": out["max_s"],
            "tasks_per_s": out["per_s"], "repeat": repeat,
        }, work, rate))
    return figures


def _text(fig: dict) -> str:
    labels = f"{fig['kernels']:6s} {fig['conv']:8s}"
    limit = f"  {fig['times_limit']:5.2f}x limit" if fig.get("times_limit") else ""
    if fig["suite"] == "layers":
        return (f"layers  {fig['model']:22s} T={fig['tasks']:<5d} batch {fig['batch']:<4d} {fig['backend']:8s} {labels}"
                f"{1e3 * fig['median_s']:9.2f} ms  {fig['images_per_s']:12,.0f} images/s{limit}")
    if fig["suite"] == "meta":
        return (f"meta    {fig['preset']:24s} {fig['algorithm']:7s} {fig['mode']:8s} {fig['backend']:8s} {labels}"
                f"{1e3 * fig['median_s']:9.2f} ms  {fig['iterations_per_s']:8.2f} meta-iterations/s{limit}")
    return (f"eval    {fig['preset']:24s} {fig['shots']}-shot chunk {fig['chunk']:<5d} {fig['backend']:8s} {labels}"
            f"{fig['median_s']:9.2f} s  {fig['tasks_per_s']:8.2f} tasks/s ({','.join(fig['modes'])}){limit}")


def _choices(text, table: dict, option: str) -> tuple:
    """The comma-separated names of ``text`` (``None``: ``(None,)``, as the environment says), each a key of
    ``table``."""
    if text is None:
        return (None,)
    names = tuple(k.strip() for k in text.split(",") if k.strip())
    for k in names:
        if k not in table:
            raise CLIError(f"unknown {option} {k!r}; expected {' or '.join(table)}")
    if not names:
        raise CLIError(f"--{option} needs {', '.join(table)} or several of them")
    return names


def run(args) -> int:
    given = overrides_from_args(args, SETTINGS)
    args.backend, args.seed = given.get("backend"), given.get("seed", 0)
    args.ways, args.shots = given.get("model.ways", 5), given.get("eval.shots")
    backend = get_backend(args.backend)
    threads = parallel.get_threads()
    defaults = {"layers": (20, 3), "meta": (10, 2), "eval": (3, 1)}[args.suite]
    repeat = defaults[0] if args.repeat is None else args.repeat
    warmup = defaults[1] if args.warmup is None else args.warmup
    if repeat < 1 or warmup < 0:
        raise CLIError(f"--repeat must be at least 1 and --warmup at least 0, got {repeat} and {warmup}")
    variants = tuple(Variant(k, c) for k in _choices(args.kernels, KERNELS, "kernels")
                     for c in _choices(args.conv, CONVS, "conv"))
    presets = [p.strip() for p in args.preset.split(",") if p.strip()]
    for name in presets:
        if name not in C.PRESETS:
            raise CLIError(f"unknown preset {name!r}; expected one of {', '.join(sorted(C.PRESETS))}")
    if args.suite == "meta":
        algorithms = [a.strip() for a in args.algorithm.split(",") if a.strip()]
        modes = [m.strip() for m in args.mode.split(",") if m.strip()]
        for a in algorithms:
            if a not in ("reptile", "fomaml", "maml"):
                raise CLIError(f"unknown algorithm {a!r}; expected reptile, fomaml or maml")
        for m in modes:
            if m not in ("batched", "serial"):
                raise CLIError(f"unknown mode {m!r}; expected batched or serial")
    if args.suite == "eval":
        eval_modes = tuple(m.strip() for m in args.eval_modes.split(",") if m.strip())
        for m in eval_modes:
            if m not in MODES:
                raise CLIError(f"unknown evaluation mode {m!r}; expected one of {', '.join(MODES)}")
        if args.chunk < 1:
            raise CLIError(f"--chunk must be at least 1, got {args.chunk}")

    # the limit's rate: on the CPU, measured before the figures on as many threads as they use
    rates: dict = {}

    def rate_for(n):
        if backend.name != "numpy":
            return None
        if n not in rates:
            rates[n] = flops.sgemm_rate(n)
        return rates[n]

    rate = rate_for(threads) if args.suite != "layers" else None

    def emit(fig):
        fig["threads"] = threads
        print(json.dumps(fig) if args.json else _text(fig), flush=True)

    if args.suite == "layers":
        model = build_model(C.ModelConfig(arch=NETWORKS[args.model], ways=args.ways))
        for t in args.tasks:
            for fig in measure(model, backend, t, args.batch, repeat, warmup, args.seed, variants,
                               rate_for(min(threads, t))):
                emit({"suite": "layers", **fig})
    elif args.suite == "meta":
        for name in presets:
            for a in algorithms:
                for m in modes:
                    for fig in bench_meta(name, a, m == "batched", backend, repeat, warmup, args.seed, variants, rate):
                        emit(fig)
    else:
        for name in presets:
            for fig in bench_eval(name, args.shots, args.chunk, eval_modes, backend, repeat, warmup, args.seed,
                                  variants, rate):
                emit(fig)
    return 0
