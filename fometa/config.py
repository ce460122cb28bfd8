"""Run configuration: one frozen dataclass per concern, the paper's settings as named presets.

A :class:`RunConfig` aggregates

* :class:`DataConfig`  - which data set, its packed file and split protocol;
* :class:`ModelConfig` - the network and its number of ways;
* :class:`InnerConfig` - the inner loop of meta-training (optimizer, mini-batch, steps, train shots);
* :class:`OuterConfig` - the meta-algorithm and the outer step (meta-step annealing, meta-batch);
* :class:`EvaluationConfig` - few-shot evaluation (shots, inner steps, batch-norm mode, tasks);

plus the run-level settings (seed, backend, meta-iterations, evaluation and checkpoint cadence).

:data:`PRESETS` holds the paper's settings (Nichol et al. 2018, Appendix A, reference scripts of
openai/supervised-reptile). A configuration is built as ``preset -> config file -> flags``:
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

__all__ = [
    "ConfigError", "DataConfig", "ModelConfig", "InnerConfig", "OuterConfig", "EvaluationConfig",
    "RunConfig", "PRESETS", "preset", "to_dict", "from_dict", "flatten", "apply_overrides", "load_file",
    "diff", "settings", "parse_value", "RESUME_FREE", "FLAGS",
]

DATASETS = ("omniglot", "miniimagenet", "sine")
ARCHS = {"omniglot": "omniglot_cnn", "miniimagenet": "miniimagenet_cnn", "sine": "sine_mlp"}
INITS = ("glorot", "torch")
ALGORITHMS = ("reptile", "fomaml", "maml")
EVAL_MODES = ("transductive", "per-query", "support-stats")
GRAPH_MODES = ("auto", "on", "off")  # as fometa.graph.MODES


class ConfigError(ValueError):
    """An invalid or contradictory configuration; the message names the setting(s)."""


def _require(cond: bool, message: str):
    if not cond:
        raise ConfigError(message)


@dataclass(frozen=True)
class DataConfig:
    """The data set: ``kind`` (omniglot, miniimagenet or sine) and, for images, the packed HDF5 file.

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

    def __post_init__(self):
        _require(self.kind in DATASETS, f"data.kind must be one of {', '.join(DATASETS)}, got {self.kind!r}")
        _require(self.protocol in ("paper", "background"),
                 f"data.protocol must be 'paper' or 'background', got {self.protocol!r}")
        _require(self.train_characters >= 1, f"data.train_characters must be at least 1, got {self.train_characters}")


@dataclass(frozen=True)
class ModelConfig:
    """The network: ``arch`` (omniglot_cnn, miniimagenet_cnn or sine_mlp) with ``ways`` outputs.

    ``filters`` replaces the paper's number of conv filters (64 for Omniglot, 32 for Mini-ImageNet);
    ``None`` keeps it (small values serve quick tests). ``init`` draws every conv and dense layer's
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

    def __post_init__(self):
        _require(self.arch in ARCHS.values(), f"model.arch must be one of {', '.join(ARCHS.values())}, got {self.arch!r}")
        _require(self.ways >= 1, f"model.ways must be at least 1, got {self.ways}")
        _require(self.filters is None or self.filters >= 1, f"model.filters must be at least 1, got {self.filters}")
        _require(self.init in INITS, f"model.init must be one of {', '.join(INITS)}, got {self.init!r}")


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
        _require(self.mode in EVAL_MODES, f"eval.mode must be one of {', '.join(EVAL_MODES)}, got {self.mode!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs, built from a preset (``preset`` records which).

    ``meta_iters`` meta-iterations; every ``eval_interval`` of them (0: never) ``interval_tasks``
    evaluation tasks of the train and the test split are logged; a checkpoint is written every
    ``checkpoint_every`` iterations (0: only at the end). ``seed`` seeds the one generator from
    which the initialization and every training task are drawn; ``backend`` is numpy, cupy or
    cupy:N (None: ``$FOMETA_BACKEND`` or numpy). ``graph`` (auto, on or off) replays each
    meta-iteration as a captured CUDA graph (:mod:`fometa.graph`); it changes how a run computes,
    not what, and may change on resume.
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
    graph: str = "auto"

    def __post_init__(self):
        _require(self.graph in GRAPH_MODES, f"graph must be one of {', '.join(GRAPH_MODES)}, got {self.graph!r}")
        _require(self.meta_iters >= 1, f"meta_iters must be at least 1, got {self.meta_iters}")
        _require(self.eval_interval >= 0, f"eval_interval must be non-negative (0: never), got {self.eval_interval}")
        _require(self.checkpoint_every >= 0,
                 f"checkpoint_every must be non-negative (0: only at the end), got {self.checkpoint_every}")
        _require(self.interval_tasks >= 2, f"interval_tasks must be at least 2, got {self.interval_tasks}")
        _require(ARCHS[self.data.kind] == self.model.arch,
                 f"model.arch {self.model.arch!r} does not fit data.kind {self.data.kind!r} "
                 f"(expected {ARCHS[self.data.kind]!r})")
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
        _require(ev.inner_batch <= w * ev.shots,
                 f"eval.inner_batch ({ev.inner_batch}) is larger than the support set ({w} ways x "
                 f"{ev.shots} shots = {w * ev.shots} examples)")
        _require(ev.split in ("train", "val", "test"), f"eval.split must be train, val or test, got {ev.split!r}")
        _require(ev.split != "val" or self.data.kind == "miniimagenet", "only Mini-ImageNet has a 'val' split")


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
# plain dicts, dotted setting names, overrides
# ------------------------------------------------------------------------------------------
def to_dict(cfg: RunConfig) -> dict:
    """A nested plain dict (JSON-serializable) of every setting."""
    return dataclasses.asdict(cfg)


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"inner": {"lr": 1e-3}}`` -> ``{"inner.lr": 1e-3}``."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
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


def from_dict(d: dict) -> RunConfig:
    """The configuration a (possibly partial) nested dict describes; missing settings take their defaults.

    A ``"preset"`` key names the base: the dict's other settings override that preset's.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"a configuration must be a table/object, got {type(d).__name__}")
    base = preset(d["preset"]) if isinstance(d.get("preset"), str) and d["preset"] in PRESETS else RunConfig()
    flat = flatten(d)
    return apply_overrides(base, flat)


def load_file(path) -> dict:
    """The flat ``{dotted name: value}`` settings of a TOML (``.toml``) or JSON file.

    Sections are tables (``[inner]\\nlr = 0.001``); top-level keys are run settings and
    ``preset = "omniglot-5way-1shot"``. Unknown names are rejected by :func:`apply_overrides`.
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
    flat = flatten(data)
    known = settings()
    unknown = [k for k in flat if k not in known]
    if unknown:
        raise ConfigError(f"{path}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")
    return flat


#: Settings that may change when a run resumes: they decide what is logged, when checkpoints
#: are written and where the run computes (a run is bit-exact on one backend), never what it learns.
RESUME_FREE = frozenset({"eval_interval", "interval_tasks", "checkpoint_every", "backend", "graph", "eval.tasks",
                         "eval.chunk", "eval.split", "eval.mode"})


def diff(a: RunConfig, b: RunConfig, ignore=()) -> list[tuple[str, object, object]]:
    """The settings in which ``a`` and ``b`` differ: ``[(dotted name, a's value, b's value), ...]``."""
    fa, fb = flatten(to_dict(a)), flatten(to_dict(b))
    return [(k, fa[k], fb.get(k)) for k in fa if k not in ignore and fa[k] != fb.get(k)]


#: Command-line flags of ``fometa train`` (and, for evaluation settings, ``fometa eval``): flag -> setting.
#: Every setting but ``preset``, ``data.kind`` and ``model.arch`` (fixed by the preset) has one;
#: ``--set NAME=VALUE`` reaches any setting by its dotted name.
FLAGS: dict[str, str] = {
    "--meta-iters": "meta_iters",
    "--eval-interval": "eval_interval",
    "--interval-tasks": "interval_tasks",
    "--checkpoint-every": "checkpoint_every",
    "--seed": "seed",
    "--backend": "backend",
    "--graph": "graph",
    "--data": "data.path",
    "--protocol": "data.protocol",
    "--split-seed": "data.split_seed",
    "--train-characters": "data.train_characters",
    "--augment-rotations": "data.augment_rotations",
    "--ways": "model.ways",
    "--filters": "model.filters",
    "--init": "model.init",
    "--inner-optimizer": "inner.optimizer",
    "--learning-rate": "inner.lr",
    "--inner-beta1": "inner.beta1",
    "--inner-beta2": "inner.beta2",
    "--inner-eps": "inner.eps",
    "--inner-batch": "inner.batch",
    "--inner-iters": "inner.iters",
    "--train-shots": "inner.shots",
    "--replacement": "inner.replacement",
    "--state-policy": "inner.state_policy",
    "--algorithm": "outer.algorithm",
    "--outer-optimizer": "outer.optimizer",
    "--meta-step": "outer.meta_step",
    "--meta-step-final": "outer.meta_step_final",
    "--outer-lr": "outer.adam_lr",
    "--meta-batch": "outer.meta_batch",
    "--batched": "outer.batched",
    "--tail-shots": "outer.tail_shots",
    "--shots": "eval.shots",
    "--eval-batch": "eval.inner_batch",
    "--eval-iters": "eval.inner_iters",
    "--queries": "eval.queries_per_class",
    "--eval-replacement": "eval.replacement",
    "--eval-mode": "eval.mode",
    "--eval-tasks": "eval.tasks",
    "--eval-chunk": "eval.chunk",
    "--eval-split": "eval.split",
}
