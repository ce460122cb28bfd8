"""Images unlike a model's training images, measured in its ImageSpec's terms: photographs for a model of
black-and-white drawings, drawings for a model of colour images; raw Omniglot scans, in grey or RGB, and
anti-aliased drawings are like Omniglot's."""
import io
import tarfile
import warnings
import zipfile

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image, ImageDraw  # noqa: E402 - after the skip without Pillow

from fometa.data import ImageSpec  # noqa: E402 - after the skip without Pillow
from fometa.data.familiar import UnfamiliarImageWarning, prepare, trained_on, unlike  # noqa: E402 - after the skip without Pillow

DRAWINGS = ImageSpec(28, 28, 1, resize="nearest", bilevel=True)  # Omniglot's
COLOUR = ImageSpec(84, 84, 3)  # Mini-ImageNet's
GREY = ImageSpec(32, 32, 1)  # grey images of any kind


def photo(seed=0, size=(120, 90)) -> Image.Image:
    """A stand-in photograph: smooth colour gradients with texture (every channel spread over mid-tones)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]] / max(size)
    planes = [128 + 80 * np.sin(6 * x * rng.uniform(0.5, 2) + rng.uniform(0, 6)) * np.cos(5 * y + rng.uniform(0, 6))
              for _ in range(3)]
    pixels = np.stack(planes, axis=-1) + rng.normal(0, 12, size=(size[1], size[0], 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def drawing(seed=0, size=105, width=0.06, antialias=True) -> Image.Image:
    """A pen stroke, black on white; drawn 4x larger and reduced with Lanczos for grey (anti-aliased) edges."""
    rng = np.random.default_rng(seed)
    scale = 4 if antialias else 1
    img = Image.new("L", (size * scale, size * scale), 255)
    points = [tuple(int(v) for v in rng.integers(size * scale // 8, size * scale * 7 // 8, 2)) for _ in range(5)]
    ImageDraw.Draw(img).line(points, fill=0, width=max(1, int(width * size * scale)), joint="curve")
    return img.resize((size, size), Image.Resampling.LANCZOS) if antialias else img.convert("1")


def test_what_a_spec_says_its_images_were():
    assert trained_on(DRAWINGS) == "black-and-white drawings" and trained_on(COLOUR) == "colour images"
    assert trained_on(GREY) is None


@pytest.mark.parametrize("seed", range(5))
def test_a_photograph_is_unlike_drawings_and_like_colour_images(seed):
    reason = unlike(DRAWINGS, photo(seed))
    assert reason is not None and "mid-grey" in reason and "in colour" in reason, reason
    assert unlike(DRAWINGS, photo(seed).convert("L")) is not None, "a grey photograph is no drawing either"
    assert unlike(COLOUR, photo(seed)) is None and unlike(GREY, photo(seed)) is None


@pytest.mark.parametrize("seed", range(8))
def test_drawings_are_like_drawings_and_unlike_colour_images(seed):
    for img in (drawing(seed), drawing(seed, size=28), drawing(seed, width=0.15), drawing(seed, antialias=False)):
        for mode in ("1", "L", "RGB", "RGBA", "LA"):
            assert unlike(DRAWINGS, img.convert(mode)) is None, (seed, img.size, mode)
        assert "black and white" in unlike(COLOUR, img.convert("RGB"))


def test_a_transparent_canvas_is_paper():
    ink = np.zeros((105, 105, 4), dtype=np.uint8)  # transparent black everywhere
    ink[40:60, 20:80, 3] = 255  # an opaque black bar
    assert unlike(DRAWINGS, Image.fromarray(ink, "RGBA")) is None


def test_prepare_is_the_spec_s_and_warns_naming_the_unlike_images(tmp_path):
    files = []
    for name, img in (("a.png", drawing(0)), ("dog.jpg", photo(1)), ("b.png", drawing(1)), ("cat.jpg", photo(2))):
        img.save(tmp_path / name)
        files.append(tmp_path / name)
    with pytest.warns(UnfamiliarImageWarning) as caught:
        x = prepare(DRAWINGS, files, "my-model")
    np.testing.assert_array_equal(x, DRAWINGS.prepare(files))
    (w,) = caught
    message = str(w.message)
    assert message.startswith("2 of 4 images are unlike the black-and-white drawings my-model was trained on")
    assert "dog.jpg" in message and "cat.jpg" in message and "a.png" not in message
    assert [(i, where) for i, where, _ in w.message.found] == [(1, str(files[1])), (3, str(files[3]))]
    assert w.message.model == "my-model" and w.message.trained_on == "black-and-white drawings"
    with pytest.warns(UnfamiliarImageWarning, match=r"^images\[0\] is unlike the black-and-white drawings m was"):
        prepare(DRAWINGS, [np.asarray(photo(3))], "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare(DRAWINGS, [files[0], files[2]], "my-model")  # drawings: no warning
        prepare(GREY, files, "my-model")  # nothing to measure against


# -- the real data sets (FOMETA_DATA_DIR) ---------------------------------------------------------
def test_raw_omniglot_scans_in_grey_and_rgb_are_like_omniglot(gen):
    path = gen.REAL_OMNIGLOT / "images_evaluation.zip"
    if not path.is_file():
        pytest.skip(f"real Omniglot archives not found in {gen.REAL_OMNIGLOT}: {gen.HOW}")
    checked = 0
    with zipfile.ZipFile(path) as z:
        for name in sorted(n for n in z.namelist() if n.endswith(".png"))[::4]:
            img = Image.open(io.BytesIO(z.read(name)))
            for mode in ("L", "RGB"):
                assert unlike(DRAWINGS, img.convert(mode)) is None, (name, mode)
            checked += 1
    assert checked > 3000


def test_mini_imagenet_photographs_are_unlike_omniglot(gen):
    """Every 200th image of the archive: at least 95% are unlike drawings, and at most 2% look like them."""
    if not gen.REAL_MINI.is_file():
        pytest.skip(f"real Mini-ImageNet archive not found at {gen.REAL_MINI}: {gen.HOW}")
    flagged = as_drawings = total = seen = 0
    with tarfile.open(gen.REAL_MINI, "r|gz") as tf:
        for member in tf:
            if member.isfile() and member.name.endswith(".jpg"):
                seen += 1
                if seen % 200:  # every 200th: all 100 classes
                    continue
                img = Image.open(io.BytesIO(tf.extractfile(member).read()))
                flagged += unlike(DRAWINGS, img) is not None
                as_drawings += unlike(COLOUR, img) is not None  # a few near black-and-white photographs
                total += 1
    assert total == 300 and flagged >= 0.95 * total, f"{flagged} of {total} photographs flagged"
    assert as_drawings <= 0.02 * total, f"{as_drawings} of {total} photographs taken for drawings"
