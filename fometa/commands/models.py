"""``fometa models``: the trained models shipped with fometa (:mod:`fometa.pretrained`).

For each: its name, whether it can be loaded here, what it is, its training budget
(meta-iterations, preset, wall time), its measured accuracies (test tasks, per batch-norm mode)
with the folder of results they come from, and its checkpoint file's size and SHA-256. ``--json``
prints one JSON object per model instead. Any name listed as available works as ``RUN`` in
``fometa eval``, ``fometa predict`` and as ``fometa.FewShotClassifier``'s ``model``.
"""
from __future__ import annotations

import json

from fometa import pretrained
from fometa.commands.options import CLIError


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="one JSON object per model")


def run(args) -> int:
    try:
        shipped = pretrained.models()
    except pretrained.RegistryError as exc:
        raise CLIError(str(exc)) from None
    for model in shipped:
        record = describe(model)
        print(json.dumps(record) if args.json else _text(record), flush=True)
    if not shipped and not args.json:
        print("no shipped models")
    return 0


def describe(model: pretrained.ShippedModel) -> dict:
    """What ``fometa models --json`` prints for ``model``."""
    e = model.entry
    keys = ("description", "preset", "data", "ways", "meta_iterations", "seconds", "results", "accuracies",
            "image_spec")
    return {"name": model.name, "status": model.status(), "file": str(model.path), "bytes": model.bytes,
            "sha256": model.sha256, **{k: e.get(k) for k in keys}}


def accuracy_lines(accuracies) -> list[str]:
    """One line per (split, shots) of an entry's measured accuracies, e.g. ``1-shot: 97.56% transductive,
    95.42% per-query (10,000 test tasks)``."""
    by_shots: dict = {}
    for a in accuracies or []:
        by_shots.setdefault((a.get("split", "test"), a.get("shots")), []).append(a)
    lines = []
    for (split, shots), rows in by_shots.items():
        modes = ", ".join(f"{100 * r['accuracy']:.2f}% {r['mode']}" for r in rows)
        tasks = sorted({r.get("tasks") for r in rows if r.get("tasks")})
        lines.append(f"{shots}-shot: {modes} ({'/'.join(f'{t:,}' for t in tasks)} {split} tasks)")
    return lines


def _text(r: dict) -> str:
    status = "" if r["status"] == "available" else f"  [{r['status']}]"
    lines = [f"{r['name']}{status}"]
    if r["description"]:
        lines.append(f"  {r['description']}")
    budget = f"{r['meta_iterations']:,} meta-iterations" if r.get("meta_iterations") is not None else "?"
    if r.get("preset"):
        budget += f" from preset {r['preset']}"
    if r.get("seconds"):
        budget += f", {r['seconds']:,.0f} s of training"
    lines.append(f"  trained: {budget}")
    for i, text in enumerate(accuracy_lines(r["accuracies"])):
        lines.append(f"  {'accuracy: ' if i == 0 else '          '}{text}")
    if r.get("results"):
        lines.append(f"  results: {r['results']}")
    if r["sha256"]:
        lines.append(f"  file: {r['file']} ({r['bytes'] / 2**20:.2f} MiB), sha256 {r['sha256']}")
    else:
        lines.append(f"  file: {r['file']} (not added yet)")
    return "\n".join(lines) + "\n"
