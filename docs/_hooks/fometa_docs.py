"""The documentation's generated parts, written from the code and the committed files: into the pages
themselves (``python docs/_hooks/fometa_docs.py``), so that they read the same on GitHub as on the site,
and again by the site build (an mkdocs hook), which finds the same text.

A generated part is a block between two HTML comments, each on a line of its own::

    <!-- fometa:KIND ARGS -->
    ...what the generator writes...
    <!-- /fometa:KIND -->

A page asks for a new part with the first line alone; writing the pages fills it in and adds the
second. The kinds:

``<!-- fometa:settings -->``
    every setting of :mod:`fometa.config`: its flag (:data:`fometa.commands.options.FLAGS`) and the
    paper's familiar spellings of it (:data:`fometa.config.ALIASES`), its dotted name, its meaning
    (:data:`fometa.config.DESCRIPTIONS`), its value in the presets and the flags earlier versions gave
    it (:data:`fometa.config.DEPRECATED`);
``<!-- fometa:presets -->``
    the settings in which the presets differ, one column per preset;
``<!-- fometa:command NAME -->``
    ``fometa NAME``'s usage and options, from the CLI's own parser (:func:`fometa.cli.build_parser`);
``<!-- fometa:results RUN RUN ... -->``
    the rows ``tools/results_table.py`` writes for these run folders of ``docs/results/``;
``<!-- fometa:seeds RUN RUN ... -->``
    the same runs' accuracies side by side, with their mean and standard deviation over the runs;
``<!-- fometa:sine RUN -->``
    the sine-wave record ``docs/results/RUN/result.json`` as a table;
``<!-- fometa:models -->``
    the shipped models of ``fometa/pretrained/index.json``: budget, accuracies, size, and
    whether the checkpoint is shipped yet (what ``fometa models`` lists);
``<!-- fometa:include PATH#ANCHOR -->``
    the section of the repository file PATH under the heading whose anchor is ANCHOR, its headings
    moved one level down.

Nothing a reader sees in these parts is typed by hand, so none of it can go stale:
``tests/test_docs.py`` holds every page equal to what this writes. The functions are plain
(``render(markdown)``) so that the tests can call them without mkdocs.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
#: a generated part: its opening comment and, once written, what was generated and the closing comment (the
#: body holds no other opening comment, so a new part never swallows the next one)
BLOCK = re.compile(r"^<!-- fometa:(?P<kind>\w[\w-]*)(?: (?P<arg>[^\n]*?))? -->$"
                   r"(?:(?P<body>(?:(?!^<!-- fometa:).)*?)^<!-- /fometa:(?P=kind) -->$)?", re.MULTILINE | re.DOTALL)
#: the usage lines' width (fixed, so that the text does not depend on the terminal that writes it)
WIDTH = 100


# ----------------------------------------------------------------------------------------------
# settings and presets
# ----------------------------------------------------------------------------------------------
def _value(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _cell(text: str) -> str:
    """Text for a Markdown table cell: no column breaks, and ``<name>`` shown rather than read as HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def settings_table() -> str:
    from fometa import config
    from fometa.commands.options import FLAGS

    flag_of = {setting: flag for flag, setting in FLAGS.items()}
    presets = {name: config.flatten(config.to_dict(cfg)) for name, cfg in config.PRESETS.items()}
    lines = ["| flag | setting | meaning | value in the presets | earlier flag |", "|---|---|---|---|---|"]
    for name in config.settings():
        values = {_value(p[name]) for p in presets.values()}
        value = f"`{values.pop()}`" if len(values) == 1 else "[per preset](#presets)"
        flags = [flag_of[name]] + [a for a, n in config.ALIASES.items() if n == name] if name in flag_of else []
        flag = ", ".join(f"`{f}`" for f in flags) or "(preset only)"
        old = ", ".join(f"`{f}`" for f, n in config.DEPRECATED.items() if n == name)
        lines.append(f"| {flag} | `{name}` | {_cell(config.DESCRIPTIONS[name])} | {value} | {old} |")
    return "\n".join(lines)


def presets_table() -> str:
    from fometa import config

    presets = {name: config.flatten(config.to_dict(cfg)) for name, cfg in config.PRESETS.items()}
    names = list(presets)
    lines = ["| setting | " + " | ".join(f"`{n}`" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for setting in config.settings():
        row = [_value(presets[n][setting]) for n in names]
        if len(set(row)) > 1 and setting != "preset":
            lines.append(f"| `{setting}` | " + " | ".join(row) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# commands, from the CLI's own parser
# ----------------------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option_rows(parser: argparse.ArgumentParser, skip_groups=()) -> list[str]:
    formatter = parser._get_formatter()
    rows = []
    for group in parser._action_groups:
        if group.title in skip_groups:
            continue
        for action in group._group_actions:
            if action.help == argparse.SUPPRESS or isinstance(action, (argparse._HelpAction,
                                                                      argparse._SubParsersAction)):
                continue
            if action.option_strings:
                metavar = "" if action.nargs == 0 else " " + formatter._format_args(
                    action, formatter._get_default_metavar_for_optional(action))
                name = ", ".join(f"{o}{metavar}" for o in action.option_strings)
                if isinstance(action, argparse.BooleanOptionalAction):
                    name = " / ".join(action.option_strings)
            else:
                name = formatter._format_args(action, formatter._get_default_metavar_for_positional(action))
            rows.append(f"| `{name}` | {_cell(formatter._expand_help(action) if action.help else '')} |")
    return rows


def command_reference(name: str) -> str:
    """``fometa NAME`` (``"data"``, ``"data folder"``, ...) and every sub-command below it."""
    from fometa.cli import build_parser

    parser = build_parser()
    for part in name.split():
        parser = _subparsers(parser)[part]
    out = []
    _describe(parser, f"fometa {name}", out)
    return "\n".join(out)


def usage(parser: argparse.ArgumentParser) -> str:
    """``usage: PROG [options] ...`` of ``parser``, wrapped at :data:`WIDTH` between arguments (argparse's own
    wraps at the terminal's width and words it differently from one Python version to the next)."""
    formatter = parser._get_formatter()
    parts = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            parts.append(formatter._format_args(action, action.dest))
        elif action.option_strings:
            if isinstance(action, argparse.BooleanOptionalAction):
                item = " | ".join(action.option_strings)
            else:
                args = "" if action.nargs == 0 else " " + formatter._format_args(
                    action, formatter._get_default_metavar_for_optional(action))
                item = action.option_strings[0] + args
            parts.append(item if action.required else f"[{item}]")
        else:
            parts.append(formatter._format_args(action, formatter._get_default_metavar_for_positional(action)))
    lines, line = [], f"usage: {parser.prog}"
    indent = " " * (len("usage: ") + len(parser.prog) + 1)
    for part in parts:
        if len(line) + 1 + len(part) > WIDTH and line.strip() != f"usage: {parser.prog}":
            lines.append(line)
            line = indent + part
        else:
            line += " " + part
    return "\n".join(lines + [line])


def _describe(parser, title: str, out: list) -> None:
    subs = _subparsers(parser)
    settings_group = "settings (override the preset)"
    out += [f"### `{title}`", ""]
    if parser.description:
        out += [parser.description[0].upper() + parser.description[1:] + ".", ""]
    out += ["```text", usage(parser), "```", ""]
    rows = _option_rows(parser, skip_groups=(settings_group,))
    if rows:
        out += ["| argument | meaning |", "|---|---|", *rows, ""]
    if any(g.title == settings_group and g._group_actions for g in parser._action_groups):
        out += ["Every setting has a flag as well: see [the settings](#settings).", ""]
    for sub_name, sub in subs.items():
        _describe(sub, f"{title} {sub_name}", out)


# ----------------------------------------------------------------------------------------------
# results, from the committed run folders
# ----------------------------------------------------------------------------------------------
def _results_tool():
    spec = importlib.util.spec_from_file_location("results_table", ROOT / "tools" / "results_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def results_table(runs: list[str]) -> str:
    tool = _results_tool()
    return "\n".join([tool.HEADER, *[row for run in runs for row in tool.rows(RESULTS / run)]])


def _evals(run: str) -> dict:
    """``{(shots, mode): record}`` of a run folder's ``eval-*.jsonl``."""
    out = {}
    for path in sorted((RESULTS / run).glob("eval-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                out[rec["shots"], rec["mode"]] = rec
    return out


def seeds_table(runs: list[str]) -> str:
    evals = {run: _evals(run) for run in runs}
    columns = sorted({key for e in evals.values() for key in e}, key=lambda k: (k[0], k[1] != "transductive"))
    lines = ["| run | training seed | " + " | ".join(f"{s}-shot {m}" for s, m in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for run in runs:
        seed = json.loads((RESULTS / run / "config.json").read_text())["seed"]
        cells = []
        for key in columns:
            rec = evals[run].get(key)
            cells.append("" if rec is None else f"{100 * rec['accuracy']:.2f} ± {100 * rec['ci95']:.2f}%")
        lines.append(f"| `{run}` | {seed} | " + " | ".join(cells) + " |")
    stats = []
    for key in columns:
        accs = [100 * e[key]["accuracy"] for e in evals.values() if key in e]
        stats.append(f"{statistics.mean(accs):.2f}%, {statistics.stdev(accs):.2f}" if len(accs) > 1 else "")
    lines.append("| mean, standard deviation over seeds | | " + " | ".join(stats) + " |")
    return "\n".join(lines)


def sine_table(run: str) -> str:
    rec = json.loads((RESULTS / run / "result.json").read_text())
    return "\n".join([
        "| algorithm | meta-iterations | seed | test tasks | MSE after 32 steps, trained | untrained init "
        "| wall time |",
        "|---|---|---|---|---|---|---|",
        f"| {rec['algorithm']} | {rec['meta_iters']:,} | {rec['seed']} | {rec['eval_tasks']} "
        f"| {rec['mse_trained']:.3f} ± {rec['mse_trained_ci95']:.3f} | {rec['mse_untrained']:.3f} "
        f"| {rec['seconds']:.0f} s |",
    ])


# ----------------------------------------------------------------------------------------------
# sections of other files
# ----------------------------------------------------------------------------------------------
def _anchor(heading: str) -> str:
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return re.sub(r"[ ]+", "-", text.strip())


def include_section(spec: str) -> str:
    path, _, anchor = spec.partition("#")
    lines = (ROOT / path).read_text().splitlines()
    start = level = None
    out = []
    for line in lines:
        m = re.match(r"^(#+) (.*)$", line)
        if start is None:
            if m and _anchor(m.group(2)) == anchor:
                start, level = True, len(m.group(1))
                out.append("#" + line)
            continue
        if m and len(m.group(1)) <= level:
            break
        out.append("#" + line if m else line)
    if not out:
        raise ValueError(f"{path} has no heading with the anchor {anchor!r}")
    return "\n".join(out)


def models_table(arg: str) -> str:  # noqa: ARG001 - a table macro's signature
    """The package's shipped models, one row each: the registry's entries, their accuracies as
    ``fometa models`` words them."""
    from fometa import pretrained
    from fometa.commands.models import accuracy_lines

    rows = ["| name | what | meta-iterations | test accuracy | file |", "|---|---|---|---|---|"]
    for m in pretrained.models():
        if m.registry != pretrained.PACKAGE_REGISTRY:
            continue
        accuracy = "<br>".join(_cell(line) for line in accuracy_lines(m.entry.get("accuracies"))) or "-"
        file = f"{m.bytes / 2**20:.2f} MiB, SHA-256 `{m.sha256[:12]}…`" if m.shipped else "not shipped yet"
        rows.append(f"| `{m.name}` | {_cell(m.description)} | {m.entry['meta_iterations']:,} | {accuracy} | {file} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------------------------
GENERATORS = {
    "models": models_table,
    "settings": lambda arg: settings_table(),
    "presets": lambda arg: presets_table(),
    "command": command_reference,
    "results": lambda arg: results_table(arg.split()),
    "seeds": lambda arg: seeds_table(arg.split()),
    "sine": sine_table,
    "include": include_section,
}


def render(markdown: str) -> str:
    """``markdown`` with every generated part written afresh (a new one filled in and closed)."""
    def replace(m):
        kind, arg = m.group("kind"), (m.group("arg") or "").strip()
        if kind not in GENERATORS:
            raise ValueError(f"unknown generated part {kind!r}")
        opening = f"<!-- fometa:{kind}{' ' + arg if arg else ''} -->"
        return f"{opening}\n\n{GENERATORS[kind](arg).strip()}\n\n<!-- /fometa:{kind} -->"
    return BLOCK.sub(replace, markdown)


def pages() -> list[Path]:
    """The documentation's pages (``docs/**/*.md``)."""
    return sorted((ROOT / "docs").rglob("*.md"))


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 (mkdocs' hook signature)
    return render(markdown)


def main(argv=None) -> int:
    """Write every page's generated parts (``--check``: only say which pages differ from what would be written)."""
    parser = argparse.ArgumentParser(prog="python docs/_hooks/fometa_docs.py", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page is not up to date")
    args = parser.parse_args(argv)
    stale = []
    for page in pages():
        text = page.read_text()
        new = render(text)
        if new != text:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(new)
    for page in stale:
        print(f"{'not up to date' if args.check else 'wrote'}: {page}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(ROOT))  # run from a checkout: its fometa, as the site build uses
    sys.exit(main())
