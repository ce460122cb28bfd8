"""Omniglot read from a packed file (see ``datasets/README.md``) as class-indexed splits.

Protocols:

* ``"paper"`` (Nichol et al. 2018, section 6 / Finn et al. 2017): exactly the split of the
  reference code, openai/supervised-reptile. Its ``read_dataset`` walks one folder holding the
  alphabets of both sets, ``sorted(os.listdir(...))`` alphabets, then ``sorted(os.listdir(...))``
  characters (Python's case-sensitive string order); ``run_omniglot.py`` calls
  ``random.seed(seed)`` (default 0) and ``split_dataset`` shuffles that list with
  ``random.shuffle`` and keeps the first ``train_characters`` (1200) for training, the other 423
  for testing. Here the shuffle is ``random.Random(seed).shuffle`` (no global state, same
  permutation), so ``seed=0`` gives the reference's split, written out in
  ``datasets/splits/omniglot_paper_seed0.json``.
* ``"background"`` (Lake et al. 2015): train on the 964 background characters, test on the
  659 evaluation characters.

With ``augment_rotations`` each training character also appears rotated by 90, 180 and 270
degrees as three more classes (reference ``augment_dataset``), computed on the fly.
The whole ``images28`` array (about 100 MB) is read into memory.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from fometa.data._io import DataError
from fometa.data.schema import open_packed, reading, verify_packed
from fometa.data.splits import OmniglotSplit

__all__ = ["load_omniglot", "omniglot_paper_split", "PROTOCOLS"]

PROTOCOLS = ("paper", "background")


def omniglot_paper_split(alphabets, characters, seed: int = 0, train_characters: int = 1200):
    """Indices ``(train, test)`` of the reference code's random character split, each in ascending order.

    The rule of openai/supervised-reptile (``run_omniglot.py``: ``random.seed(seed)`` then
    ``split_dataset(read_dataset(...))``): characters in the order ``read_dataset`` yields them,
    ``sorted`` alphabet names, then ``sorted`` character names within each alphabet (Python's
    string order, case-sensitive; equal to sorting the ``(alphabet, character)`` pairs), are
    shuffled by Python's Mersenne Twister seeded with ``seed`` (``random.Random(seed).shuffle``
    draws what the reference's seeded global ``random.shuffle`` draws), and the first
    ``train_characters`` train. Which characters train depends only on the names, not on their
    order in the packed file.
    """
    alphabets, characters = [str(a) for a in alphabets], [str(c) for c in characters]
    n = len(alphabets)
    if not 0 < train_characters < n:
        raise ValueError(f"train_characters must be between 1 and {n - 1}, got {train_characters}")
    order = sorted(range(n), key=lambda i: (alphabets[i], characters[i]))
    random.Random(seed).shuffle(order)
    return np.sort(np.asarray(order[:train_characters], dtype=np.intp)), \
        np.sort(np.asarray(order[train_characters:], dtype=np.intp))


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

    ``protocol``: ``"paper"`` (the reference code's seeded random split of ``train_characters``) or ``"background"``;
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
        with reading(path, "alphabet"):
            alphabets = f["alphabet"].asstr()[()]
        with reading(path, "character"):
            characters = f["character"].asstr()[()]
        with reading(path, "set"):
            sets = f["set"].asstr()[()]
        with reading(path, "images28"):
            images = f["images28"][()]
    n = len(alphabets)
    if images.ndim != 4 or images.shape[0] != n or images.shape[2:] != (28, 28) \
            or len(characters) != n or len(sets) != n:
        raise DataError(path, f"inconsistent shapes: {n} characters but images28 is {images.shape}")
    names = [f"{a}/{c}" for a, c in zip(alphabets, characters, strict=True)]
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
