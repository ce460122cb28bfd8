"""``fometa train --seeds``: folders, resume of the group, a seed's run used alone, errors."""
import json
import os

import numpy as np
import pytest
from cli_helpers import FAST, fometa_cli

from fometa import checkpoint
from fometa import config as C
from fometa.commands.train import SeedGroup, parse_seeds


def _train(capsys, tiny_omniglot, *extra):
    return fometa_cli(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, *FAST,
                      "--quiet", *extra)


def _error(capsys, *args):
    rc, out, err = fometa_cli(capsys, *args)
    assert rc == 2, (rc, out, err)
    assert err.startswith("fometa: error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err


def _params_equal(a, b):
    return list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_seeds_write_a_run_folder_each_equal_to_the_seed_alone(capsys, tiny_omniglot, tmp_path):
    group = tmp_path / "group"
    rc, out, err = _train(capsys, tiny_omniglot, "--out", group, "--seeds", "0,3", "--meta-iters", "4",
                          "--eval-interval", "2")
    assert rc == 0, err
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert [(r["run"], r["seed"], r["status"], r["iteration"]) for r in lines] == [
        (str(group / "seed0"), 0, "finished", 4), (str(group / "seed3"), 3, "finished", 4)]
    assert json.loads((group / "seeds.json").read_text()) == {"seeds": [0, 3], "runs": ["seed0", "seed3"]}
    assert json.loads((group / "seed3" / "config.json").read_text())["seed"] == 3
    rc, _, err = _train(capsys, tiny_omniglot, "--out", tmp_path / "alone", "--seed", "3", "--meta-iters", "4",
                        "--eval-interval", "2")
    assert rc == 0, err
    a, b = checkpoint.load(tmp_path / "alone" / "checkpoint.h5"), checkpoint.load(group / "seed3" / "checkpoint.h5")
    assert _params_equal(a.params, b.params) and a.rng_state == b.rng_state and a.config == b.config

    # each seed's folder is an ordinary run: evaluated alone ...
    rc, out, err = fometa_cli(capsys, "eval", group / "seed3", "--tasks", "4", "--chunk", "4")
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1])["tasks"] == 4
    # ... and the group resumes as one (here to more meta-iterations, which needs --force)
    rc, out, err = fometa_cli(capsys, "train", "--resume", group, "--meta-iters", "6", "--force", "--quiet")
    assert rc == 0, err
    assert [json.loads(line)["iteration"] for line in out.strip().splitlines()] == [6, 6]
    assert checkpoint.load(group / "seed0" / "checkpoint.h5").iteration == 6


@pytest.mark.parametrize("flags, message", [
    (["--seeds", "0,0"], "--seeds: seeds must be distinct"),
    (["--seeds", "x"], "--seeds: seeds are non-negative integers"),
    (["--seeds", "0,1", "--seed", "2"], "give --seed or --seeds, not both"),
])
def test_seed_errors(capsys, tiny_omniglot, tmp_path, flags, message):
    err = _error(capsys, "train", "--preset", "omniglot-5way-1shot", "--data", tiny_omniglot, "--out",
                 tmp_path / "r", *FAST, "--quiet", *flags)
    assert message in err, err
    assert not (tmp_path / "r").exists()


def test_group_folder_errors(capsys, tiny_omniglot, tmp_path):
    group = tmp_path / "group"
    rc, _, err = _train(capsys, tiny_omniglot, "--out", group, "--seeds", "1-2", "--meta-iters", "2")
    assert rc == 0, err
    for extra in (["--seeds", "1,2"], []):  # a new group or a single run into a group's folder
        assert "already holds a run" in _error(capsys, "train", "--preset", "omniglot-5way-1shot", "--data",
                                               tiny_omniglot, "--out", group, *FAST, "--quiet", *extra)
    assert "takes neither --preset, --out nor --seeds" in _error(capsys, "train", "--resume", group, "--seeds", "1")
    assert "the runs of a group keep their seeds" in _error(capsys, "train", "--resume", group, "--seed", "5")
    assert "meta_iters: 2 in the run, 3 now" in _error(capsys, "train", "--resume", group, "--meta-iters", "3")
    (group / "seed2" / "checkpoint.h5").unlink()
    (group / "seed2" / "config.json").unlink()
    assert "the run of seed 2 is missing" in _error(capsys, "train", "--resume", group)


def test_a_locked_seed_folder_refuses_the_group(capsys, tiny_omniglot, tmp_path):
    """A seed's run folder in use by another writer keeps the whole group from starting."""
    from fometa.lock import hold

    group = tmp_path / "g"
    with hold(group / "seed1"):
        rc, out, err = _train(capsys, tiny_omniglot, "--out", group, "--seeds", "0,1")
    assert rc == 2 and "Traceback" not in err
    assert f"is in use by process {os.getpid()}" in err


@pytest.mark.parametrize("text, expected", [("0,1,2,3", [0, 1, 2, 3]), ("0-3", [0, 1, 2, 3]), ("5", [5]),
                                            ("0-2, 7", [0, 1, 2, 7])])
def test_parse_seeds(text, expected):
    assert parse_seeds(text) == expected


@pytest.mark.parametrize("text, message", [("a,b", "non-negative integers"), ("1,1", "distinct"),
                                           ("3-1", "empty seed range"), ("", "non-negative integers"),
                                           ("-1", "non-negative integers")])
def test_parse_seeds_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_seeds(text)


def test_seed_group_file_round_trips(tmp_path):
    group = SeedGroup(tmp_path / "g")
    assert not group.holds_group()
    group.write([3, 1])
    assert group.holds_group()
    assert group.read() == [(3, tmp_path / "g" / "seed3"), (1, tmp_path / "g" / "seed1")]
    assert json.loads(group.file.read_text())["runs"] == ["seed3", "seed1"]
    group.file.write_text("{not json")
    with pytest.raises(C.ConfigError, match="not a valid group of seeds"):
        group.read()
