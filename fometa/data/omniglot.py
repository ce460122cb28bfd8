"""Omniglot read from a packed file (see ``datasets/README.md``) as class-indexed splits.

Protocols:

* ``"paper"`` (Nichol et al. 2018, section 6 / Finn et al. 2017; openai/supervised-reptile's
  ``split_dataset``): the 1623 characters of both sets, taken in the reference code's order
  (sorted by alphabet, then character), are permuted by ``numpy.random.default_rng(seed)``;
  the first ``train_characters`` (1200) train, the other 423 test. The reference shuffles with
  Python's global ``random`` instead, so the same seed does not give its split; the split for
  seed 0 is written out in ``datasets/splits/omniglot_paper_seed0.json``.
* ``"background"`` (Lake et al. 2015): train on the 964 background characters, test on the
  659 evaluation characters.

With ``augment_rotations`` each training character also appears rotated by 90, 180 and 270
degrees as three more classes (reference ``augment_dataset``), computed on the fly.
The whole ``images28`` array (about 100 MB) is read into memory.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fometa.data._io import DataError
from fometa.data.schema import open_packed, verify_packed
from fometa.data.splits import OmniglotSplit

__all__ = ["load_omniglot", "omniglot_paper_split", "PROTOCOLS"]

PROTOCOLS = ("paper", "background")


def omniglot_paper_split(alphabets, characters, seed: int = 0, train_characters: int = 1200):
    """Indices ``(train, test)`` of the paper's random character split, each in ascending order.

    Characters are ordered by ``(alphabet, character)`` name, permuted with
    ``np.random.default_rng(seed).permutation``; the first ``train_characters`` are for training.
    """
    alphabets, characters = list(alphabets), list(characters)
    n = len(alphabets)
    if not 0 < train_characters < n:
        raise ValueError(f"train_characters must be between 1 and {n - 1}, got {train_characters}")
    order = sorted(range(n), key=lambda i: (alphabets[i], characters[i]))
    perm = np.random.default_rng(seed).permutation(n)
    chosen = np.asarray(order)[perm]
    return np.sort(chosen[:train_characters]), np.sort(chosen[train_characters:])


def _split_from_file(split_file, names) -> tuple[np.ndarray, np.ndarray]:
    try:
        spec = json.loads(Path(split_file).read_text())
        train, test = spec["train"], spec["test"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(split_file, f"not a split file with 'train' and 'test' lists: {exc}") from None
    where = {n: i for i, n in enumerate(names)}
    out = []
    for part in (train, test):
        missing = [n for n in part if n not in where]
        if missing:
            raise DataError(split_file, f"character {missing[0]!r} is not in the packed file")
        out.append(np.sort(np.array([where[n] for n in part], dtype=np.intp)))
    if np.intersect1d(out[0], out[1]).size:
        raise DataError(split_file, "a character is in both train and test")
    return out[0], out[1]


def load_omniglot(path, protocol: str = "paper", seed: int = 0, train_characters: int = 1200,
                  augment_rotations: bool = True, split_file=None, verify: bool = False) -> dict:
    """Splits ``{"train": OmniglotSplit, "test": OmniglotSplit}`` of a packed Omniglot file.

    ``protocol``: ``"paper"`` (seeded random split of ``train_characters``) or ``"background"``;
    ``split_file``: a JSON file ``{"train": [...], "test": [...]}`` of ``"Alphabet/characterNN"``
    names, used instead of the protocol; ``augment_rotations``: add the 90/180/270-degree classes
    to the training split; ``verify``: check the stored SHA-256 of every dataset first.
    Examples are float32 28x28 in [0, 1] (ink 0, background 1).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if verify:
        verify_packed(path)
    f, _ = open_packed(path, "omniglot")
    with f:
        alphabets = f["alphabet"].asstr()[()]
        characters = f["character"].asstr()[()]
        sets = f["set"].asstr()[()]
        images = f["images28"][()]
    n = len(alphabets)
    if images.ndim != 4 or images.shape[0] != n or images.shape[2:] != (28, 28) \
            or len(characters) != n or len(sets) != n:
        raise DataError(path, f"inconsistent shapes: {n} characters but images28 is {images.shape}")
    names = [f"{a}/{c}" for a, c in zip(alphabets, characters)]
    if split_file is not None:
        train, test = _split_from_file(split_file, names)
    elif protocol == "paper":
        train, test = omniglot_paper_split(alphabets, characters, seed, train_characters)
    else:
        train, test = np.flatnonzero(sets == "background"), np.flatnonzero(sets == "evaluation")
    rotations = (0, 1, 2, 3) if augment_rotations else (0,)
    return {
        "train": OmniglotSplit(images[train], [names[i] for i in train], rotations),
        "test": OmniglotSplit(images[test], [names[i] for i in test], (0,)),
    }
