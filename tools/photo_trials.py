#!/usr/bin/env python
"""How often a model labels new photographs right, tried as a user tries it: ``python tools/photo_trials.py SOURCE``.

Usage: python tools/photo_trials.py SOURCE [--model miniimagenet-5way] [--split test] [--trials 200]
                                   [--shots 1] [--queries 3] [--mode per-query] [--seed 0]

``SOURCE`` is Mini-ImageNet's archive (``miniimagenet.tar.gz``, its images under ``<root>/<split>/<class>/``)
or a folder of class folders of images (``SOURCE/<split>/<class>/`` when it holds a ``<split>`` folder, else
``SOURCE/<class>/``). Each trial draws as many classes as the model has outputs, ``--shots`` images of each as
the support set and ``--queries`` others of each as queries, fine-tunes :class:`fometa.FewShotClassifier` on
the support images (the model's evaluation settings, as ``fometa predict`` does: the image files decoded and
prepared by the model's ``ImageSpec``) and labels the queries. Prints one JSON line: the queries labelled right
of all, the mean accuracy over the trials with the half-width of its 95% interval, chance, and how many images
the model found unlike its training images (``fometa.data.familiar``), for example::

    python tools/photo_trials.py miniimagenet.tar.gz --model miniimagenet-5way --trials 200

Trial ``t`` draws from ``numpy.random.default_rng([seed, t])``, so the first trials are the same for any
``--trials``. Bad input (no such source, too few classes or images) stops with one line naming the problem.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


class TrialError(Exception):
    """Input the trials cannot run on; the message names the problem."""


def read_classes(source, split: str = "test") -> dict[str, list[tuple[str, bytes]]]:
    """``{class: [(file name, bytes), ...]}`` of ``split``'s images in ``source`` (an archive or a folder), sorted."""
    source = Path(source)
    classes: dict[str, list[tuple[str, bytes]]] = {}
    if source.is_dir():
        root = source / split if (source / split).is_dir() else source
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if files:
                classes[folder.name] = [(f.name, f.read_bytes()) for f in files]
    elif source.is_file():
        try:
            with tarfile.open(source, "r:*") as tar:
                for member in tar:
                    parts = Path(member.name).parts
                    if (member.isfile() and len(parts) >= 3 and parts[-3] == split
                            and Path(parts[-1]).suffix.lower() in IMAGE_SUFFIXES):
                        data = tar.extractfile(member)
                        if data is not None:
                            classes.setdefault(parts[-2], []).append((parts[-1], data.read()))
        except (tarfile.TarError, OSError, EOFError) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0].rstrip(":")
            raise TrialError(f"{source}: not a readable tar archive ({reason})") from None
        classes = {c: sorted(files) for c, files in sorted(classes.items())}
    else:
        raise TrialError(f"{source}: no such archive or folder")
    if not classes:
        raise TrialError(f"{source}: no images of split {split!r} (expected <{split}>/<class>/<image> inside)")
    return classes


def run_trials(classifier, classes: dict, trials: int, shots: int, queries: int, seed: int = 0) -> dict:
    """Fit ``classifier`` (a :class:`fometa.FewShotClassifier`) on ``trials`` drawn tasks of ``classes`` and label
    their queries; the summary as :func:`main` prints it (without the timing)."""
    from PIL import Image

    from fometa.data.familiar import UnfamiliarImageWarning
    from fometa.evaluate import mean_ci95

    ways = classifier.ways
    names = sorted(classes)
    if len(names) < ways:
        raise TrialError(f"{len(names)} classes, but a {ways}-way task needs {ways}")
    short = [c for c in names if len(classes[c]) < shots + queries]
    if short:
        raise TrialError(f"{len(short)} classes have fewer than {shots + queries} images (--shots + --queries), "
                         f"e.g. {short[0]!r} with {len(classes[short[0]])}")
    right, unlike = [], 0
    for t in range(trials):
        rng = np.random.default_rng([seed, t])
        picked = [names[i] for i in rng.choice(len(names), ways, replace=False)]
        support, support_y, query, query_y = [], [], [], []
        for name in picked:
            files = classes[name]
            for k, i in enumerate(rng.choice(len(files), shots + queries, replace=False)):
                image = Image.open(io.BytesIO(files[i][1]))
                (support if k < shots else query).append(image)
                (support_y if k < shots else query_y).append(name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnfamiliarImageWarning)
            predicted = classifier.fit(support, support_y).predict(query)
        unlike += sum(issubclass(w.category, UnfamiliarImageWarning) for w in caught)
        right.append(int(np.sum(predicted == np.asarray(query_y))))
    accuracy, half = mean_ci95(np.asarray(right, dtype=np.float64) / (ways * queries))
    return {"right": int(sum(right)), "queries": trials * ways * queries, "accuracy": accuracy,
            "ci95": half, "chance": 1.0 / ways, "trials": trials, "ways": ways, "shots": shots,
            "queries_per_class": queries, "unfamiliar_warnings": unlike}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", help="miniimagenet.tar.gz, or a folder of class folders of images")
    ap.add_argument("--model", default="miniimagenet-5way", help="a shipped model, a run folder or a checkpoint")
    ap.add_argument("--split", default="test", help="the split's folder name inside SOURCE (default test)")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--shots", type=int, default=1, help="support images a class")
    ap.add_argument("--queries", type=int, default=3, help="query images a class")
    ap.add_argument("--mode", default="per-query", help="batch-norm mode of the predictions (fometa predict's)")
    ap.add_argument("--seed", type=int, default=0, help="the draw of the trials")
    args = ap.parse_args(argv)
    for name in ("trials", "shots", "queries"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    from fometa import FewShotClassifier

    start = time.perf_counter()
    try:
        classes = read_classes(args.source, args.split)
        classifier = FewShotClassifier(args.model, mode=args.mode).load()
        summary = run_trials(classifier, classes, args.trials, args.shots, args.queries, args.seed)
    except TrialError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a model that does not load, a bad --mode: fometa's own one-line messages
        if type(exc).__module__.startswith("fometa") or isinstance(exc, ValueError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
    print(json.dumps({"model": str(args.model), "split": args.split, **summary, "mode": args.mode, "seed": args.seed,
                      "seconds": round(time.perf_counter() - start, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
