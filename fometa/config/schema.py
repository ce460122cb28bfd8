"""The settings: one frozen dataclass per concern, each setting with its one description and its checks.

Every setting has one dotted name (``inner.lr``; ``meta_iters`` for the run-level ones), given
by where it stands here, and one description, kept beside it (``field(metadata=...)``):
:data:`DESCRIPTIONS` collects them for the command line's help and the documentation's settings
table. A configuration is checked once, when it is made: each section checks its own settings
(``__post_init__``) and :class:`RunConfig` checks how they fit together. Every failed check is a
:class:`ConfigError` naming the setting.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any

from fometa.data.images import ImageSpec

__all__ = [
    "ConfigError", "DataConfig", "ModelConfig", "InnerConfig", "OuterConfig", "EvaluationConfig", "RunConfig",
    "DATASETS", "ARCHS", "IMAGE_ARCHS", "KIND_IMAGES", "INITS", "ALGORITHMS", "EVAL_MODES", "DESCRIPTIONS",
    "RESUME_FREE", "settings", "setting_type", "parse_image_spec", "input_spec", "build",
]

DATASETS = ("omniglot", "miniimagenet", "folder", "sine")
#: the paper's network of each of its data sets (a ``folder`` file takes either image network)
ARCHS = {"omniglot": "omniglot_cnn", "miniimagenet": "miniimagenet_cnn", "sine": "sine_mlp"}
IMAGE_ARCHS = ("omniglot_cnn", "miniimagenet_cnn")
#: The preprocessing of the paper's data sets as ``fometa data`` packs them by default
#: (:meth:`ImageSpec.for_packed <fometa.data.ImageSpec.for_packed>` of such files): the input
#: preprocessing of a run that did not record its own (runs written before ``data.image_spec``).
KIND_IMAGES = {"omniglot": ImageSpec(28, 28, 1, resize="nearest", bilevel=True),
               "miniimagenet": ImageSpec(84, 84, 3, resize="lanczos")}
INITS = ("glorot", "torch")
#: the meta-algorithms a run can train with (``outer.algorithm``)
ALGORITHMS = ("reptile", "fomaml", "maml")
EVAL_MODES = ("transductive", "per-query", "support-stats")


class ConfigError(ValueError):
    """An invalid or contradictory configuration; the message names the setting(s)."""


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _setting(default: Any, description: str, *, resume_free: bool = False) -> Any:
    """A setting's default, its description and whether it may change when a run resumes."""
    return field(default=default, metadata={"description": description, "resume_free": resume_free})


def _section(cls: type, description: str) -> Any:
    return field(default_factory=cls, metadata={"description": description})


def parse_image_spec(name: str, value: object) -> ImageSpec:
    """An :class:`ImageSpec` from itself, its dict (:meth:`ImageSpec.as_dict`) or that dict as JSON text."""
    if isinstance(value, ImageSpec):
        return value
    try:
        return ImageSpec.from_dict(json.loads(value) if isinstance(value, str) else value)
    except ValueError as exc:
        raise ConfigError(f"setting {name!r} needs an image spec (a table of height, width, channels, ...): "
                          f"{exc}") from None


@dataclass(frozen=True)
class DataConfig:
    """The data set: ``kind`` (omniglot, miniimagenet, folder or sine) and, for images, the packed HDF5 file.

    ``path`` is kept as given; a relative one is relative to the folder fometa runs in.
    ``image_spec`` is how a raw image becomes one of the file's examples
    (:class:`~fometa.data.ImageSpec`), recorded from the file when a run starts so that every
    later use of the trained model prepares new images the same way; ``None`` (runs from before
    it was recorded) stands for the paper kind's :data:`KIND_IMAGES` (see :func:`input_spec`).

    Omniglot's split: ``protocol`` ``"paper"`` (``train_characters`` characters chosen with
    ``split_seed``, the rest for testing) or ``"background"``; ``augment_rotations`` adds the
    90/180/270-degree rotations of training characters as classes (paper, Section 6).
    """

    kind: str = _setting("omniglot", "the data set: omniglot, miniimagenet, folder (any packed images: fometa data "
                                     "folder) or sine")
    path: str | None = _setting(None, "the packed HDF5 data file (fometa data ...); relative to the folder fometa "
                                      "runs in", resume_free=True)
    protocol: str = _setting("paper", "Omniglot's split: paper (random characters for training, the rest for "
                                      "testing) or background (the background set for training)")
    split_seed: int = _setting(0, "seed of the paper protocol's random choice of training characters")
    train_characters: int = _setting(1200, "characters for meta-training under the paper protocol (1200)")
    augment_rotations: bool = _setting(True, "add each training character rotated by 90, 180 and 270 degrees as "
                                             "new classes")
    image_spec: ImageSpec | None = _setting(None, "how a raw image becomes an input (size, channels, resize filter, "
                                                  "ink convention, value scale), recorded from the data file; none: "
                                                  "the paper data set's")

    def __post_init__(self) -> None:
        _require(self.kind in DATASETS, f"data.kind must be one of {', '.join(DATASETS)}, got {self.kind!r}")
        spec: object = self.image_spec  # an ImageSpec, or its dict (to_dict's) as read from a file
        if spec is not None and not isinstance(spec, ImageSpec):
            object.__setattr__(self, "image_spec", parse_image_spec("data.image_spec", spec))
        _require(self.kind != "folder" or self.image_spec is not None,
                 "data.kind 'folder' needs data.image_spec, the file's preprocessing (fometa train records it "
                 "from the file)")
        _require(self.kind != "sine" or self.image_spec is None, "the sine data set has no images: "
                 "data.image_spec must be none")
        _require(self.protocol in ("paper", "background"),
                 f"data.protocol must be 'paper' or 'background', got {self.protocol!r}")
        _require(self.train_characters >= 1, f"data.train_characters must be at least 1, got {self.train_characters}")


@dataclass(frozen=True)
class ModelConfig:
    """The network: ``arch`` (omniglot_cnn, miniimagenet_cnn or sine_mlp) with ``ways`` outputs.

    The two image networks are the paper's: ``omniglot_cnn`` is ``depth`` x [conv 3x3 stride 2
    'same', batch norm, ReLU], ``miniimagenet_cnn`` ``depth`` x [conv 3x3 'same', batch norm,
    2x2 max-pool, ReLU], then a dense layer; their input is the data's examples
    (:func:`input_spec`: 28x28 grey for Omniglot, 84x84 RGB for Mini-ImageNet, a folder file's
    own). ``filters`` replaces the paper's number of conv filters (64 for Omniglot, 32 for
    Mini-ImageNet) and ``depth`` its 4 blocks; ``None`` keeps them (small values serve quick
    tests). ``init`` draws every conv and dense layer's
    parameters: ``"glorot"`` (TensorFlow's ``tf.layers`` defaults, the reference's: Glorot-uniform
    kernels, zero biases) or ``"torch"`` (PyTorch's ``nn.Conv2d``/``nn.Linear`` defaults: kernels
    and biases uniform on ``+-1/sqrt(fan_in)``, ``fan_in = kh*kw*C_in`` for a conv). The
    classification presets use ``"glorot"``, the sine preset ``"torch"`` (its reference demo is a
    PyTorch script); a config.json written before this setting existed loads with its preset's.
    """

    arch: str = _setting("omniglot_cnn", "the network: omniglot_cnn (conv stride 2) or miniimagenet_cnn (conv, 2x2 "
                                         "max-pool) for images, sine_mlp for the sine toy")
    ways: int = _setting(5, "classes per task (N in N-way), the network's outputs")
    filters: int | None = _setting(None, "conv filters per layer (none: the paper's, 64 for Omniglot and 32 for "
                                         "Mini-ImageNet)")
    init: str = _setting("glorot", "initializer: glorot (TensorFlow's, the reference's) or torch (PyTorch's "
                                   "defaults)")
    depth: int | None = _setting(None, "conv blocks of the image network (none: the paper's 4)")

    def __post_init__(self) -> None:
        _require(self.arch in ARCHS.values(),
                 f"model.arch must be one of {', '.join(ARCHS.values())}, got {self.arch!r}")
        _require(self.ways >= 1, f"model.ways must be at least 1, got {self.ways}")
        _require(self.filters is None or self.filters >= 1, f"model.filters must be at least 1, got {self.filters}")
        _require(self.init in INITS, f"model.init must be one of {', '.join(INITS)}, got {self.init!r}")
        _require(self.depth is None or self.depth >= 1, f"model.depth must be at least 1, got {self.depth}")
        _require(self.depth is None or self.arch != "sine_mlp",
                 "model.depth applies to the conv networks, not sine_mlp")


@dataclass(frozen=True)
class InnerConfig:
    """The inner loop of meta-training (paper, Algorithm 2's ``SGD(L_tau, phi, k)``).

    Each training task has ``ways`` classes of ``shots`` examples ("train shots"); the inner loop
    takes ``iters`` steps of ``optimizer`` (``adam`` with ``beta1``, ``beta2``, ``eps``; or ``sgd``)
    on mini-batches of ``batch`` examples. ``state_policy`` ``"carry"`` carries the optimizer's
    state from task to task (the reference); ``"reset"`` starts every task fresh.
    """

    optimizer: str = _setting("adam", "the inner loop's optimizer: adam (beta1 = 0 in the paper) or sgd")
    lr: float = _setting(1e-3, "the inner optimizer's learning rate (the paper's Adam step size)")
    beta1: float = _setting(0.0, "Adam's first-moment decay in the inner loop (0 in the paper)")
    beta2: float = _setting(0.999, "Adam's second-moment decay in the inner loop")
    eps: float = _setting(1e-8, "Adam's epsilon in the inner loop")
    batch: int = _setting(10, "examples per inner mini-batch while meta-training (the paper's inner batch size)")
    iters: int = _setting(5, "inner steps k per training task (the paper's inner iterations)")
    shots: int = _setting(10, "examples per class in a training task (the paper's train shots)")
    replacement: bool = _setting(False, "draw the inner mini-batches with replacement")
    state_policy: str = _setting("carry", "carry: the inner optimizer's state flows from task to task (the "
                                          "reference); reset: every task starts fresh")

    def __post_init__(self) -> None:
        _require(self.optimizer in ("adam", "sgd"), f"inner.optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        _require(self.lr > 0, f"inner.lr must be positive, got {self.lr}")
        _require(self.state_policy in ("carry", "reset"),
                 f"inner.state_policy must be 'carry' or 'reset', got {self.state_policy!r}")
        for name in ("batch", "iters", "shots"):
            _require(getattr(self, name) >= 1, f"inner.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class OuterConfig:
    """The meta-algorithm and its outer step.

    ``algorithm``: reptile, fomaml or maml. ``optimizer`` ``"interpolate"`` is the paper's
    ``phi <- phi + eps (mean(phi_tilde) - phi)`` with ``eps`` linear from ``meta_step`` to
    ``meta_step_final`` over the run's ``meta_iters``; ``"adam"`` runs Adam (``adam_lr``) on the
    pseudo-gradient. ``meta_batch`` tasks per iteration, all at once on the task axis when
    ``batched`` (else one after another, as the reference). ``tail_shots``: FOMAML's/MAML's
    separate final mini-batch (the reference's ``--foml-tail``).
    """

    algorithm: str = _setting("reptile", "the meta-algorithm: reptile, fomaml or maml (second-order, for comparison)")
    optimizer: str = _setting("interpolate", "the outer step: interpolate (phi + eps (phi~ - phi), the paper's) or "
                                             "adam on the pseudo-gradient")
    meta_step: float = _setting(1.0, "the meta-step size eps at the first iteration (the paper's outer step size)")
    meta_step_final: float = _setting(0.0, "the meta-step size at the last iteration (linear annealing; 0 in the "
                                           "paper)")
    adam_lr: float = _setting(1e-3, "the outer Adam's learning rate (outer.optimizer = adam)")
    meta_batch: int = _setting(5, "tasks per meta-iteration (the paper's meta-batch size)")
    batched: bool = _setting(True, "adapt a meta-batch's tasks in one pass on the task axis (else one after "
                                   "another, as the reference)")
    tail_shots: int | None = _setting(None, "FOMAML/MAML: a separate final mini-batch of this many shots per class "
                                            "(the reference's --foml-tail)")

    def __post_init__(self) -> None:
        _require(self.algorithm in ALGORITHMS,
                 f"outer.algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        _require(self.optimizer in ("interpolate", "adam"),
                 f"outer.optimizer must be 'interpolate' or 'adam', got {self.optimizer!r}")
        _require(self.meta_batch >= 1, f"outer.meta_batch must be at least 1, got {self.meta_batch}")
        _require(self.tail_shots is None or self.tail_shots >= 1,
                 f"outer.tail_shots must be at least 1, got {self.tail_shots}")
        _require(self.tail_shots is None or self.algorithm != "reptile",
                 "outer.tail_shots applies to fomaml and maml, not reptile")


@dataclass(frozen=True)
class EvaluationConfig:
    """Few-shot evaluation (paper, Section 6; the reference's ``evaluate``).

    Each task has ``ways`` (the model's) classes with ``shots`` support examples and
    ``queries_per_class`` queries each; the initialization takes ``inner_iters`` steps of the
    inner optimizer on mini-batches of ``inner_batch`` support examples, then predicts the
    queries in batch-norm ``mode`` (see :mod:`fometa.evaluate`). ``fometa eval`` runs ``tasks``
    tasks of ``split``, ``chunk`` at a time on the task axis.
    """

    shots: int = _setting(1, "support examples per class in an evaluation task (K in K-shot)")
    inner_batch: int = _setting(5, "support examples per inner step when evaluating (the paper's eval batch size)")
    inner_iters: int = _setting(50, "inner steps on the support set when evaluating (50 in the paper)")
    queries_per_class: int = _setting(1, "query examples per class in an evaluation task")
    replacement: bool = _setting(False, "draw the evaluation's inner mini-batches with replacement")
    mode: str = _setting("transductive", "batch norm at prediction: transductive (all queries in one batch), "
                                         "per-query (support set + one query) or support-stats (statistics of the "
                                         "support set only)", resume_free=True)
    tasks: int = _setting(10_000, "evaluation tasks (10,000 in the paper)", resume_free=True)
    chunk: int = _setting(50, "evaluation tasks adapted at once on the task axis (memory, not results)",
                          resume_free=True)
    split: str = _setting("test", "the split the evaluation tasks come from: train, val or test", resume_free=True)

    def __post_init__(self) -> None:
        for name in ("shots", "inner_batch", "queries_per_class", "tasks", "chunk"):
            _require(getattr(self, name) >= 1, f"eval.{name} must be at least 1, got {getattr(self, name)}")
        _require(self.inner_iters >= 0, f"eval.inner_iters must be non-negative, got {self.inner_iters}")
        _require(self.mode in EVAL_MODES,
                 f"eval.mode must be one of {', '.join(EVAL_MODES)}, got {self.mode!r} (unknown evaluation mode)")
        _require(self.split in ("train", "val", "test"), f"eval.split must be train, val or test, got {self.split!r}")

    def check_ways(self, ways: int) -> None:
        """Raise :class:`ConfigError` unless a ``ways``-way support set can feed the inner mini-batches."""
        _require(self.inner_batch <= ways * self.shots,
                 f"eval.inner_batch ({self.inner_batch}) is larger than the support set ({ways} ways x "
                 f"{self.shots} shots = {ways * self.shots} examples)")


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs, built from a preset (``preset`` records which).

    ``meta_iters`` meta-iterations; every ``eval_interval`` of them (0: never) ``interval_tasks``
    evaluation tasks of the train and the test split are logged; a checkpoint is written every
    ``checkpoint_every`` iterations (0: only at the end). ``seed`` seeds the one generator from
    which the initialization and every training task are drawn; ``backend`` is numpy, cupy or
    cupy:N (None: ``$FOMETA_BACKEND`` or numpy).
    """

    preset: str = _setting("custom", "the paper's setting this configuration starts from")
    data: DataConfig = _section(DataConfig, "the data set")
    model: ModelConfig = _section(ModelConfig, "the network")
    inner: InnerConfig = _section(InnerConfig, "the inner loop")
    outer: OuterConfig = _section(OuterConfig, "the meta-algorithm and its outer step")
    eval: EvaluationConfig = _section(EvaluationConfig, "few-shot evaluation")
    seed: int = _setting(0, "seed of the run's one generator: the initialization and every training task")
    backend: str | None = _setting(None, "where the arrays live: numpy, cupy or cupy:N (none: $FOMETA_BACKEND, else "
                                         "numpy)", resume_free=True)
    meta_iters: int = _setting(100_000, "meta-iterations (outer steps) of the run; the meta-step anneals to its final "
                                        "value over them")
    eval_interval: int = _setting(1000, "log few-task train/test accuracy every this many meta-iterations (0: never)",
                                  resume_free=True)
    interval_tasks: int = _setting(20, "tasks of each split behind each logged accuracy", resume_free=True)
    checkpoint_every: int = _setting(1000, "write a checkpoint every this many meta-iterations (0: only at the end)",
                                     resume_free=True)

    def __post_init__(self) -> None:
        _require(self.meta_iters >= 1, f"meta_iters must be at least 1, got {self.meta_iters}")
        _require(self.eval_interval >= 0, f"eval_interval must be non-negative (0: never), got {self.eval_interval}")
        _require(self.checkpoint_every >= 0,
                 f"checkpoint_every must be non-negative (0: only at the end), got {self.checkpoint_every}")
        _require(self.interval_tasks >= 2, f"interval_tasks must be at least 2, got {self.interval_tasks}")
        expected = IMAGE_ARCHS if self.data.kind == "folder" else (ARCHS[self.data.kind],)
        _require(self.model.arch in expected,
                 f"model.arch {self.model.arch!r} does not fit data.kind {self.data.kind!r} "
                 f"(expected {' or '.join(map(repr, expected))})")
        w, inner, ev = self.model.ways, self.inner, self.eval
        if self.data.kind == "sine":
            steps = -(-50 // inner.batch)
            _require(inner.batch <= 50, f"inner.batch {inner.batch} exceeds the sine grid's 50 points")
            _require(inner.iters % steps == 0,
                     f"inner.iters ({inner.iters}) must be whole epochs over the sine grid: a multiple of "
                     f"{steps} steps of inner.batch {inner.batch}")
            _require(ev.shots >= 1 and ev.inner_batch == ev.shots,
                     f"sine evaluation steps on all eval.shots points: eval.inner_batch ({ev.inner_batch}) "
                     f"must equal eval.shots ({ev.shots})")
            return
        _require(w >= 2, f"model.ways must be at least 2 for classification, got {w}")
        tail = self.outer.tail_shots or 0
        _require(inner.batch <= w * inner.shots,
                 f"inner.batch ({inner.batch}) is larger than a training task ({w} ways x {inner.shots} "
                 f"train shots = {w * inner.shots} examples)")
        _require(tail == 0 or inner.iters >= 2, "outer.tail_shots needs inner.iters of at least 2")
        ev.check_ways(w)
        _require(ev.split != "val" or self.data.kind in ("miniimagenet", "folder"),
                 "only Mini-ImageNet has a 'val' split (and folder files packed with one)")


# ------------------------------------------------------------------------------------------
# the settings by their dotted names
# ------------------------------------------------------------------------------------------
def _fields(cls: type = RunConfig, prefix: str = "") -> dict[str, tuple[Any, dataclasses.Field]]:
    """Every setting's dotted name, its type and its field, in the order they stand above."""
    out: dict[str, tuple[Any, dataclasses.Field]] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            out.update(_fields(t, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = (t, f)
    return out


_FIELDS = _fields()

#: What each setting means, in the paper's terms where it has one: the one source of the command
#: line's help and of the documentation's settings table.
DESCRIPTIONS: dict[str, str] = {name: f.metadata["description"] for name, (_, f) in _FIELDS.items()}

#: Settings that may change when a run resumes: they decide what is logged, when checkpoints
#: are written, where the run computes (a run is bit-exact on one backend) and where its data
#: file lies, never what it learns.
RESUME_FREE = frozenset(name for name, (_, f) in _FIELDS.items() if f.metadata["resume_free"])


def settings(cfg_type: type = RunConfig, prefix: str = "") -> dict[str, Any]:
    """Every setting's dotted name and type (``{"inner.lr": float, "model.filters": int | None, ...}``)."""
    if cfg_type is RunConfig and not prefix:
        return {name: t for name, (t, _) in _FIELDS.items()}
    return {name: t for name, (t, _) in _fields(cfg_type, prefix).items()}


def setting_type(name: str) -> tuple[type, bool]:
    """The type of setting ``name`` and whether it may be none: ``(int, True)`` for ``model.filters``."""
    t = _FIELDS[name][0]
    args = typing.get_args(t)
    if args:
        return next(a for a in args if a is not type(None)), type(None) in args
    return t, False


def input_spec(data: DataConfig) -> ImageSpec | None:
    """How a raw image becomes an input of the run: ``data.image_spec``, or for runs that did not
    record it the paper kind's :data:`KIND_IMAGES` (``None`` for sine)."""
    return data.image_spec if data.image_spec is not None else KIND_IMAGES.get(data.kind)


def build(flat: dict[str, Any]) -> RunConfig:
    """The configuration of the dotted settings ``flat`` (values of the settings' types); the rest take
    their defaults. Raises :class:`ConfigError` for an invalid or contradictory one."""
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for name, value in flat.items():
        if "." in name:
            sec, key = name.split(".", 1)
            sections.setdefault(sec, {})[key] = value
        else:
            top[name] = value
    hints = typing.get_type_hints(RunConfig)
    try:
        for sec, values in sections.items():
            top[sec] = hints[sec](**values)
        return RunConfig(**top)
    except TypeError as exc:  # an unknown name: callers check names first; kept for from_dict
        raise ConfigError(f"invalid configuration: {exc}") from None
