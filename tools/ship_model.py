#!/usr/bin/env python
"""Add a finished run to the shipped models: ``python tools/ship_model.py RUN NAME --results DIR``.

Copies RUN's checkpoint (a run folder's latest, or a checkpoint file) into the registry as
``NAME.h5`` and writes NAME's entry in the registry's ``index.json`` (see
``fometa/pretrained/__init__.py``): the file's SHA-256 and size, the training budget (the
checkpoint's meta-iterations, and the training time of the run whose results DIR holds: the last
``seconds`` of ``DIR/log.jsonl``, the figure its results quote, else the checkpoint's), the
preprocessing, and the measured accuracies of every line of ``DIR/eval-*.jsonl`` (``fometa eval``
output; DIR defaults to RUN), for example::

    python tools/ship_model.py runs/o5w1s-100k omniglot-5way --results docs/results/o5w1s-100k \\
        --description "Omniglot 5-way, the paper's setting and budget"

Refused (exit status 1, ``error: ...``): a checkpoint short of its run's ``meta_iters``, evaluation
lines of another iteration, or a ``DIR/config.json`` that differs from the checkpoint's in what
is learned. ``--pending`` writes the entry from DIR alone (RUN is then the results folder; no
checkpoint yet): ``fometa models`` lists it as not shipped yet until the run is added.
``--registry`` names another registry folder (default: the package's ``fometa/pretrained``);
``--force`` replaces an entry whose checkpoint is already shipped.

Keep the model's 1-shot evaluation task by task in DIR too: ``DIR/eval-1shot.partial.json`` (``fometa eval NAME
--mode transductive,per-query --partial ...``) or ``DIR/eval-1shot-first100.json``. The tests hold every shipped
model to it, and replay its first tasks on the real data (``tests/commands/test_shipped_*.py``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from fometa import atomic, checkpoint, pretrained
from fometa import config as C
from fometa.runfolder import RunFolder


class ShipError(Exception):
    """The run cannot be shipped as asked; the message says why."""


def _jsonl(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise ShipError(f"{path}: not readable JSON lines: {exc}") from None


def accuracies(results: Path, iteration: int | None) -> list[dict]:
    """The accuracy records of ``results/eval-*.jsonl`` (all of ``iteration`` when given)."""
    out = []
    for path in sorted(results.glob("eval-*.jsonl")):
        for rec in _jsonl(path):
            if "accuracy" not in rec:
                continue
            if iteration is not None and rec.get("iteration") not in (None, iteration):
                raise ShipError(f"{path}: evaluates iteration {rec.get('iteration')}, but the checkpoint is at "
                                f"iteration {iteration}")
            out.append({k: rec[k] for k in ("split", "shots", "mode", "accuracy", "ci95", "tasks") if k in rec})
    return out


def _saved_config(results: Path) -> C.RunConfig | None:
    path = results / "config.json"
    if not path.is_file():
        return None
    try:
        return C.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise ShipError(f"{path}: not a readable run configuration: {exc}") from None


def entry(name: str, cfg: C.RunConfig, results: Path, iteration: int, seconds, description: str | None,
          accs: list[dict]) -> dict:
    """An index entry without its file's SHA-256 and size."""
    if cfg.data.kind == "sine":
        raise ShipError("a sine run is no image classifier; only classification runs are shipped")
    return {
        "file": f"{name}.h5", "sha256": None, "bytes": None,
        "description": description or f"{cfg.data.kind} {cfg.model.ways}-way, {cfg.outer.algorithm} ({cfg.preset})",
        "results": results.as_posix(), "preset": cfg.preset, "data": cfg.data.kind, "ways": cfg.model.ways,
        "meta_iterations": iteration, "seconds": None if seconds is None else round(float(seconds), 1),
        "accuracies": accs, "image_spec": C.input_spec(cfg.data).as_dict(),
    }


def ship(run, name: str, results=None, registry=None, description: str | None = None, pending: bool = False,
         force: bool = False) -> dict:
    """Add ``run`` as shipped model ``name`` (see the module docstring); returns its index entry."""
    registry = Path(registry) if registry is not None else pretrained.PACKAGE_REGISTRY
    if not name or Path(name).name != name or name.startswith("."):
        raise ShipError(f"{name!r} is not a usable model name (it names the file NAME.h5)")
    results = Path(results if results is not None else run)
    index = pretrained.read_index(registry)
    old = index["models"].get(name)
    if old is not None and old.get("sha256") and not force:
        raise ShipError(f"{name!r} is already shipped ({registry / old['file']}); --force replaces it")
    saved = _saved_config(results)
    if pending:
        if saved is None:
            raise ShipError(f"{results}: no config.json to describe the run by")
        log = RunFolder(results).read_log()
        new = entry(name, saved, results, saved.meta_iters, log[-1].get("seconds") if log else None, description,
                    accuracies(results, None))
    else:
        ckpt, source, note = pretrained.load_run(run, names=False)
        if note:
            raise ShipError(f"{run}: {note}; ship a run whose latest checkpoint is sound")
        cfg = C.from_dict(ckpt.config)
        if ckpt.iteration != cfg.meta_iters:
            raise ShipError(f"{source}: at meta-iteration {ckpt.iteration} of {cfg.meta_iters}: the run is not "
                            "finished")
        if saved is not None:
            differences = C.diff(saved, cfg, ignore=C.RESUME_FREE | {"data.image_spec"})
            if differences:
                raise ShipError(f"{results / 'config.json'} differs from the checkpoint's configuration: "
                                f"{'; '.join(f'{k}: {a!r} there, {b!r} in the checkpoint' for k, a, b in differences)}")
        log = RunFolder(results).read_log()  # the run's own record of its training time, where it has one
        seconds = log[-1].get("seconds") if log else ckpt.extra.get("seconds")
        new = entry(name, cfg, results, ckpt.iteration, seconds, description, accuracies(results, ckpt.iteration))
        registry.mkdir(parents=True, exist_ok=True)
        target = registry / new["file"]
        with atomic.atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        new["sha256"], new["bytes"] = pretrained.file_sha256(target), target.stat().st_size
    index["models"][name] = new
    registry.mkdir(parents=True, exist_ok=True)
    atomic.write_text(registry / pretrained.INDEX_FILE, json.dumps(index, indent=2) + "\n")
    return new


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", metavar="RUN", help="a finished run folder or checkpoint file (with --pending: the results)")
    p.add_argument("name", metavar="NAME", help="the model's name, e.g. omniglot-5way")
    p.add_argument("--results", metavar="DIR", default=None,
                   help="folder of the run's config.json, log.jsonl and eval-*.jsonl (default: RUN)")
    p.add_argument("--description", default=None, help="one line saying what the model is")
    p.add_argument("--registry", metavar="DIR", default=None, help="registry folder (default: fometa/pretrained)")
    p.add_argument("--pending", action="store_true", help="list NAME from its results before its checkpoint exists")
    p.add_argument("--force", action="store_true", help="replace an entry whose checkpoint is already shipped")
    args = p.parse_args(argv)
    try:
        new = ship(args.run, args.name, args.results, args.registry, args.description, args.pending, args.force)
    except (ShipError, C.ConfigError, checkpoint.CheckpointError, pretrained.RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"name": args.name, **new}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
