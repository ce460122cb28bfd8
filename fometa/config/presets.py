"""The paper's settings as named presets, and fitting a run to a file of any other images.

:data:`PRESET_SETTINGS` is the data: each preset's settings that differ from the defaults of
:mod:`fometa.config.schema`, by their dotted names (Nichol et al. 2018, Appendix A; the
reference scripts of openai/supervised-reptile). :data:`PRESETS` holds them as configurations.

For a packed file of any other images (``data.kind = "folder"``), :func:`closest_preset` picks
the paper's setting nearest to its images and :func:`for_images` fits a configuration to them
(the network follows the images; the preprocessing is recorded in ``data.image_spec``).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from fometa.config.schema import ARCHS, ConfigError, RunConfig, build
from fometa.data.images import ImageSpec

__all__ = ["PRESET_SETTINGS", "PRESETS", "preset", "closest_preset", "for_images"]

_OMNIGLOT: dict[str, Any] = {"data.kind": "omniglot", "data.path": "datasets/omniglot.h5", "model.arch": "omniglot_cnn",
                             "inner.shots": 10}
_OMNIGLOT_20WAY: dict[str, Any] = {**_OMNIGLOT, "model.ways": 20, "inner.lr": 5e-4, "inner.batch": 20,
                                   "inner.iters": 10, "eval.inner_batch": 10, "meta_iters": 200_000}
_MINIIMAGENET: dict[str, Any] = {"data.kind": "miniimagenet", "data.path": "datasets/miniimagenet.h5",
                                 "model.arch": "miniimagenet_cnn", "inner.iters": 8, "inner.shots": 15}

#: Each preset's settings that differ from the defaults (the classification presets: the paper's
#: Adam inner loop with beta1 = 0, meta-step 1 annealed to 0, meta-batch 5, evaluation by 50 inner
#: steps). ``sine`` (:mod:`fometa.sine`): one task per iteration, one epoch of 5 SGD steps on 10 of
#: the 50 grid points, meta-step 0.1 -> 0; evaluation: 32 full-batch steps on 10 points, MSE over
#: the grid.
PRESET_SETTINGS: dict[str, dict[str, Any]] = {
    "omniglot-5way-1shot": {**_OMNIGLOT, "eval.shots": 1},
    "omniglot-5way-5shot": {**_OMNIGLOT, "eval.shots": 5},
    "omniglot-20way-1shot": {**_OMNIGLOT_20WAY, "eval.shots": 1},
    "omniglot-20way-5shot": {**_OMNIGLOT_20WAY, "eval.shots": 5},
    "miniimagenet-5way-1shot": {**_MINIIMAGENET, "eval.shots": 1},
    "miniimagenet-5way-5shot": {**_MINIIMAGENET, "eval.shots": 5, "eval.inner_batch": 15},
    "sine": {"data.kind": "sine", "model.arch": "sine_mlp", "model.ways": 1, "model.init": "torch",
             "inner.optimizer": "sgd", "inner.lr": 0.02, "inner.shots": 50, "outer.meta_step": 0.1,
             "outer.meta_batch": 1, "outer.batched": False, "eval.shots": 10, "eval.inner_batch": 10,
             "eval.inner_iters": 32, "eval.tasks": 500, "eval.chunk": 500, "meta_iters": 30_000},
}

PRESETS: dict[str, RunConfig] = {name: build({"preset": name, **values}) for name, values in PRESET_SETTINGS.items()}


def preset(name: str) -> RunConfig:
    """The preset called ``name``; a :class:`~fometa.config.ConfigError` listing the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


def _image_family(spec: ImageSpec) -> str:
    """``"omniglot"`` for grey images nearer Omniglot's 28x28 than Mini-ImageNet's 84x84 (on a log
    scale: fewer than 28 x 84 pixels), else ``"miniimagenet"``."""
    return "omniglot" if spec.channels == 1 and spec.height * spec.width <= 28 * 84 else "miniimagenet"


def closest_preset(spec: ImageSpec, ways: int | None = None, shots: int | None = None) -> str:
    """The paper preset nearest to images made by ``spec`` for ``ways``-way ``shots``-shot tasks.

    Omniglot's for small grey images (fewer pixels than 28 x 84, nearer 28x28 than 84x84 on a log
    scale), Mini-ImageNet's for colour or larger ones; 20-way rather than 5-way (Omniglot only)
    for more than 10 ways, 5-shot rather than 1-shot from 3 shots (nearest on a log scale too).
    The chosen preset gives the hyperparameters; ``ways`` and ``shots`` themselves are settings.
    """
    family = _image_family(spec)
    shot = "5shot" if shots is not None and shots >= 3 else "1shot"
    way = "20way" if family == "omniglot" and ways is not None and ways > 10 else "5way"
    return f"{family}-{way}-{shot}"


def for_images(cfg: RunConfig, kind: str, spec: ImageSpec) -> RunConfig:
    """``cfg`` fitted to a packed file of ``kind`` whose examples ``spec`` makes.

    A ``folder`` file sets ``data.kind = "folder"`` and the network of its images' family
    (:func:`closest_preset`: ``omniglot_cnn`` for small grey images, else ``miniimagenet_cnn``),
    on the file's input shape; a paper kind keeps its network. Either way ``data.image_spec``
    records ``spec``. A file of the other paper kind than ``cfg``'s is left for the loader to
    refuse.
    """
    if kind == "folder":
        arch = ARCHS[_image_family(spec)]
        return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, kind=kind, image_spec=spec),
                                   model=dataclasses.replace(cfg.model, arch=arch))
    if kind != cfg.data.kind:
        return cfg
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, image_spec=spec))
