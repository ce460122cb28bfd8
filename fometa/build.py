"""From settings to objects: the one place a resolved :class:`~fometa.config.RunConfig` becomes
the network, the inner and outer optimizers, the meta-learner and the data (the meta-state, fresh or
a checkpoint's, is :meth:`fometa.meta.MetaLearner.init`'s).

Every network, optimizer and learner that a run, an evaluation, an experiment, the sine problem
or the classifier uses is made here (a test holds every other module to it). Everything
downstream (the training loop, evaluation, the commands, the Python API) takes the objects made
here and never reads the configuration again for what they hold.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fometa import config as C
from fometa import (
    data,  # h5py and Pillow load inside its functions
    meta,
    models,
    optim,
)

__all__ = ["build_model", "input_shape", "inner_optimizer", "outer_optimizer", "build_algorithm", "build_learner",
           "load_splits", "check_data", "image_classifier"]


#: each image network's paper input shape, filters and blocks
_PAPER_NETS: dict[str, tuple[tuple[int, ...], int, dict[str, Any]]] = {
    "omniglot_cnn": ((28, 28), 64, {"stride": 2}), "miniimagenet_cnn": ((84, 84, 3), 32, {"pool": True})}


def build_model(cfg: C.ModelConfig, input_shape: tuple[int, ...] | None = None):
    """The network of ``cfg`` with ``cfg.init``'s initializer, on examples of ``input_shape``
    (``(H, W)`` or ``(H, W, 3)``; ``None``: the paper's for the architecture).

    The paper's network exactly when nothing differs from it; otherwise the same family
    (:func:`fometa.models.conv_net`) with ``cfg.filters``, ``cfg.depth`` blocks and the input
    shape, named after what differs.
    """
    if cfg.arch == "sine_mlp":
        return models.sine_mlp(init=cfg.init)  # the sine preset: "torch", as the reference demo
    shape, paper_filters, family = _PAPER_NETS[cfg.arch]
    input_shape = shape if input_shape is None else tuple(input_shape)
    filters = paper_filters if cfg.filters is None else cfg.filters
    depth = 4 if cfg.depth is None else cfg.depth
    if (input_shape, filters, depth) == (shape, paper_filters, 4):
        make = models.omniglot_cnn if cfg.arch == "omniglot_cnn" else models.miniimagenet_cnn
        return make(cfg.ways, init=cfg.init)
    differs = [f"filters={cfg.filters}"] if filters != paper_filters else []
    differs += [f"depth={depth}"] if depth != 4 else []
    differs += [f"input={'x'.join(map(str, input_shape))}"] if input_shape != shape else []
    return models.conv_net(f"{cfg.arch}({cfg.ways}, {', '.join(differs)})", cfg.ways, input_shape, filters=filters,
                           blocks=depth, init=cfg.init, **family)


def input_shape(cfg: C.RunConfig) -> tuple[int, ...] | None:
    """The shape of one network input of ``cfg``'s data (``None`` for sine)."""
    spec = C.input_spec(cfg.data)
    return None if spec is None else spec.shape


def inner_optimizer(cfg: C.InnerConfig):
    """The inner loop's optimizer (training and evaluation use the same one)."""
    if cfg.optimizer == "sgd":
        return optim.SGD(cfg.lr)
    return optim.Adam(cfg.lr, cfg.beta1, cfg.beta2, cfg.eps)


def outer_optimizer(cfg: C.OuterConfig, meta_iters: int):
    """The outer step's optimizer: the paper's annealed interpolation, or Adam on the pseudo-gradient."""
    if cfg.optimizer == "adam":
        return meta.OuterAdam(cfg.adam_lr)
    return meta.Interpolate(cfg.meta_step, cfg.meta_step_final, meta_iters)


def build_algorithm(cfg: C.OuterConfig, weights: Sequence[float] | None = None):
    """The meta-algorithm ``cfg.algorithm`` (with ``cfg.tail_shots``), or with ``weights`` the combination
    ``G = sum_i w_i u_i`` of the inner steps' directions (the Section 6 experiments, which no setting names)."""
    if weights is not None:
        return meta.make_algorithm("combination", weights=weights, tail_shots=cfg.tail_shots)
    return meta.make_algorithm(cfg.algorithm, tail_shots=cfg.tail_shots)


def build_learner(cfg: C.RunConfig, backend=None, weights: Sequence[float] | None = None) -> meta.MetaLearner:
    """The :class:`~fometa.meta.MetaLearner` of ``cfg`` (``backend`` overrides ``cfg.backend``; ``weights``:
    see :func:`build_algorithm`)."""
    shape = input_shape(cfg)
    return meta.MetaLearner(
        algorithm=build_algorithm(cfg.outer, weights),
        inner_opt=inner_optimizer(cfg.inner),
        outer_opt=outer_optimizer(cfg.outer, cfg.meta_iters),
        model=build_model(cfg.model, shape),
        inner=cfg.inner,
        outer=cfg.outer,
        backend=backend if backend is not None else cfg.backend,
    )


def load_splits(cfg: C.DataConfig) -> dict | None:
    """The class-indexed splits of ``cfg``'s packed file (``None`` for sine); raises ``fometa.data.DataError``,
    also for a file whose preprocessing is not the recorded ``cfg.image_spec``."""
    if cfg.kind == "sine":
        return None
    if cfg.path is None:
        raise data.DataError("<no file>", f"no {cfg.kind} data file given (use --data FILE.h5)")
    data.inspect_packed(cfg.path, cfg.kind)
    if cfg.image_spec is not None:
        found = data.ImageSpec.for_packed(cfg.path)
        if found != cfg.image_spec:
            raise data.DataError(cfg.path, f"its images are made as {found.as_dict()}, but the run's were made as "
                                           f"{cfg.image_spec.as_dict()}")
    if cfg.kind == "folder":
        return data.load_folder(cfg.path)
    if cfg.kind == "omniglot":
        try:
            return data.load_omniglot(cfg.path, protocol=cfg.protocol, seed=cfg.split_seed,
                                      train_characters=cfg.train_characters, augment_rotations=cfg.augment_rotations)
        except ValueError as exc:  # e.g. more train characters than the file holds
            raise data.DataError(cfg.path, str(exc)) from None
    return data.load_miniimagenet(cfg.path)


def _min_examples(split) -> int:
    return min(split.num_examples(c) for c in range(len(split)))


def check_data(cfg: C.RunConfig, splits, eval_splits=("train", "test"), *, training: bool = True) -> None:
    """Raise :class:`~fometa.config.ConfigError` where ``cfg`` asks more of ``splits`` than they hold; with
    ``training=False`` (evaluation only) the train split is not needed."""
    if splits is None:
        return
    w = cfg.model.ways
    need_train = cfg.inner.shots + (cfg.outer.tail_shots or 0)
    need_eval = cfg.eval.shots + cfg.eval.queries_per_class
    needed = (("train",) if training else ()) + tuple(eval_splits)
    for name in dict.fromkeys(needed):
        if name not in splits:
            raise C.ConfigError(f"the data file has no {name!r} split (it has {', '.join(splits)})")
        split = splits[name]
        if w > len(split):
            raise C.ConfigError(f"a {w}-way task needs {w} classes, but the {name} split has {len(split)}")
        have = _min_examples(split)
        if training and name == "train" and need_train > have:
            extra = f" + {cfg.outer.tail_shots} tail shots" if cfg.outer.tail_shots else ""
            raise C.ConfigError(f"training tasks need {cfg.inner.shots} train shots{extra} per class, but a class of "
                                f"the train split has only {have} examples")
        if name in eval_splits and need_eval > have:
            raise C.ConfigError(f"evaluation needs {cfg.eval.shots} shots + {cfg.eval.queries_per_class} "
                                f"quer{'y' if cfg.eval.queries_per_class == 1 else 'ies'} per class, but a class "
                                f"of the {name} split has only {have} examples")


def image_classifier(cfg: C.RunConfig, params=None):
    """``(spec, network, inner optimizer)`` of an image classification run, what
    :class:`fometa.FewShotClassifier` adapts and predicts with: how a raw image becomes an input (the
    run's :class:`~fometa.data.ImageSpec`), the network on inputs of that shape and the inner loop's
    optimizer. Raises :class:`~fometa.config.ConfigError` for a sine run and, given the checkpoint's
    ``params``, for parameters whose shapes are not the network's.
    """
    spec = C.input_spec(cfg.data)
    if spec is None:
        raise C.ConfigError(f"a {cfg.data.kind} run is not an image classifier")
    network = build_model(cfg.model, spec.shape)
    if params is not None and {k: tuple(v.shape) for k, v in params.items()} != network.param_shapes():
        raise C.ConfigError(f"its parameters do not fit its configuration's network {network.name}")
    return spec, network, inner_optimizer(cfg.inner)
