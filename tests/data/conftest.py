"""Fixtures for the data tests: tiny generated Omniglot and Mini-ImageNet inputs, and the real
archives found through ``FOMETA_DATA_DIR`` (tests using those skip when they are absent, saying how to
point them at the data).

Generated inputs mirror the real layouts: Omniglot ``images_<set>/<Alphabet>/characterNN/<ID>_<DD>.png``
(105x105 mode '1'), Mini-ImageNet ``miniimagenet/{train,val,test}/<wnid>/<wnid><NNNNNNNN>.jpg`` (84x84
RGB) and ``images/`` plus ``{train,val,test}.csv``.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
#: The real data sets are found through FOMETA_DATA_DIR: the folder holding omniglot/images_background.zip,
#: omniglot/images_evaluation.zip and miniimagenet/miniimagenet.tar.gz, laid out as the official downloads.
DATA_DIR = Path(os.environ.get("FOMETA_DATA_DIR") or "FOMETA_DATA_DIR-is-not-set")
HOW = ("set FOMETA_DATA_DIR to the folder holding omniglot/images_background.zip, omniglot/images_evaluation.zip "
       "and miniimagenet/miniimagenet.tar.gz to run it")
REAL_OMNIGLOT = DATA_DIR / "omniglot"
REAL_MINI = DATA_DIR / "miniimagenet" / "miniimagenet.tar.gz"

# alphabet -> number of characters, per set
OMNIGLOT_SPEC = {"background": {"Alpha": 2, "Beta": 1}, "evaluation": {"Gamma": 2}}
MINI_SPEC = {"train": ["n00000002", "n00000001"], "val": ["n00000010"], "test": ["n00000020"]}
MINI_N = 3


def make_png(path: Path, rng, size: int = 105, mode: str = "1") -> None:
    """A random blob drawing: mostly white (True), some black strokes."""
    from PIL import Image

    ink = np.ones((size, size), dtype=bool)
    for _ in range(3):
        r, c = rng.integers(0, size - 20, size=2)
        h, w = rng.integers(3, 20, size=2)
        ink[r:r + h, c:c + w] = False
    img = Image.fromarray(ink)
    if mode != "1":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")


def make_omniglot(root: Path, spec=None, drawings: int = 20, seed: int = 0) -> Path:
    """Folders ``root/images_background`` and ``root/images_evaluation``; returns ``root``."""
    rng = np.random.default_rng(seed)
    spec = OMNIGLOT_SPEC if spec is None else spec
    char_id = 0
    for set_name, alphabets in spec.items():
        for alphabet, n_chars in alphabets.items():
            for ch in range(1, n_chars + 1):
                char_id += 1
                for d in range(1, drawings + 1):
                    make_png(root / f"images_{set_name}" / alphabet / f"character{ch:02d}"
                             / f"{char_id:04d}_{d:02d}.png", rng)
    return root


def zip_folder(folder: Path, zip_path: Path) -> Path:
    """Zip ``folder`` with its own name as the top folder (like the official zips), sorted."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(folder, folder.name)
        for path in sorted(folder.rglob("*")):
            z.write(path, path.relative_to(folder.parent).as_posix())
    return zip_path


def make_omniglot_zips(root: Path, **kwargs) -> tuple[Path, Path]:
    src = make_omniglot(root / "src", **kwargs)
    out = root / "zips"
    out.mkdir()
    return tuple(zip_folder(src / f"images_{s}", out / f"images_{s}.zip") for s in ("background", "evaluation"))


def make_jpeg(path: Path, rng, size=(84, 84), mode: str = "RGB") -> None:
    from PIL import Image

    h, w = size[1], size[0]
    arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=90)


def make_mini(root: Path, spec=None, n: int = MINI_N, seed: int = 0, top: str = "miniimagenet",
              csv: bool = True, folders: bool = True) -> Path:
    """``root/top`` with ``{split}/<wnid>/*.jpg`` and/or ``images/`` + ``{split}.csv``; returns it."""
    rng = np.random.default_rng(seed)
    spec = MINI_SPEC if spec is None else spec
    base = root / top if top else root
    for split, wnids in spec.items():
        rows = ["filename,label"]
        for wnid in wnids:
            for i in range(n):
                name = f"{wnid}{i + 1:08d}.jpg"
                path = base / split / wnid / name
                make_jpeg(path, rng)
                rows.append(f"{name},{wnid}")
                if csv:
                    (base / "images").mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, base / "images" / name)
        if csv:
            (base / f"{split}.csv").write_text("\n".join(rows) + "\n")
    if not folders:
        for split in spec:
            shutil.rmtree(base / split)
    return base


def tar_folder(folder: Path, tar_path: Path, order=None) -> Path:
    """Tar ``folder`` under its own name; ``order`` (a list of relative paths) overrides sorting."""
    mode = "w:gz" if tar_path.name.endswith("gz") else "w"
    paths = order if order is not None else sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                                                   if p.is_file())
    with tarfile.open(tar_path, mode) as tf:
        for rel in paths:
            tf.add(folder / rel, f"{folder.name}/{rel}", recursive=False)
    return tar_path


def truncate(src: Path, dest: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


@pytest.fixture(scope="session")
def omniglot_zips(tmp_path_factory):
    """The two generated Omniglot zips (5 characters x 20 drawings); do not modify."""
    return make_omniglot_zips(tmp_path_factory.mktemp("omniglot_fixture"))


@pytest.fixture(scope="session")
def omniglot_packed(tmp_path_factory, omniglot_zips):
    from fometa.data.pack_omniglot import pack_omniglot

    return pack_omniglot(omniglot_zips, tmp_path_factory.mktemp("omniglot_packed") / "omniglot.h5",
                         progress=False)


@pytest.fixture(scope="session")
def mini_folder(tmp_path_factory):
    """A generated Mini-ImageNet (2/1/1 classes x 3 images) in both layouts; do not modify."""
    return make_mini(tmp_path_factory.mktemp("mini_fixture"))


@pytest.fixture(scope="session")
def mini_packed(tmp_path_factory, mini_folder):
    from fometa.data.pack_miniimagenet import MiniImageNetPackConfig, pack_miniimagenet

    return pack_miniimagenet(mini_folder, tmp_path_factory.mktemp("mini_packed") / "mini.h5",
                             MiniImageNetPackConfig(images_per_class=MINI_N), progress=False)


@pytest.fixture(scope="session")
def real_omniglot_packed(tmp_path_factory):
    """Omniglot packed from the real archives once per session (skips when they are absent)."""
    zips = [REAL_OMNIGLOT / "images_background.zip", REAL_OMNIGLOT / "images_evaluation.zip"]
    if not all(z.is_file() for z in zips):
        pytest.skip(f"real Omniglot archives not found in {REAL_OMNIGLOT}: {HOW}")
    from fometa.data.pack_omniglot import pack_omniglot

    return pack_omniglot(zips, tmp_path_factory.mktemp("real_omniglot") / "omniglot.h5", progress=False)


@pytest.fixture
def no_output_left():
    """Assert that a folder holds no files at all (no output, no temporary file)."""

    def check(folder: Path):
        left = sorted(p.name for p in Path(folder).iterdir())
        assert left == [], f"files left behind in {folder}: {left}"

    return check


@pytest.fixture(scope="session")
def gen():
    """The generators above, for tests that build their own (possibly broken) inputs."""
    import types

    return types.SimpleNamespace(
        make_png=make_png, make_omniglot=make_omniglot, zip_folder=zip_folder,
        make_omniglot_zips=make_omniglot_zips, make_jpeg=make_jpeg, make_mini=make_mini,
        tar_folder=tar_folder, truncate=truncate, MINI_N=MINI_N, MINI_SPEC=MINI_SPEC,
        OMNIGLOT_SPEC=OMNIGLOT_SPEC, REPO=REPO, DATA_DIR=DATA_DIR, HOW=HOW, REAL_OMNIGLOT=REAL_OMNIGLOT,
        REAL_MINI=REAL_MINI,
    )
