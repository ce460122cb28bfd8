"""The README and the documentation cannot rot: their examples run, their commands parse, their lists match the code.

* every ```python block of README.md and docs/ runs (in a fresh folder, on images the test draws, or on
  the real packed Omniglot where the block reads ``datasets/omniglot.h5``: skipped without it, saying
  how to point the tests at it; a block that uses scikit-learn skips without it);
* every ``fometa ...`` command in a ```bash block parses with the CLI's own parser
  (:func:`fometa.cli.build_parser`), and a ``fometa train --preset`` command's settings build a valid
  configuration; every ``python tools/...`` and ``bash tools/...`` script named exists;
* every ```toml block is a configuration file that loads;
* the README is a landing page (at most 150 lines) whose set-up commands are the ones CI runs, whose
  links resolve, and whose Architecture table names every module of the package and nothing else; the
  documentation's Architecture page names every module file;
* the generated parts of the pages (settings, presets, commands, results, models) are committed as
  generated: each page on disk is what ``python docs/_hooks/fometa_docs.py`` writes and what the site
  build makes of it, so it reads the same on GitHub; they cover every setting, flag and command, each
  command once;
* every public function, class and method of the modules the API reference shows has a docstring;
* no page names a machine's own paths.

The pages are read as they are on disk, generated parts included, as GitHub and the site show them.
"""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from load_by_path import load_module

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
HOW = ("set FOMETA_DATA_DIR to the folder holding omniglot/images_background.zip and "
       "omniglot/images_evaluation.zip (or pack datasets/omniglot.h5 with fometa data omniglot) to run it")


HOOK = load_module("docs/_hooks/fometa_docs.py", "fometa_docs")


def _text(page: Path) -> str:
    return page.read_text()


def _blocks(lang: str):
    """``(id, code)`` of every fenced block in language ``lang``, over all pages."""
    out = []
    for page in PAGES:
        text = _text(page)
        for m in FENCE.finditer(text):
            if m.group(1) == lang:
                line = text[:m.start()].count("\n") + 1
                out.append(pytest.param(m.group(2), id=f"{page.relative_to(ROOT)}:{line}"))
    return out


# ----------------------------------------------------------------------------------------------
# python blocks run
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def real_omniglot_file(tmp_path_factory):
    """The real packed Omniglot: ``datasets/omniglot.h5`` of the checkout, or packed once from FOMETA_DATA_DIR."""
    local = ROOT / "datasets" / "omniglot.h5"
    if local.exists():
        return local
    zips = [Path(os.environ.get("FOMETA_DATA_DIR") or "FOMETA_DATA_DIR-is-not-set") / "omniglot" / name
            for name in ("images_background.zip", "images_evaluation.zip")]
    if not all(z.exists() for z in zips):
        pytest.skip(f"no real Omniglot: {HOW}")
    pytest.importorskip("PIL")
    from fometa.data.pack_omniglot import pack_omniglot

    return pack_omniglot(zips, tmp_path_factory.mktemp("omniglot") / "omniglot.h5", progress=False)


def _draw_characters(folder: Path, classes: int, per_class: int, seed: int = 0) -> None:
    """``folder/char<c>/<i>.png``: black blob characters on white, each class its own pattern, shifted."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        pattern = rng.random((7, 7)) < 0.4
        (folder / f"char{c}").mkdir(parents=True)
        for i in range(per_class):
            img = np.ones((105, 105), dtype=bool)
            y, x = 20 + rng.integers(0, 12, size=2)
            img[y:y + 63, x:x + 63] = ~np.kron(pattern, np.ones((9, 9), dtype=bool))
            Image.fromarray(img).convert("L").save(folder / f"char{c}" / f"{i}.png")


@pytest.mark.parametrize("code", _blocks("python"))
def test_python_example_runs(code, tmp_path, monkeypatch, request):
    monkeypatch.chdir(tmp_path)
    if "datasets/omniglot.h5" in code:
        real = request.getfixturevalue("real_omniglot_file")
        (tmp_path / "datasets").mkdir()
        (tmp_path / "datasets" / "omniglot.h5").symlink_to(real)
    if "sklearn" in code:
        pytest.importorskip("sklearn", reason="the scikit-learn examples need the sklearn extra")
    if '"omniglot-5way"' in code:  # a shipped model fine-tuned on the samples, or on the reader's drawings
        pytest.importorskip("PIL")
        from fometa import pretrained

        try:
            pretrained.checkpoint_path("omniglot-5way")
        except pretrained.RegistryError as exc:
            pytest.skip(f"the shipped model is not in this installation: {exc}")
        _draw_characters(tmp_path / "my_chars", classes=5, per_class=2)
        from fometa import samples

        samples.copy_to("omniglot", tmp_path / "samples")
        for c in range(5):  # one support image a class; a second drawing of char3 is the query
            second = tmp_path / "my_chars" / f"char{c}" / "1.png"
            second.rename(tmp_path / "q.png") if c == 3 else second.unlink()
        _draw_characters(tmp_path / "my_labelled", classes=5, per_class=4, seed=1)  # for a search
    exec(compile(code, "<documentation example>", "exec"), {"__name__": "__docs__"})


# ----------------------------------------------------------------------------------------------
# commands parse
# ----------------------------------------------------------------------------------------------
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ">", ">>", "<", "2>", "do", "then", "else"}


def _commands(block: str):
    """Each simple command of a bash block as its words (line continuations joined, comments dropped)."""
    block = block.replace("\\\n", " ")
    for line in block.splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
        lex.whitespace_split = True
        lex.commenters = "#"
        words, current = list(lex), []
        for w in words + [";"]:
            if w in SEPARATORS or set(w) <= set(";&|()<>"):
                if current:
                    yield current
                current = []
            else:
                current.append(w)


def _fometa_args(words):
    """The arguments of a ``fometa`` command (after env assignments, ``mpiexec -n N``), or None."""
    i = 0
    while i < len(words) and re.match(r"^\w+=", words[i]):
        i += 1
    if i < len(words) and words[i] in ("mpiexec", "mpirun"):
        i += 1
        while i < len(words) and words[i].startswith("-"):
            i += 2
    if i < len(words) and words[i] == "fometa":
        return words[i + 1:]
    return None


def _command_params():
    out = []
    for param in _blocks("bash"):
        (block,), pid = param.values, param.id
        for words in _commands(block):
            out.append(pytest.param(words, id=f"{pid}:{' '.join(words)[:60]}"))
    return out


COMMANDS = _command_params()


@pytest.mark.parametrize("words", COMMANDS)
def test_shown_command_is_valid(words, capsys):
    args = _fometa_args(words)
    if args is not None:
        from fometa import config
        from fometa.cli import build_parser
        from fometa.commands.options import overrides_from_args

        try:
            ns = build_parser().parse_args(args)
        except SystemExit:
            pytest.fail(f"fometa {' '.join(args)}: the CLI refuses it: {capsys.readouterr().err.strip()}")
        if ns.command == "train" and getattr(ns, "preset", None):
            overrides = {k: v for k, v in overrides_from_args(ns).items() if "$" not in str(v)}
            config.apply_overrides(config.preset(ns.preset), overrides)  # raises ConfigError if invalid
    elif words[0] in ("python", "bash") and len(words) > 1 and words[1].startswith("tools/"):
        assert (ROOT / words[1]).is_file(), f"{' '.join(words)}: no such script"


def test_the_pages_show_fometa_commands():
    assert sum(_fometa_args(p.values[0]) is not None for p in COMMANDS) >= 40


@pytest.mark.parametrize("block", _blocks("toml"))
def test_shown_config_file_loads(block, tmp_path):
    from fometa import config

    path = tmp_path / "run.toml"
    path.write_text(block)
    settings = config.load_file(path)
    config.apply_overrides(config.preset(settings.pop("preset")), settings)


# ----------------------------------------------------------------------------------------------
# the README: a landing page that agrees with CI and the code
# ----------------------------------------------------------------------------------------------
README = (ROOT / "README.md").read_text()


def test_readme_is_a_landing_page():
    assert len(README.splitlines()) <= 150
    for part in ("## Install and test", "## Quick start", "## Results", "## Architecture", "fometa sine",
                 "fometa train --preset", "fometa predict", "FewShotClassifier", "v3"):
        assert part in README, part


def test_readme_setup_commands_are_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    install = re.search(r'pip install[^\n]*-e "(\.\[[^\]]+\])"', ci).group(1)
    test = re.search(r"^(HYPOTHESIS_PROFILE=\S+ python -m pytest[^\n]*)$", ci, re.MULTILINE).group(1)
    setup = README[README.index("## Install and test"):README.index("## Quick start")]
    assert f'pip install -e "{install}"' in setup
    assert test in setup


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not re.match(r"^\w+://", target):
            assert (ROOT / target).exists(), target


def _package_modules() -> list[str]:
    pkg = ROOT / "fometa"
    return sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*.py") if "__pycache__" not in p.parts)


def _named(section: str) -> set[str]:
    """The module names in the first column of a section's tables (``meta.py``, ``models/``, ...)."""
    names = set()
    for row in re.findall(r"^\| (.+?) \|", section, re.MULTILINE):
        names |= set(re.findall(r"`([\w/]+(?:\.py|/))`", row))
    return names


def test_readme_architecture_names_every_module_and_only_those():
    section = README[README.index("## Architecture"):README.index("## Documentation")]
    named = _named(section)
    for name in named:
        assert (ROOT / "fometa" / name).exists(), f"the README names {name}, which fometa/ does not hold"
    top = {m for m in _package_modules() if "/" not in m} - {"__init__.py", "__main__.py"}
    subpackages = {m.split("/")[0] + "/" for m in _package_modules() if "/" in m}
    missing = sorted((top | subpackages) - named)
    assert not missing, f"the README's Architecture table misses {missing}"


def test_architecture_page_names_every_module_file():
    page = (ROOT / "docs" / "architecture.md").read_text()
    named = _named(page[:page.index("## Outside the package")])
    for name in named:
        assert (ROOT / "fometa" / name).exists(), f"docs/architecture.md names {name}, which fometa/ does not hold"
    missing = sorted(set(_package_modules()) - named)
    assert not missing, f"docs/architecture.md misses {missing}"


# ----------------------------------------------------------------------------------------------
# generated parts
# ----------------------------------------------------------------------------------------------
def test_settings_table_covers_every_setting_and_flag():
    from fometa import config
    from fometa.commands.options import FLAGS

    table = HOOK.settings_table()
    for name in config.settings():
        assert f"| `{name}` |" in table, name
    for flag in FLAGS:
        assert f"`{flag}`" in table, flag


@pytest.mark.parametrize("page", HOOK.pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_parts_are_committed_as_generated(page):
    """What GitHub shows is what the site shows: the page on disk is what the generator writes, and what the
    site build (the mkdocs hook) makes of it."""
    text = page.read_text()
    assert HOOK.render(text) == text, (f"{page.relative_to(ROOT)}: its generated parts are out of date; "
                                       "run python docs/_hooks/fometa_docs.py")
    assert HOOK.on_page_markdown(text, None, None, None) == text


def test_a_new_generated_part_is_filled_in_and_closed():
    page = "# Page\n\n<!-- fometa:command samples -->\n\n<!-- fometa:sine sine-seed0 -->\n\nText.\n"
    once = HOOK.render(page)
    assert HOOK.render(once) == once and once.endswith("<!-- /fometa:sine -->\n\nText.\n")
    assert once.count("<!-- /fometa:command -->") == 1 and "usage: fometa samples" in once
    stale = once.replace("usage: fometa samples", "usage: fometa old-name")
    assert HOOK.render(stale) == once


def test_every_command_is_on_the_commands_page_once_with_its_usage():
    from fometa.cli import COMMANDS

    page = (ROOT / "docs" / "commands.md").read_text()  # as on disk: as GitHub shows it
    for name in COMMANDS:
        assert page.count(f"<!-- fometa:command {name} -->") == 1, f"fometa {name}: not once on docs/commands.md"
        assert page.count(f"\n### `fometa {name}`\n") == 1, f"fometa {name}: not once on docs/commands.md"
        assert f"\nusage: fometa {name} " in page, f"docs/commands.md does not show fometa {name}'s usage"
    assert "### `fometa data folder`" in page and "usage: fometa data folder" in page


def test_usage_lines_do_not_depend_on_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    narrow = HOOK.command_reference("train")
    monkeypatch.setenv("COLUMNS", "300")
    assert HOOK.command_reference("train") == narrow
    assert all(len(line) <= HOOK.WIDTH for line in narrow.split("```text")[1].split("```")[0].splitlines())


def test_the_models_table_is_the_registry():
    from fometa import pretrained

    page = (ROOT / "docs" / "own-images.md").read_text()
    for model in pretrained.models():
        if model.registry != pretrained.PACKAGE_REGISTRY:
            continue
        row = next((line for line in page.splitlines() if line.startswith(f"| `{model.name}` |")), None)
        assert row is not None, f"docs/own-images.md does not list {model.name}"
        assert (f"`{model.sha256[:12]}…`" in row) if model.shipped else ("not shipped yet" in row), row
        assert f"{model.entry['meta_iterations']:,}" in row


def test_the_results_tables_are_the_committed_runs():
    page = (ROOT / "docs" / "results.md").read_text()
    tool = HOOK._results_tool()
    for run in ("o5w1s-100k", "o20w1s-5k", "mi5w-3k", "o5w1s-3k-torch-seed0"):
        for row in tool.rows(ROOT / "docs" / "results" / run):
            assert row in page, row


API_MODULES = sorted({m for page in (ROOT / "docs" / "api").glob("*.md")
                      for m in re.findall(r"^::: ([\w.]+)$", page.read_text(), re.MULTILINE)})


def _public_members(module):
    import inspect

    names = getattr(module, "__all__", None) or [
        n for n, o in vars(module).items()
        if not n.startswith("_") and (inspect.isfunction(o) or inspect.isclass(o)) and o.__module__ == module.__name__]
    for name in names:
        obj = getattr(module, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            yield name, obj
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                f = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                if not attr.startswith("_") and inspect.isfunction(f):
                    yield f"{name}.{attr}", f


def _documented(obj) -> bool:
    import inspect

    doc = (obj.__doc__ or "").strip()
    if inspect.isclass(obj) and doc.startswith(obj.__name__ + "(") and "\n" not in doc:
        return False  # the signature a dataclass writes for a class without a docstring
    return bool(doc)


@pytest.mark.parametrize("module_name", API_MODULES)
def test_api_reference_objects_have_docstrings(module_name):
    """The API reference shows an object only with its docstring: every public one has one."""
    import importlib

    module = importlib.import_module(module_name)
    assert module.__doc__, module_name
    missing = [name for name, obj in _public_members(module) if not _documented(obj)]
    assert not missing, f"{module_name}: no docstring on {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_machine_paths(page):
    text = page.read_text()
    for bad in ("/work/", "../shared", "/root/", "/tmp/"):
        assert bad not in text, f"{page.relative_to(ROOT)} names {bad}"
