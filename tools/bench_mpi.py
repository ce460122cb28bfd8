"""Meta-training and evaluation speed on 1 and several MPI processes, with the public commands only.

    OPENBLAS_NUM_THREADS=1 python tools/bench_mpi.py --data /tmp/omniglot.h5 [--procs 1,2] [--reps 3]

For each repetition it runs, interleaved (so load from other jobs hits every setting alike),
``fometa train --preset omniglot-5way-1shot`` for ``--iters`` meta-iterations and ``fometa eval`` of
that run on ``--tasks`` test tasks, once as one process and once under ``mpiexec -n N`` for each N.
Speeds come from the commands' own JSON ``seconds`` (the training loop and the evaluation, without
start-up and data loading); the table holds the median over repetitions and the spread.
Every process gets one BLAS thread.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def _command(procs: int, mpiexec: str, args) -> list[str]:
    fometa = [sys.executable, "-m", "fometa", *map(str, args)]
    return fometa if procs == 1 else [mpiexec, "-n", str(procs), *fometa]


def _json_lines(procs, mpiexec, args, env) -> list[dict]:
    done = subprocess.run(_command(procs, mpiexec, args), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench_mpi: {' '.join(map(str, args[:2]))} on {procs} process(es) failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="packed Omniglot file")
    p.add_argument("--procs", default="1,2", help="process counts, comma-separated (default 1,2)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--iters", type=int, default=30, help="meta-iterations per training run")
    p.add_argument("--tasks", type=int, default=40, help="evaluation tasks per run")
    p.add_argument("--chunk", type=int, default=20, help="evaluation tasks a process adapts at once")
    args = p.parse_args(argv)
    procs = [int(n) for n in args.procs.split(",")]
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    if not Path(mpiexec).exists():
        mpiexec = shutil.which("mpiexec") or sys.exit("bench_mpi: no mpiexec (pip install -e '.[mpi]')")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    train_rate = {n: [] for n in procs}
    eval_rate = {n: [] for n in procs}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for n in procs:
                run = Path(tmp) / f"run{rep}_{n}"
                (summary,) = _json_lines(n, mpiexec, [
                    "train", "--preset", "omniglot-5way-1shot", "--data", args.data, "--out", run, "--quiet",
                    "--meta-iters", args.iters, "--eval-interval", 0, "--checkpoint-every", 0], env)
                train_rate[n].append(args.iters / summary["seconds"])
                (result,) = _json_lines(n, mpiexec, [
                    "eval", run, "--tasks", args.tasks, "--chunk", args.chunk, "--mode", "transductive",
                    "--quiet"], env)
                eval_rate[n].append(args.tasks / result["seconds"])
                print(f"rep {rep + 1}/{args.reps}, {n} process(es): {train_rate[n][-1]:.2f} meta-iterations/s, "
                      f"{eval_rate[n][-1]:.2f} evaluation tasks/s", file=sys.stderr, flush=True)
    print("| processes | meta-iterations/s (Omniglot 5-way, meta-batch 5) | evaluation tasks/s (5-way 1-shot, "
          "50 steps) |")
    print("|---|---|---|")
    for n in procs:
        t, e = train_rate[n], eval_rate[n]
        print(f"| {n} | {statistics.median(t):.2f} ({min(t):.2f}-{max(t):.2f}) | "
              f"{statistics.median(e):.2f} ({min(e):.2f}-{max(e):.2f}) |")
    print(f"medians (range) of {args.reps} interleaved repetitions: {args.iters} meta-iterations, "
          f"{args.tasks} tasks, chunk {args.chunk} per process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
