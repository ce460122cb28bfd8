"""tools/verify_packed.py on 'folder' files: every source image stored once, in its class and split, equal
to the file's recipe; extra or changed images named; a file packed from arrays refused with the reason."""
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "verify_packed.py"


def _verify(*args):
    r = subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def _images(root: Path, layout: str, rng) -> Path:
    from PIL import Image

    for c in range(4):
        folder = root / ("train" if c < 3 else "test") / f"class{c}" if layout == "splits" else root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(3):
            mode = "RGB" if c == 1 else "L"
            shape = (9 + i, 11, 3) if mode == "RGB" else (9 + i, 11)
            Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(folder / f"{i}.png")
    (root / ".DS_Store").write_bytes(b"hidden files are not images")
    return root


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    pytest.importorskip("PIL")
    from fometa.data import FolderPackConfig
    from fometa.data.pack_folder import pack_folder

    base = tmp_path_factory.mktemp("verify_folder")
    rng = np.random.default_rng(0)
    out = {}
    for layout in ("classes", "splits"):
        src = _images(base / layout / "photos", layout, rng)
        out[layout] = (src, pack_folder(src, base / f"{layout}.h5", FolderPackConfig(size=(8, 8)), progress=False))
    return out


@pytest.mark.parametrize("layout", ["classes", "splits"])
def test_a_folder_file_against_its_folder_zip_and_tar(packed, layout, tmp_path):
    src, h5 = packed[layout]
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(src.rglob("*")):
            z.write(p, p.relative_to(src.parent).as_posix())
    tar = tmp_path / "photos.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(src, "photos")
    for source in (src, archive, tar):
        rc, out, err = _verify(h5, source)
        assert rc == 0, err
        report = json.loads(out)
        assert report["dataset"] == "folder" and report["images"] == 12 and report["layout"] == layout


def test_differences_are_named(packed, tmp_path):
    import shutil

    from PIL import Image

    src, h5 = packed["classes"]
    copy = shutil.copytree(src, tmp_path / "photos")
    Image.fromarray(np.zeros((9, 11), np.uint8)).save(copy / "class0" / "9.png")
    rc, _, err = _verify(h5, copy)
    assert rc == 1 and "class0/9.png: not in the packed file" in err
    (copy / "class0" / "9.png").unlink()
    Image.fromarray(np.zeros((9, 11), np.uint8)).save(copy / "class2" / "0.png")
    rc, _, err = _verify(h5, copy)
    assert rc == 1 and "class2/0.png: stored image differs" in err
    (copy / "class2" / "0.png").unlink()
    rc, _, err = _verify(h5, copy)
    assert rc == 1 and "1 stored images are not in" in err


def test_a_file_packed_from_arrays_is_refused_with_the_reason(tmp_path):
    from fometa.data import pack_arrays

    h5 = pack_arrays({"train": {"a": np.zeros((2, 4, 4), np.uint8)}, "test": {"b": np.ones((2, 4, 4), np.uint8)}},
                     tmp_path / "arr.h5")
    rc, _, err = _verify(h5, tmp_path)
    assert rc == 1 and "packed from arrays in memory" in err and "no source to check it against" in err
