"""One vocabulary: every setting's flag derived from its dotted name, and every command's parser held to it."""
import argparse

import pytest

from fometa import config
from fometa.cli import build_parser
from fometa.commands.options import FIXED, FLAGS, CLIError, overrides_from_args, user_error

#: ``fometa bench`` times several values of these settings in one run: its flags take lists of them
SWEEPS = {("bench", "--preset"), ("bench", "--algorithm")}


def derived(name: str) -> str:
    """The rule, written out again: ``inner.lr`` -> ``--inner-lr``."""
    return "--" + name.replace(".", "-").replace("_", "-")


#: every spelling of every setting that a command may offer: derived flag or alias -> setting
VOCABULARY = {**{derived(n): n for n in config.settings()}, **config.ALIASES}


def _parsers(parser: argparse.ArgumentParser, prefix: str = ""):
    """``(command name, parser)`` of every command and sub-command of ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (prefix + " " + name).strip(), sub
                yield from _parsers(sub, prefix + " " + name)


COMMANDS = dict(_parsers(build_parser()))


def _spellings(action: argparse.Action) -> list[str]:
    """The option strings of ``action``, with a true-or-false flag's ``--no-`` form read as the flag."""
    return [s.replace("--no-", "--", 1) if isinstance(action, argparse.BooleanOptionalAction) else s
            for s in action.option_strings]


def test_every_setting_has_its_derived_flag():
    assert FLAGS == {derived(n): n for n in config.settings() if n not in FIXED}
    assert len(set(VOCABULARY)) == len(VOCABULARY) and len(set(FLAGS)) == len(FLAGS), "two settings share a flag"
    for alias, name in config.ALIASES.items():
        assert name in config.settings() and alias != derived(name), f"{alias} is no alias of a setting"
    for old, name in config.DEPRECATED.items():
        assert name in config.settings(), f"{old} names no setting"
        assert old not in VOCABULARY, f"the earlier flag {old} is a flag of the vocabulary ({VOCABULARY.get(old)})"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_command_takes_each_setting_under_its_flag(command):
    """A flag spelled as a setting is that setting (stored for parse_value, with its description as help);
    a setting's option carries its derived flag; a flag with another meaning has another name."""
    for action in COMMANDS[command]._actions:
        names = {VOCABULARY[s] for s in _spellings(action) if s in VOCABULARY}
        if action.dest.startswith("setting:"):
            name = action.dest.removeprefix("setting:")
            if action.help == argparse.SUPPRESS:  # an earlier version's flag, kept working
                assert set(_spellings(action)) <= {f for f, n in config.DEPRECATED.items() if n == name}, action
                continue
            assert derived(name) in _spellings(action), f"fometa {command}: {name} is not under {derived(name)}"
            assert names == {name}, f"fometa {command}: {action.option_strings} mix settings {names}"
            assert action.help.startswith(config.DESCRIPTIONS[name]), f"fometa {command} {derived(name)}: own help"
        elif names and not action.dest.startswith("moved:"):  # moved: refused, naming its successor
            (name,) = names
            flags = tuple(s for s in action.option_strings if s in VOCABULARY)
            allowed = name in FIXED and action.dest == name or all((command, f) in SWEEPS for f in flags)
            assert allowed, f"fometa {command}: {flags} spell the setting {name} but mean something else"


def test_train_and_eval_name_the_evaluation_settings_alike():
    def flags(command):
        return {a.dest: tuple(a.option_strings) for a in COMMANDS[command]._actions
                if a.dest.startswith("setting:") and a.help != argparse.SUPPRESS}

    train, evaluation = flags("train"), flags("eval")
    assert set(evaluation) <= set(train) and {"setting:eval.tasks", "setting:eval.mode"} <= set(evaluation)
    for dest, option_strings in evaluation.items():
        assert option_strings == train[dest], f"{dest}: fometa eval {option_strings}, fometa train {train[dest]}"
    help_text = COMMANDS["eval"].format_help()
    assert "--eval-tasks" in help_text and "--tasks" not in help_text.replace("--eval-tasks", "")


def test_earlier_flags_still_work_unshown():
    args = build_parser().parse_args(["eval", "RUN", "--tasks", "7", "--mode", "per-query", "--steps", "3"])
    assert overrides_from_args(args, ("eval.tasks", "eval.mode", "eval.inner_iters")) == \
        {"eval.tasks": 7, "eval.mode": "per-query", "eval.inner_iters": 3}
    args = build_parser().parse_args(["train", "--no-batched", "--init", "torch", "--learning-rate", "0.01"])
    given = overrides_from_args(args)
    assert (given["outer.batched"], given["model.init"], given["inner.lr"]) == (False, "torch", 0.01)
    assert "--init" not in COMMANDS["train"].format_help().replace("--model-init", "")


def test_a_flag_that_changed_its_meaning_is_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "RUN", "--seed", "3"])
    assert "--eval-seed" in capsys.readouterr().err
    assert build_parser().parse_args(["eval", "RUN", "--eval-seed", "3"]).eval_seed == 3


def test_errors_name_the_flag_the_user_typed():
    bad = config.ConfigError("meta_iters must be at least 1, got 0")
    assert str(user_error(bad, build_parser().parse_args(["sine", "--meta-iters", "0"]))) == \
        "--meta-iters must be at least 1, got 0"
    bad = config.ConfigError("outer.algorithm must be one of reptile, fomaml, maml, got 'x'")
    # an alias: the setting it stands for is named
    assert str(user_error(bad, build_parser().parse_args(["sine", "--algorithm", "x"]))).startswith("outer.algorithm")
    with pytest.raises(CLIError, match="^--learning-rate: setting 'inner.lr' needs a float"):
        overrides_from_args(build_parser().parse_args(["train", "--learning-rate", "fast"]))
