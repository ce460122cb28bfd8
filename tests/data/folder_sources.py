"""Generated image folders for the ``fometa data folder`` tests: ``<class>/<image>`` or
``<split>/<class>/<image>``, PNG (lossless, so packed arrays can be compared with the pixels)."""
from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def make_image(path: Path, rng, size=(10, 12), mode: str = "RGB", fmt: str = "PNG") -> np.ndarray:
    """A random image of ``size`` (height, width) in ``mode``; returns its decoded pixels."""
    h, w = size
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if mode == "grey-rgb":  # grey content saved as RGB
        arr[..., 1] = arr[..., 2] = arr[..., 0]
        mode = "RGB"
    img = Image.fromarray(arr).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    with Image.open(path) as saved:
        return np.asarray(saved)


def make_folder(root: Path, spec: dict, seed: int = 0, **kwargs) -> Path:
    """``spec``: ``{class: n images}`` or ``{split: {class: n}}``; images ``<class>_<i>.png``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for key, value in spec.items():
        classes = value if isinstance(value, dict) else {key: value}
        base = root / key if isinstance(value, dict) else root
        for c, n in classes.items():
            for i in range(n):
                make_image(base / c / f"{c}_{i:02d}.png", rng, **kwargs)
    return root


def zip_tree(folder: Path, zip_path: Path, top: bool = True) -> Path:
    """Zip ``folder``'s files (under ``folder.name/`` when ``top``), with explicit folder entries."""
    with zipfile.ZipFile(zip_path, "w") as z:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder.parent if top else folder).as_posix()
            z.write(path, rel + "/" if path.is_dir() else rel)
    return zip_path


def tar_tree(folder: Path, tar_path: Path, arcname: str | None = None) -> Path:
    """Tar ``folder`` recursively under ``arcname`` (default its name; ``"."`` as ``tar -C folder .``)."""
    mode = "w:gz" if tar_path.name.endswith("gz") else "w"
    with tarfile.open(tar_path, mode) as tf:
        tf.add(folder, folder.name if arcname is None else arcname)  # tarfile walks folders sorted
    return tar_path


def decoded(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)
