"""``fometa predict RUN --support DIR --query PATH...``: a trained model on a brand-new task.

``RUN`` is a run folder, a checkpoint file or a shipped model's name (``fometa models``). ``DIR``
holds one sub-folder per class, named as the class, with that class's labelled images (at most
as many classes as the model has outputs); each query ``PATH`` is an image file or a folder of
them. The model is fine-tuned on the support images from its meta-learned initialization with
the run's evaluation settings, then labels every query: one JSON line per query, in the order
given, ``{"file": ..., "class": ..., "probabilities": {class: p, ...}}``. Everything is
:class:`fometa.FewShotClassifier` (``RUN``, ``--eval-inner-iters``, ``--eval-mode``, ``--eval-seed`` and
``--backend`` are its parameters ``model``, ``steps``, ``mode``, ``seed`` and ``backend``). Images unlike
those the model was trained on (a colour photograph for a model of black-and-white drawings,
:mod:`fometa.data.familiar`) are still labelled, with a warning line on stderr naming them::

    fometa predict omniglot-5way --support my_task/support --query my_task/query
"""
from __future__ import annotations

import json
import sys
import warnings

from fometa import checkpoint, pretrained
from fometa.backends import BackendError
from fometa.commands.options import (
    CLIError,
    add_moved_flag,
    add_setting_arguments,
    add_threads_argument,
    check_backend,
    overrides_from_args,
    typed_flag,
)
from fometa.data import DataError
from fometa.data.familiar import UnfamiliarImageWarning
from fometa.fewshot import FewShotClassifier, list_images, read_support_folder

#: the run's settings this command may override
SETTINGS = ("eval.mode", "eval.inner_iters", "backend")


def add_arguments(p):
    p.add_argument("run", metavar="RUN",
                   help="a run folder, a checkpoint file or a shipped model's name (fometa models)")
    p.add_argument("--support", required=True, metavar="DIR",
                   help="the labelled examples: one sub-folder of images per class, named as the class")
    p.add_argument("--query", required=True, nargs="+", metavar="PATH", help="images to label, or folders of them")
    p.add_argument("--eval-seed", type=int, default=0, metavar="SEED",
                   help="seed of the fine-tuning's mini-batches (default 0)")
    add_moved_flag(p, "--seed", "is a run's own seed; the fine-tuning's is --eval-seed")
    add_threads_argument(p)
    add_setting_arguments(p.add_argument_group("settings (override the run's)"), SETTINGS, "the run's",
                          notes={"eval.mode": "per-query: no query affects another's label"})


def run(args) -> int:
    given = overrides_from_args(args, SETTINGS)
    steps, mode, backend = given.get("eval.inner_iters"), given.get("eval.mode", "per-query"), given.get("backend")
    if steps is not None and steps < 0:
        raise CLIError(f"{typed_flag(args, 'eval.inner_iters')} must be non-negative, got {steps}")
    try:
        check_backend(backend)
        clf = FewShotClassifier(args.run, steps=steps, mode=mode, seed=args.eval_seed, backend=backend).load()
        files, labels = read_support_folder(args.support)
        queries = [q for path in args.query for q in list_images(path)]
        if len(set(labels)) > clf.ways:
            raise CLIError(f"{args.support}: {len(set(labels))} classes, but {args.run} has {clf.ways} outputs: "
                           f"at most {clf.ways} classes")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnfamiliarImageWarning)
            probabilities = clf.fit(files, labels).predict_proba(queries)
    except (ValueError, DataError, checkpoint.CheckpointError, pretrained.RegistryError, BackendError) as exc:
        raise CLIError(str(exc)) from None
    for w in caught:  # images unlike the model's: a line each on stderr; other warnings as Python shows them
        if isinstance(w.message, UnfamiliarImageWarning):
            print(f"fometa predict: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    names = [str(c) for c in clf.classes_]
    for path, p in zip(queries, probabilities, strict=True):
        print(json.dumps({"file": str(path), "class": names[int(p.argmax())],
                          "probabilities": {c: float(v) for c, v in zip(names, p, strict=True)}}), flush=True)
    return 0
