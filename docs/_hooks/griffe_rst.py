"""griffe extension: fometa's docstrings, written with reStructuredText's inline marks, read as Markdown.

The docstrings use ``double backticks`` for code, roles such as :class:`~fometa.meta.MetaLearner`,
and ``::`` before a literal block. The API reference (mkdocstrings) renders Markdown, so each
docstring is rewritten as it is loaded: double backticks become single ones, a role becomes the
code it names (``~`` keeps the last part only, as Sphinx does; ``text <target>`` keeps the text),
and a paragraph's closing ``::`` becomes ``:`` (the indented block after it is already a Markdown
code block). The source files are not touched.
"""
from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const|ref|doc):`([^`]+)`")
DOUBLE = re.compile(r"``(.+?)``", re.DOTALL)


def _role(m: re.Match) -> str:
    text = m.group(1)
    label = re.match(r"^(.*?)\s*<([^>]+)>$", text)
    if label:
        text = label.group(1)
    elif text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return f"`{text}`"


def to_markdown(text: str) -> str:
    """One docstring's reStructuredText inline marks as Markdown."""
    text = ROLE.sub(_role, text)
    text = DOUBLE.sub(lambda m: "`" + m.group(1).replace("\n", " ") + "`", text)
    return re.sub(r"(?m)(\S)::$", r"\1:", text).replace("\n::\n", "\n")


class RstToMarkdown(griffe.Extension):
    """Rewrite every loaded docstring with :func:`to_markdown`."""

    def on_instance(self, *, obj, **kwargs):  # noqa: ARG002 (griffe passes node and agent too)
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
