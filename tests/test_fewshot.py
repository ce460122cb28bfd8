"""fometa.FewShotClassifier: a trained run fine-tuned on a new task (the tiny run of conftest.py)."""
import json
import subprocess
import sys

import numpy as np
import pytest

import fometa
from fometa import checkpoint, pretrained
from fometa.data import DataError, ImageSpec
from fometa.evaluate import predict
from fometa.fewshot import FewShotClassifier, NotFittedError, read_support_folder

Image = pytest.importorskip("PIL.Image")

TEST = ["s00", "s01", "s02", "s03", "s04", "s05"]


def _task(classes, names, shots=2, queries=8):
    """Support (the first ``shots`` examples of each class) and queries (the last ``queries``)."""
    test = classes["test"]
    sx = np.concatenate([test[n][:shots] for n in names])
    qx = np.concatenate([test[n][-queries:] for n in names])
    return sx, np.repeat(names, shots), qx, np.repeat(names, queries)


@pytest.fixture(scope="module")
def clf(tiny_run):
    return FewShotClassifier.from_run(tiny_run)


def test_fometa_exports_the_classifier_without_importing_it_on_import_fometa(tmp_path):
    assert fometa.FewShotClassifier is FewShotClassifier
    code = "import json, sys, fometa; print(json.dumps('fometa.fewshot' in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) is False, "import fometa imported fometa.fewshot"


def test_fit_returns_itself_with_the_sorted_classes(clf, tiny_classes):
    sx, sy, _, _ = _task(tiny_classes, ["s02", "s00", "s01"])
    assert clf.fit(sx, sy) is clf
    assert list(clf.classes_) == ["s00", "s01", "s02"] and clf.n_classes_ == 3 and clf.ways == 3


@pytest.mark.parametrize("mode", ["per-query", "transductive"])
def test_well_separated_classes_are_classified_above_chance(tiny_run, tiny_classes, mode):
    accs = []
    for seed, start in enumerate(range(4)):
        sx, sy, qx, qy = _task(tiny_classes, TEST[start:start + 3])
        accs.append(FewShotClassifier.from_run(tiny_run, mode=mode, seed=seed).fit(sx, sy).score(qx, qy))
    assert np.mean(accs) >= 0.5, f"3-way accuracy {accs} is hardly above chance (1/3)"


def test_per_query_predictions_do_not_depend_on_the_other_queries(clf, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, TEST[:3])
    clf.fit(sx, sy)
    a = clf.predict_proba(qx[[0, 1, 2]])
    b = clf.predict_proba(qx[[5, 0, 20]])
    np.testing.assert_array_equal(a[0], b[1], err_msg="a query's probabilities changed with the other queries")
    np.testing.assert_array_equal(clf.predict_proba(qx[:1])[0], a[0])


def test_transductive_predictions_do(tiny_run, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, TEST[:3])
    clf = FewShotClassifier.from_run(tiny_run, mode="transductive").fit(sx, sy)
    a, b = clf.predict_proba(qx[[0, 1, 2]]), clf.predict_proba(qx[[0, 20, 21]])
    assert not np.array_equal(a[0], b[0]), "transductive batch norm should let the queries shape each other"


def test_fewer_classes_than_ways_use_the_first_outputs(clf, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, ["s04", "s05"])
    proba = clf.fit(sx, sy).predict_proba(qx)
    assert proba.shape == (len(qx), 2) and np.allclose(proba.sum(axis=1), 1.0)
    # the probabilities are the softmax of the network's first two outputs
    sxb = clf.transform(sx)[None]
    logits = np.concatenate([predict(clf.model, clf.params_, sxb, clf.transform(qx[i:i + 1])[None], "per-query")[0]
                             for i in range(3)])
    assert logits.shape == (3, 3)
    z = np.exp(logits[:, :2] - logits[:, :2].max(axis=1, keepdims=True))
    np.testing.assert_allclose(proba[:3], z / z.sum(axis=1, keepdims=True), rtol=1e-6)
    assert list(clf.predict(qx[:3])) == list(clf.classes_[proba[:3].argmax(axis=1)])


def test_staged_probabilities_record_one_adaptation(tiny_run, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, TEST[1:4])
    clf = FewShotClassifier.from_run(tiny_run, steps=50, seed=3).fit(sx, sy)
    staged = clf.staged_predict_proba(qx, steps=(50, 0, 1, 5))
    assert sorted(staged) == [0, 1, 5, 50] and all(p.shape == (len(qx), 3) for p in staged.values())
    np.testing.assert_array_equal(staged[50], clf.predict_proba(qx))
    for k in (0, 5):  # the same mini-batches as a fit of k steps: each stage is that fit's prediction
        fitted = FewShotClassifier.from_run(tiny_run, steps=k, seed=3).fit(sx, sy)
        np.testing.assert_array_equal(staged[k], fitted.predict_proba(qx), err_msg=f"stage {k}")
    assert not np.array_equal(staged[0], staged[50]), "fifty inner steps changed nothing"


def test_step_zero_is_the_initialization(tiny_run, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, TEST[:3])
    clf = FewShotClassifier.from_run(tiny_run, steps=0).fit(sx, sy)
    ckpt, _ = pretrained.load_run(tiny_run)[:2]
    for k, v in ckpt.params.items():
        np.testing.assert_array_equal(np.asarray(clf.params_[k])[0], v)


def test_transform_is_the_run_preprocessing_and_paths_work_as_arrays(tiny_run, tiny_images, tiny_classes, tmp_path):
    clf = FewShotClassifier.from_run(tiny_run)
    assert clf.spec == ImageSpec.for_packed(tiny_images) and clf.spec.shape == (12, 12)
    sx, sy, qx, _ = _task(tiny_classes, TEST[:3], queries=2)
    paths = []
    for i, a in enumerate(sx):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(a).save(paths[-1])
    np.testing.assert_array_equal(clf.transform(paths), sx.astype(np.float32) / 255)
    big = tmp_path / "big.png"  # another size and colour mode: converted as the run's spec says, not refused
    Image.fromarray(np.repeat(np.kron(sx[0], np.ones((3, 3), np.uint8))[..., None], 3, axis=2)).save(big)
    assert clf.transform([big]).shape == (1, 12, 12)
    a = clf.fit(paths, sy).predict_proba(qx)
    b = clf.fit(sx, sy).predict_proba(qx)
    np.testing.assert_array_equal(a, b)


def test_same_seed_same_probabilities(tiny_run, tiny_classes):
    sx, sy, qx, _ = _task(tiny_classes, TEST[2:5])
    a = FewShotClassifier.from_run(tiny_run, seed=1).fit(sx, sy).predict_proba(qx)
    b = FewShotClassifier.from_run(tiny_run, seed=1).fit(sx, sy).predict_proba(qx)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("labels, message", [
    (["a", "b", "c", "d", "a", "b"], "4 classes, but the model has 3 outputs"),
    (["a"] * 6, "at least 2 classes"),
    (["a", "b"], "6 images but 2 labels"),
])
def test_fit_errors(clf, tiny_classes, labels, message):
    sx = _task(tiny_classes, TEST[:3])[0]
    with pytest.raises(ValueError, match=message):
        clf.fit(sx, labels)


def test_predict_before_fit(tiny_run):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        FewShotClassifier.from_run(tiny_run).predict(np.zeros((1, 12, 12), np.uint8))


@pytest.mark.parametrize("options, message", [({"mode": "inductive"}, "mode must be one of"),
                                              ({"steps": -1}, "steps must be a non-negative int")])
def test_bad_options(tiny_run, options, message):
    with pytest.raises(ValueError, match=message):
        FewShotClassifier.from_run(tiny_run, **options)


def test_unreadable_image_is_named(clf, tiny_classes, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    sx, sy, _, _ = _task(tiny_classes, TEST[:3], shots=1)
    with pytest.raises(DataError, match="notes.png"):
        clf.fit([bad, *sx[1:]], sy)


def test_loading_errors(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no such checkpoint file"):
        FewShotClassifier.from_run(tmp_path / "nowhere")
    with pytest.raises(pretrained.RegistryError, match="no shipped model named 'no-such-model'"):
        FewShotClassifier.from_pretrained("no-such-model")


def test_support_folder_reading(tmp_path):
    for cls, n in (("b", 2), ("a", 1)):
        (tmp_path / "s" / cls).mkdir(parents=True)
        for i in range(n):
            (tmp_path / "s" / cls / f"{i}.png").write_bytes(b"")
    (tmp_path / "s" / ".hidden").mkdir()
    files, labels = read_support_folder(tmp_path / "s")
    assert labels == ["a", "b", "b"] and [f.name for f in files] == ["0.png", "0.png", "1.png"]
    (tmp_path / "s" / "c").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        read_support_folder(tmp_path / "s")
    with pytest.raises(DataError, match="no such folder"):
        read_support_folder(tmp_path / "gone")
