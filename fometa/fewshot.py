"""A trained run on a brand-new task, as a scikit-learn classifier: :class:`FewShotClassifier`.

::

    clf = FewShotClassifier("omniglot-5way")                       # or "runs/mydata", or a checkpoint file
    clf.fit(["support/a/1.png", "support/b/1.png"], ["a", "b"])   # file paths, PIL images or arrays
    clf.predict(["query.png"])                                     # array(['b'])
    clf.predict_proba(["query.png"])                               # (1, 2), columns in classes_ order

Fitting is the run's evaluation (:mod:`fometa.evaluate`) on one task whose support set is the
given examples: every image is made into an input by the run's recorded preprocessing
(:meth:`~FewShotClassifier.transform`, the run's :class:`~fometa.data.ImageSpec`); from the
meta-learned initialization ``phi`` and a copy of the meta-learned inner optimizer state, ``steps``
inner steps (the run's ``eval.inner_iters`` by default) on mini-batches of ``eval.inner_batch``
support examples (all of them when there are fewer), drawn as evaluation draws them
(:func:`fometa.tasks.mini_batches`) from a generator seeded with ``seed``. The queries are then
predicted in batch-norm ``mode``: ``"per-query"`` (default: support set plus one query per pass, so
that no query affects another's prediction), ``"transductive"`` (all queries in one batch, the
paper's "Reptile + Transduction") or ``"support-stats"``.

With ``n`` classes for a model of ``ways`` outputs (``n <= ways``), class ``classes_[i]`` is the
network's output ``i``; only the first ``n`` outputs count and the probabilities are their softmax.
:meth:`~FewShotClassifier.staged_predict_proba` records one adaptation along the way (the
probabilities after 0, 1, 5, 50 steps); ``fometa predict`` (:mod:`fometa.commands.predict`) is this
class on folders.

scikit-learn's contract, without scikit-learn as a dependency: the constructor only stores its
parameters, :meth:`~FewShotClassifier.fit` loads the model (once per ``model``) and adapts;
``get_params``/``set_params`` and the estimator tags let ``clone``, ``Pipeline``,
``cross_val_score`` and ``GridSearchCV`` use it where scikit-learn is installed. ``X`` is a
collection of images (a list, or a stacked ``(N, H, W)`` / ``(N, H, W, C)`` array): scikit-learn's
checks for tabular estimators do not apply and its ``check_estimator`` skips them, saying so.

A fitted classifier pickles (``pickle``, ``joblib``): the adapted weights, the classes and the
support set's network inputs travel (per-query and support-stats predictions normalize each query's
batch together with the support set), the backend and the checkpoint do not. Loaded elsewhere, it
predicts the same probabilities, bit for bit, without the support images and without the checkpoint
file; only :meth:`~FewShotClassifier.staged_predict_proba` reads the checkpoint again, to replay the
adaptation from ``phi``.

Images unlike those the model was trained on (a colour photograph for a model of black-and-white
drawings: :mod:`fometa.data.familiar`) are fitted and predicted all the same, with an
:class:`~fometa.data.familiar.UnfamiliarImageWarning` naming them.
"""
from __future__ import annotations

import functools
import inspect
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fometa import build, optim, pretrained, tree
from fometa import config as C
from fometa.backends import get_backend
from fometa.data import DataError, ImageSpec, familiar
from fometa.evaluate import predict as predict_logits
from fometa.evaluate import support_steps
from fometa.inner import adapt
from fometa.models.sequential import Sequential
from fometa.tasks import mini_batches

__all__ = ["FewShotClassifier", "NotFittedError", "read_support_folder", "list_images", "STAGES", "DEFAULT_MODEL"]

#: the inner steps after which :meth:`FewShotClassifier.staged_predict_proba` reports by default
STAGES = (0, 1, 5, 50)
#: the model of ``FewShotClassifier()``
DEFAULT_MODEL = "omniglot-5way"
#: what ``X`` may be, for error messages
_IMAGES = "a list of image files, bytes, PIL images or arrays, or one stacked (N, H, W) or (N, H, W, C) array"


class NotFittedError(ValueError, AttributeError):
    """``predict`` before ``fit`` (a ``ValueError`` and an ``AttributeError``, as scikit-learn's; where
    scikit-learn is in use, the error raised is also its ``sklearn.exceptions.NotFittedError``)."""


@functools.cache
def _not_fitted_class(sklearn_error: type) -> type:
    return type("NotFittedError", (NotFittedError, sklearn_error),
                {"__module__": __name__, "__doc__": NotFittedError.__doc__})


def _not_fitted(message: str) -> NotFittedError:
    """A :class:`NotFittedError`, and scikit-learn's too where scikit-learn is imported (never importing it)."""
    sklearn = sys.modules.get("sklearn.exceptions")
    return NotFittedError(message) if sklearn is None else _not_fitted_class(sklearn.NotFittedError)(message)


@dataclass(frozen=True)
class _Run:
    """A run as the classifier uses it: its recorded configuration and iteration, what
    :func:`fometa.build.image_classifier` makes of them, and, when read from the checkpoint, the
    meta-learned initialization and inner optimizer state (host arrays; ``None`` after unpickling)."""

    config: dict
    iteration: int
    settings: C.RunConfig
    spec: ImageSpec
    network: Sequential
    inner_opt: Any
    init: tuple | None

    @classmethod
    def make(cls, where: str, config: dict, iteration: int, init=None) -> _Run:
        settings = C.from_dict(config)
        try:
            spec, network, inner_opt = build.image_classifier(settings, None if init is None else init[0])
        except C.ConfigError as exc:
            raise ValueError(f"{where}: {exc}") from None
        return cls(config, int(iteration), settings, spec, network, inner_opt, init)


class FewShotClassifier:
    """A meta-learned initialization fine-tuned on a few labelled examples (see the module docstring).

    Parameters (stored unchanged; :meth:`fit` checks and uses them):

    * ``model``: a shipped model's name (``fometa models``), a run folder (its latest usable
      checkpoint) or a checkpoint file, as ``fometa predict RUN`` takes it; a
      :class:`~pathlib.Path` is a folder or file only, never a name;
    * ``steps``: inner steps of :meth:`fit` (``None``: the run's ``eval.inner_iters``);
    * ``mode``: batch-norm mode of the predictions (``"per-query"``, ``"transductive"``,
      ``"support-stats"``);
    * ``seed``: seed of the fine-tuning's mini-batch draws;
    * ``backend``: where to compute, ``"numpy"``, ``"cupy"`` or ``"cupy:N"`` (``None``: the run's).

    After :meth:`fit`: ``classes_`` (the sorted labels), ``n_classes_`` and ``params_`` (the adapted
    weights, with a leading task axis of 1).
    """

    # scikit-learn before 1.6 reads this and _more_tags; 1.6 and later read __sklearn_tags__
    _estimator_type = "classifier"

    def __init__(self, model=DEFAULT_MODEL, *, steps: int | None = None, mode: str = "per-query", seed: int = 0,
                 backend: str | None = None):
        self.model = model
        self.steps = steps
        self.mode = mode
        self.seed = seed
        self.backend = backend

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, path, **options) -> FewShotClassifier:
        """The classifier of a run folder's latest usable checkpoint, or of a checkpoint file
        (``options``: the other parameters), loaded at once; raises
        :class:`fometa.checkpoint.CheckpointError`."""
        return cls(Path(path), **options).load()

    @classmethod
    def from_pretrained(cls, name: str, **options) -> FewShotClassifier:
        """The classifier of a shipped model (``fometa models`` lists them; the file's SHA-256 is
        checked), loaded at once; raises :class:`fometa.pretrained.RegistryError`."""
        pretrained.get(name)
        return cls(name, **options).load()

    def load(self) -> FewShotClassifier:
        """Check the parameters and read the model now rather than at the first :meth:`fit` (a run
        folder whose latest checkpoint is unusable gives its previous one, with a warning saying
        so); returns ``self``."""
        self._check_params()
        self._loaded()
        return self

    # -- the scikit-learn interface --------------------------------------------------------------
    @property
    def spec(self) -> ImageSpec:
        """The model's input preprocessing (:class:`~fometa.data.ImageSpec`; reads the model if need be)."""
        return self._current().spec

    @property
    def network(self):
        """The model's network (:class:`~fometa.models.Sequential`; reads the model if need be)."""
        return self._current().network

    @property
    def ways(self) -> int:
        """The network's outputs: the most classes a task may have (reads the model if need be)."""
        return int(self.network.output_shape[-1])

    def transform(self, X) -> np.ndarray:
        """float32 ``(N, *spec.shape)``: the inputs the network sees (the run's preprocessing of each
        image of ``X``, a list of paths, bytes, PIL images or arrays, or one stacked array). Raises
        :class:`~fometa.data.DataError` naming an unreadable image."""
        return _inputs(self._current().spec, X, self.model)

    def fit(self, X, y) -> FewShotClassifier:
        """Fine-tune on the support set: images ``X`` with labels ``y`` (any sortable values, at least 2
        and at most :attr:`ways` distinct ones); returns ``self``."""
        self._check_params()
        run = self._loaded()
        x = _inputs(run.spec, X, self.model)
        labels = _labels(y, len(x))
        classes, codes = np.unique(labels, return_inverse=True)
        ways = int(run.network.output_shape[-1])
        if len(classes) < 2:
            raise ValueError(f"a task needs at least 2 classes, got {len(classes)}")
        if len(classes) > ways:
            raise ValueError(f"{len(classes)} classes, but the model has {ways} outputs: at most {ways} classes "
                             "per task")
        support = (x, codes.astype(np.int64))
        ((_, params),) = _adaptation(run, support, (self._steps(run),), self.seed, self._backend(run))
        self._run, self._support = run, support
        self.classes_, self.n_classes_, self.params_ = classes, len(classes), params
        return self

    def predict_proba(self, X) -> np.ndarray:
        """float64 ``(N, n_classes_)``: each image's class probabilities, columns in ``classes_`` order."""
        run = self._fitted()
        return self._proba(run, self.params_, self.transform(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each image, ``(N,)`` of ``classes_`` values."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy of :meth:`predict` on images ``X`` against labels ``y`` (weighted by
        ``sample_weight``), as scikit-learn's classifiers score."""
        predicted = self.predict(X)
        return float(np.average(predicted == _labels(y, len(predicted)), weights=sample_weight))

    def staged_predict_proba(self, X, steps=STAGES) -> dict:
        """``{k: predict_proba after k inner steps}`` for each ``k`` in ``steps``, from one adaptation on
        the fitted support set recorded along the way (step 0: the initialization itself). The
        mini-batches are those of :meth:`fit`, so the entry for ``self.steps`` equals
        :meth:`predict_proba`. After unpickling, the model is read again for ``phi``."""
        run = self._fitted()
        wanted = sorted({int(k) for k in steps})
        if not wanted or wanted[0] < 0:
            raise ValueError(f"steps must be non-negative step counts, got {steps!r}")
        q = self.transform(X)
        if run.init is None:
            run = self._reloaded(run)
        stages = _adaptation(run, self._support, wanted, self.seed, self._backend(run))
        return {k: self._proba(run, params, q) for k, params in stages}

    # -- parameters and tags (scikit-learn's protocol) --------------------------------------------
    @classmethod
    def _get_param_names(cls) -> list[str]:
        return sorted(p.name for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self")

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's parameters, ``{name: value}`` (no sub-estimators: ``deep`` changes nothing)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params) -> FewShotClassifier:
        """Set constructor parameters (checked at the next :meth:`fit`); returns ``self``. An unknown
        name raises ``ValueError``, as scikit-learn's estimators do."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator {self}. Valid parameters are: {valid!r}.")
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        """scikit-learn's tags (read by scikit-learn 1.6 and later, which this imports): a classifier
        that needs ``y`` and takes images, not a 2-D array of features."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(multi_class=True, multi_label=False),
                    input_tags=InputTags(two_d_array=False, three_d_array=True, string=True))

    def _more_tags(self) -> dict:
        # the tags of scikit-learn before 1.6: the same, as that version spelled them
        return {"requires_y": True, "X_types": ["3darray", "string"], "multilabel": False}

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "params_")

    def __repr__(self) -> str:
        defaults = {name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()}
        shown = [f"{name}={getattr(self, name)!r}" for name in ("model", "steps", "mode", "seed", "backend")
                 if name == "model" or getattr(self, name) != defaults[name]]
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- pickling: the adapted weights and the fitted state, not the backend or the checkpoint ------
    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_cache", "_run")}
        if "params_" in state:
            state["params_"] = tree.to_host(self.params_)
            state["_run"] = {"config": self._run.config, "iteration": self._run.iteration}
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        run = state.pop("_run", None)
        self.__dict__.update(state)
        if run is not None:
            self._run = _Run.make(str(self.model), run["config"], run["iteration"])

    # -- the one loading, adaptation and prediction --------------------------------------------------
    def _check_params(self) -> None:
        if not isinstance(self.model, (str, os.PathLike)):
            raise TypeError(f"model must be a shipped model's name, a run folder or a checkpoint file, "
                            f"got {self.model!r}")
        steps = self.steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0):
            raise ValueError(f"steps must be a non-negative int or None, got {steps!r}")
        if self.mode not in C.EVAL_MODES:
            raise ValueError(f"mode must be one of {', '.join(C.EVAL_MODES)}, got {self.mode!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        if self.backend is not None and not isinstance(self.backend, str):
            raise ValueError(f"backend must be None, 'numpy', 'cupy' or 'cupy:N', got {self.backend!r}")

    def _loaded(self) -> _Run:
        """The run of ``self.model``, read once per value of ``model``."""
        cache = self.__dict__.get("_cache")
        if cache is not None and type(cache[0]) is type(self.model) and cache[0] == self.model:
            return cache[1]
        ckpt, _, note = pretrained.load_run(self.model, names=not isinstance(self.model, os.PathLike))
        if note:
            warnings.warn(f"{self.model}: {note}", UserWarning, stacklevel=3)
        run = _Run.make(str(self.model), ckpt.config, ckpt.iteration, (ckpt.params, ckpt.inner_state))
        self._cache = (self.model, run)
        return run

    def _reloaded(self, fitted: _Run) -> _Run:
        """The run of ``self.model`` with its initialization, which must be the one ``fitted`` came from."""
        run = self._loaded()
        if (run.config, run.iteration) != (fitted.config, fitted.iteration):
            raise ValueError(f"{self.model}: not the model this classifier was fitted with (meta-iteration "
                             f"{run.iteration}, fitted at {fitted.iteration}): fit it again")
        return run

    def _current(self) -> _Run:
        """The fitted run, else the run of ``self.model``."""
        return self.__dict__.get("_run") or self._loaded()

    def _fitted(self) -> _Run:
        if not hasattr(self, "params_"):
            raise _not_fitted("this FewShotClassifier is not fitted yet: call fit(images, labels) first")
        self._check_params()
        return self._run

    def _steps(self, run: _Run) -> int:
        return run.settings.eval.inner_iters if self.steps is None else int(self.steps)

    def _backend(self, run: _Run):
        return get_backend(self.backend if self.backend is not None else run.settings.backend)

    def _proba(self, run: _Run, params, q) -> np.ndarray:
        be = self._backend(run)
        sx = be.asarray(self._support[0][None])
        logits = predict_logits(run.network, tree.to_backend(params, be), sx, be.asarray(q[None]), self.mode)
        z = np.asarray(be.to_host(logits[0]), dtype=np.float64)[:, : self.n_classes_]
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


def _adaptation(run: _Run, support, stops, seed: int, be):
    """``[(k, params after k steps), ...]`` for the ascending ``stops``: the evaluation's inner loop
    (:func:`fometa.inner.adapt` on :func:`fometa.evaluate.support_steps`) from the run's initialization
    on the support set ``(x, y)``, run in stretches."""
    x, y = support
    ev = run.settings.eval
    rng = np.random.default_rng(seed)
    idx = mini_batches(rng, len(y), min(ev.inner_batch, len(y)), max(stops), ev.replacement)
    steps = support_steps(be.asarray(x[None]), be.asarray(y[None]), be.asarray(idx[None]))
    assert run.init is not None  # read with the checkpoint (_loaded)
    phi, state = run.init
    params = tree.broadcast(tree.to_backend(phi, be), 1)
    state = optim.state_broadcast(tree.to_backend(state, be), 1)
    out, done = [], 0
    for k in stops:
        if k > done:
            params, state, _ = adapt(run.network, params, steps[done:k], run.inner_opt, state)
            done = k
        out.append((k, params))
    return out


def _labels(y, n: int) -> np.ndarray:
    """``y`` as a 1-D array of ``n`` labels; ``ValueError`` otherwise."""
    labels = np.asarray(y if isinstance(y, np.ndarray) or np.ndim(y) == 0 else list(y))
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"{n} images but {labels.size} labels: give one label per image")
    return labels


def _inputs(spec: ImageSpec, X, model) -> np.ndarray:
    """``spec.prepare(X)`` for a collection of images ``X``, refusing what scikit-learn could not mean
    by ``X``: one image rather than a collection (``ValueError``), a 2-D table of features
    (``ValueError``), a sparse matrix or a non-collection (``TypeError``), no images (``ValueError``);
    images unlike ``model``'s training images get an :class:`~fometa.data.familiar.UnfamiliarImageWarning`
    (pointing at the caller of ``fit`` or ``transform``)."""
    if hasattr(X, "tocsr"):
        raise TypeError(f"X is a sparse matrix; a FewShotClassifier takes images: {_IMAGES}")
    if isinstance(X, (str, bytes, os.PathLike)) or type(X).__module__.startswith("PIL."):
        raise ValueError(f"X is one image ({type(X).__name__}); give a collection of images, e.g. [X]")
    ndim = getattr(X, "ndim", None)
    if ndim == 2:
        raise ValueError(f"X is a 2-D array of shape {tuple(X.shape)}, one row of features per example; a "
                         f"FewShotClassifier takes images: reshape the rows to (N, H, W) first (a Pipeline step "
                         f"can), or give {_IMAGES}")
    if ndim is not None and ndim not in (1, 3, 4):
        raise ValueError(f"X has {ndim} dimensions; give {_IMAGES}")
    if ndim == 1 and getattr(getattr(X, "dtype", None), "kind", "O") in "biufc":
        raise ValueError(f"X is a 1-D array of numbers, not images; give {_IMAGES}")
    if ndim is None and (isinstance(X, (dict, set)) or not hasattr(X, "__len__") or not hasattr(X, "__getitem__")):
        raise TypeError(f"X is a {type(X).__name__}; give {_IMAGES}")
    if len(X) == 0:
        raise ValueError("X holds no images")
    # a 1-D array of paths or objects: one image each
    return familiar.prepare(spec, list(X) if ndim == 1 else X, str(model), stacklevel=3)


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

