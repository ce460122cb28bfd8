"""The README's Results table, written from the committed run folders under ``docs/results/``.

Usage: python tools/results_table.py [docs/results] [--runs NAME ...]

Each run folder holds ``config.json``, ``log.jsonl`` and eval JSON lines (``eval-*.jsonl``, one
object per batch-norm mode, as ``fometa eval`` prints them). One table row per (run, shots) is
printed as Markdown: the setting, the meta-iterations trained, transductive and per-query
accuracy with the half-width of the 95% interval, the test tasks, the training wall time (the
log's last ``seconds``: all sessions of the run, resumes included) and the evaluation's, and the
paper's numbers (arXiv 1803.02999 v3, Reptile / Reptile + transduction) for that setting. So
every number in the table is read from a committed file, never typed by hand.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: (dataset, ways, shots) -> (Reptile, Reptile + transduction), % test accuracy, the paper's v3 tables
PAPER = {
    ("omniglot", 5, 1): (95.39, 97.68),
    ("omniglot", 5, 5): (98.90, 99.48),
    ("omniglot", 20, 1): (88.14, 89.43),
    ("omniglot", 20, 5): (96.65, 97.12),
    ("miniimagenet", 5, 1): (47.07, 49.97),
    ("miniimagenet", 5, 5): (62.74, 65.99),
}
#: the paper's meta-iterations per setting (dataset, ways)
PAPER_ITERS = {("omniglot", 5): 100_000, ("omniglot", 20): 200_000, ("miniimagenet", 5): 100_000}
HEADER = ("| setting | meta-iterations (paper's) | transductive | per-query | test tasks | training wall time "
          "| evaluation wall time | paper: Reptile / + transduction | run |\n"
          "|---|---|---|---|---|---|---|---|---|")


class ResultsError(ValueError):
    """A run folder that cannot be read into a row; the message names the file."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot read: {exc}") from None


def _read_lines(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: cannot read JSON lines: {exc}") from None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def rows(run: Path) -> list[str]:
    """The table rows of one run folder: one per eval file (shots), both modes side by side."""
    cfg = _read_json(run / "config.json")
    log = _read_lines(run / "log.jsonl")
    if not log:
        raise ResultsError(f"{run / 'log.jsonl'}: empty")
    kind, ways = cfg["data"]["kind"], cfg["model"]["ways"]
    name = {"omniglot": "Omniglot", "miniimagenet": "Mini-ImageNet"}.get(kind, kind)
    out = []
    for path in sorted(run.glob("eval-*.jsonl")):
        by_mode = {}
        for rec in _read_lines(path):
            by_mode[rec["mode"]] = rec
        if not by_mode:
            raise ResultsError(f"{path}: no evaluation records")
        first = next(iter(by_mode.values()))
        shots, tasks = first["shots"], first["tasks"]
        if any(r["shots"] != shots or r["tasks"] != tasks for r in by_mode.values()):
            raise ResultsError(f"{path}: its records differ in shots or tasks")

        def cell(mode, by_mode=by_mode):
            r = by_mode.get(mode)
            return "" if r is None else f"{100 * r['accuracy']:.2f} ± {100 * r['ci95']:.2f}%"

        paper = PAPER.get((kind, ways, shots))
        paper_cell = f"{paper[0]:.2f}% / {paper[1]:.2f}%" if paper else ""
        paper_iters = PAPER_ITERS.get((kind, ways))
        iters = f"{first['iteration']:,}" + (f" ({paper_iters:,})" if paper_iters else "")
        out.append(f"| {name} {ways}-way {shots}-shot | {iters} | {cell('transductive')} | {cell('per-query')} "
                   f"| {tasks:,} | {_duration(log[-1]['seconds'])} | {_duration(first['seconds'])} "
                   f"| {paper_cell} | `{run.name}` |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="docs/results", help="folder of run folders")
    ap.add_argument("--runs", nargs="+", metavar="NAME", help="these run folders, in this order (default: all)")
    args = ap.parse_args(argv)
    root = Path(args.root)
    if args.runs:
        runs = [root / n for n in args.runs]
    else:
        runs = sorted(p for p in root.iterdir() if (p / "config.json").exists())
    try:
        lines = [row for run in runs for row in rows(run)]
    except (ResultsError, KeyError) as exc:
        print(f"results_table: error: {exc}", file=sys.stderr)
        return 2
    print(HEADER)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
