"""What the commands share: the user-error type, ``--threads``, the settings' flags and how flags,
files and presets become one configuration.

Every setting of :mod:`fometa.config` has a flag (:data:`FLAGS`) whose help is the setting's
description (:data:`fometa.config.DESCRIPTIONS`, the same text as the documentation's settings
table); ``--set NAME=VALUE`` reaches any setting by its dotted name. A configuration is built as
preset, then ``--config FILE`` (TOML or JSON), then flags. With a data file (``--data``), the
preset may be left out (the paper's setting closest to the file's images is taken,
:func:`fometa.config.closest_preset`) and the configuration is fitted to the file
(:func:`fometa.config.for_images`: its kind, its preprocessing, for a folder file the network).
"""
from __future__ import annotations

import argparse
import os

from fometa import config, data, parallel
from fometa.backends import get_backend

__all__ = ["CLIError", "add_threads_argument", "apply_threads", "FLAGS", "add_setting_arguments",
           "overrides_from_args", "new_config", "describe_differences", "check_backend"]


class CLIError(Exception):
    """A user error: printed as one line 'fometa: error: ...' with exit status 2."""


# ------------------------------------------------------------------------------------------
# threads
# ------------------------------------------------------------------------------------------
def add_threads_argument(p):
    """``--threads N``: task blocks on N threads, one BLAS thread each (:mod:`fometa.parallel`)."""
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads for task blocks, one BLAS thread each (default: $FOMETA_THREADS or the cores)")


def apply_threads(args) -> None:
    """Hand ``--threads`` to :func:`fometa.parallel.set_threads`; a bad value is a user error."""
    if getattr(args, "threads", None) is None:
        try:
            parallel.get_threads()  # reads FOMETA_THREADS: a bad value is a user error too
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        return
    if args.threads < 1:
        raise CLIError(f"--threads must be at least 1, got {args.threads}")
    parallel.set_threads(args.threads)


# ------------------------------------------------------------------------------------------
# settings as flags
# ------------------------------------------------------------------------------------------
#: Command-line flags of ``fometa train`` (and, for evaluation settings, ``fometa eval``): flag -> setting.
#: Every setting but ``preset`` (``--preset``), ``data.kind`` and ``data.image_spec`` (read from the data
#: file) has one.
FLAGS: dict[str, str] = {
    "--meta-iters": "meta_iters",
    "--eval-interval": "eval_interval",
    "--interval-tasks": "interval_tasks",
    "--checkpoint-every": "checkpoint_every",
    "--seed": "seed",
    "--backend": "backend",
    "--data": "data.path",
    "--protocol": "data.protocol",
    "--split-seed": "data.split_seed",
    "--train-characters": "data.train_characters",
    "--augment-rotations": "data.augment_rotations",
    "--ways": "model.ways",
    "--model": "model.arch",
    "--filters": "model.filters",
    "--depth": "model.depth",
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


def _is_bool(setting: str) -> bool:
    return config._base_type(config.settings()[setting])[0] is bool


def setting_help(setting: str, default_note: str) -> str:
    """A flag's help: the setting's description, its dotted name and where its default comes from."""
    return f"{config.DESCRIPTIONS[setting]} [{setting}; default: {default_note}]"


def add_setting_arguments(parser, flags: dict[str, str], default_note: str = "the preset's") -> None:
    """One option per ``flag -> setting`` of ``flags`` (stored as ``setting:<name>``; ``None`` when not given)."""
    for flag, name in flags.items():
        dest, text = "setting:" + name, setting_help(name, default_note).replace("%", "%%")
        if _is_bool(name):
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            parser.add_argument(flag, dest=dest, default=None, metavar=name.rsplit(".", 1)[-1].upper(), help=text)


def overrides_from_args(args, flags=None) -> dict:
    """``{setting: value}`` of the flags given (``--set`` last), with flag names in errors."""
    out = {}
    for flag, name in (flags or FLAGS).items():
        value = getattr(args, "setting:" + name, None)
        if value is None:
            continue
        try:
            out[name] = config.parse_value(name, value)
        except config.ConfigError as exc:
            raise CLIError(f"{flag}: {exc}") from None
    for item in getattr(args, "set", []) or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f"--set needs NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = config.parse_value(name.strip(), value.strip())
        except config.ConfigError as exc:
            raise CLIError(f"--set: {exc}") from None
    return out


def new_config(args, file_settings: dict, flags: dict) -> config.RunConfig:
    """A new run's configuration: ``--preset`` (or the file's ``preset``; with a data file and neither, the
    closest to its images), fitted to the data file, then the config file, then the flags.

    Raises :class:`fometa.data.DataError` for a data file that cannot be read."""
    settings = {**{k: v for k, v in file_settings.items() if k != "preset"}, **flags}
    name = args.preset or file_settings.get("preset")
    path = settings.get("data.path")
    kind = spec = None
    if path is not None and settings.get("data.kind") != "sine" and name != "sine":
        kind, spec = data.inspect_packed(path).kind, data.ImageSpec.for_packed(path)
    if name is None:
        if spec is None:
            raise CLIError(f"no preset: give --preset NAME (one of {', '.join(config.PRESETS)}), a --config file "
                           "with preset = \"NAME\", or a packed data file (--data FILE.h5)")
        name = config.closest_preset(spec, settings.get("model.ways"), settings.get("eval.shots"))
    base = config.preset(name)
    if args.preset and file_settings.get("preset") not in (None, args.preset):
        raise CLIError(f"--preset {args.preset} contradicts preset = {file_settings['preset']!r} in {args.config}")
    if spec is not None:
        base = config.for_images(base, kind, spec)
    return config.apply_overrides(base, settings)


def resumed_config(saved: config.RunConfig, file_settings: dict, flags: dict, force: bool, where: str = "",
                   keep=("preset",)) -> config.RunConfig:
    """A stopped run's configuration with the file's and the flags' settings; a changed setting that
    changes what is learned is refused unless ``force``."""
    if file_settings.get("preset") not in (None, saved.preset):
        raise CLIError(f"the config file names preset {file_settings['preset']!r}, the run is {saved.preset!r}")
    cfg = config.apply_overrides(saved, {**{k: v for k, v in file_settings.items() if k not in keep}, **flags})
    differences = config.diff(saved, cfg, ignore=config.RESUME_FREE)
    if differences and not force:
        raise CLIError(f"the configuration differs from the run's{where}: {describe_differences(differences)} "
                       "(use --force to resume with the new settings anyway)")
    return cfg


def describe_differences(differences) -> str:
    return "; ".join(f"{name}: {old!r} in the run, {new!r} now" for name, old, new in differences)


def check_backend(name) -> None:
    """Raise :class:`CLIError` unless backend ``name`` can be used here."""
    try:
        get_backend(name)
    except ValueError as exc:  # an unknown name (BackendError: one this machine lacks, caught by the CLI)
        raise CLIError(f"--backend: {exc}") from None


def default_run_folder(cfg: config.RunConfig) -> str:
    """Where a new run goes without ``--out``: ``runs/<preset>``, for a folder file ``runs/<its name>``."""
    if cfg.data.kind == "folder" and cfg.data.path:
        return os.path.join("runs", os.path.splitext(os.path.basename(cfg.data.path))[0])
    return os.path.join("runs", cfg.preset)
