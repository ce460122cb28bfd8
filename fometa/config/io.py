"""Settings read and written: plain dicts, TOML and JSON files, command-line flags.

A configuration is built as ``preset -> config file -> flags``: :func:`apply_overrides` takes
dotted setting names (``"inner.lr"``, ``"meta_iters"``) and :func:`load_file` reads the same
names from TOML (tables for the sections) or JSON. :func:`to_dict` / :func:`from_dict` convert to
plain dicts for JSON and HDF5; :func:`diff` names the settings in which two configurations
differ; :func:`new_run_config` and :func:`resumed_run_config` make a run's configuration of a preset, a
settings file and flags.

Every setting's command-line flag is its dotted name with ``.`` and ``_`` written ``-``
(:func:`flag`: ``inner.lr`` -> ``--inner-lr``, ``meta_iters`` -> ``--meta-iters``); :data:`ALIASES`
keeps the paper's familiar spellings (``--learning-rate``, ``--meta-step``, ``--shots``) and
:data:`DEPRECATED` the flags of earlier versions, which still work.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from fometa.config.presets import PRESETS, closest_preset, for_images, preset
from fometa.config.schema import (
    RESUME_FREE,
    ConfigError,
    RunConfig,
    build,
    parse_image_spec,
    setting_type,
    settings,
)
from fometa.data.images import ImageSpec
from fometa.data.schema import inspect_packed  # h5py loads inside it

__all__ = ["to_dict", "from_dict", "flatten", "parse_value", "apply_overrides", "load_file", "diff",
           "new_run_config", "resumed_run_config", "RETIRED", "flag", "ALIASES", "DEPRECATED"]


# ------------------------------------------------------------------------------------------
# plain dicts, dotted setting names, overrides
# ------------------------------------------------------------------------------------------
def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """A nested plain dict (JSON-serializable) of every setting."""
    return dataclasses.asdict(cfg)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"inner": {"lr": 1e-3}}`` -> ``{"inner.lr": 1e-3}`` (sections are one level deep: a setting's
    own value may be a table, as ``data.image_spec``)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and not prefix:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def parse_value(name: str, value: Any) -> Any:
    """Convert ``value`` (a string from a flag, or a TOML/JSON value) to the type of setting ``name``."""
    if name not in settings():
        raise ConfigError(f"unknown setting {name!r}; known settings: {', '.join(settings())}")
    t, optional = setting_type(name)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and t is not str):
        if optional:
            return None
        raise ConfigError(f"setting {name!r} cannot be none")
    if isinstance(value, str) and t is str and optional and value.lower() in ("none", "null"):
        return None
    if t is ImageSpec:
        return parse_image_spec(name, value)
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


def apply_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """``cfg`` with the dotted settings in ``overrides`` replaced (values parsed by :func:`parse_value`).

    Raises :class:`~fometa.config.ConfigError` for an unknown setting, a value of the wrong type, or
    a resulting configuration that is invalid or contradictory.
    """
    flat = flatten(to_dict(cfg))
    for name, value in overrides.items():
        flat[name] = parse_value(name, value)
    return build(flat)


#: Settings that earlier versions wrote and this one no longer has (``graph``: CUDA-graph replay,
#: which never had a capture behind it): read from old run folders and checkpoints, and ignored.
RETIRED = frozenset({"graph"})


def from_dict(d: dict[str, Any]) -> RunConfig:
    """The configuration a (possibly partial) nested dict describes; missing settings take their defaults.

    A ``"preset"`` key names the base: the dict's other settings override that preset's.
    :data:`RETIRED` settings are ignored.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"a configuration must be a table/object, got {type(d).__name__}")
    base = preset(d["preset"]) if isinstance(d.get("preset"), str) and d["preset"] in PRESETS else RunConfig()
    flat = {k: v for k, v in flatten(d).items() if k not in RETIRED}
    return apply_overrides(base, flat)


def load_file(path: str | Path) -> dict[str, Any]:
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
        elif sys.version_info >= (3, 11):
            import tomllib

            data = tomllib.loads(text)
        else:  # the tomli backport of the test extra
            import tomli

            data = tomli.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ConfigError(f"{path}: not a valid {kind} file: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a table of settings")
    flat = {k: v for k, v in flatten(data).items() if k not in RETIRED}
    unknown = [k for k in flat if k not in settings()]
    if unknown:
        raise ConfigError(f"{path}: unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")
    return flat


def diff(a: RunConfig, b: RunConfig, ignore=()) -> list[tuple[str, Any, Any]]:
    """The settings in which ``a`` and ``b`` differ: ``[(dotted name, a's value, b's value), ...]``."""
    fa, fb = flatten(to_dict(a)), flatten(to_dict(b))
    return [(k, fa[k], fb.get(k)) for k in fa if k not in ignore and fa[k] != fb.get(k)]


# ------------------------------------------------------------------------------------------
# a run's configuration: preset, then file, then flags
# ------------------------------------------------------------------------------------------
def new_run_config(preset_name: str | None, file_settings: dict[str, Any], flags: dict[str, Any],
                   config_file: str | Path | None = None) -> RunConfig:
    """A new run's configuration: the preset ``preset_name`` (or the file's ``preset``; with a data file and
    neither, the paper's setting closest to its images, :func:`~fometa.config.closest_preset`), fitted to the
    data file (:func:`~fometa.config.for_images`), then the settings of the file ``config_file``
    (``file_settings``, as :func:`load_file` reads them), then the flags' (``flags``).

    Raises :class:`~fometa.config.ConfigError`, and :class:`fometa.data.DataError` for a data file that
    cannot be read."""
    settings = {**{k: v for k, v in file_settings.items() if k != "preset"}, **flags}
    name = preset_name or file_settings.get("preset")
    path = settings.get("data.path")
    packed = None  # the data file's kind and preprocessing, which the run is fitted to
    if path is not None and settings.get("data.kind") != "sine" and name != "sine":
        packed = inspect_packed(path).kind, ImageSpec.for_packed(path)
    if name is None:
        if packed is None:
            raise ConfigError(f"no preset: give --preset NAME (one of {', '.join(PRESETS)}), a --config file "
                              "with preset = \"NAME\", or a packed data file (--data FILE.h5)")
        name = closest_preset(packed[1], settings.get("model.ways"), settings.get("eval.shots"))
    base = preset(name)
    if preset_name and file_settings.get("preset") not in (None, preset_name):
        raise ConfigError(f"--preset {preset_name} contradicts preset = {file_settings['preset']!r} in {config_file}")
    if packed is not None:
        base = for_images(base, *packed)
    return apply_overrides(base, settings)


def resumed_run_config(saved: RunConfig, file_settings: dict[str, Any], flags: dict[str, Any], force: bool,
                       where: str = "", keep=("preset",)) -> RunConfig:
    """A stopped run's configuration ``saved`` with the file's and the flags' settings (the file's ``keep``
    left out); a changed setting that changes what is learned (any but ``RESUME_FREE``'s) is refused,
    naming the run by ``where``, unless ``force``. Raises :class:`~fometa.config.ConfigError`."""
    if file_settings.get("preset") not in (None, saved.preset):
        raise ConfigError(f"the config file names preset {file_settings['preset']!r}, the run is {saved.preset!r}")
    cfg = apply_overrides(saved, {**{k: v for k, v in file_settings.items() if k not in keep}, **flags})
    differences = diff(saved, cfg, ignore=RESUME_FREE)
    if differences and not force:
        described = "; ".join(f"{name}: {old!r} in the run, {new!r} now" for name, old, new in differences)
        raise ConfigError(f"the configuration differs from the run's{where}: {described} "
                          "(use --force to resume with the new settings anyway)")
    return cfg


# ------------------------------------------------------------------------------------------
# flags
# ------------------------------------------------------------------------------------------
def flag(name: str) -> str:
    """The command-line flag of setting ``name``: ``inner.lr`` -> ``--inner-lr``, ``meta_iters`` -> ``--meta-iters``."""
    return "--" + name.replace(".", "-").replace("_", "-")


#: The paper's familiar spellings (the reference's flags, and ``--data``, ``--ways``), beside the
#: derived flags: alias -> setting.
ALIASES: dict[str, str] = {
    "--data": "data.path",
    "--ways": "model.ways",
    "--shots": "eval.shots",
    "--train-shots": "inner.shots",
    "--learning-rate": "inner.lr",
    "--algorithm": "outer.algorithm",
    "--meta-step": "outer.meta_step",
    "--meta-step-final": "outer.meta_step_final",
    "--meta-batch": "outer.meta_batch",
    "--eval-batch": "eval.inner_batch",
    "--eval-iters": "eval.inner_iters",
}

#: Flags of earlier versions that are neither derived nor an alias: old flag -> setting. Deprecated:
#: they still work, hidden from the commands' help; the documentation's settings table names them.
DEPRECATED: dict[str, str] = {
    "--protocol": "data.protocol",
    "--split-seed": "data.split_seed",
    "--train-characters": "data.train_characters",
    "--augment-rotations": "data.augment_rotations",
    "--model": "model.arch",
    "--filters": "model.filters",
    "--depth": "model.depth",
    "--init": "model.init",
    "--replacement": "inner.replacement",
    "--state-policy": "inner.state_policy",
    "--outer-lr": "outer.adam_lr",
    "--batched": "outer.batched",
    "--tail-shots": "outer.tail_shots",
    "--queries": "eval.queries_per_class",
    "--tasks": "eval.tasks",
    "--split": "eval.split",
    "--chunk": "eval.chunk",
    "--mode": "eval.mode",
    "--steps": "eval.inner_iters",
    "--eval-every": "eval_interval",
}
