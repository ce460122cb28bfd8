"""The speed tables of docs/performance.md, written from one run of tools/bench_speed.sh.

Usage: python tools/speed_table.py docs/results/bench-speed-YYYY-MM-DD

Reads the run's JSON lines (``meta.jsonl``, ``eval.jsonl``, ``torch.jsonl``, ``memory.jsonl``,
``previous.jsonl``, ``sgemm.jsonl``) and prints markdown: each network's meta-iteration against its
FLOP limit (the work counted from its shapes at the rate of a 2048 x 2048 sgemm measured in the same
run) beside the previous installation's; the Mini-ImageNet evaluation's tasks/s; fometa against
PyTorch; the peak memory of a Mini-ImageNet meta-iteration; and where a meta-iteration's time goes. Only
the public bench outputs are read: every figure printed is one of theirs, or a ratio of two of them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

PRESETS = ("omniglot-5way-1shot", "omniglot-20way-1shot", "miniimagenet-5way-1shot")
NAMES = {"omniglot-5way-1shot": "Omniglot 5-way", "omniglot-20way-1shot": "Omniglot 20-way",
         "miniimagenet-5way-1shot": "Mini-ImageNet 5-way"}


def read(folder: Path, name: str) -> list[dict]:
    path = folder / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]


def pick(rows, **want):
    """The first row whose fields equal ``want`` (a field ``conv`` absent from old rows matches ``None``)."""
    for r in rows:
        if all(r.get(k) == v for k, v in want.items()):
            return r
    return None


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:,.0f} ms" if seconds >= 0.1 else f"{1e3 * seconds:.1f} ms"


def limit_table(meta, previous) -> list[str]:
    out = ["| network | GFLOP a meta-iteration | 1 thread: time (limit) | x limit | 2 threads: time (limit) | "
           "x limit | previous release, 1 / 2 threads (x limit) |", "|---|---|---|---|---|---|---|"]
    for preset in PRESETS:
        cells, old = [], []
        gflop = None
        for threads in (1, 2):
            fig = pick(meta, preset=preset, threads=threads, algorithm="reptile", mode="batched",
                       **({"conv": "winograd"} if preset.startswith("mini") else {}))
            if fig is None:
                cells += ["-", "-"]
                continue
            gflop = fig["gflop"]
            cells += [f"{ms(fig['median_s'])} ({ms(fig['limit_s'])})", f"**{fig['times_limit']:.2f}x**"]
            prev = pick(previous, preset=preset, threads=threads, suite="meta")
            old.append(f"{ms(prev['median_s'])} ({prev['median_s'] / fig['limit_s']:.2f}x)" if prev else "-")
        if gflop is None:
            continue
        name = NAMES[preset]
        out.append(f"| {name} | {gflop:.1f} | " + " | ".join(cells) + f" | {' / '.join(old)} |")
    return out


def conv_table(meta) -> list[str]:
    out = ["| Mini-ImageNet meta-iteration | Winograd | patches (`FOMETA_WINOGRAD=0`) | patches / Winograd |",
           "|---|---|---|---|"]
    for threads in (1, 2):
        w = pick(meta, preset=PRESETS[2], threads=threads, conv="winograd")
        p = pick(meta, preset=PRESETS[2], threads=threads, conv="im2col")
        if w and p:
            out.append(f"| {threads} thread{'s' if threads > 1 else ''} | {ms(w['median_s'])} "
                       f"({w['times_limit']:.2f}x limit) | {ms(p['median_s'])} ({p['times_limit']:.2f}x) | "
                       f"{p['median_s'] / w['median_s']:.2f} |")
    return out


def eval_table(evals, previous) -> list[str]:
    out = ["| evaluation, tasks/s | this release | previous release | ratio |", "|---|---|---|---|"]
    for preset in ("omniglot-5way-1shot", "miniimagenet-5way-1shot"):
        for threads in (1, 2):
            new = pick(evals, preset=preset, threads=threads,
                       **({"conv": "winograd"} if preset.startswith("mini") else {}))
            old = pick(previous, preset=preset, threads=threads, suite="eval")
            if new is None:
                continue
            name = NAMES[preset] + " 1-shot"
            ratio = f"**{new['tasks_per_s'] / old['tasks_per_s']:.2f}x**" if old else "-"
            out.append(f"| {name}, {threads} thread{'s' if threads > 1 else ''} | {new['tasks_per_s']:.2f} "
                       f"({new['times_limit']:.2f}x limit) | {old['tasks_per_s']:.2f} | {ratio} |" if old else
                       f"| {name}, {threads} thread{'s' if threads > 1 else ''} | {new['tasks_per_s']:.2f} | - | - |")
    return out


def torch_table(torch) -> list[str]:
    out = ["| one meta-iteration | fometa, compiled | fometa, NumPy | PyTorch | compiled / PyTorch |",
           "|---|---|---|---|---|"]
    for model in ("omniglot", "miniimagenet"):
        for threads in (1, 2):
            f = pick(torch, model=model, threads=threads, implementation="fometa", kernels="numba")
            n = pick(torch, model=model, threads=threads, implementation="fometa", kernels="numpy")
            t = pick(torch, model=model, threads=threads, implementation="pytorch")
            if f and t:
                name = "Omniglot 5-way" if model == "omniglot" else "Mini-ImageNet 5-way"
                out.append(f"| {name}, {threads} thread{'s' if threads > 1 else ''} | {f['median_ms']:,.1f} ms | "
                           f"{n['median_ms']:,.1f} ms | {t['median_ms']:,.1f} ms | "
                           f"**{f['median_ms'] / t['median_ms']:.2f}** |" if n else "")
    return out


def profile_table(profile) -> list[str]:
    models = [m for m in ("omniglot", "omniglot-20way", "miniimagenet") if pick(profile, model=m, kernels="numba")]
    if not models:
        return []
    names = {"omniglot": "Omniglot 5-way", "omniglot-20way": "Omniglot 20-way", "miniimagenet": "Mini-ImageNet 5-way"}
    rows = {m: pick(profile, model=m, kernels="numba") for m in models}
    parts = []
    for m in models:
        parts += [k for k in rows[m]["parts_ms"] if k not in parts]
    out = ["| ms a meta-iteration, 1 thread | " + " | ".join(names[m] for m in models) + " |",
           "|---|" + "---|" * len(models)]
    for part in parts:
        cells = []
        for m in models:
            v = rows[m]["parts_ms"].get(part)
            cells.append("-" if v is None else f"{v:,.1f} ({100 * v / rows[m]['mean_ms']:.0f}%)")
        out.append(f"| {part} | " + " | ".join(cells) + " |")
    out.append("| total | " + " | ".join(f"{rows[m]['mean_ms']:,.1f}" for m in models) + " |")
    return out


def memory_table(memory, previous) -> list[str]:
    out = ["| peak memory of a Mini-ImageNet meta-iteration | this release | previous release | ratio |",
           "|---|---|---|---|"]
    for threads in (1, 2):
        new = pick(memory, threads=threads)
        old = pick([r for r in previous if "peak_mb" in r], threads=threads)
        if new and old:
            out.append(f"| {threads} thread{'s' if threads > 1 else ''} | {new['peak_mb']:.1f} MB | "
                       f"{old['peak_mb']:.1f} MB | {new['peak_mb'] / old['peak_mb']:.2f} |")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    args = ap.parse_args(argv)
    f = args.folder
    meta, evals, previous = read(f, "meta.jsonl"), read(f, "eval.jsonl"), read(f, "previous.jsonl")
    peak = [r for r in read(f, "sgemm.jsonl") if r.get("what") == "peak"]
    for i, r in enumerate(previous):  # the previous release's rows name no suite: infer it
        r.setdefault("suite", "meta" if "iterations_per_s" in r else "eval" if "tasks_per_s" in r else "memory")
        previous[i] = r
    rates = sorted({round(r["sgemm_gflops"], 1) for r in meta if r.get("sgemm_gflops")})
    print(f"sgemm (2048 x 2048, float32) in this run: {', '.join(map(str, rates))} GFLOP/s"
          + (f"; one core, tools/bench_sgemm.py: {peak[0]['gflops']:.1f}" if peak else ""))
    for table in (limit_table(meta, previous), conv_table(meta), eval_table(evals, previous),
                  torch_table(read(f, "torch.jsonl")), memory_table(read(f, "memory.jsonl"), previous),
                  profile_table(read(f, "profile.jsonl"))):
        print()
        print("\n".join(line for line in table if line))


if __name__ == "__main__":
    main()
