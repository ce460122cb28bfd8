"""Loading packed files as class-indexed splits: protocols, rotations, caching, the split interface."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest
from PIL import Image

from fometa.data import (
    ArraySplit,
    ClassSplit,
    DataError,
    MiniImageNetSplit,
    OmniglotSplit,
    as_class_split,
    inspect_packed,
    load_miniimagenet,
    load_omniglot,
    load_packed,
    omniglot_paper_split,
    verify_packed,
)


def _check_interface(split, shape):
    assert len(split) == len(split.names) > 0
    assert split.example_shape == shape
    for c in (0, len(split) - 1):
        n = split.num_examples(c)
        x = split.get(c, np.arange(n)[::-1])
        assert x.shape == (n, *shape) and x.dtype == np.float32
        assert 0.0 <= x.min() and x.max() <= 1.0


def test_omniglot_paper_protocol(omniglot_packed):
    splits = load_omniglot(omniglot_packed, seed=3, train_characters=3)
    assert sorted(splits) == ["test", "train"]
    train, test = splits["train"], splits["test"]
    assert isinstance(train, OmniglotSplit) and len(train) == 12 and len(test) == 2
    _check_interface(train, (28, 28))
    _check_interface(test, (28, 28))
    assert set(train.characters).isdisjoint(test.characters)
    assert len(set(train.characters) | set(test.characters)) == 5
    assert train.names[:4] == (train.characters[0], f"{train.characters[0]}@rot90",
                               f"{train.characters[0]}@rot180", f"{train.characters[0]}@rot270")
    again = load_omniglot(omniglot_packed, seed=3, train_characters=3)
    assert again["train"].names == train.names and again["test"].names == test.names


def test_rotated_classes_equal_the_reference_rotate(omniglot_packed, omniglot_zips):
    """Class (character, k) equals reference ``Image.open(f).resize((28, 28)).rotate(90 * k)``."""
    train = load_omniglot(omniglot_packed, protocol="background")["train"]
    with zipfile.ZipFile(omniglot_zips[0]) as z:
        for c in range(len(train)):
            alphabet, character = train.characters[train.character(c)].split("/")
            prefix = f"images_background/{alphabet}/{character}/"
            name = sorted(n for n in z.namelist() if n.startswith(prefix) and n.endswith(".png"))[7]
            with z.open(name) as f:
                img = Image.open(f).resize((28, 28)).rotate(90 * train.rotation(c))
                expected = np.array(img).astype("float32")
            np.testing.assert_array_equal(train.get(c, [7])[0], expected, err_msg=train.names[c])


def test_omniglot_background_protocol_and_no_rotations(omniglot_packed):
    splits = load_omniglot(omniglot_packed, protocol="background", augment_rotations=False)
    assert splits["train"].names == ("Alpha/character01", "Alpha/character02", "Beta/character01")
    assert splits["test"].names == ("Gamma/character01", "Gamma/character02")
    with h5py.File(omniglot_packed, "r") as f:
        np.testing.assert_array_equal(splits["test"].get(1, range(20)), f["images28"][4])


def test_omniglot_split_file(omniglot_packed, tmp_path):
    spec = tmp_path / "split.json"
    spec.write_text(json.dumps({"train": ["Gamma/character02", "Alpha/character01"], "test": ["Beta/character01"]}))
    splits = load_omniglot(omniglot_packed, split_file=spec, augment_rotations=False)
    assert splits["train"].names == ("Alpha/character01", "Gamma/character02")
    assert splits["test"].names == ("Beta/character01",)
    spec.write_text(json.dumps({"train": ["Nope/character01"], "test": []}))
    with pytest.raises(DataError, match="Nope/character01"):
        load_omniglot(omniglot_packed, split_file=spec)


def test_paper_split_function():
    alphabets = [f"A{i // 7}" for i in range(40)]
    characters = [f"character{i % 7:02d}" for i in range(40)]
    train, test = omniglot_paper_split(alphabets, characters, seed=0, train_characters=30)
    assert len(train) == 30 and len(test) == 10
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(40))
    assert np.all(np.diff(train) > 0)
    other, _ = omniglot_paper_split(alphabets, characters, seed=1, train_characters=30)
    assert not np.array_equal(train, other)
    # the split depends on the names, not on the order the file stores them in
    perm = np.random.default_rng(9).permutation(40)
    t2, _ = omniglot_paper_split([alphabets[i] for i in perm], [characters[i] for i in perm], 0, 30)
    assert sorted(perm[t2]) == sorted(train)
    with pytest.raises(ValueError, match="train_characters"):
        omniglot_paper_split(alphabets, characters, train_characters=40)


def test_miniimagenet_splits_read_on_demand_with_bounded_cache(mini_packed):
    splits = load_miniimagenet(mini_packed, cache_classes=1)
    assert sorted(splits) == ["test", "train", "val"]
    train = splits["train"]
    assert isinstance(train, MiniImageNetSplit)
    assert train.names == ("n00000001", "n00000002") and train.example_shape == (84, 84, 3)
    _check_interface(train, (84, 84, 3))
    with h5py.File(mini_packed, "r") as f:
        stored = f["train/images"][()]
    np.testing.assert_array_equal(train.get(1, [2, 0, 2]), stored[1][[2, 0, 2]].astype(np.float32) / 255)
    train.close()
    train = load_miniimagenet(mini_packed, cache_classes=1)["train"]
    train.get(0, [0]), train.get(0, [1]), train.get(1, [0]), train.get(0, [0])
    assert train.cache_info() == {"hits": 1, "misses": 2 + 1, "size": 1, "max": 1}
    uncached = load_miniimagenet(mini_packed, cache_classes=0)["train"]
    np.testing.assert_array_equal(uncached.get(1, [2, 0, 2]), train.get(1, [2, 0, 2]))
    assert uncached.cache_info()["size"] == 0
    clone = pickle.loads(pickle.dumps(train))
    np.testing.assert_array_equal(clone.get(0, [1]), train.get(0, [1]))
    assert train._file.mode == "r"
    with pytest.raises(IndexError):
        train.get(2, [0])
    with pytest.raises(IndexError):
        train.get(0, [3])
    for s in splits.values():
        s.close()
    clone.close()
    uncached.close()


def test_load_packed_and_inspect_dispatch_on_kind(omniglot_packed, mini_packed):
    assert inspect_packed(omniglot_packed).kind == "omniglot"
    assert inspect_packed(mini_packed).kind == "miniimagenet"
    assert sorted(load_packed(omniglot_packed, train_characters=3)) == ["test", "train"]
    splits = load_packed(mini_packed, cache_classes=2)
    assert sorted(splits) == ["test", "train", "val"]
    assert verify_packed(omniglot_packed).kind == "omniglot"
    assert verify_packed(mini_packed).schema_version == 1
    assert len(load_omniglot(omniglot_packed, verify=True, train_characters=2)["test"]) == 3


def test_as_class_split_accepts_mappings_sequences_and_arrays():
    rng = np.random.default_rng(0)
    mapping = {"b": rng.random((4, 3, 3)), "a": rng.random((2, 3, 3))}
    split = as_class_split(mapping)
    assert isinstance(split, ClassSplit) and split.names == ("b", "a") and split.example_shape == (3, 3)
    assert [split.num_examples(c) for c in range(2)] == [4, 2]
    np.testing.assert_array_equal(split.get(1, [1]), mapping["a"][[1]].astype(np.float32))
    stacked = as_class_split(rng.integers(0, 256, size=(3, 5, 2), dtype=np.uint8))
    assert len(stacked) == 3 and stacked.get(0, [0]).dtype == np.float32 and stacked.get(0, [0]).max() <= 1
    assert len(as_class_split([np.zeros((1, 2))] * 2)) == 2
    same = ArraySplit([np.zeros((1, 2))])
    assert as_class_split(same) is same
    with pytest.raises(ValueError):
        ArraySplit([np.zeros((1, 2)), np.zeros((1, 3))])


def test_importing_fometa_data_loads_neither_h5py_nor_pillow():
    code = ("import sys, fometa, fometa.data, fometa.commands.data, fometa.cli; fometa.cli.build_parser(); "
            "bad = [m for m in ('h5py', 'PIL', 'matplotlib', 'cupy') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_real_omniglot_loads_the_paper_protocol(real_omniglot_packed):
    splits = load_omniglot(real_omniglot_packed)
    assert len(splits["train"]) == 4800 and len(splits["test"]) == 423
    assert splits["train"].num_examples(4799) == 20
    bg = load_omniglot(real_omniglot_packed, protocol="background", augment_rotations=False)
    assert len(bg["train"]) == 964 and len(bg["test"]) == 659
