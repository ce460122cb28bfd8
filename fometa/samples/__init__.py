"""Sample images that ship with fometa, so that a fresh install can try a shipped model at once.

``omniglot.zip``: five Omniglot characters of the paper split's test characters (never seen in
meta-training), one drawing each as a support set (``support/<alphabet>-<character>/``) and another as
a query (``query/<alphabet>-<character>.png``), unchanged from the official zip; the MIT licence notice
of the Omniglot data set is beside it (``omniglot-LICENSE.txt``) and in it (``LICENSE.txt``).
``fometa samples omniglot --out DIR`` unpacks them; ``tools/make_samples.py`` made them.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

__all__ = ["SAMPLES", "archive", "copy_to"]

ROOT = Path(__file__).resolve().parent
#: name -> what it holds
SAMPLES = {"omniglot": "5 Omniglot test characters: support/<character>/ (1 drawing each) and query/ (1 each)"}


def archive(name: str) -> Path:
    """The zip of the samples called ``name``; :class:`KeyError` naming the known ones otherwise."""
    if name not in SAMPLES:
        raise KeyError(f"unknown samples {name!r}; known: {', '.join(SAMPLES)}")
    return ROOT / f"{name}.zip"


def copy_to(name: str, out) -> Path:
    """Unpack the samples ``name`` into the new folder ``out`` (:class:`FileExistsError` if it exists)."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out}: already exists; choose another --out")
    with zipfile.ZipFile(archive(name)) as z:
        z.extractall(out)
    return out
