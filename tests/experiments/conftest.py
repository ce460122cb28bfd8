"""Fixtures for the experiment tests: the real Omniglot of ``../shared/data``, packed once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("FOMETA_SHARED_DATA", REPO.parent / "shared" / "data"))
REAL_OMNIGLOT = SHARED_DATA / "omniglot"


@pytest.fixture(scope="session")
def real_omniglot(tmp_path_factory):
    """``(folder of the zips, cache folder holding omniglot.h5)``; skips when the archives are absent.

    Packs through :func:`fometa.experiments.common.load_omniglot`, the path the commands take
    when ``--data`` is the folder of the archives.
    """
    zips = [REAL_OMNIGLOT / "images_background.zip", REAL_OMNIGLOT / "images_evaluation.zip"]
    if not all(z.is_file() for z in zips):
        pytest.skip(f"real Omniglot archives not found in {REAL_OMNIGLOT}")
    from fometa.experiments.common import load_omniglot

    cache = tmp_path_factory.mktemp("experiments_omniglot")
    load_omniglot(REAL_OMNIGLOT, cache_dir=cache)
    return REAL_OMNIGLOT, cache
