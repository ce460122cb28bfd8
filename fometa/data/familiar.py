"""Whether new images are like those a model was trained on, measured in the terms of its
:class:`~fometa.data.ImageSpec`: a warning, not an error.

A model fine-tuned on a few images answers whatever it is shown, and may answer with confidence: a
colour photograph given to a model of black-and-white drawings comes back as a drawn character at
97%. Each raw image (as read, laid over white where transparent, reduced by nearest neighbour, which
keeps its pixels' values, to at most 256 pixels a side) is measured against what the model's spec
says its training images were:

* **bilevel** (``bilevel=True``, Omniglot's: ink drawings thresholded to black and white): the share
  of *mid-grey* pixels, within 48 grey levels of the spec's ``threshold`` (which side of the
  threshold they fall on is chance, not ink or paper), and the share of *coloured* pixels (their
  red, green and blue 32 levels or more apart). 10% mid-grey or 20% coloured make an image unlike.
  A raw Omniglot scan has neither, saved as grey or as RGB; an anti-aliased drawing's edges stay
  under 7% mid-grey; of 1,500 Mini-ImageNet photographs (every 40th), 98% cross a bound.
* **colour** (``channels=3``, Mini-ImageNet's photographs): an image that is black and white, fewer
  than 15% of its pixels mid-tones (grey 48 to 207) or coloured, is a drawing or a scan, unlike them
  (an anti-aliased drawing has under 11%; 0.5% of 3,000 Mini-ImageNet photographs have that few).
* other grey specs say nothing of what their images were: no measure.

:func:`prepare` is :meth:`ImageSpec.prepare <fometa.data.ImageSpec.prepare>` that warns
(:class:`UnfamiliarImageWarning`) about the images unlike the model's; :class:`fometa.FewShotClassifier`
reads every image through it, ``fometa predict`` prints the warning as a line on stderr and the demo as
a note on the page.
"""
from __future__ import annotations

import warnings

import numpy as np

from fometa.data.images import ImageSpec, _flatten

__all__ = ["UnfamiliarImageWarning", "unlike", "trained_on", "prepare", "MID_GREY", "COLOURED", "TONES"]

#: a bilevel model's bounds: the share of mid-grey pixels, of coloured pixels
MID_GREY, COLOURED = 0.10, 0.20
#: a colour model's bound: below this share of mid-tone or coloured pixels an image is black and white
TONES = 0.15
_BAND, _CHROMA, _SIDE = 48, 32, 256


class UnfamiliarImageWarning(UserWarning):
    """Images unlike those the model was trained on; what it predicts for them means little.

    ``found``: ``[(index, where, reason), ...]`` of those images (their index in the call's images, the file
    or ``images[i]``, and what sets them apart); ``model``: the model's name; ``trained_on``: what its
    training images were (:func:`trained_on`)."""

    def __init__(self, message: str, found=(), model: str = "", trained_on: str = ""):
        super().__init__(message)
        self.found, self.model, self.trained_on = list(found), model, trained_on


def trained_on(spec: ImageSpec) -> str | None:
    """What the spec says a model's training images were (``None``: nothing to measure against)."""
    if spec.bilevel:
        return "black-and-white drawings"
    return "colour images" if spec.channels == 3 else None


def unlike(spec: ImageSpec, img) -> str | None:
    """Why the PIL image ``img`` is unlike the training images of a model with ``spec``, or ``None`` when it is
    not (or the spec gives nothing to measure against); see the module docstring."""
    if trained_on(spec) is None:
        return None
    from PIL import Image

    if max(img.size) > _SIDE:
        scale = _SIDE / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.NEAREST)
    rgb = _flatten(img, "RGB")
    grey = np.asarray(rgb.convert("L"), dtype=np.int16)
    channels = np.asarray(rgb, dtype=np.int16)
    in_colour = channels.max(axis=-1) - channels.min(axis=-1) >= _CHROMA
    if spec.bilevel:
        mid, coloured = float((np.abs(grey - spec.threshold) < _BAND).mean()), float(in_colour.mean())
        reasons = [f"{mid:.0%} of its pixels mid-grey"] if mid >= MID_GREY else []
        reasons += [f"{coloured:.0%} in colour"] if coloured >= COLOURED else []
        return ", ".join(reasons) or None
    tones = float((((grey >= _BAND) & (grey < 255 - _BAND)) | in_colour).mean())
    return f"black and white like a drawing, {tones:.0%} of its pixels mid-tones" if tones < TONES else None


def prepare(spec: ImageSpec, images, model: str, stacklevel: int = 2) -> np.ndarray:
    """``spec.prepare(images)``, with an :class:`UnfamiliarImageWarning` naming the images unlike the training
    images of ``model`` (the name the warning gives it), if any."""
    found = []

    def inspect(i, img, where):
        reason = unlike(spec, img)
        if reason is not None:
            found.append((i, where, reason))

    out = spec.prepare(images, inspect=inspect)
    if found:
        what = trained_on(spec)
        assert what is not None  # an image is found unlike only by a spec that says what to measure against
        unlike_what = f"unlike the {what} {model} was trained on"
        if len(found) == 1:
            (_, where, reason), = found
            message = f"{where} is {unlike_what} ({reason}): what it predicts for it means little"
        else:
            listed = "; ".join(f"{where} ({reason})" for _, where, reason in found[:5])
            more = f"; and {len(found) - 5} more" if len(found) > 5 else ""
            message = (f"{len(found)} of {len(out)} images are {unlike_what}, and what it predicts for them means "
                       f"little: {listed}{more}")
        warnings.warn(UnfamiliarImageWarning(message, found, model, what), stacklevel=stacklevel + 1)
    return out
