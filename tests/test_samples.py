"""The sample images that ship with fometa: what they hold, and ``fometa samples``."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fometa import samples
from fometa.cli import main
from fometa.data import ImageSpec
from fometa.fewshot import read_support_folder


def test_omniglot_samples_are_raw_drawings_with_their_licence(tmp_path):
    root = samples.copy_to("omniglot", tmp_path / "s")
    files, labels = read_support_folder(root / "support")
    assert len(files) == 5 and len(set(labels)) == 5, "one drawing of each of five characters"
    queries = sorted((root / "query").glob("*.png"))
    assert [q.stem for q in queries] == sorted(set(labels)), "one query per character, named by its class"
    for f in list(files) + queries:
        with Image.open(f) as img:
            assert img.size == (105, 105) and img.mode == "1", f"{f}: not a raw Omniglot drawing"
    licence = (root / "LICENSE.txt").read_text()
    assert "MIT License" in licence and "Brenden Lake" in licence
    x = ImageSpec(28, 28, 1, resize="nearest", bilevel=True).prepare(queries)
    assert x.shape == (5, 28, 28) and 0.0 <= x.min() < x.max() <= 1.0 and np.isin(x, (0.0, 1.0)).all()


def test_command_copies_and_lists(tmp_path, capsys):
    assert main(["samples"]) == 0
    assert "omniglot" in capsys.readouterr().out
    out = tmp_path / "s"
    assert main(["samples", "omniglot", "--out", str(out)]) == 0
    assert Path(capsys.readouterr().out.strip()) == out
    assert len(list((out / "support").iterdir())) == 5 and len(list((out / "query").iterdir())) == 5
    assert main(["samples", "omniglot", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["samples", "nope", "--out", str(tmp_path / "t")]) == 2
    assert "unknown samples 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(samples.SAMPLES))
def test_every_named_sample_ships_with_its_licence(name):
    assert samples.archive(name).is_file() and (samples.ROOT / f"{name}-LICENSE.txt").is_file()
