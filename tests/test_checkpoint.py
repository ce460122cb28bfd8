"""Checkpoints: exact round trips, atomic writes, and clear refusals of foreign or damaged files."""
import json

import h5py
import numpy as np
import pytest

from fometa import checkpoint, models, optim, tree


def _checkpoint(seed=0, state="adam") -> checkpoint.Checkpoint:
    rng = np.random.default_rng(seed)
    model = models.conv_net("tiny", 3, (8, 8), filters=2)
    params = model.init(rng)
    if state == "adam":
        inner = optim.Adam(1e-3).init(params)
        grads = tree.map(lambda p: rng.standard_normal(p.shape).astype(p.dtype), params)
        _, inner = optim.Adam(1e-3).update(grads, inner)
        _, inner = optim.Adam(1e-3).update(grads, inner)
    else:
        inner = optim.SGDState()
    rng.random(7)  # move the generator off its seed state
    return checkpoint.Checkpoint(params, inner, optim.SGDState(), checkpoint.rng_state(rng), 42,
                                 {"preset": "custom", "meta_iters": 100}, {"seconds": 1.5, "loss_sum": {"a": 0.1}})


def _assert_same(a: checkpoint.Checkpoint, b: checkpoint.Checkpoint):
    assert list(a.params) == list(b.params)
    for k in a.params:
        assert a.params[k].dtype == b.params[k].dtype and np.array_equal(a.params[k], b.params[k]), k
    assert type(a.inner_state) is type(b.inner_state) and type(a.outer_state) is type(b.outer_state)
    if isinstance(a.inner_state, optim.AdamState):
        assert int(a.inner_state.count) == int(b.inner_state.count)
        for part in ("mu", "nu"):
            x, y = getattr(a.inner_state, part), getattr(b.inner_state, part)
            assert all(np.array_equal(x[k], y[k]) and x[k].dtype == y[k].dtype for k in x), part
    assert (a.rng_state, a.iteration, a.config, a.extra) == (b.rng_state, b.iteration, b.config, b.extra)


@pytest.mark.parametrize("state", ["adam", "sgd"])
def test_round_trip_is_exact(tmp_path, state):
    ck = _checkpoint(state=state)
    path = checkpoint.save(tmp_path / "checkpoint.h5", ck)
    _assert_same(ck, checkpoint.load(path))


def test_restored_generator_continues_the_same_stream(tmp_path):
    rng = np.random.default_rng(123)
    rng.integers(0, 10, size=5)
    ck = _checkpoint()
    ck.rng_state = checkpoint.rng_state(rng)
    loaded = checkpoint.load(checkpoint.save(tmp_path / "c.h5", ck))
    again = checkpoint.make_rng(loaded.rng_state)
    assert np.array_equal(rng.permutation(50), again.permutation(50))
    assert rng.random() == again.random()


def test_importing_fometa_does_not_import_h5py():
    import subprocess
    import sys

    code = "import sys, fometa, fometa.checkpoint, fometa.train, fometa.config; print('h5py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.h5"
    good = _checkpoint(seed=0)
    checkpoint.save(path, good)
    bad = _checkpoint(seed=1)
    bad.params = dict(bad.params, **{"zz/broken": object()})  # cannot be stored: fails mid-write
    with pytest.raises(TypeError):
        checkpoint.save(path, bad)
    _assert_same(good, checkpoint.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.h5"], "temporary file left behind"


def test_write_goes_through_a_temporary_file_and_rename(tmp_path, monkeypatch):
    import os

    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((os.path.dirname(src), os.path.basename(str(src)), str(dst)))
        assert checkpoint.load(src).iteration == 42  # complete before it takes the name
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    checkpoint.save(tmp_path / "checkpoint.h5", _checkpoint())
    (folder, name, dst), = seen
    assert folder == str(tmp_path) and name.startswith("checkpoint.h5.tmp") and dst == str(tmp_path / "checkpoint.h5")


def test_missing_file(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no such checkpoint file"):
        checkpoint.load(tmp_path / "nope.h5")


def test_not_hdf5(tmp_path):
    path = tmp_path / "checkpoint.h5"
    path.write_bytes(b"this is not HDF5 at all\n" * 10)
    with pytest.raises(checkpoint.CheckpointError, match="not a readable HDF5 file"):
        checkpoint.load(path)


def test_truncated_file(tmp_path):
    path = checkpoint.save(tmp_path / "checkpoint.h5", _checkpoint())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="corrupt|not a readable HDF5"):
        checkpoint.load(path)


def test_foreign_hdf5_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("weights", data=np.zeros(3))
    with pytest.raises(checkpoint.CheckpointError, match="not a fometa checkpoint"):
        checkpoint.load(path)


def test_newer_format_version(tmp_path):
    path = checkpoint.save(tmp_path / "checkpoint.h5", _checkpoint())
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(checkpoint.CheckpointError, match="format version 99"):
        checkpoint.load(path)


def test_changed_values_fail_the_checksum(tmp_path):
    path = checkpoint.save(tmp_path / "checkpoint.h5", _checkpoint())
    with h5py.File(path, "r+") as f:
        f["params/conv0/kernel"][0, 0, 0, 0] += 1.0
    with pytest.raises(checkpoint.CheckpointError, match="do not match their checksum"):
        checkpoint.load(path)


def test_missing_part(tmp_path):
    path = checkpoint.save(tmp_path / "checkpoint.h5", _checkpoint())
    with h5py.File(path, "r+") as f:
        del f["inner_state"]
    with pytest.raises(checkpoint.CheckpointError, match="corrupt checkpoint"):
        checkpoint.load(path)


def test_bad_generator_state(tmp_path):
    ck = _checkpoint()
    ck.rng_state = {"bit_generator": "NoSuchGenerator", "state": {}}
    path = checkpoint.save(tmp_path / "checkpoint.h5", ck)
    with pytest.raises(checkpoint.CheckpointError, match="bad generator state"):
        checkpoint.load(path)


def test_config_is_stored_as_json(tmp_path):
    path = checkpoint.save(tmp_path / "checkpoint.h5", _checkpoint())
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["config"]) == {"preset": "custom", "meta_iters": 100}
        assert f.attrs["format"] == checkpoint.FORMAT


def test_tree_digest_sees_every_value_name_dtype_and_shape():
    a = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, np.float32)}
    base = checkpoint.tree_digest(a)
    assert base == checkpoint.tree_digest({k: v.copy() for k, v in a.items()})
    assert len(base) == 64 and int(base, 16) >= 0
    changed_value = dict(a, b=np.array([0, 0, 1e-7], np.float32))
    renamed = {"W": a["w"], "b": a["b"]}
    reshaped = dict(a, w=a["w"].reshape(3, 2))
    recast = dict(a, b=a["b"].astype(np.float64))
    reordered = {"b": a["b"], "w": a["w"]}
    others = [checkpoint.tree_digest(t) for t in (changed_value, renamed, reshaped, recast, reordered)]
    assert base not in others and len(set(others)) == len(others)
