"""Fixtures for the experiment tests: the real Omniglot (found through ``FOMETA_DATA_DIR``), packed once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The real data sets are found through FOMETA_DATA_DIR: the folder holding omniglot/images_background.zip,
#: omniglot/images_evaluation.zip and miniimagenet/miniimagenet.tar.gz, laid out as the official downloads.
DATA_DIR = Path(os.environ.get("FOMETA_DATA_DIR") or "FOMETA_DATA_DIR-is-not-set")
HOW = ("set FOMETA_DATA_DIR to the folder holding omniglot/images_background.zip, omniglot/images_evaluation.zip "
       "and miniimagenet/miniimagenet.tar.gz to run it")
REAL_OMNIGLOT = DATA_DIR / "omniglot"


@pytest.fixture(scope="session")
def real_omniglot(tmp_path_factory):
    """``(folder of the zips, cache folder holding omniglot.h5)``; skips when the archives are absent.

    Packs through :func:`fometa.experiments.common.load_omniglot`, the path the commands take
    when ``--data`` is the folder of the archives.
    """
    zips = [REAL_OMNIGLOT / "images_background.zip", REAL_OMNIGLOT / "images_evaluation.zip"]
    if not all(z.is_file() for z in zips):
        pytest.skip(f"real Omniglot archives not found in {REAL_OMNIGLOT}: {HOW}")
    from fometa.experiments.common import load_omniglot

    cache = tmp_path_factory.mktemp("experiments_omniglot")
    load_omniglot(REAL_OMNIGLOT, cache_dir=cache)
    return REAL_OMNIGLOT, cache
