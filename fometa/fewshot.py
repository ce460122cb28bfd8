"""A trained run on a brand-new task, in the scikit-learn manner: :class:`FewShotClassifier`.

::

    clf = FewShotClassifier.from_pretrained("omniglot-5way")      # or .from_run("runs/mydata")
    clf.fit(["support/a/1.png", "support/b/1.png"], ["a", "b"])   # file paths, PIL images or arrays
    clf.predict(["query.png"])                                     # array(['b'])
    clf.predict_proba(["query.png"])                               # (1, 2), columns in classes_ order

Fitting is the run's evaluation (:mod:`fometa.evaluate`) on one task whose support set is the
given examples: every image is made into an input by the run's recorded preprocessing
(:meth:`transform`, the run's :class:`~fometa.data.ImageSpec`); from the meta-learned
initialization ``phi`` and a copy of the meta-learned inner optimizer state, ``steps`` inner steps
(the run's ``eval.inner_iters`` by default) on mini-batches of ``eval.inner_batch`` support
examples (all of them when there are fewer), drawn as evaluation draws them
(:func:`fometa.tasks.mini_batches`) from a generator seeded with ``seed``. The queries are then
predicted in batch-norm ``mode``: ``"per-query"`` (default: support set plus one query per pass, so
that no query affects another's prediction), ``"transductive"`` (all queries in one batch, the
paper's "Reptile + Transduction") or ``"support-stats"``.

With ``n`` classes for a model of ``ways`` outputs (``n <= ways``), class ``classes_[i]`` is the
network's output ``i``; only the first ``n`` outputs count and the probabilities are their softmax.
:meth:`staged_predict_proba` records one adaptation along the way (the probabilities after 0, 1,
5, 50 steps); ``fometa predict`` (:mod:`fometa.commands.predict`) is this class on folders.

Images unlike those the model was trained on (a colour photograph for a model of black-and-white
drawings: :mod:`fometa.data.familiar`) are fitted and predicted all the same, with an
:class:`~fometa.data.familiar.UnfamiliarImageWarning` naming them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fometa import build, optim, pretrained, tree
from fometa import config as C
from fometa.backends import get_backend
from fometa.data import DataError, familiar
from fometa.evaluate import predict as predict_logits
from fometa.evaluate import support_steps
from fometa.inner import adapt
from fometa.tasks import mini_batches

__all__ = ["FewShotClassifier", "NotFittedError", "read_support_folder", "list_images", "STAGES"]

#: the inner steps after which :meth:`FewShotClassifier.staged_predict_proba` reports by default
STAGES = (0, 1, 5, 50)


class NotFittedError(ValueError):
    """``predict`` before ``fit`` (a ``ValueError``, as scikit-learn's)."""


class FewShotClassifier:
    """A meta-learned initialization fine-tuned on a few labelled examples (see the module docstring).

    ``checkpoint``: a :class:`fometa.checkpoint.Checkpoint` of an image classification run (see
    :meth:`from_run` and :meth:`from_pretrained`); ``steps``: inner steps of :meth:`fit`
    (``None``: the run's ``eval.inner_iters``); ``mode``: batch-norm mode of the predictions;
    ``seed``: seed of the mini-batch draws; ``backend``: where to compute (``None``: the run's, else
    NumPy). After :meth:`fit`: ``classes_`` (sorted labels) and ``n_classes_``.
    """

    def __init__(self, checkpoint, *, steps: int | None = None, mode: str = "per-query", seed: int = 0,
                 backend=None, source: str = "checkpoint"):
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0):
            raise ValueError(f"steps must be a non-negative int or None, got {steps!r}")
        if mode not in C.EVAL_MODES:
            raise ValueError(f"mode must be one of {', '.join(C.EVAL_MODES)}, got {mode!r}")
        self.steps, self.mode, self.seed, self.source = steps, mode, int(seed), source
        self.config = C.from_dict(checkpoint.config)
        self.spec = C.input_spec(self.config.data)
        if self.spec is None:
            raise ValueError(f"{source}: a {self.config.data.kind} run is not an image classifier")
        self.iteration = checkpoint.iteration
        self.backend = get_backend(backend if backend is not None else self.config.backend)
        self.model = build.build_model(self.config.model, self.spec.shape)
        self.inner_opt = build.inner_optimizer(self.config.inner)
        self._init_params = tree.to_backend(checkpoint.params, self.backend)
        self._init_state = optim.state_to_backend(checkpoint.inner_state, self.backend)
        found = {k: tuple(np.shape(v)) for k, v in checkpoint.params.items()}
        if found != self.model.param_shapes():
            raise ValueError(f"{source}: its parameters do not fit its configuration's network {self.model.name}")

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, path, **options) -> "FewShotClassifier":
        """The classifier of a run folder's latest usable checkpoint, or of a checkpoint file
        (``options``: those of the constructor); raises :class:`fometa.checkpoint.CheckpointError`."""
        ckpt, where, _ = pretrained.load_run(path, names=False)
        return cls(ckpt, source=str(where), **options)

    @classmethod
    def from_pretrained(cls, name: str, **options) -> "FewShotClassifier":
        """The classifier of a shipped model (``fometa models`` lists them; the file's SHA-256 is
        checked); raises :class:`fometa.pretrained.RegistryError`."""
        return cls(pretrained.load(name), source=name, **options)

    # -- the scikit-learn interface --------------------------------------------------------------
    @property
    def ways(self) -> int:
        """The network's outputs: the most classes a task may have."""
        return int(self.model.output_shape[-1])

    def transform(self, images) -> np.ndarray:
        """float32 ``(N, *spec.shape)``: the inputs the network sees (the run's preprocessing of each
        image; a path, bytes, PIL image or array each, or one stacked array). Raises
        :class:`~fometa.data.DataError` naming an unreadable image, and warns
        (:class:`~fometa.data.familiar.UnfamiliarImageWarning`) about images unlike the model's training images."""
        return familiar.prepare(self.spec, images, self.source, stacklevel=3)

    def fit(self, images, labels) -> "FewShotClassifier":
        """Fine-tune on the support set ``images`` with ``labels`` (any sortable values, at least 2 and at
        most :attr:`ways` distinct ones); returns ``self``."""
        x = self.transform(images)
        labels = np.asarray(list(labels))
        if labels.ndim != 1 or len(labels) != len(x):
            raise ValueError(f"{len(x)} images but {labels.size} labels: give one label per image")
        classes, y = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"a task needs at least 2 classes, got {len(classes)}")
        if len(classes) > self.ways:
            raise ValueError(f"{len(classes)} classes, but the model has {self.ways} outputs: at most {self.ways} "
                             "classes per task")
        self.classes_, self.n_classes_ = classes, len(classes)
        self._support = (x, y.astype(np.int64))
        ((_, self.params_),) = self._adaptation((self._steps(),))
        return self

    def predict_proba(self, images) -> np.ndarray:
        """float64 ``(N, n_classes_)``: each image's class probabilities, columns in ``classes_`` order."""
        return self._proba(self._params(), self.transform(images))

    def predict(self, images) -> np.ndarray:
        """The most probable class of each image, ``(N,)`` of ``classes_`` values."""
        proba = self.predict_proba(images)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, images, labels) -> float:
        """Mean accuracy of :meth:`predict` on ``images`` against ``labels``."""
        return float(np.mean(self.predict(images) == np.asarray(list(labels))))

    def staged_predict_proba(self, images, steps=STAGES) -> dict:
        """``{k: predict_proba after k inner steps}`` for each ``k`` in ``steps``, from one adaptation on
        the fitted support set recorded along the way (step 0: the initialization itself). The
        mini-batches are those of :meth:`fit`, so the entry for ``self.steps`` equals
        :meth:`predict_proba`."""
        self._params()
        wanted = sorted({int(k) for k in steps})
        if not wanted or wanted[0] < 0:
            raise ValueError(f"steps must be non-negative step counts, got {steps!r}")
        q = self.transform(images)
        return {k: self._proba(params, q) for k, params in self._adaptation(wanted)}

    # -- the one adaptation and prediction --------------------------------------------------------
    def _steps(self) -> int:
        return self.config.eval.inner_iters if self.steps is None else int(self.steps)

    def _params(self):
        if not hasattr(self, "params_"):
            raise NotFittedError("this FewShotClassifier is not fitted yet: call fit(images, labels) first")
        return self.params_

    def _adaptation(self, stops):
        """``[(k, params after k steps), ...]`` for the ascending ``stops``: the evaluation's inner loop
        (:func:`fometa.inner.adapt` on :func:`fometa.evaluate.support_steps`) run in stretches."""
        x, y = self._support
        ev, be = self.config.eval, self.backend
        rng = np.random.default_rng(self.seed)
        idx = mini_batches(rng, len(y), min(ev.inner_batch, len(y)), max(stops), ev.replacement)
        steps = support_steps(be.asarray(x[None]), be.asarray(y[None]), be.asarray(idx[None]))
        params = tree.broadcast(self._init_params, 1)
        state = optim.state_broadcast(self._init_state, 1)
        out, done = [], 0
        for k in stops:
            if k > done:
                params, state, _ = adapt(self.model, params, steps[done:k], self.inner_opt, state)
                done = k
            out.append((k, params))
        return out

    def _proba(self, params, q) -> np.ndarray:
        be = self.backend
        sx = be.asarray(self._support[0][None])
        logits = predict_logits(self.model, params, sx, be.asarray(q[None]), self.mode)
        z = np.asarray(be.to_host(logits[0]), dtype=np.float64)[:, : self.n_classes_]
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def __repr__(self) -> str:
        steps = "" if self.steps is None else f", steps={self.steps}"
        return f"FewShotClassifier({self.source!r}, mode={self.mode!r}, seed={self.seed}{steps})"


# ------------------------------------------------------------------------------------------
# folders of images
# ------------------------------------------------------------------------------------------
def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def list_images(path) -> list[Path]:
    """The files of folder ``path`` (not hidden, sorted by name), or ``[path]`` for a file; raises
    :class:`~fometa.data.DataError` for a missing path or a folder without files."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if _visible(p) and p.is_file())
        if not files:
            raise DataError(path, "holds no images")
        return files
    if not path.exists():
        raise DataError(path, "no such file or folder")
    return [path]


def read_support_folder(path) -> tuple[list[Path], list[str]]:
    """``(image files, class names)`` of a support folder: one sub-folder per class, named as the class,
    holding its images (hidden files and folders are skipped).

    Raises :class:`~fometa.data.DataError` for a missing folder, one without class folders, a file
    beside the class folders, or a class folder without images.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(path, "no such folder" if not path.exists() else "is a file, not a folder of class folders")
    entries = sorted(p for p in path.iterdir() if _visible(p))
    stray = [p for p in entries if not p.is_dir()]
    if stray:
        raise DataError(stray[0], f"a support folder holds one sub-folder of images per class; this file is in none "
                                  f"(move it into a class folder of {path})")
    if not entries:
        raise DataError(path, "holds no class folders (one sub-folder of images per class)")
    files, labels = [], []
    for folder in entries:
        images = sorted(p for p in folder.iterdir() if _visible(p))
        if not images:
            raise DataError(folder, "holds no images: every class needs at least one")
        nested = [p for p in images if p.is_dir()]
        if nested:
            raise DataError(nested[0], "is a folder inside a class folder; a class folder holds images only")
        files += images
        labels += [folder.name] * len(images)
    return files, labels

