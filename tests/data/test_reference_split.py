"""The ``paper`` protocol is openai/supervised-reptile's own Omniglot split.

The reference (``run_omniglot.py``) calls ``random.seed(args.seed)`` (default 0), then
``split_dataset(read_dataset(DATA_DIR))``: ``read_dataset`` walks ``sorted(os.listdir(...))``
alphabets, then ``sorted(os.listdir(...))`` characters, of one folder holding both sets, and
``split_dataset`` does ``random.shuffle(all_data)`` and keeps ``[:1200]`` for training. The test
re-implements that rule on its own (global ``random``, nested sorted walk) from Omniglot's names,
which it lists itself, and pins a few characters so that a change of the rule cannot go unnoticed.
"""
import json
import random
from pathlib import Path

import numpy as np
import pytest

from fometa.data import omniglot_paper_split

REPO = Path(__file__).resolve().parents[2]

# characters per alphabet in images_background + images_evaluation (named character01 .. characterNN)
OMNIGLOT = {
    "Alphabet_of_the_Magi": 20, "Angelic": 20, "Anglo-Saxon_Futhorc": 29, "Arcadian": 26, "Armenian": 41,
    "Asomtavruli_(Georgian)": 40, "Atemayar_Qelisayer": 26, "Atlantean": 26, "Aurek-Besh": 26, "Avesta": 26,
    "Balinese": 24, "Bengali": 46, "Blackfoot_(Canadian_Aboriginal_Syllabics)": 14, "Braille": 26,
    "Burmese_(Myanmar)": 34, "Cyrillic": 33, "Early_Aramaic": 22, "Futurama": 26, "Ge_ez": 26, "Glagolitic": 45,
    "Grantha": 43, "Greek": 24, "Gujarati": 48, "Gurmukhi": 45, "Hebrew": 22,
    "Inuktitut_(Canadian_Aboriginal_Syllabics)": 16, "Japanese_(hiragana)": 52, "Japanese_(katakana)": 47,
    "Kannada": 41, "Keble": 26, "Korean": 40, "Latin": 26, "Malay_(Jawi_-_Arabic)": 40, "Malayalam": 47,
    "Manipuri": 40, "Mkhedruli_(Georgian)": 41, "Mongolian": 30, "N_Ko": 33,
    "Ojibwe_(Canadian_Aboriginal_Syllabics)": 14, "Old_Church_Slavonic_(Cyrillic)": 45, "Oriya": 46,
    "Sanskrit": 42, "Sylheti": 28, "Syriac_(Estrangelo)": 23, "Syriac_(Serto)": 23, "Tagalog": 17,
    "Tengwar": 25, "Tibetan": 42, "Tifinagh": 55, "ULOG": 26,
}


def _reference_split(folders: dict, seed: int = 0, num_train: int = 1200):
    """The reference's rule, as it is written there: seeded global ``random``, nested sorted walk."""
    saved = random.getstate()
    try:
        random.seed(seed)
        all_data = [f"{a}/{c}" for a in sorted(folders) for c in sorted(folders[a])]
        random.shuffle(all_data)
    finally:
        random.setstate(saved)
    return all_data[:num_train], all_data[num_train:]


def _ours(names, seed=0, train_characters=1200):
    alphabets, characters = zip(*(n.split("/") for n in names), strict=True)
    train, test = omniglot_paper_split(alphabets, characters, seed, train_characters)
    return {names[i] for i in train}, {names[i] for i in test}


def _omniglot_folders():
    return {a: [f"character{i:02d}" for i in range(1, n + 1)] for a, n in OMNIGLOT.items()}


def test_omniglot_has_1623_characters_in_50_alphabets():
    assert (len(OMNIGLOT), sum(OMNIGLOT.values())) == (50, 1623)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_paper_split_equals_the_reference_rule(seed):
    folders = _omniglot_folders()
    ref_train, ref_test = _reference_split(folders, seed)
    # the packed file stores background alphabets before evaluation ones; any storage order must do
    names = [f"{a}/{c}" for a in folders for c in folders[a]]
    names = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    train, test = _ours(names, seed)
    assert (len(train), len(test)) == (1200, 423)
    assert train == set(ref_train) and test == set(ref_test)


def test_paper_split_seed0_pinned_characters():
    """Computed once with the reference's rule (see the module docstring)."""
    folders = _omniglot_folders()
    ref_train, ref_test = _reference_split(folders, 0)
    assert ref_train[:3] == ["Japanese_(hiragana)/character47", "Syriac_(Serto)/character02", "Korean/character07"]
    assert ref_test[:3] == ["Malayalam/character17", "Mkhedruli_(Georgian)/character07",
                            "Japanese_(hiragana)/character33"]
    train, test = _ours([n for a in folders for n in (f"{a}/{c}" for c in folders[a])], 0)
    assert {"Japanese_(hiragana)/character47", "Syriac_(Serto)/character02", "Korean/character07",
            "Mkhedruli_(Georgian)/character29", "Kannada/character14"} <= train
    assert {"Malayalam/character17", "Mkhedruli_(Georgian)/character07", "Japanese_(hiragana)/character33",
            "Oriya/character14", "Alphabet_of_the_Magi/character17", "Tifinagh/character11"} <= test


def test_order_is_pythons_case_sensitive_string_order():
    """``sorted(os.listdir(...))``: upper case before lower case, '_' between them, as Python compares."""
    folders = {"b": ["character01"], "B": ["character01", "character02"], "_x": ["character01"],
               "a": ["character10", "character02"], "Z": ["character01"]}
    names = [f"{a}/{c}" for a in folders for c in folders[a]]
    for seed in range(20):
        ref_train, ref_test = _reference_split(folders, seed, num_train=3)
        train, test = _ours(names, seed, train_characters=3)
        assert train == set(ref_train) and test == set(ref_test), seed


def test_datasets_splits_file_holds_the_reference_split():
    spec = json.loads((REPO / "datasets" / "splits" / "omniglot_paper_seed0.json").read_text())
    ref_train, ref_test = _reference_split(_omniglot_folders(), 0)
    assert (spec["protocol"], spec["seed"], spec["train_characters"]) == ("paper", 0, 1200)
    assert sorted(spec["train"]) == sorted(ref_train) and sorted(spec["test"]) == sorted(ref_test)


def test_real_omniglot_paper_protocol_is_the_reference_split(real_omniglot_packed):
    from fometa.data import load_omniglot

    splits = load_omniglot(real_omniglot_packed)  # protocol "paper", seed 0, rotations
    ref_train, ref_test = _reference_split(_omniglot_folders(), 0)
    assert (len(splits["train"]), len(splits["test"])) == (4800, 423)  # 1200 characters x 4 rotations
    assert set(splits["train"].characters) == set(ref_train)
    assert set(splits["test"].characters) == set(ref_test)
