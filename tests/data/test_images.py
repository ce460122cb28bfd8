"""ImageSpec: the record (validation, JSON round trips, the spec of each packed kind) and ``prepare``
(equal to each packer's arrays bit for bit, any input form, drawings, clear errors)."""
from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from fometa.data import DataError, ImageSpec, pack_arrays
from fometa.data.images import RESIZE_FILTERS
from fometa.data.pack_folder import FolderPackConfig
from fometa.data.pack_omniglot import OmniglotPackConfig, pack_omniglot

OMNIGLOT = ImageSpec(28, 28, 1, resize="nearest", bilevel=True)


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _omniglot_pngs(zip_path):
    """``[(alphabet/character, drawing, png bytes)]`` of an Omniglot zip."""
    out = []
    with zipfile.ZipFile(zip_path) as z:
        for name in sorted(n for n in z.namelist() if n.endswith(".png")):
            _, alphabet, character, file = name.split("/")
            out.append((f"{alphabet}/{character}", file[: -len(".png")], z.read(name)))
    return out


def _images28(path):
    with h5py.File(path, "r") as f:
        names = [f"{a}/{c}" for a, c in zip(f["alphabet"].asstr()[()], f["character"].asstr()[()], strict=True)]
        drawings = f["drawing"].asstr()[()]
        images = f["images28"][()]
    return {(names[i], drawings[i, d]): images[i, d] for i in range(len(names)) for d in range(drawings.shape[1])}


# -- the record ---------------------------------------------------------------------------------
specs = st.builds(
    lambda h, w, bilevel, resize, channels, threshold, invert, scale: ImageSpec(
        h, w, 1 if bilevel else channels, resize=resize, bilevel=bilevel, threshold=threshold, invert=invert,
        scale=scale),
    st.integers(1, 300), st.integers(1, 300), st.booleans(), st.sampled_from(RESIZE_FILTERS), st.sampled_from([1, 3]),
    st.integers(1, 255), st.booleans(), st.integers(1, 65535))


@given(specs)
def test_spec_round_trips_through_json(spec):
    d = spec.as_dict()
    assert json.loads(json.dumps(d)) == d, "as_dict() must be JSON-plain"
    assert ImageSpec.from_dict(json.loads(json.dumps(d))) == spec
    assert spec.shape == ((spec.height, spec.width) if spec.channels == 1 else (spec.height, spec.width, 3))


@pytest.mark.parametrize("kwargs, message", [
    ({"height": 0, "width": 28}, "size must be positive"),
    ({"height": 28.0, "width": 28}, "height must be an int"),
    ({"height": 28, "width": 28, "channels": 2}, "channels must be 1 or 3"),
    ({"height": 28, "width": 28, "resize": "antialias"}, "resize must be one of"),
    ({"height": 28, "width": 28, "channels": 3, "bilevel": True}, "bilevel needs channels=1"),
    ({"height": 28, "width": 28, "threshold": 0}, "threshold must be in 1..255"),
    ({"height": 28, "width": 28, "invert": 1}, "invert must be true or false"),
    ({"height": 28, "width": 28, "scale": 0}, "scale must be positive"),
])
def test_invalid_specs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ImageSpec(**kwargs)


def test_from_dict_refuses_unknown_and_missing_entries():
    d = OMNIGLOT.as_dict()
    with pytest.raises(ValueError, match="unknown image spec entries: colour"):
        ImageSpec.from_dict({**d, "colour": True})
    with pytest.raises(ValueError, match="incomplete image spec"):
        ImageSpec.from_dict({"width": 28})
    with pytest.raises(ValueError, match="must be a mapping"):
        ImageSpec.from_dict([28, 28])


def test_for_packed_of_every_kind(omniglot_zips, omniglot_packed, mini_packed, tmp_path):
    assert ImageSpec.for_packed(omniglot_packed) == OMNIGLOT
    area = pack_omniglot(omniglot_zips, tmp_path / "area.h5", OmniglotPackConfig(resize="area"), progress=False)
    assert ImageSpec.for_packed(area) == ImageSpec(28, 28, 1, resize="box", bilevel=True)
    assert ImageSpec.for_packed(mini_packed) == ImageSpec(84, 84, 3, resize="lanczos")
    spec = ImageSpec(12, 10, 1, resize="bicubic", invert=True)
    arrays = {"train": {"a": np.zeros((2, 12, 10), np.uint8), "b": np.ones((3, 12, 10), np.uint8)}}
    assert ImageSpec.for_packed(pack_arrays(arrays, tmp_path / "arrays.h5", spec=spec)) == spec
    (tmp_path / "not.h5").write_bytes(b"nothing")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        ImageSpec.for_packed(tmp_path / "not.h5")


# -- prepare equals the packers ---------------------------------------------------------------------
@pytest.mark.parametrize("resize", ["reference", "area"])
def test_prepare_of_omniglot_pngs_equals_the_packed_images(resize, omniglot_zips, omniglot_packed, tmp_path):
    packed = omniglot_packed if resize == "reference" else pack_omniglot(
        omniglot_zips, tmp_path / "o.h5", OmniglotPackConfig(resize=resize), progress=False)
    spec = ImageSpec.for_packed(packed)
    expected = _images28(packed)
    pngs = [p for z in omniglot_zips for p in _omniglot_pngs(z)]
    got = spec.prepare([png for *_, png in pngs])
    assert got.dtype == np.float32 and got.shape == (len(pngs), 28, 28)
    for (character, drawing, _), x in zip(pngs, got, strict=True):
        np.testing.assert_array_equal(x, expected[(character, drawing)], err_msg=f"{character} {drawing}")


def test_prepare_of_real_omniglot_pngs_equals_the_packed_images(real_omniglot_packed, gen):
    """Every drawing of the official zips, prepared from its raw PNG, is its ``images28`` row bit for bit."""
    spec = ImageSpec.for_packed(real_omniglot_packed)
    assert spec == OMNIGLOT
    expected = _images28(real_omniglot_packed)
    checked = 0
    for name in ("images_background.zip", "images_evaluation.zip"):
        pngs = _omniglot_pngs(gen.REAL_OMNIGLOT / name)
        for start in range(0, len(pngs), 2000):
            chunk = pngs[start:start + 2000]
            got = spec.prepare([png for *_, png in chunk])
            for (character, drawing, _), x in zip(chunk, got, strict=True):
                np.testing.assert_array_equal(x, expected[(character, drawing)], err_msg=f"{character} {drawing}")
                checked += 1
    assert checked == len(expected) == 32460


def test_prepare_of_mini_jpegs_equals_the_packed_images(mini_folder, mini_packed, gen):
    spec = ImageSpec.for_packed(mini_packed)
    with h5py.File(mini_packed, "r") as f:
        for split, wnids in gen.MINI_SPEC.items():
            for c, wnid in enumerate(sorted(wnids)):
                files = sorted((mini_folder / split / wnid).iterdir())
                expected = f[f"{split}/images"][c].astype(np.float32) / 255
                np.testing.assert_array_equal(spec.prepare(files), expected)


def test_prepare_resizes_other_sizes_as_the_miniimagenet_packer(tmp_path):
    from fometa.data.pack_miniimagenet import MiniImageNetPackConfig, _decode_rgb

    rng = np.random.default_rng(1)
    for size, mode in [((100, 60), "RGB"), ((30, 40), "L"), ((84, 84), "CMYK")]:
        img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
        data = _png(img) if mode != "CMYK" else _jpeg(img)
        packed = _decode_rgb(data, "x", MiniImageNetPackConfig()).astype(np.float32) / 255
        np.testing.assert_array_equal(ImageSpec(84, 84, 3).prepare([data])[0], packed, err_msg=f"{size} {mode}")


def _jpeg(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


# -- input forms --------------------------------------------------------------------------------
def test_every_input_form_gives_the_same_array(omniglot_zips, tmp_path):
    _, _, png = _omniglot_pngs(omniglot_zips[0])[0]
    path = tmp_path / "drawing.png"
    path.write_bytes(png)
    img = Image.open(io.BytesIO(png))
    bool_arr = np.asarray(img)
    uint8_arr = bool_arr.astype(np.uint8) * 255
    expected = OMNIGLOT.prepare([png])
    forms = {
        "str": [str(path)], "Path": [path], "single path": path, "bytes": [png], "single bytes": png,
        "PIL": [img], "single PIL": img, "bool": [bool_arr], "uint8": [uint8_arr], "uint8 2-D": uint8_arr,
        "float": [uint8_arr / 255.0], "float32": [(uint8_arr / 255).astype(np.float32)],
        "(H, W, 1)": [uint8_arr[..., None]], "stack": uint8_arr[None], "stack (N, H, W, 1)": uint8_arr[None, ..., None],
        "L": [img.convert("L")], "RGB": [img.convert("RGB")], "RGBA": [img.convert("RGBA")],
        "LA": [img.convert("LA")], "P": [img.convert("P")], "RGB array": [np.asarray(img.convert("RGB"))],
        "RGBA array": [np.asarray(img.convert("RGBA"))], "LA array": [np.asarray(img.convert("LA"))],
        "tuple": (png,), "generator": (p for p in [png]),
    }
    for form, images in forms.items():
        got = OMNIGLOT.prepare(images)
        np.testing.assert_array_equal(got, expected, err_msg=form)
    assert OMNIGLOT.prepare([]).shape == (0, 28, 28)
    assert OMNIGLOT.prepare([png, path]).shape == (2, 28, 28)


def test_channels_grey_and_colour_conversions():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    grey = ImageSpec(20, 20, 1).prepare([rgb])[0]
    luma = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255
    np.testing.assert_array_equal(grey, luma)
    colour = ImageSpec(20, 20, 3).prepare([rgb[..., 0]])[0]
    assert colour.shape == (20, 20, 3)
    for k in range(3):
        np.testing.assert_array_equal(colour[..., k], rgb[..., 0].astype(np.float32) / 255)
    # grey content in RGB is kept exactly by the luma conversion
    same = np.repeat(rgb[..., :1], 3, axis=-1)
    np.testing.assert_array_equal(ImageSpec(20, 20, 1).prepare([same])[0], rgb[..., 0].astype(np.float32) / 255)


def test_transparent_parts_are_white_and_sixteen_bit_grey_is_scaled():
    ink = np.zeros((30, 30, 4), np.uint8)  # a canvas: transparent black everywhere ...
    ink[10:20, 5:25, 3] = 255               # ... opaque black strokes
    on_white = np.full((30, 30), 255, np.uint8)
    on_white[10:20, 5:25] = 0
    spec = ImageSpec(30, 30, 1)
    np.testing.assert_array_equal(spec.prepare([ink]), spec.prepare([on_white]))
    wide = Image.fromarray(on_white.astype(np.uint16) * 257)
    assert wide.mode.startswith("I")
    np.testing.assert_array_equal(spec.prepare([wide]), spec.prepare([on_white]))


def _turned_png(arr, orientation: int) -> bytes:
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="PNG", exif=exif)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    """A phone photo stored sideways with orientation 6 (turn 90 degrees clockwise) comes out upright."""
    arr = np.random.default_rng(4).integers(0, 256, (20, 40, 3), dtype=np.uint8)
    upright = np.rot90(arr, k=-1)  # what the camera saw: 40 high, 20 wide
    spec = ImageSpec(40, 20, 3, resize="nearest")
    np.testing.assert_array_equal(spec.prepare([_turned_png(arr, 6)]), spec.prepare([np.ascontiguousarray(upright)]))
    same = ImageSpec(20, 40, 3)
    np.testing.assert_array_equal(same.prepare([_turned_png(arr, 1)]), same.prepare([arr]))
    np.testing.assert_array_equal(same.prepare([_turned_png(arr, 3)]), same.prepare([arr[::-1, ::-1]]))


@given(st.integers(0, 2**32 - 1), st.sampled_from([
    ImageSpec(9, 7, 1), ImageSpec(9, 7, 3, resize="bicubic"), ImageSpec(9, 7, 1, invert=False, resize="box"),
    ImageSpec(9, 7, 1, resize="nearest", bilevel=True)]))
def test_prepare_of_prepared_examples_is_the_identity(seed, spec):
    """For 8-bit specs an example already of the spec's shape passes unchanged (a float array in [0, 1])."""
    x = np.random.default_rng(seed).integers(0, 256, (3, *spec.shape), dtype=np.uint8)
    once = spec.prepare(x)
    np.testing.assert_array_equal(spec.prepare(once), once)


def test_invert_flips_the_values_and_pixels_are_the_stored_form():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, 40, 30), dtype=np.uint8)
    plain, inverted = ImageSpec(20, 15), ImageSpec(20, 15, invert=True)
    for img in x:
        p = plain.pixels(Image.fromarray(img))
        np.testing.assert_array_equal(inverted.pixels(Image.fromarray(img)), 255 - p)
        np.testing.assert_array_equal(plain.values(Image.fromarray(img)), p.astype(np.float32) / 255)
    np.testing.assert_allclose(inverted.prepare(x), 1 - plain.prepare(x), atol=1e-6)
    with pytest.raises(ValueError, match="8-bit spec"):
        ImageSpec(20, 15, bilevel=True, resize="box").pixels(Image.fromarray(x[0]))


# -- drawings -----------------------------------------------------------------------------------
def _strokes(draw, scale: float, width: int, fill):
    for points in ([(20, 20), (80, 30), (60, 85)], [(30, 70), (50, 40), (90, 90)], [(15, 90), (25, 50)]):
        draw.line([(x * scale, y * scale) for x, y in points], fill=fill, width=width, joint="curve")


def test_a_drawing_of_any_size_looks_like_a_scanned_character():
    """The same strokes drawn as a 105x105 black-and-white scan, as a large anti-aliased grey sketch, and
    on a transparent RGBA canvas come out (nearly) the same 28x28 bilevel character."""
    scan = Image.new("1", (105, 105), 1)
    _strokes(ImageDraw.Draw(scan), 1, 3, 0)
    big = Image.new("L", (840, 840), 255)  # drawn at 8x, then smoothed to 420x420: anti-aliased grey edges
    _strokes(ImageDraw.Draw(big), 8, 24, 0)
    sketch = big.resize((420, 420), Image.Resampling.BOX)
    assert len(np.unique(np.asarray(sketch))) > 2
    canvas = Image.new("RGBA", (420, 420), (0, 0, 0, 0))
    _strokes(ImageDraw.Draw(canvas), 4, 12, (0, 0, 0, 255))
    expected, grey, transparent = OMNIGLOT.prepare([scan, sketch, canvas])
    assert set(np.unique(grey)) <= {0.0, 1.0}, "bilevel: values are 0 (ink) or 1 (paper)"
    ink = 1 - expected.mean()
    assert 0.05 < ink < 0.4, f"ink fraction {ink:.2f} is not that of a drawing"
    for name, got in (("grey sketch", grey), ("transparent canvas", transparent)):
        agree = (got == expected).mean()
        assert agree > 0.95, f"{name}: only {agree:.1%} of pixels agree with the scan"
        assert abs((1 - got.mean()) - ink) < 0.05, f"{name}: ink fraction {1 - got.mean():.2f} vs {ink:.2f}"


def test_bilevel_threshold_is_not_dithered():
    grey = np.full((105, 105), 127, np.uint8)  # Pillow's default convert("1") would dither this
    grey[:, 60:] = 128
    x = OMNIGLOT.prepare([grey])[0]
    assert (x[:, :15] == 0).all() and (x[:, 17:] == 1).all()
    assert (ImageSpec(28, 28, bilevel=True, resize="nearest", threshold=200).prepare([grey]) == 0).all()


# -- errors -------------------------------------------------------------------------------------
def _error(images, where, problem, spec=OMNIGLOT):
    with pytest.raises(DataError) as info:
        spec.prepare(images)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{where}: ") and problem in message, message
    return message


def test_unreadable_inputs_raise_one_line_data_errors(tmp_path, omniglot_zips):
    _, _, png = _omniglot_pngs(omniglot_zips[0])[0]
    _error([tmp_path / "absent.png"], tmp_path / "absent.png", "no such file")
    _error([tmp_path], tmp_path, "is a folder")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    _error([png, text], text, "not a readable image (format not recognized)")
    cut = tmp_path / "cut.png"
    cut.write_bytes(png[: len(png) // 2])
    _error([cut], cut, "not a readable image")
    _error([png, b"GIF89a"], "images[1]", "not a readable image")
    _error([np.zeros((4, 4, 5), np.uint8)], "images[0]", "got shape (4, 4, 5)")
    _error([np.zeros((0, 4), np.uint8)], "images[0]", "got shape (0, 4)")
    _error([np.full((4, 4), 1.5)], "images[0]", "finite and in [0, 1]")
    _error([np.full((4, 4), np.nan)], "images[0]", "finite and in [0, 1]")
    _error([np.full((4, 4), 300)], "images[0]", "must be in 0..255")
    _error([np.full((4, 4), "a")], "images[0]", "dtype <U1")
    _error([3], "images[0]", "cannot read a int as an image")
    _error(42, "images", "cannot read a int as images")
    _error(np.zeros((1, 2, 3, 4, 5)), "images", "(N, H, W) or (N, H, W, C)")


def test_lazily_opened_truncated_pil_image(tmp_path, omniglot_zips):
    _, _, png = _omniglot_pngs(omniglot_zips[0])[0]
    img = Image.open(io.BytesIO(png[: len(png) // 2]))  # Pillow reads the header only: decoding fails later
    _error([img], "images[0]", "not a readable image")


def test_pack_arrays_records_the_spec_of_its_config(tmp_path):
    arrays = {"a": np.zeros((2, 5, 6, 3), np.uint8), "b": np.ones((2, 5, 6, 3), np.uint8)}
    out = pack_arrays(arrays, tmp_path / "a.h5", FolderPackConfig(resize="box", split=(("train", 1.0),)))
    assert ImageSpec.for_packed(out) == ImageSpec(5, 6, 3, resize="box")
