"""One Reptile meta-iteration in fometa and in the same PyTorch eager loop, timed in one run.

Usage: python tools/bench_torch.py [--model omniglot|miniimagenet] [--threads N] [--repeat R]
                                  [--kernels numba,numpy]

The loop is the paper's (Appendix A): meta-batch 5, each task a fresh copy of phi adapted by
Adam (beta1 = 0, state carried from task to task) on mini-batches of 10 images (Omniglot: 5
steps, 28x28; Mini-ImageNet: 8 steps, 84x84x3), batch norm on batch statistics, then
phi <- phi + eps (mean(phi_tilde) - phi). fometa runs it through its public API
(``MetaLearner.step``, task-batched); PyTorch runs the tasks one after another, as the PyTorch
ports do. Both get the same number of threads (``--threads``: fometa's
:func:`fometa.parallel.set_threads`, PyTorch's ``torch.set_num_threads``), and their rounds
alternate so that a noisy machine slows both alike. ``--kernels numba,numpy`` times fometa on
its compiled kernels and on its NumPy code (``FOMETA_NUMBA=1`` / ``0``), each a side of its
own in the same rounds. Prints one JSON object per side with the median milliseconds and
``pytorch_over_this`` (PyTorch's median over this side's; ``pytorch_over_fometa`` is the first
fometa side's).

PyTorch is not a dependency of fometa: install it to run this (``pip install torch``).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def torch_loop(model_name: str, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if model_name == "omniglot":
        blocks, chans, shape = [], 1, (1, 28, 28)
        for _ in range(4):
            blocks += [nn.Conv2d(chans, 64, 3, stride=2, padding=1),
                       nn.BatchNorm2d(64, eps=1e-3, track_running_stats=False), nn.ReLU()]
            chans = 64
        net = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(256, 5))
        steps = 5
    else:
        blocks, chans, shape = [], 3, (3, 84, 84)
        for _ in range(4):
            blocks += [nn.Conv2d(chans, 32, 3, padding=1), nn.BatchNorm2d(32, eps=1e-3, track_running_stats=False),
                       nn.MaxPool2d(2, 2, ceil_mode=True), nn.ReLU()]
            chans = 32
        net = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(1152, 5))
        steps = 8
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.0, 0.999))
    gen = torch.Generator().manual_seed(seed)
    data = [[(torch.rand((10,) + shape, generator=gen), torch.randint(0, 5, (10,), generator=gen))
             for _ in range(steps)]
            for _ in range(5)]
    loss_fn = nn.CrossEntropyLoss()

    def meta_iteration(eps=0.5):
        phi = [p.detach().clone() for p in net.parameters()]
        new = [torch.zeros_like(p) for p in phi]
        for task in data:
            with torch.no_grad():
                for p, v in zip(net.parameters(), phi, strict=True):
                    p.copy_(v)
            for x, y in task:
                opt.zero_grad()
                loss_fn(net(x), y).backward()
                opt.step()
            with torch.no_grad():
                for acc, p in zip(new, net.parameters(), strict=True):
                    acc += p
        with torch.no_grad():
            for p, v, acc in zip(net.parameters(), phi, new, strict=True):
                p.copy_(v + eps * (acc / len(data) - v))

    return meta_iteration


def fometa_loop(model_name: str, seed: int):
    from fometa import build, config
    from fometa.tasks import ArrayClasses

    rng = np.random.default_rng(seed)
    if model_name == "omniglot":
        preset, shape = "omniglot-5way-1shot", (28, 28)
    else:
        preset, shape = "miniimagenet-5way-1shot", (84, 84, 3)
    cfg = config.apply_overrides(config.preset(preset), {"meta_iters": 10**6})  # shots, inner steps as the paper
    ds = ArrayClasses([rng.random((cfg.inner.shots,) + shape, dtype=np.float32) for _ in range(10)])
    learner = build.build_learner(cfg)
    model = learner.model
    state = learner.init(model.init(rng))
    tasks = learner.sample(ds, rng)

    def meta_iteration():
        nonlocal state
        state, _ = learner.step(state, tasks)

    return meta_iteration


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="omniglot", choices=["omniglot", "miniimagenet"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kernels", default=None,
                    help="fometa's CPU kernels: numba, numpy or numba,numpy (default: as FOMETA_NUMBA says)")
    args = ap.parse_args(argv)
    import torch

    from fometa import get_backend, parallel

    torch.set_num_threads(args.threads)
    parallel.set_threads(args.threads)
    flags = {"numba": "1", "numpy": "0"}
    kernels = [k.strip() for k in args.kernels.split(",")] if args.kernels else [None]
    for k in kernels:
        if k is not None and k not in flags:
            ap.error(f"unknown kernels {k!r}; expected numba or numpy")
    fometa = fometa_loop(args.model, args.seed)
    sides = {("fometa", k): fometa for k in kernels}
    sides[("pytorch", None)] = torch_loop(args.model, args.seed)
    saved = os.environ.get("FOMETA_NUMBA")
    times = {side: [] for side in sides}
    used = {}
    try:
        for r in range(args.warmup + args.repeat):
            for side, fn in sides.items():
                if side[1] is not None:
                    os.environ["FOMETA_NUMBA"] = flags[side[1]]
                start = time.perf_counter()
                fn()
                if r >= args.warmup:
                    times[side].append(time.perf_counter() - start)
                used[side] = "numba" if get_backend("numpy").compiled() is not None else "numpy"
                if saved is None:
                    os.environ.pop("FOMETA_NUMBA", None)
                else:
                    os.environ["FOMETA_NUMBA"] = saved
    finally:
        if saved is not None:
            os.environ["FOMETA_NUMBA"] = saved
    med = {side: float(np.median(ts)) for side, ts in times.items()}
    torch_med = med[("pytorch", None)]
    first = med[next(iter(sides))]
    for side, ts in times.items():
        print(json.dumps({
            "model": args.model, "implementation": side[0], "kernels": used[side] if side[0] == "fometa" else None,
            "threads": args.threads, "median_ms": 1e3 * med[side], "min_ms": 1e3 * min(ts), "max_ms": 1e3 * max(ts),
            "repeat": args.repeat, "pytorch_over_this": torch_med / med[side], "pytorch_over_fometa": torch_med / first,
        }), flush=True)


if __name__ == "__main__":
    main()
