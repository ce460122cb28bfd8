"""Run configuration: one frozen dataclass per concern, the paper's settings as named presets.

A :class:`RunConfig` aggregates

* :class:`DataConfig`  - which data set, its packed file, split protocol and input preprocessing;
* :class:`ModelConfig` - the network, its width and depth, and its number of ways;
* :class:`InnerConfig` - the inner loop of meta-training (optimizer, mini-batch, steps, train shots);
* :class:`OuterConfig` - the meta-algorithm and the outer step (meta-step annealing, meta-batch);
* :class:`EvaluationConfig` - few-shot evaluation (shots, inner steps, batch-norm mode, tasks);

plus the run-level settings (seed, backend, meta-iterations, evaluation and checkpoint cadence).

:data:`PRESETS` holds the paper's settings (Nichol et al. 2018, Appendix A, reference scripts of
openai/supervised-reptile). For a packed file of any other images (``data.kind = "folder"``),
:func:`closest_preset` picks the paper's setting nearest to its images and :func:`for_images` fits a
configuration to them (the network follows the images; the preprocessing is recorded in
``data.image_spec``). A configuration is built as ``preset -> config file -> flags``:
:func:`apply_overrides` takes dotted setting names (``"inner.lr"``, ``"meta_iters"``) and
:func:`load_file` reads the same names from TOML (tables for the sections) or JSON.
:func:`to_dict` / :func:`from_dict` convert to plain dicts for JSON and HDF5; :func:`diff`
names the settings in which two configurations differ. Every user error is a :class:`ConfigError`.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

from fometa.data.images import ImageSpec

__all__ = [
    "ConfigError", "DataConfig", "ModelConfig", "InnerConfig", "OuterConfig", "EvaluationConfig",
    "RunConfig", "PRESETS", "preset", "to_dict", "from_dict", "flatten", "apply_overrides", "load_file",
    "diff", "settings", "parse_value", "RESUME_FREE", "RETIRED", "KIND_IMAGES", "input_spec", "closest_preset",
    "for_images",
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
ALGORITHMS = ("reptile", "fomaml", "maml")
EVAL_MODES = ("transductive", "per-query", "support-stats")


class ConfigError(ValueError):
    """An invalid or contradictory configuration; the message names the setting(s)."""


def _require(cond: bool, message: str):
    if not cond:
        raise ConfigError(message)


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

    kind: str = "omniglot"
    path: str | None = None
    protocol: str = "paper"
    split_seed: int = 0
    train_characters: int = 1200
    augment_rotations: bool = True
    image_spec: ImageSpec | None = None

    def __post_init__(self):
        _require(self.kind in DATASETS, f"data.kind must be one of {', '.join(DATASETS)}, got {self.kind!r}")
        if self.image_spec is not None and not isinstance(self.image_spec, ImageSpec):  # its dict (to_dict's)
            object.__setattr__(self, "image_spec", _parse_spec("data.image_spec", self.image_spec))
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

    arch: str = "omniglot_cnn"
    ways: int = 5
    filters: int | None = None
    init: str = "glorot"
    depth: int | None = None

    def __post_init__(self):
        _require(self.arch in ARCHS.values(), f"model.arch must be one of {', '.join(ARCHS.values())}, got {self.arch!r}")
        _require(self.ways >= 1, f"model.ways must be at least 1, got {self.ways}")
        _require(self.filters is None or self.filters >= 1, f"model.filters must be at least 1, got {self.filters}")
        _require(self.init in INITS, f"model.init must be one of {', '.join(INITS)}, got {self.init!r}")
        _require(self.depth is None or self.depth >= 1, f"model.depth must be at least 1, got {self.depth}")
        _require(self.depth is None or self.arch != "sine_mlp", "model.depth applies to the conv networks, not sine_mlp")


@dataclass(frozen=True)
class InnerConfig:
    """The inner loop of meta-training (paper, Algorithm 2's ``SGD(L_tau, phi, k)``).

    Each training task has ``ways`` classes of ``shots`` examples ("train shots"); the inner loop
    takes ``iters`` steps of ``optimizer`` (``adam`` with ``beta1``, ``beta2``, ``eps``; or ``sgd``)
    on mini-batches of ``batch`` examples. ``state_policy`` ``"carry"`` carries the optimizer's
    state from task to task (the reference); ``"reset"`` starts every task fresh.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    beta1: float = 0.0
    beta2: float = 0.999
    eps: float = 1e-8
    batch: int = 10
    iters: int = 5
    shots: int = 10
    replacement: bool = False
    state_policy: str = "carry"

    def __post_init__(self):
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

    algorithm: str = "reptile"
    optimizer: str = "interpolate"
    meta_step: float = 1.0
    meta_step_final: float = 0.0
    adam_lr: float = 1e-3
    meta_batch: int = 5
    batched: bool = True
    tail_shots: int | None = None

    def __post_init__(self):
        _require(self.algorithm in ALGORITHMS, f"outer.algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        _require(self.optimizer in ("interpolate", "adam"),
                 f"outer.optimizer must be 'interpolate' or 'adam', got {self.optimizer!r}")
        _require(self.meta_batch >= 1, f"outer.meta_batch must be at least 1, got {self.meta_batch}")
        _require(self.tail_shots is None or self.tail_shots >= 1, f"outer.tail_shots must be at least 1, got {self.tail_shots}")
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

    shots: int = 1
    inner_batch: int = 5
    inner_iters: int = 50
    queries_per_class: int = 1
    replacement: bool = False
    mode: str = "transductive"
    tasks: int = 10_000
    chunk: int = 50
    split: str = "test"

    def __post_init__(self):
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

    preset: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    inner: InnerConfig = field(default_factory=InnerConfig)
    outer: OuterConfig = field(default_factory=OuterConfig)
    eval: EvaluationConfig = field(default_factory=EvaluationConfig)
    seed: int = 0
    backend: str | None = None
    meta_iters: int = 100_000
    eval_interval: int = 1000
    interval_tasks: int = 20
    checkpoint_every: int = 1000

    def __post_init__(self):
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
# presets: the paper's settings (Appendix A; supervised-reptile's README commands)
# ------------------------------------------------------------------------------------------
def _omniglot(name, ways, shots, batch, iters, lr, meta_iters, eval_batch) -> RunConfig:
    return RunConfig(
        preset=name,
        data=DataConfig(kind="omniglot", path="datasets/omniglot.h5"),
        model=ModelConfig(arch="omniglot_cnn", ways=ways),
        inner=InnerConfig(lr=lr, batch=batch, iters=iters, shots=10),
        outer=OuterConfig(meta_step=1.0, meta_step_final=0.0, meta_batch=5),
        eval=EvaluationConfig(shots=shots, inner_batch=eval_batch, inner_iters=50),
        meta_iters=meta_iters,
    )


def _miniimagenet(name, shots, eval_batch) -> RunConfig:
    return RunConfig(
        preset=name,
        data=DataConfig(kind="miniimagenet", path="datasets/miniimagenet.h5"),
        model=ModelConfig(arch="miniimagenet_cnn", ways=5),
        inner=InnerConfig(lr=1e-3, batch=10, iters=8, shots=15),
        outer=OuterConfig(meta_step=1.0, meta_step_final=0.0, meta_batch=5),
        eval=EvaluationConfig(shots=shots, inner_batch=eval_batch, inner_iters=50),
        meta_iters=100_000,
    )


PRESETS: dict[str, RunConfig] = {
    "omniglot-5way-1shot": _omniglot("omniglot-5way-1shot", 5, 1, 10, 5, 1e-3, 100_000, 5),
    "omniglot-5way-5shot": _omniglot("omniglot-5way-5shot", 5, 5, 10, 5, 1e-3, 100_000, 5),
    "omniglot-20way-1shot": _omniglot("omniglot-20way-1shot", 20, 1, 20, 10, 5e-4, 200_000, 10),
    "omniglot-20way-5shot": _omniglot("omniglot-20way-5shot", 20, 5, 20, 10, 5e-4, 200_000, 10),
    "miniimagenet-5way-1shot": _miniimagenet("miniimagenet-5way-1shot", 1, 5),
    "miniimagenet-5way-5shot": _miniimagenet("miniimagenet-5way-5shot", 5, 15),
    # fometa.sine: one task per iteration, one epoch of 5 SGD steps on 10 of the 50 grid points,
    # meta-step 0.1 -> 0; evaluation: 32 full-batch steps on 10 points, MSE over the grid.
    "sine": RunConfig(
        preset="sine",
        data=DataConfig(kind="sine"),
        model=ModelConfig(arch="sine_mlp", ways=1, init="torch"),
        inner=InnerConfig(optimizer="sgd", lr=0.02, batch=10, iters=5, shots=50),
        outer=OuterConfig(meta_step=0.1, meta_step_final=0.0, meta_batch=1, batched=False),
        eval=EvaluationConfig(shots=10, inner_batch=10, inner_iters=32, tasks=500, chunk=500),
        meta_iters=30_000,
    ),
}


def preset(name: str) -> RunConfig:
    """The preset called ``name``; a :class:`ConfigError` listing the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


# ------------------------------------------------------------------------------------------
# any packed images: the nearest paper setting, the network following the images
# ------------------------------------------------------------------------------------------
def input_spec(data: DataConfig) -> ImageSpec | None:
    """How a raw image becomes an input of the run: ``data.image_spec``, or for runs that did not
    record it the paper kind's :data:`KIND_IMAGES` (``None`` for sine)."""
    return data.image_spec if data.image_spec is not None else KIND_IMAGES.get(data.kind)


def _image_family(spec: ImageSpec) -> str:
    """``"omniglot"`` for grey images nearer Omniglot's 28x28 than Mini-ImageNet's 84x84 (on a log
    scale: fewer than 28 x 84 pixels), else ``"miniimagenet"``."""
    return "omniglot" if spec.channels == 1 and spec.height * spec.width <= 28 * 84 else "miniimagenet"


def closest_preset(spec: ImageSpec, ways: int | None = None, shots: int | None = None) -> str:
    """The paper preset nearest to images made by ``spec`` for ``ways``-way ``shots``-shot tasks.

    Omniglot's for small grey images (fewer pixels than 28 x 84, nearer 28x28 than 84x84 on a log
    scale), Mini-ImageNet's for colour or larger ones; 20-way rather than 5-way (Omniglot only)
    for more than 10 ways, 5-shot rather than 1-shot from 3 shots (nearest on a log scale too).
    The chosen preset gives the hyperparameters; ``ways`` and ``shots`` themselves are settings.
    """
    family = _image_family(spec)
    shot = "5shot" if shots is not None and shots >= 3 else "1shot"
    way = "20way" if family == "omniglot" and ways is not None and ways > 10 else "5way"
    return f"{family}-{way}-{shot}"


def for_images(cfg: RunConfig, kind: str, spec: ImageSpec) -> RunConfig:
    """``cfg`` fitted to a packed file of ``kind`` whose examples ``spec`` makes.

    A ``folder`` file sets ``data.kind = "folder"`` and the network of its images' family
    (:func:`closest_preset`: ``omniglot_cnn`` for small grey images, else ``miniimagenet_cnn``),
    on the file's input shape; a paper kind keeps its network. Either way ``data.image_spec``
    records ``spec``. A file of the other paper kind than ``cfg``'s is left for the loader to
    refuse.
    """
    if kind == "folder":
        arch = ARCHS[_image_family(spec)]
        return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, kind=kind, image_spec=spec),
                                   model=dataclasses.replace(cfg.model, arch=arch))
    if kind != cfg.data.kind:
        return cfg
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, image_spec=spec))


# ------------------------------------------------------------------------------------------
# plain dicts, dotted setting names, overrides
# ------------------------------------------------------------------------------------------
def to_dict(cfg: RunConfig) -> dict:
    """A nested plain dict (JSON-serializable) of every setting."""
    return dataclasses.asdict(cfg)


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"inner": {"lr": 1e-3}}`` -> ``{"inner.lr": 1e-3}`` (sections are one level deep: a setting's
    own value may be a table, as ``data.image_spec``)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and not prefix:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def settings(cfg_type=RunConfig, prefix: str = "") -> dict[str, type]:
    """Every setting's dotted name and type (``{"inner.lr": float, "model.filters": int | None, ...}``)."""
    out = {}
    hints = typing.get_type_hints(cfg_type)
    for f in dataclasses.fields(cfg_type):
        t = hints[f.name]
        if dataclasses.is_dataclass(t):
            out.update(settings(t, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = t
    return out


def _base_type(t) -> tuple[type, bool]:
    """``(int, True)`` for ``int | None``; ``(float, False)`` for ``float``."""
    args = typing.get_args(t)
    if args:
        inner = [a for a in args if a is not type(None)]
        return inner[0], type(None) in args
    return t, False


def parse_value(name: str, value):
    """Convert ``value`` (a string from a flag, or a TOML/JSON value) to the type of setting ``name``."""
    types = settings()
    if name not in types:
        raise ConfigError(f"unknown setting {name!r}; known settings: {', '.join(types)}")
    t, optional = _base_type(types[name])
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and t is not str):
        if optional:
            return None
        raise ConfigError(f"setting {name!r} cannot be none")
    if isinstance(value, str) and t is str and optional and value.lower() in ("none", "null"):
        return None
    if t is ImageSpec:
        return _parse_spec(name, value)
    try:
        if t is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
                return value.lower() in ("true", "yes", "1")
            raise ValueError
        if t is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            if isinstance(value, str):
                value = value.replace("_", "")
                return int(float(value)) if "e" in value.lower() and float(value).is_integer() else int(value)
            return int(value)
        if t is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if t is str:
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"setting {name!r} needs a{'n' if t is int else ''} {t.__name__}"
                      f"{' or none' if optional else ''}, got {value!r}")


def _parse_spec(name: str, value) -> ImageSpec:
    """An :class:`ImageSpec` from itself, its dict (:meth:`ImageSpec.as_dict`) or that dict as JSON text."""
    if isinstance(value, ImageSpec):
        return value
    try:
        return ImageSpec.from_dict(json.loads(value) if isinstance(value, str) else value)
    except ValueError as exc:
        raise ConfigError(f"setting {name!r} needs an image spec (a table of height, width, channels, ...): "
                          f"{exc}") from None


def apply_overrides(cfg: RunConfig, overrides: dict) -> RunConfig:
    """``cfg`` with the dotted settings in ``overrides`` replaced (values parsed by :func:`parse_value`).

    Raises :class:`ConfigError` for an unknown setting, a value of the wrong type, or a
    resulting configuration that is invalid or contradictory.
    """
    flat = flatten(to_dict(cfg))
    for name, value in overrides.items():
        flat[name] = parse_value(name, value)
    return _build(flat)


def _build(flat: dict) -> RunConfig:
    sections = {}
    top = {}
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
    except TypeError as exc:  # cannot happen for names checked by parse_value; kept for from_dict
        raise ConfigError(f"invalid configuration: {exc}") from None


#: Settings that earlier versions wrote and this one no longer has (``graph``: CUDA-graph replay,
#: which never had a capture behind it): read from old run folders and checkpoints, and ignored.
RETIRED = frozenset({"graph"})


def from_dict(d: dict) -> RunConfig:
    """The configuration a (possibly partial) nested dict describes; missing settings take their defaults.

    A ``"preset"`` key names the base: the dict's other settings override that preset's.
    :data:`RETIRED` settings are ignored.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"a configuration must be a table/object, got {type(d).__name__}")
    base = preset(d["preset"]) if isinstance(d.get("preset"), str) and d["preset"] in PRESETS else RunConfig()
    flat = {k: v for k, v in flatten(d).items() if k not in RETIRED}
    return apply_overrides(base, flat)


def load_file(path) -> dict:
    """The flat ``{dotted name: value}`` settings of a TOML (``.toml``) or JSON file.

    Sections are tables (``[inner]\\nlr = 0.001``); top-level keys are run settings and
    ``preset = "omniglot-5way-1shot"``. Unknown names are rejected; :data:`RETIRED` ones are ignored.
    A relative ``data.path`` is relative to the current folder, as on the command line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python < 3.11
                import tomli as tomllib
            data = tomllib.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        raise ConfigError(f"{path}: not a valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'} file: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a table of settings")
    flat = {k: v for k, v in flatten(data).items() if k not in RETIRED}
    known = settings()
    unknown = [k for k in flat if k not in known]
    if unknown:
        raise ConfigError(f"{path}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")
    return flat


#: Settings that may change when a run resumes: they decide what is logged, when checkpoints
#: are written, where the run computes (a run is bit-exact on one backend) and where its data
#: file lies, never what it learns.
RESUME_FREE = frozenset({"eval_interval", "interval_tasks", "checkpoint_every", "backend", "data.path",
                         "eval.tasks", "eval.chunk", "eval.split", "eval.mode"})


def diff(a: RunConfig, b: RunConfig, ignore=()) -> list[tuple[str, object, object]]:
    """The settings in which ``a`` and ``b`` differ: ``[(dotted name, a's value, b's value), ...]``."""
    fa, fb = flatten(to_dict(a)), flatten(to_dict(b))
    return [(k, fa[k], fb.get(k)) for k in fa if k not in ignore and fa[k] != fb.get(k)]


#: What each setting means, in the paper's terms where it has one: the one source of the command
#: line's help and of the documentation's settings table.
DESCRIPTIONS: dict[str, str] = {
    "preset": "the paper's setting this configuration starts from",
    "seed": "seed of the run's one generator: the initialization and every training task",
    "backend": "where the arrays live: numpy, cupy or cupy:N (none: $FOMETA_BACKEND, else numpy)",
    "meta_iters": "meta-iterations (outer steps) of the run; the meta-step anneals to its final value over them",
    "eval_interval": "log few-task train/test accuracy every this many meta-iterations (0: never)",
    "interval_tasks": "tasks of each split behind each logged accuracy",
    "checkpoint_every": "write a checkpoint every this many meta-iterations (0: only at the end)",
    "data.kind": "the data set: omniglot, miniimagenet, folder (any packed images: fometa data folder) or sine",
    "data.path": "the packed HDF5 data file (fometa data ...); relative to the folder fometa runs in",
    "data.protocol": "Omniglot's split: paper (random characters for training, the rest for testing) "
                     "or background (the background set for training)",
    "data.split_seed": "seed of the paper protocol's random choice of training characters",
    "data.train_characters": "characters for meta-training under the paper protocol (1200)",
    "data.augment_rotations": "add each training character rotated by 90, 180 and 270 degrees as new classes",
    "data.image_spec": "how a raw image becomes an input (size, channels, resize filter, ink convention, value "
                       "scale), recorded from the data file; none: the paper data set's",
    "model.arch": "the network: omniglot_cnn (conv stride 2) or miniimagenet_cnn (conv, 2x2 max-pool) for "
                  "images, sine_mlp for the sine toy",
    "model.ways": "classes per task (N in N-way), the network's outputs",
    "model.filters": "conv filters per layer (none: the paper's, 64 for Omniglot and 32 for Mini-ImageNet)",
    "model.init": "initializer: glorot (TensorFlow's, the reference's) or torch (PyTorch's defaults)",
    "model.depth": "conv blocks of the image network (none: the paper's 4)",
    "inner.optimizer": "the inner loop's optimizer: adam (beta1 = 0 in the paper) or sgd",
    "inner.lr": "the inner optimizer's learning rate (the paper's Adam step size)",
    "inner.beta1": "Adam's first-moment decay in the inner loop (0 in the paper)",
    "inner.beta2": "Adam's second-moment decay in the inner loop",
    "inner.eps": "Adam's epsilon in the inner loop",
    "inner.batch": "examples per inner mini-batch while meta-training (the paper's inner batch size)",
    "inner.iters": "inner steps k per training task (the paper's inner iterations)",
    "inner.shots": "examples per class in a training task (the paper's train shots)",
    "inner.replacement": "draw the inner mini-batches with replacement",
    "inner.state_policy": "carry: the inner optimizer's state flows from task to task (the reference); "
                          "reset: every task starts fresh",
    "outer.algorithm": "the meta-algorithm: reptile, fomaml or maml (second-order, for comparison)",
    "outer.optimizer": "the outer step: interpolate (phi + eps (phi~ - phi), the paper's) or adam on the "
                       "pseudo-gradient",
    "outer.meta_step": "the meta-step size eps at the first iteration (the paper's outer step size)",
    "outer.meta_step_final": "the meta-step size at the last iteration (linear annealing; 0 in the paper)",
    "outer.adam_lr": "the outer Adam's learning rate (outer.optimizer = adam)",
    "outer.meta_batch": "tasks per meta-iteration (the paper's meta-batch size)",
    "outer.batched": "adapt a meta-batch's tasks in one pass on the task axis (else one after another, "
                     "as the reference)",
    "outer.tail_shots": "FOMAML/MAML: a separate final mini-batch of this many shots per class "
                        "(the reference's --foml-tail)",
    "eval.shots": "support examples per class in an evaluation task (K in K-shot)",
    "eval.inner_batch": "support examples per inner step when evaluating (the paper's eval batch size)",
    "eval.inner_iters": "inner steps on the support set when evaluating (50 in the paper)",
    "eval.queries_per_class": "query examples per class in an evaluation task",
    "eval.replacement": "draw the evaluation's inner mini-batches with replacement",
    "eval.mode": "batch norm at prediction: transductive (all queries in one batch), per-query (support "
                 "set + one query) or support-stats (statistics of the support set only)",
    "eval.tasks": "evaluation tasks (10,000 in the paper)",
    "eval.chunk": "evaluation tasks adapted at once on the task axis (memory, not results)",
    "eval.split": "the split the evaluation tasks come from: train, val or test",
}
