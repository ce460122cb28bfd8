"""``fometa predict RUN --support DIR --query PATH...``: JSON lines, the classifier's numbers, every user error."""
import json

import numpy as np
import pytest
from cli_helpers import fometa_cli

from fometa.fewshot import FewShotClassifier

Image = pytest.importorskip("PIL.Image")

NAMES = {"alpha": "s00", "beta": "s01", "gamma": "s02"}


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="module")
def task(tmp_path_factory, tiny_classes):
    """``(support folder, query files, true classes)``: 2 images of 3 test classes, 4 queries each."""
    root = tmp_path_factory.mktemp("task")
    queries, truth = [], []
    for name, cls in NAMES.items():
        for i in range(2):
            _save(root / "support" / name / f"{i}.png", tiny_classes["test"][cls][i])
        for i in range(4):
            queries.append(_save(root / "query" / f"{name}{i}.png", tiny_classes["test"][cls][-1 - i]))
            truth.append(name)
    return root / "support", queries, truth


def _lines(out):
    return [json.loads(line) for line in out.strip().splitlines()]


def test_one_json_line_per_query_in_order(capsys, tiny_run, task):
    support, queries, truth = task
    rc, out, err = fometa_cli(capsys, "predict", tiny_run, "--support", support, "--query", *queries)
    assert rc == 0, err
    lines = _lines(out)
    assert [r["file"] for r in lines] == [str(q) for q in queries]
    for r in lines:
        assert set(r) == {"file", "class", "probabilities"}
        assert list(r["probabilities"]) == ["alpha", "beta", "gamma"]
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-9
        assert r["class"] == max(r["probabilities"], key=r["probabilities"].get)
    right = np.mean([r["class"] == t for r, t in zip(lines, truth, strict=True)])
    assert right > 0.5, f"{right:.0%} right on well-separated classes (chance 33%)"


def test_the_command_is_the_classifier(capsys, tiny_run, task):
    support, queries, _ = task
    rc, out, err = fometa_cli(capsys, "predict", tiny_run, "--support", support, "--query", support.parent / "query",
                              "--mode", "transductive", "--steps", "7", "--eval-seed", "5")
    assert rc == 0, err
    lines = _lines(out)
    files = sorted(queries)  # a query folder: its files by name
    assert [r["file"] for r in lines] == [str(f) for f in files]
    clf = FewShotClassifier.from_run(tiny_run, mode="transductive", steps=7, seed=5)
    labels = [p.parent.name for p in sorted(support.rglob("*.png"))]
    expected = clf.fit(sorted(support.rglob("*.png")), labels).predict_proba(files)
    np.testing.assert_array_equal(np.array([list(r["probabilities"].values()) for r in lines]), expected)


def test_per_query_labels_ignore_the_other_queries_and_transductive_ones_do_not(capsys, tiny_run, task):
    support, queries, _ = task

    def first(mode, *others):
        rc, out, err = fometa_cli(capsys, "predict", tiny_run, "--support", support, "--query", queries[0], *others,
                                  "--mode", mode)
        assert rc == 0, err
        return _lines(out)[0]["probabilities"]

    assert first("per-query", queries[5]) == first("per-query", queries[9], queries[10])
    assert first("transductive", queries[5]) != first("transductive", queries[9], queries[10])


def test_fewer_classes_than_ways(capsys, tiny_run, task, tmp_path):
    support, queries, _ = task
    two = tmp_path / "two"
    for name in ("beta", "alpha"):
        for f in (support / name).iterdir():
            _save(two / name / f.name, np.asarray(Image.open(f)))
    rc, out, err = fometa_cli(capsys, "predict", tiny_run, "--support", two, "--query", *queries[:4])
    assert rc == 0, err
    assert all(list(r["probabilities"]) == ["alpha", "beta"] for r in _lines(out))


def _error(capsys, *args):
    rc, out, err = fometa_cli(capsys, "predict", *args)
    assert rc == 2 and out == "", (rc, out, err)
    assert err.startswith("fometa: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_bad_support_folders(capsys, tiny_run, task, tmp_path):
    support, queries, _ = task
    q = queries[0]
    assert "gone: no such folder" in _error(capsys, tiny_run, "--support", tmp_path / "gone", "--query", q)

    four = tmp_path / "four"
    for name in ("a", "b", "c", "d"):
        _save(four / name / "0.png", np.full((12, 12), 255, np.uint8))
    assert "4 classes, but" in _error(capsys, tiny_run, "--support", four, "--query", q)
    assert "at most 3 classes" in _error(capsys, tiny_run, "--support", four, "--query", q)

    empty = tmp_path / "empty"
    _save(empty / "a" / "0.png", np.full((12, 12), 255, np.uint8))
    (empty / "b").mkdir()
    assert "b: holds no images" in _error(capsys, tiny_run, "--support", empty, "--query", q)

    one = tmp_path / "one"
    _save(one / "a" / "0.png", np.full((12, 12), 255, np.uint8))
    assert "at least 2 classes" in _error(capsys, tiny_run, "--support", one, "--query", q)

    stray = tmp_path / "stray"
    for name in ("a", "b"):
        _save(stray / name / "0.png", np.full((12, 12), 255, np.uint8))
    _save(stray / "loose.png", np.full((12, 12), 255, np.uint8))
    assert "loose.png: a support folder holds one sub-folder of images per class" in _error(
        capsys, tiny_run, "--support", stray, "--query", q)

    broken = tmp_path / "broken"
    for name in ("a", "b"):
        _save(broken / name / "0.png", np.full((12, 12), 255, np.uint8))
    (broken / "b" / "notes.txt").write_text("not an image")
    assert "notes.txt" in _error(capsys, tiny_run, "--support", broken, "--query", q)


def test_bad_queries_runs_and_options(capsys, tiny_run, task, tmp_path):
    support, queries, _ = task
    assert "nothing.png: no such file or folder" in _error(capsys, tiny_run, "--support", support, "--query",
                                                           tmp_path / "nothing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but not really")
    assert "bad.png" in _error(capsys, tiny_run, "--support", support, "--query", bad)
    assert "no such checkpoint file" in _error(capsys, tmp_path / "norun", "--support", support, "--query", queries[0])
    assert "nor a shipped model of that name" in _error(capsys, "no-such-model", "--support", support,
                                                      "--query", queries[0])
    assert "--steps must be non-negative" in _error(capsys, tiny_run, "--support", support, "--query", queries[0],
                                                    "--steps", "-2")


def test_an_image_unlike_the_model_s_is_labelled_with_a_warning_line(capsys, tmp_path):
    """A photograph (here colour noise) among raw Omniglot queries for the shipped omniglot-5way model: every query
    is labelled, and one line on stderr names the photograph; the raw scans alone get none."""
    from PIL import Image

    from fometa import pretrained, samples

    try:
        pretrained.checkpoint_path("omniglot-5way")
    except pretrained.RegistryError as exc:
        pytest.skip(f"the shipped model is not in this installation: {exc}")
    samples.copy_to("omniglot", tmp_path / "samples")
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(90, 120, 3), dtype=np.uint8)).save(photo)
    support, query = tmp_path / "samples" / "support", tmp_path / "samples" / "query"
    rc, out, err = fometa_cli(capsys, "predict", "omniglot-5way", "--support", support, "--query", query, photo)
    assert rc == 0 and len(out.strip().splitlines()) == len(list(query.iterdir())) + 1, err
    assert err.startswith(f"fometa predict: warning: {photo} is unlike the black-and-white drawings omniglot-5way "
                          "was trained on (") and err.count("\n") == 1, err
    rc, out, err = fometa_cli(capsys, "predict", "omniglot-5way", "--support", support, "--query", query)
    assert rc == 0 and err == "", err
