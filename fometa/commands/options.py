"""What the commands share: the user-error type, ``--threads`` and the settings' flags.

Every setting of :mod:`fometa.config` has one flag, derived from its dotted name
(:func:`fometa.config.flag`: ``inner.lr`` -> ``--inner-lr``; :data:`FLAGS`), besides the paper's
familiar spellings (:data:`fometa.config.ALIASES`); every command that takes a setting takes it
under these flags (:func:`add_setting_arguments`), with the setting's description as help
(:data:`fometa.config.DESCRIPTIONS`, the same text as the documentation's settings table). The
flags of earlier versions still work, hidden from the help (:data:`fometa.config.DEPRECATED`; the
documentation's settings table names them). ``--set NAME=VALUE`` reaches any setting by its dotted
name (:func:`overrides_from_args`). How a training's flags, ``--config`` file and preset become its
configuration is :mod:`fometa.commands.train`'s.
"""
from __future__ import annotations

import argparse

from fometa import config, parallel
from fometa.backends import get_backend

__all__ = ["CLIError", "add_threads_argument", "apply_threads", "FIXED", "FLAGS", "add_setting_arguments",
           "add_moved_flag", "typed_flag", "overrides_from_args", "user_error", "check_backend"]


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


def check_backend(name) -> None:
    """Raise :class:`CLIError` unless backend ``name`` can be used here."""
    try:
        get_backend(name)
    except ValueError as exc:  # an unknown name (BackendError: one this machine lacks, caught by the CLI)
        raise CLIError(f"--backend: {exc}") from None
