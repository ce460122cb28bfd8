"""How a raw image becomes a network input: :class:`ImageSpec`, one frozen record per data set.

A packed file's images were made from raw images by one fixed recipe; a trained model only
understands inputs made the same way. :class:`ImageSpec` is that recipe written down (size,
channels, resize filter, Omniglot's black-and-white step, ink convention, value scale), so that
the packers, the training run's records and every later use (fine-tuning on new images,
predicting) apply it identically. :meth:`ImageSpec.for_packed` reads it from any packed file;
:meth:`ImageSpec.prepare` applies it::

    spec = ImageSpec.for_packed("datasets/omniglot.h5")    # 28x28x1, Omniglot's reference resize
    x = spec.prepare(["path/to/drawing.png"])               # float32 (1, 28, 28) in [0, 1]
    spec.as_dict()                                          # JSON-plain, for config.json and checkpoints

The recipe, in order (:meth:`ImageSpec.prepare`, for one image):

1. **Decode** a file path or bytes with Pillow (a PIL image or an array is taken as it is; a
   float array is read as values in [0, 1] and rounded to 8 bits, ``round(255 x)``).
2. **Flatten**: an EXIF orientation (photos from phones and cameras) is applied, transparent pixels are laid
   over white (a drawing on a transparent canvas is dark ink on white paper), 16-bit grey is scaled to 8 bits,
   then the image becomes grey (``channels=1``; Pillow's ``convert("L")``, ITU-R 601 luma, exact for grey
   content) or RGB (``channels=3``; grey is repeated in the three planes).
3. **Bilevel** (``bilevel=True``, Omniglot's way; its raw drawings are black-and-white scans):
   the grey image is thresholded at its own size, without dithering: grey ``>= threshold`` is
   white, darker is ink. A raw Omniglot PNG passes through this step unchanged; an anti-aliased
   grey sketch becomes a black-and-white drawing like the scans.
4. **Resize** to ``height x width`` with the ``resize`` filter (skipped when the size is right;
   aspect ratios are not kept). Bilevel images with ``"nearest"`` are resized as Pillow's mode
   '1' (the reference code's ``Image.resize((28, 28))``, values 0 or 1); with another filter as
   floating point (Pillow mode 'F', Omniglot's ``resize="area"`` packing). Others are resized as
   8-bit grey or RGB (Mini-ImageNet's packing, and ``fometa data folder``'s).
5. **Values**: ``pixel / scale`` as float32 (``scale=255``: black 0.0, white 1.0, so dark ink on
   light paper gives Omniglot's convention, ink 0.0 and background 1.0); with ``invert`` the
   values are ``(scale - pixel) / scale`` (light ink on dark paper becomes Omniglot's convention).

For specs whose values are multiples of 1/255 (:attr:`ImageSpec.is_8bit`), :meth:`ImageSpec.pixels`
gives the 8-bit values before step 5's division: that is what ``fometa data folder`` stores.
Preparing an already prepared image (as a float array of the spec's shape) returns it unchanged
for these specs.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from fometa.data._io import DataError, open_image
from fometa.data.schema import open_packed

__all__ = ["ImageSpec", "RESIZE_FILTERS", "is_grey", "oriented_size"]

#: Pillow resampling filters by name (``Image.Resampling.<NAME>``)
RESIZE_FILTERS = ("nearest", "box", "bilinear", "bicubic", "lanczos")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_WIDE_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
_ORIENTATION = 0x0112  # the EXIF tag; values 5 to 8 turn the image by 90 degrees


@dataclass(frozen=True)
class ImageSpec:
    """How one raw image becomes a network input (the module docstring gives the recipe).

    ``height``, ``width``: the input size; ``channels``: 1 (examples ``(H, W)``) or 3 (``(H, W, 3)``);
    ``resize``: Pillow filter among :data:`RESIZE_FILTERS`; ``bilevel``: threshold to black and
    white before resizing (one channel only); ``threshold``: grey level from which a pixel is white
    (bilevel only); ``invert``: values are ``1 - brightness``; ``scale``: values are ``pixel / scale``.
    """

    height: int
    width: int
    channels: int = 1
    resize: str = "lanczos"
    bilevel: bool = False
    threshold: int = 128
    invert: bool = False
    scale: int = 255

    def __post_init__(self):
        for name in ("height", "width", "threshold", "scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"ImageSpec.{name} must be an int, got {value!r}")
        for name in ("bilevel", "invert"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ImageSpec.{name} must be true or false, got {getattr(self, name)!r}")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"ImageSpec size must be positive, got {self.height}x{self.width}")
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise ValueError(f"ImageSpec.channels must be 1 or 3, got {self.channels!r}")
        if self.resize not in RESIZE_FILTERS:
            raise ValueError(f"ImageSpec.resize must be one of {', '.join(RESIZE_FILTERS)}, got {self.resize!r}")
        if self.bilevel and self.channels != 1:
            raise ValueError("ImageSpec.bilevel needs channels=1")
        if not 1 <= self.threshold <= 255:
            raise ValueError(f"ImageSpec.threshold must be in 1..255, got {self.threshold}")
        if self.scale < 1:
            raise ValueError(f"ImageSpec.scale must be positive, got {self.scale}")

    # -- records ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one prepared example: ``(H, W)`` or ``(H, W, 3)`` (a split's ``example_shape``)."""
        return (self.height, self.width) if self.channels == 1 else (self.height, self.width, 3)

    @property
    def is_8bit(self) -> bool:
        """Whether every value is ``k / scale`` for an integer ``k`` in ``0..255`` (:meth:`pixels` exists)."""
        return not self.bilevel or self.resize == "nearest"

    def as_dict(self) -> dict:
        """JSON-plain form (ints, strs and bools); :meth:`from_dict` inverts it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d) -> ImageSpec:
        """The spec recorded by :meth:`as_dict` (``ValueError`` for unknown or invalid entries)."""
        if not isinstance(d, dict):
            raise ValueError(f"an image spec must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown image spec entries: {', '.join(unknown)}")
        try:
            return cls(**d)
        except TypeError as exc:  # a required entry is missing
            raise ValueError(f"incomplete image spec: {exc}") from None

    @classmethod
    def for_packed(cls, path) -> ImageSpec:
        """The recipe by which a packed file's images were made (:class:`~fometa.data.DataError` if
        the file is not a packed file).

        Omniglot: 28x28, one channel, bilevel, ``"nearest"`` for the default ``resize="reference"``
        packing (bit for bit the file's ``images28``), ``"box"`` for ``resize="area"``.
        Mini-ImageNet: 84x84 RGB with the packer's filter (``"lanczos"`` where the packer refused
        other sizes). ``fometa data folder``: the spec it recorded.
        """

        f, info = open_packed(path)
        with f:
            if info.kind == "omniglot":
                packed = f["images28"]
                method = _text(packed.attrs.get("resize", "reference"))
                height, width = (int(n) for n in packed.shape[-2:])
                return cls(height, width, 1, resize="nearest" if method == "reference" else "box", bilevel=True)
        if info.kind == "miniimagenet":
            options = info.attrs["packing_options"]
            size, method = int(options["image_size"]), options["resize"]
            return cls(size, size, 3, resize="lanczos" if method == "error" else method)
        try:
            return cls.from_dict(info.attrs["image_spec"])
        except (KeyError, ValueError) as exc:
            raise DataError(path, f"no valid 'image_spec' attribute: {exc}") from None

    # -- applying it -----------------------------------------------------------------------
    def prepare(self, images, inspect=None):
        """float32 ``(N, *self.shape)`` in [0, 1]: each image made into a network input.

        ``images``: a sequence of file paths, image bytes, PIL images or arrays (``(H, W)``,
        ``(H, W, C)`` with C = 1, 2 (grey + alpha), 3 or 4 (RGBA); uint8, bool, or float in
        [0, 1]); or one stacked array ``(N, H, W)`` / ``(N, H, W, C)`` (its first axis always
        indexes images); or a single path, bytes or PIL image. Any size and colour mode.
        Unreadable inputs raise :class:`~fometa.data.DataError` naming the file (or ``images[i]``).
        ``inspect(i, img, where)``, if given, sees each image as it is read (a PIL image, before step 2),
        for :mod:`fometa.data.familiar`.
        """

        items = _items(images)
        out = np.empty((len(items), *self.shape), dtype=np.float32)
        for i, item in enumerate(items):
            img, where = _to_image(item, i)
            if inspect is not None:
                inspect(i, img, where)
            out[i] = self.values(img, where)
        return out

    def values(self, img, where: str = "image"):
        """float32 ``self.shape`` of one PIL image (steps 2-5 of the recipe)."""

        return self._resized(img, where).astype(np.float32, copy=False) / np.float32(self.scale)

    def pixels(self, img, where: str = "image"):
        """uint8 ``self.shape`` of one PIL image: the values times ``scale`` (8-bit specs only)."""
        if not self.is_8bit:
            raise ValueError("pixels() needs an 8-bit spec (bilevel specs resize with 'nearest' only)")
        return self._resized(img, where)

    def _resized(self, img, where: str):
        """Steps 2-4: uint8 (inverted if asked) for 8-bit specs, else float32 in [0, 255]."""
        from PIL import Image

        size = (self.width, self.height)  # Pillow's order
        try:
            img = _flatten(img, "L" if self.channels == 1 else "RGB")
            if self.bilevel:
                img = img.point([0] * self.threshold + [255] * (256 - self.threshold), "1")
                if self.resize != "nearest":
                    img = img.convert("F")
            if img.size != size:
                img = img.resize(size, getattr(Image.Resampling, self.resize.upper()))
        except (OSError, ValueError) as exc:
            raise DataError(where, f"cannot convert the image (mode {img.mode}): {exc}") from None
        if img.mode == "F":
            arr, white = np.asarray(img, dtype=np.float32), np.float32(255)
        else:
            arr, white = np.asarray(img), np.uint8(255)
            arr = arr.astype(np.uint8) * white if arr.dtype == bool else arr.astype(np.uint8, copy=False)
        return white - arr if self.invert else arr


def is_grey(img) -> bool:
    """Whether a PIL image has no colour: a grey mode, or R = G = B everywhere (after step 2's
    flattening, so a transparent background does not count)."""

    if img.mode in ("1", "L", "LA", "La", "F") or img.mode in _WIDE_GREY_MODES:
        return True
    rgb = np.asarray(_flatten(img, "RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def oriented_size(img) -> tuple[int, int]:
    """``(height, width)`` of a PIL image once its EXIF orientation is applied (read from the header)."""
    turned = _orientation(img) in (5, 6, 7, 8)
    return (img.width, img.height) if turned else (img.height, img.width)


def _orientation(img) -> int:
    try:
        return int(img.getexif().get(_ORIENTATION, 1))
    except (OSError, ValueError, TypeError, SyntaxError):  # a damaged EXIF block: take the pixels as they are
        return 1


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _flatten(img, mode: str):
    """``img`` in mode ``mode`` ("L" or "RGB"): turned upright by its EXIF orientation, transparent
    parts over white, 16-bit grey scaled to 8 bits."""
    from PIL import Image, ImageOps

    if _orientation(img) != 1:
        img = ImageOps.exif_transpose(img)
    if img.mode in _WIDE_GREY_MODES:
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.rint(arr / 257), 0, 255).astype(np.uint8), "L")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img if img.mode == mode else img.convert(mode)


def _items(images) -> list:

    if isinstance(images, (str, bytes, os.PathLike)) or _is_pil(images):
        return [images]
    if isinstance(images, np.ndarray):
        if images.ndim == 2:
            return [images]
        if images.ndim not in (3, 4):
            raise DataError("images", f"a stacked array must be (N, H, W) or (N, H, W, C), got shape {images.shape}")
        return list(images)
    try:
        return list(images)
    except TypeError:
        raise DataError("images", f"cannot read a {type(images).__name__} as images (give a list of file paths, "
                                  "bytes, PIL images or arrays)") from None


def _is_pil(obj) -> bool:
    import sys

    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(obj, pil.Image)


def _to_image(item, i: int):
    """``(PIL image, where)`` for one input; :class:`DataError` for anything unreadable."""

    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if path.is_dir():
            raise DataError(path, "is a folder, not an image")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DataError(path, "no such file") from None
        except OSError as exc:
            raise DataError(path, f"cannot read: {exc.strerror or exc}") from None
        return open_image(data, str(path)), str(path)
    where = f"images[{i}]"
    if isinstance(item, (bytes, bytearray, memoryview)):
        return open_image(bytes(item), where), where
    if _is_pil(item):
        try:
            item.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise DataError(where, f"not a readable image: {exc}") from None
        return item, where
    if isinstance(item, np.ndarray):
        return _array_image(item, where), where
    raise DataError(where, f"cannot read a {type(item).__name__} as an image (give a file path, bytes, "
                           "a PIL image or an array)")


def _array_image(arr, where: str):
    from PIL import Image

    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (2, 3, 4))) or 0 in arr.shape:
        raise DataError(where, "an image array must be (H, W) or (H, W, C) with C in 1, 2, 3, 4; "
                               f"got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * np.uint8(255)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise DataError(where, "float image values must be finite and in [0, 1]")
        arr = np.rint(arr.astype(np.float64) * 255).astype(np.uint8)
    elif arr.dtype.kind in "iu":
        if arr.min() < 0 or arr.max() > 255:
            raise DataError(where, f"integer image values must be in 0..255 (got {arr.min()}..{arr.max()})")
        arr = arr.astype(np.uint8)
    else:
        raise DataError(where, f"cannot read an array of dtype {arr.dtype} as an image")
    return Image.fromarray(np.ascontiguousarray(arr))  # mode from the shape: L, LA, RGB or RGBA
