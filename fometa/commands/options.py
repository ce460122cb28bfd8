"""What the commands share: the user-error type, ``--threads``, the settings' flags and how flags,
files and presets become one configuration.

Every setting of :mod:`fometa.config` has one flag, derived from its dotted name
(:func:`fometa.config.flag`: ``inner.lr`` -> ``--inner-lr``; :data:`FLAGS`), besides the paper's
familiar spellings (:data:`fometa.config.ALIASES`); every command that takes a setting takes it
under these flags (:func:`add_setting_arguments`), with the setting's description as help
(:data:`fometa.config.DESCRIPTIONS`, the same text as the documentation's settings table). The
flags of earlier versions still work, hidden from the help (:data:`fometa.config.DEPRECATED`; the
documentation's settings table names them). ``--set NAME=VALUE`` reaches any setting by its dotted
name. A configuration is built as preset, then ``--config FILE`` (TOML or JSON), then flags. With a
data file (``--data``), the preset may be left out (the paper's setting closest to the file's images
is taken, :func:`fometa.config.closest_preset`) and the configuration is fitted to the file
(:func:`fometa.config.for_images`: its kind, its preprocessing, for a folder file the network).
"""
from __future__ import annotations

import argparse
import os
import sys

from fometa import checkpoint, config, data, parallel
from fometa.backends import get_backend

__all__ = ["CLIError", "add_threads_argument", "apply_threads", "FIXED", "FLAGS", "add_setting_arguments",
           "add_moved_flag", "typed_flag", "overrides_from_args", "user_error", "given_settings", "saved_run",
           "new_config", "resumed_config",
           "describe_differences", "check_backend", "default_run_folder"]


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
#: Settings that no flag sets: the preset is chosen by ``--preset``; the data's kind and preprocessing
#: are read from the data file.
FIXED = ("preset", "data.kind", "data.image_spec")
#: Every other setting's flag, derived from its name (:func:`fometa.config.flag`): flag -> setting.
FLAGS: dict[str, str] = {config.flag(name): name for name in config.settings() if name not in FIXED}
_TYPED = "setting flags typed"  # namespace attribute: setting -> the flag the user typed for it


def _note_typed(namespace: argparse.Namespace, setting: str, option_string: str | None) -> None:
    typed = getattr(namespace, _TYPED, None)
    if typed is None:
        typed = {}
        setattr(namespace, _TYPED, typed)
    typed[setting] = option_string


class _SettingValue(argparse.Action):
    """Stores a setting's value as given (parsed later by :func:`fometa.config.parse_value`), noting the flag typed."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        _note_typed(namespace, self.dest.removeprefix("setting:"), option_string)


class _SettingSwitch(argparse.BooleanOptionalAction):
    """``--flag`` / ``--no-flag`` of a true-or-false setting, noting the flag typed."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        _note_typed(namespace, self.dest.removeprefix("setting:"), option_string)


def setting_help(setting: str, default_note: str) -> str:
    """A flag's help: the setting's description, its dotted name and where its default comes from."""
    return f"{config.DESCRIPTIONS[setting]} [{setting}; default: {default_note}]"


def add_setting_arguments(parser, names, default_note: str = "the preset's",
                          notes: dict[str, str] | None = None) -> None:
    """Each setting of ``names`` under its derived flag and its aliases (stored as ``setting:<name>``,
    ``None`` when not given), and under its deprecated flags, hidden from the help. ``notes`` replaces
    ``default_note`` for single settings."""
    for name in names:
        dest = "setting:" + name
        text = setting_help(name, (notes or {}).get(name, default_note)).replace("%", "%%")
        flags = [config.flag(name)] + [a for a, n in config.ALIASES.items() if n == name]
        old = [f for f, n in config.DEPRECATED.items() if n == name]
        if config.setting_type(name)[0] is bool:
            parser.add_argument(*flags, dest=dest, action=_SettingSwitch, default=None, help=text)
            for flag in old:
                parser.add_argument(flag, dest=dest, action=_SettingSwitch, default=None, help=argparse.SUPPRESS)
        else:
            metavar = name.rsplit(".", 1)[-1].upper()
            parser.add_argument(*flags, dest=dest, action=_SettingValue, default=None, metavar=metavar, help=text)
            for flag in old:
                parser.add_argument(flag, dest=dest, action=_SettingValue, default=None, help=argparse.SUPPRESS)


def add_moved_flag(parser, old: str, message: str) -> None:
    """An earlier version's flag that now has another name and cannot be kept as an alias (it would
    mean another thing than the setting spelled so): refused with ``message``, hidden from the help."""

    class Moved(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            parser.error(f"{option_string} {message}")

    parser.add_argument(old, dest="moved:" + old, action=Moved, nargs="?", help=argparse.SUPPRESS)


def typed_flag(args, name: str) -> str:
    """The flag by which the user gave setting ``name`` (its derived flag when it came otherwise)."""
    return (getattr(args, _TYPED, None) or {}).get(name) or config.flag(name)


def overrides_from_args(args, names=None) -> dict:
    """``{setting: value}`` of the settings of ``names`` (default: every flag's) given as flags, then of
    ``--set``, with the flags named in errors."""
    out = {}
    for name in FLAGS.values() if names is None else names:
        value = getattr(args, "setting:" + name, None)
        if value is None:
            continue
        try:
            out[name] = config.parse_value(name, value)
        except config.ConfigError as exc:
            raise CLIError(f"{typed_flag(args, name)}: {exc}") from None
    for item in getattr(args, "set", []) or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f"--set needs NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = config.parse_value(name.strip(), value.strip())
        except config.ConfigError as exc:
            raise CLIError(f"--set: {exc}") from None
    return out


def user_error(exc: Exception, args) -> CLIError:
    """``exc`` as the command's one-line error. A configuration error about a setting given by its own
    derived flag names that flag (``--meta-iters must be at least 1``), the spelling the user typed."""
    message = str(exc)
    if isinstance(exc, config.ConfigError):
        for name, typed in (getattr(args, _TYPED, None) or {}).items():
            if typed in (config.flag(name), "--no-" + config.flag(name)[2:]) and message.startswith(name + " "):
                message = config.flag(name) + message[len(name):]
    return CLIError(message)


def given_settings(args) -> tuple[dict, dict]:
    """The settings given to a training command: ``(the --config file's, the flags')``, kept apart because
    the file may name the preset and the flags come last."""
    return (config.load_file(args.config) if args.config else {}), overrides_from_args(args)


def saved_run(folder, quiet: bool = False, set_aside: bool = False) -> tuple[config.RunConfig,
                                                                             checkpoint.Checkpoint | None]:
    """A stopped run's configuration and the checkpoint to continue it from: the latest, or the previous one
    if the latest is damaged (said on stderr unless ``quiet``; with ``set_aside``, by a caller holding the
    folder, the damaged file is also moved aside: :meth:`fometa.runfolder.RunFolder.load_checkpoint`);
    ``None`` when the run stopped before its first checkpoint (the configuration is then its folder's
    ``config.json``)."""
    resume = None
    if folder.has_checkpoint():
        resume, note = folder.load_checkpoint(set_aside=set_aside)
        if note and not quiet:
            print(f"fometa train: {note}", file=sys.stderr, flush=True)
    return (config.from_dict(resume.config) if resume is not None else folder.read_config()), resume


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
