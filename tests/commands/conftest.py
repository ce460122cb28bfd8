"""Fixtures for the command tests: a tiny packed Omniglot file.

The file is made by the public packer (:func:`fometa.data.pack_omniglot.pack_omniglot`) from
generated 105x105 1-bit drawings: 4 alphabets (2 per set) x 4 characters x 20 drawings. With
``--train-characters 10`` the train split has 40 classes (with rotations), the test split 6.
"""
from pathlib import Path

import numpy as np
import pytest


def _write_drawings(root: Path, rng: np.random.Generator):
    from PIL import Image

    for set_name, alphabets in (("images_background", ("Alpha", "Beta")), ("images_evaluation", ("Gamma", "Delta"))):
        for alphabet in alphabets:
            for c in range(1, 5):
                folder = root / set_name / alphabet / f"character{c:02d}"
                folder.mkdir(parents=True)
                # a character is a random blob pattern; its drawings are shifted copies
                base = rng.random((15, 15)) < 0.3
                for d in range(1, 21):
                    img = np.ones((105, 105), dtype=bool)
                    y, x = 30 + rng.integers(0, 30, size=2)
                    img[y:y + 45, x:x + 45] = ~np.kron(base, np.ones((3, 3), dtype=bool))
                    Image.fromarray(img).convert("1").save(folder / f"{c:04d}_{d:02d}.png")


@pytest.fixture(scope="session")
def tiny_omniglot(tmp_path_factory) -> Path:
    """A packed Omniglot file of 16 characters (the schema of :mod:`fometa.data`)."""
    pytest.importorskip("PIL")
    from fometa.data.pack_omniglot import pack_omniglot

    root = tmp_path_factory.mktemp("omniglot_src")
    _write_drawings(root, np.random.default_rng(0))
    out = root / "tiny_omniglot.h5"
    pack_omniglot([root / "images_background", root / "images_evaluation"], out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_miniimagenet(tmp_path_factory) -> Path:
    """A packed Mini-ImageNet file: 6 classes of 20 random 84x84 JPEGs in each of train, val and test."""
    pytest.importorskip("PIL")
    from PIL import Image

    from fometa.data.pack_miniimagenet import MiniImageNetPackConfig, pack_miniimagenet

    root = tmp_path_factory.mktemp("miniimagenet_src")
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for c in range(6):
            folder = root / "mini" / split / f"n{split[:2]}{c:06d}"
            folder.mkdir(parents=True)
            for i in range(20):
                pixels = rng.integers(0, 256, size=(84, 84, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"img{i:02d}.jpg")
    out = root / "tiny_miniimagenet.h5"
    pack_miniimagenet(root / "mini", out, MiniImageNetPackConfig(images_per_class=20), progress=False)
    return out
